//! `runtime::set_kernels(Kernels::Candle)` runs the code path CUDA takes (candle's convolution,
//! batch norm, pooling, activations, dense layers, L2 sums, the optimizers' tensor ops) on the
//! CPU; a short training run gives the same history either way, within float rounding.
//!
//! Its own test binary: the switch is process-wide.

use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::models::AttentionResNetConfig;
use dlkit::optim::{vars_in_name_order, OptimizerConfig};
use dlkit::runtime::{set_kernels, Kernels};

mod common;

/// A few seeded synthetic CIFAR-shaped batches (`common::synthetic_batches`).
fn batches(count: usize, batch: usize) -> Vec<(Tensor, Tensor)> {
    common::synthetic_batches(count, batch, 0x9E3779B97F4A7C15u64, (3, 1))
}

/// (per-step training losses, evaluation-mode logits on the first batch) of a seeded model
/// trained with `optimizer` on `data`.
fn history(model: &ModelChoice, optimizer: &str, data: &[(Tensor, Tensor)]) -> (Vec<f32>, Vec<f32>) {
    let varmap = VarMap::new();
    let net = model.build(&varmap, 1, &Device::Cpu).unwrap();
    let mut opt = OptimizerConfig::from_name(optimizer, None).unwrap().build(vars_in_name_order(&varmap)).unwrap();
    let mut losses = Vec::new();
    for (x, y) in data {
        let logits = net.forward_t(x, true).unwrap();
        let mut loss = candle_nn::loss::cross_entropy(&logits, y).unwrap();
        if let Some(p) = net.penalty().unwrap() {
            loss = (loss + p).unwrap();
        }
        opt.backward_step(&loss).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
    }
    let logits = net.forward_t(&data[0].0, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (losses, logits)
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tolerance * y.abs().max(1.0), "{what}[{i}]: dlkit {x} vs candle {y}");
    }
}

#[test]
fn a_short_training_run_agrees_between_dlkit_and_candle_kernels() {
    let data = batches(3, 8);
    let named = |name| ModelChoice::from_name(name, 3).unwrap();
    for (model, optimizer) in [("resnet8", "adam"), ("resnet8", "momentum"), ("vgg-cnn", "momentum"), ("mlp", "adagrad")] {
        let choice = named(model);
        set_kernels(Kernels::Dlkit);
        let ours = history(&choice, optimizer, &data);
        set_kernels(Kernels::Candle);
        let theirs = history(&choice, optimizer, &data);
        set_kernels(Kernels::Dlkit);
        assert_close(&format!("{model} {optimizer} loss"), &ours.0, &theirs.0, 1e-3);
        assert_close(&format!("{model} {optimizer} logits"), &ours.1, &theirs.1, 1e-2);
        // The losses moved, so the comparison covers several real updates.
        assert!(ours.0.iter().any(|&l| (l - ours.0[0]).abs() > 1e-3), "{model}: loss never moved: {:?}", ours.0);
    }
}

/// (training-mode loss, the gradient of every variable that gets one, in name order) of one
/// seeded batch.
fn loss_and_gradients(model: &ModelChoice, data: &(Tensor, Tensor)) -> (f32, Vec<Option<Vec<f32>>>) {
    let varmap = VarMap::new();
    let net = model.build(&varmap, 1, &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&net.forward_t(&data.0, true).unwrap(), &data.1).unwrap();
    let grads = loss.backward().unwrap();
    let vars = vars_in_name_order(&varmap);
    let gradients = vars.iter().map(|v| grads.get(v).map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect();
    (loss.to_scalar::<f32>().unwrap(), gradients)
}

#[test]
fn attention_network_gradients_agree_between_dlkit_and_candle_kernels() {
    // The paper's nested soft masks (narrowed), which cover the soft-mask kernels: up-sampling
    // with and without the skip connection's add, and the gate, against candle's ops (the CUDA
    // path). One step, not a training run: this deep a network at batch 8 amplifies rounding
    // differences from step to step. Even in one backward pass they grow with depth, through
    // ~50 batch norms over as few as 8 × 4 × 4 values: measured, the classifier's gradients
    // agree to 2e-7 of their largest value and the deepest ones to 5 % (the same before the
    // soft-mask kernels existed), so the bound is 10 %: a wrong derivative is off by O(1).
    let model = ModelChoice::AttentionResNet(AttentionResNetConfig::paper().narrow(8));
    let data = &batches(1, 8)[0];
    set_kernels(Kernels::Dlkit);
    let (loss, ours) = loss_and_gradients(&model, data);
    set_kernels(Kernels::Candle);
    let (expected, theirs) = loss_and_gradients(&model, data);
    set_kernels(Kernels::Dlkit);
    assert!((loss - expected).abs() <= 1e-5 * expected.abs(), "loss: dlkit {loss} vs candle {expected}");
    assert!(ours.iter().flatten().count() > 100, "most of the network's variables get a gradient");
    for (i, pair) in ours.iter().zip(&theirs).enumerate() {
        let (Some(a), Some(b)) = pair else {
            assert_eq!(pair.0.is_some(), pair.1.is_some(), "variable {i} has a gradient on one path only");
            continue;
        };
        // Gradients that are zero in exact arithmetic (a convolution's bias before a batch norm)
        // are rounding noise on both paths.
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        if scale > 1e-4 {
            let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst <= 0.1 * scale, "gradient of variable {i}: off by {worst} at scale {scale}");
        }
    }
}

#[test]
fn kernels_parse_from_their_names() {
    assert_eq!(Kernels::from_name("candle").unwrap(), Kernels::Candle);
    assert_eq!(Kernels::from_name(" DLKIT ").unwrap(), Kernels::Dlkit);
    let err = Kernels::from_name("cuda").unwrap_err().to_string();
    assert!(err.contains("DLKIT_KERNELS") && err.contains("candle"), "{err}");
}
