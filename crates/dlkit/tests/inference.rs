//! `Network::inference`: the frozen evaluation forward pass (batch norm folded into the
//! convolutions, no autograd graph) gives the logits of `forward_t(x, false)`.

use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::models::{AttentionResNetConfig, MiniGoogLeNetConfig, ResNetDConfig, Shortcut};
use dlkit::optim::{vars_in_name_order, OptimizerConfig};

fn images(batch: usize, channels: usize, seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    let values: Vec<f32> = (0..batch * channels * 32 * 32)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_vec(values, (batch, channels, 32, 32), &Device::Cpu).unwrap()
}

#[test]
fn frozen_models_give_the_evaluation_mode_logits() {
    let narrow = ModelChoice::MiniGoogLeNet(MiniGoogLeNetConfig { input_channels: 1, width_divisor: 4, ..Default::default() });
    let models = [
        (ModelChoice::from_name("mlp", 3).unwrap(), 3),
        (ModelChoice::from_name("resnet8", 3).unwrap(), 3),
        (narrow, 1),
        (ModelChoice::from_name("vgg-cnn", 3).unwrap(), 3),
        // Stride-2 blocks with an average-pooled projection, squeeze-excitation gates.
        (ModelChoice::ResNetD(ResNetDConfig::default().reduced()), 3),
        // Pre-activation units with projections everywhere, a stem batch norm.
        (ModelChoice::AttentionResNet(AttentionResNetConfig::mini().narrow(4)), 3),
        // Nested soft masks with skip connections, identity shortcuts, no stem batch norm, a
        // batch norm + ReLU before the pool.
        (
            ModelChoice::AttentionResNet(AttentionResNetConfig {
                shortcut: Shortcut::IdentityWhereShapeKept,
                ..AttentionResNetConfig::paper().narrow(8).regularised(0.2, 1e-4)
            }),
            3,
        ),
    ];
    for (choice, channels) in models {
        let varmap = VarMap::new();
        let net = choice.build(&varmap, 0, &Device::Cpu).unwrap();
        // A few training steps, so the batch norms' running statistics are far from 0 and 1
        // and folding them in matters.
        let mut opt = OptimizerConfig::from_name("adam", Some(1e-3)).unwrap().build(vars_in_name_order(&varmap)).unwrap();
        let labels = Tensor::from_vec((0..8u32).collect::<Vec<_>>(), 8, &Device::Cpu).unwrap();
        for step in 0..3 {
            let x = (images(8, channels, step) * 3.0).unwrap();
            let loss = candle_nn::loss::cross_entropy(&net.forward_t(&x, true).unwrap(), &labels).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let x = images(5, channels, 99);
        let expected = net.forward_t(&x, false).unwrap();
        let frozen = net.inference().unwrap();
        let got = frozen.forward(&x).unwrap();
        assert!(!got.track_op(), "{choice:?}: the frozen forward pass recorded a graph");
        assert_eq!(got.dims(), expected.dims());
        let diff = (&got - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let scale = expected.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
        assert!(diff <= 1e-4 * scale, "{choice:?}: frozen logits differ by {diff} (scale {scale})");
    }
}
