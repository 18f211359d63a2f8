//! Tests of the convolutional models: shapes, parameter counts worked out by hand, train and
//! evaluation modes, batch-norm running statistics, initialisation, the L2 penalty, and a tiny
//! overfitting run.

use candle_core::{DType, Device, ModuleT, Result, Tensor, D};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use dlkit::models::init::seeded;
use dlkit::models::{
    MiniGoogLeNet, MiniGoogLeNetConfig, Network, ResNet, ResNetConfig, VggCnn, VggCnnConfig,
};
use rand::{Rng, SeedableRng};

/// Builds a model on a fresh CPU `VarMap` with weights drawn from `seed`.
fn build_seeded<M>(seed: u64, make: impl FnOnce(VarBuilder) -> Result<M>) -> Result<(VarMap, M)> {
    let varmap = VarMap::new();
    let vb = seeded(&varmap, seed, DType::F32, &Device::Cpu);
    let model = make(vb)?;
    Ok((varmap, model))
}

/// Builds a model on a fresh CPU `VarMap` with weights drawn from seed 0.
fn build<M>(make: impl FnOnce(VarBuilder) -> Result<M>) -> Result<(VarMap, M)> {
    build_seeded(0, make)
}

/// Seeded uniform images in [-1, 1), shape [n, channels, 32, 32].
fn images(n: usize, channels: usize, seed: u64) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len = n * channels * 32 * 32;
    let values: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(values, (n, channels, 32, 32), &Device::Cpu)
}

/// (all elements in the VarMap, elements of batch-norm running statistics).
fn counts(varmap: &VarMap) -> (usize, usize) {
    let data = varmap.data().lock().unwrap();
    let total = data.values().map(|v| v.elem_count()).sum();
    let running = data
        .iter()
        .filter(|(name, _)| name.ends_with("running_mean") || name.ends_with("running_var"))
        .map(|(_, v)| v.elem_count())
        .sum();
    (total, running)
}

/// A copy of the named variable's values.
fn values(varmap: &VarMap, name: &str) -> Vec<f32> {
    let data = varmap.data().lock().unwrap();
    let var = data.get(name).unwrap_or_else(|| panic!("no variable {name}"));
    var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Parameters of a Keras conv layer with bias: in·k²·out + out.
fn conv(inputs: usize, k: usize, outputs: usize) -> usize {
    inputs * k * k * outputs + outputs
}

/// Parameters of a Keras BatchNormalization layer: gamma, beta, moving mean, moving variance.
fn bn(channels: usize) -> usize {
    4 * channels
}

#[test]
fn resnet20_has_the_keras_parameter_count() -> Result<()> {
    let (varmap, _) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    // Written out layer by layer for n = 3 blocks per stage.
    let stem = conv(3, 3, 16) + bn(16); // 448 + 64
    let stage1 = 6 * (conv(16, 3, 16) + bn(16)); // 6 × (2,320 + 64)
    let stage2 = conv(16, 3, 32) + 5 * conv(32, 3, 32) + 6 * bn(32) + conv(16, 1, 32); // + projection
    let stage3 = conv(32, 3, 64) + 5 * conv(64, 3, 64) + 6 * bn(64) + conv(32, 1, 64);
    let dense = 64 * 10 + 10;
    assert_eq!(stem + stage1 + stage2 + stage3 + dense, 274_442);
    let (total, running) = counts(&varmap);
    assert_eq!(total, 274_442);
    // Moving mean and variance of 19 BN layers: 7 × 16 + 6 × 32 + 6 × 64 channels.
    assert_eq!(running, 2 * (7 * 16 + 6 * 32 + 6 * 64));
    assert_eq!(running, 1_376);
    Ok(())
}

#[test]
fn resnet44_has_the_keras_parameter_count() -> Result<()> {
    let (varmap, _) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(44)))?;
    // n = 7 blocks per stage: 14 convs and 14 BNs per stage.
    let stem = conv(3, 3, 16) + bn(16);
    let stage1 = 14 * (conv(16, 3, 16) + bn(16));
    let stage2 = conv(16, 3, 32) + 13 * conv(32, 3, 32) + 14 * bn(32) + conv(16, 1, 32);
    let stage3 = conv(32, 3, 64) + 13 * conv(64, 3, 64) + 14 * bn(64) + conv(32, 1, 64);
    let dense = 64 * 10 + 10;
    assert_eq!(stem + stage1 + stage2 + stage3 + dense, 665_994);
    let (total, running) = counts(&varmap);
    assert_eq!(total, 665_994);
    assert_eq!(running, 2 * (15 * 16 + 14 * 32 + 14 * 64));
    assert_eq!(running, 3_168);
    Ok(())
}

#[test]
fn resnet_rejects_depths_that_are_not_6n_plus_2() {
    for depth in [0, 2, 19, 21, 33] {
        let built = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(depth)));
        let message = built.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("6n + 2"), "depth {depth}: {message:?}");
    }
    assert_eq!(ResNetConfig::cifar10(110).blocks_per_stage().ok(), Some(18));
}

#[test]
fn vgg_cnn_has_the_coursework_parameter_count() -> Result<()> {
    let (varmap, _) = build(|vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    let convs = [
        3 * 9 * 64 + 64,     // 1,792
        64 * 9 * 64 + 64,    // 36,928
        64 * 9 * 128 + 128,  // 73,856
        128 * 9 * 128 + 128, // 147,584
        128 * 9 * 256 + 256, // 295,168
        256 * 9 * 256 + 256, // 590,080
    ];
    assert_eq!(convs, [1_792, 36_928, 73_856, 147_584, 295_168, 590_080]);
    let dense = 4 * 4 * 256 * 10 + 10; // 40,970
    assert_eq!(convs.iter().sum::<usize>() + dense, 1_186_378);
    assert_eq!(counts(&varmap), (1_186_378, 0));
    Ok(())
}

/// MiniGoogLeNet's parameters by hand: a conv module is a conv with bias and a BN.
fn minigooglenet_parameters(input_channels: usize) -> usize {
    let module = |inputs, k, outputs| conv(inputs, k, outputs) + bn(outputs);
    let inception = |inputs, a, b| module(inputs, 1, a) + module(inputs, 3, b);
    module(input_channels, 3, 96)
        + inception(96, 32, 32)    // → 64 channels
        + inception(64, 32, 48)    // → 80
        + module(80, 3, 80)        // downsample → 80 + 80 = 160
        + inception(160, 112, 48)  // → 160
        + inception(160, 96, 64)   // → 160
        + inception(160, 80, 80)   // → 160
        + inception(160, 48, 96)   // → 144
        + module(144, 3, 96)       // downsample → 96 + 144 = 240
        + inception(240, 176, 160) // → 336
        + inception(336, 176, 160) // → 336
        + (336 * 10 + 10)
}

#[test]
fn minigooglenet_parameter_counts_for_grey_and_colour_images() -> Result<()> {
    // The Keras summary of the colour model: 1,656,250 parameters, 3,424 non-trainable.
    assert_eq!(minigooglenet_parameters(3), 1_656_250);
    // Grey input only changes the stem kernel: 2 × 9 × 96 fewer weights.
    assert_eq!(minigooglenet_parameters(1), 1_656_250 - 2 * 9 * 96);
    let bn_channels = 96 + 64 + 80 + 80 + 160 + 160 + 160 + 144 + 96 + 336 + 336;
    for channels in [1, 3] {
        let config = MiniGoogLeNetConfig { input_channels: channels, ..Default::default() };
        let (varmap, model) = build(|vb| MiniGoogLeNet::new(vb, config))?;
        assert_eq!(counts(&varmap), (minigooglenet_parameters(channels), 2 * bn_channels));
        assert_eq!(2 * bn_channels, 3_424);
        assert_eq!(model.forward(&images(2, channels, 1)?)?.dims(), [2, 10]);
    }
    assert!(build(|vb| MiniGoogLeNet::new(
        vb,
        MiniGoogLeNetConfig { input_channels: 2, ..Default::default() }
    ))
    .is_err());
    Ok(())
}

#[test]
fn outputs_are_logits_of_shape_batch_by_classes() -> Result<()> {
    let x = images(3, 3, 2)?;
    let (_, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    assert_eq!(resnet.forward_t(&x, true)?.dims(), [3, 10]);
    assert_eq!(resnet.forward_t(&x, false)?.dims(), [3, 10]);
    let (_, resnet32) =
        build(|vb| ResNet::new(vb, ResNetConfig { classes: 7, ..ResNetConfig::cifar10(32) }))?;
    assert_eq!(resnet32.forward(&x)?.dims(), [3, 7]);
    let (_, vgg) = build(|vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    assert_eq!(vgg.forward_t(&x, true)?.dims(), [3, 10]);
    assert_eq!(vgg.forward(&x)?.dims(), [3, 10]);
    let (_, googlenet) = build(|vb| MiniGoogLeNet::new(vb, MiniGoogLeNetConfig::default()))?;
    assert_eq!(googlenet.forward_t(&x, true)?.dims(), [3, 10]);
    Ok(())
}

/// Training mode differs from evaluation mode, and evaluation is deterministic.
fn check_modes(model: &impl ModuleT, x: &Tensor) -> Result<()> {
    let eval1 = model.forward_t(x, false)?;
    let eval2 = model.forward_t(x, false)?;
    assert_eq!(max_abs_diff(&eval1, &eval2), 0.0, "evaluation mode is not deterministic");
    let train = model.forward_t(x, true)?;
    assert!(max_abs_diff(&eval1, &train) > 1e-4, "training mode gives the evaluation output");
    Ok(())
}

#[test]
fn training_and_evaluation_modes_differ() -> Result<()> {
    let x = images(4, 3, 3)?;
    let (_, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    check_modes(&resnet, &x)?; // batch norm
    let (_, vgg) = build(|vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    check_modes(&vgg, &x)?; // dropout only
    let (_, googlenet) = build(|vb| MiniGoogLeNet::new(vb, MiniGoogLeNetConfig::default()))?;
    check_modes(&googlenet, &x)?; // batch norm and dropout
                                  // Without dropout the VGG network has no training-only behaviour.
    let config = VggCnnConfig { dropout: 0.0, ..Default::default() };
    let (_, plain) = build(|vb| VggCnn::new(vb, config))?;
    assert_eq!(max_abs_diff(&plain.forward_t(&x, true)?, &plain.forward(&x)?), 0.0);
    Ok(())
}

#[test]
fn batch_norm_running_statistics_move_in_training_mode_only() -> Result<()> {
    let (varmap, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    let mean = "stem.bn.running_mean";
    let var = "stem.bn.running_var";
    assert_eq!(values(&varmap, mean), vec![0.0; 16]);
    assert_eq!(values(&varmap, var), vec![1.0; 16]);
    let x = images(4, 3, 4)?;
    resnet.forward(&x)?;
    assert_eq!(values(&varmap, mean), vec![0.0; 16], "evaluation changed the running mean");
    assert_eq!(values(&varmap, var), vec![1.0; 16], "evaluation changed the running variance");

    // One training pass: running = 0.99 · running + 0.01 · batch statistic (Keras momentum).
    resnet.forward_t(&x, true)?;
    // The stem's pre-BN activations, recomputed from its own kernel and (zero) bias.
    let kernel = varmap.data().lock().unwrap()["stem.conv.weight"].as_tensor().clone();
    let z = x.conv2d(&kernel, 1, 1, 1, 1)?; // [4, 16, 32, 32]
    let z = z.transpose(0, 1)?.flatten_from(1)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let after_mean = values(&varmap, mean);
    let after_var = values(&varmap, var);
    for c in 0..16 {
        let n = z[c].len() as f64;
        let m = z[c].iter().sum::<f64>() / n;
        let unbiased = z[c].iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
        assert!((after_mean[c] as f64 - 0.01 * m).abs() < 1e-5, "channel {c} mean");
        assert!((after_var[c] as f64 - (0.99 + 0.01 * unbiased)).abs() < 1e-5, "channel {c} var");
    }
    assert!(after_mean.iter().any(|&v| v != 0.0));
    // Evaluation afterwards leaves the updated statistics alone.
    resnet.forward(&x)?;
    assert_eq!(values(&varmap, mean), after_mean);
    Ok(())
}

#[test]
fn he_normal_and_glorot_uniform_initialisation() -> Result<()> {
    let (varmap, _) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    // stage 3 conv: fan_in = 64 · 3 · 3 = 576, He std √(2/576).
    let w = values(&varmap, "stage3.block1.conv1.weight");
    assert_eq!(w.len(), 64 * 64 * 9);
    let std = (2.0f64 / 576.0).sqrt();
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
    let sample_std = (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.05 * std, "mean {mean}");
    assert!((sample_std / std - 1.0).abs() < 0.03, "std {sample_std} vs {std}");
    assert_eq!(values(&varmap, "stage3.block1.conv1.bias"), vec![0.0; 64]);
    // The 1×1 projection of stage 2: fan_in = 16, std √(2/16).
    let w = values(&varmap, "stage2.block0.projection.weight");
    let sample_std = (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!((sample_std / (2.0f64 / 16.0).sqrt() - 1.0).abs() < 0.15, "std {sample_std}");

    let glorot = VggCnnConfig { init: dlkit::models::layers::KernelInit::GlorotUniform, ..VggCnnConfig::default() };
    let (varmap, _) = build(|vb| VggCnn::new(vb, glorot))?;
    // block 3 second conv: fan_in = fan_out = 256 · 9, Glorot bound √(6 / 4608).
    let w = values(&varmap, "block3.conv2.weight");
    let bound = (6.0f64 / (2.0 * 256.0 * 9.0)).sqrt();
    let max = w.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    assert!(max <= bound && max > 0.99 * bound, "max |w| {max}, bound {bound}");
    assert_eq!(values(&varmap, "classifier.bias"), vec![0.0; 10]);

    // The section-05 report's default: He normal convolutions, std √(2 / fan_in).
    let (varmap, _) = build(|vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    let w = values(&varmap, "block3.conv2.weight");
    let sample_std = (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!((sample_std / (2.0f64 / 2304.0).sqrt() - 1.0).abs() < 0.03, "std {sample_std}");
    Ok(())
}

#[test]
fn the_seed_fixes_the_weights_and_the_dropout_masks() -> Result<()> {
    let x = images(2, 3, 5)?;
    let (a_vars, a) = build_seeded(7, |vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    let (b_vars, b) = build_seeded(7, |vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    let (c_vars, _) = build_seeded(8, |vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    let name = "block2.conv1.weight";
    assert_eq!(values(&a_vars, name), values(&b_vars, name));
    assert_ne!(values(&a_vars, name), values(&c_vars, name));
    assert_eq!(max_abs_diff(&a.forward_t(&x, true)?, &b.forward_t(&x, true)?), 0.0);
    Ok(())
}

/// λ·Σw² over the 4-D `*.weight` tensors of the VarMap (the convolution kernels), in f64.
fn conv_kernel_penalty(varmap: &VarMap, lambda: f64) -> (f64, usize) {
    let data = varmap.data().lock().unwrap();
    let mut sum = 0.0;
    let mut kernels = 0;
    for (name, var) in data.iter() {
        if name.ends_with(".weight") && var.as_tensor().rank() == 4 {
            let w = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            sum += w.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            kernels += 1;
        }
    }
    (lambda * sum, kernels)
}

#[test]
fn penalty_is_lambda_times_sum_of_squared_conv_kernels() -> Result<()> {
    let (varmap, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    let (expected, kernels) = conv_kernel_penalty(&varmap, 1e-4);
    assert_eq!(kernels, 1 + 18 + 2); // stem, 3 stages × 3 blocks × 2, two projections
    let penalty = resnet.penalty()?.expect("λ = 1e-4 gives a penalty").to_scalar::<f32>()? as f64;
    assert!((penalty / expected - 1.0).abs() < 1e-5, "{penalty} vs {expected}");

    let config = VggCnnConfig { l2: 5e-4, ..Default::default() };
    let (varmap, vgg) = build(|vb| VggCnn::new(vb, config))?;
    let (expected, kernels) = conv_kernel_penalty(&varmap, 5e-4);
    assert_eq!(kernels, 6);
    let penalty = vgg.penalty()?.expect("λ = 5e-4 gives a penalty").to_scalar::<f32>()? as f64;
    assert!((penalty / expected - 1.0).abs() < 1e-5, "{penalty} vs {expected}");

    let (_, no_l2) = build(|vb| ResNet::new(vb, ResNetConfig { l2: 0.0, ..Default::default() }))?;
    assert!(no_l2.penalty()?.is_none());
    let (_, vgg) = build(|vb| VggCnn::new(vb, VggCnnConfig::default()))?;
    assert!(vgg.penalty()?.is_none());
    let (_, googlenet) = build(|vb| MiniGoogLeNet::new(vb, MiniGoogLeNetConfig::default()))?;
    assert!(googlenet.penalty()?.is_none());
    Ok(())
}

#[test]
fn a_few_sgd_steps_lower_the_resnet20_loss_on_16_images() -> Result<()> {
    let (varmap, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    let x = images(16, 3, 6)?;
    let labels: Vec<u32> = (0..16).map(|i| (i % 10) as u32).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    let mut sgd = candle_nn::SGD::new(varmap.all_vars(), 0.05)?;
    let mut losses = Vec::new();
    for _ in 0..6 {
        let logits = resnet.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let total = match resnet.penalty()? {
            Some(penalty) => (&loss + penalty)?,
            None => loss.clone(),
        };
        sgd.backward_step(&total)?;
        losses.push(loss.to_scalar::<f32>()?);
    }
    println!("ResNet-20 losses: {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[5] < 0.8 * losses[0], "loss did not fall: {losses:?}");
    // The logits of the trained images now favour their labels more often than chance.
    let predicted = resnet.forward_t(&x, true)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let hits = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(hits >= 4, "{hits}/16 correct after training");
    Ok(())
}

/// Time of one forward + backward pass of ResNet-20 on a batch of 16 (CPU). Run with
/// `cargo test -p dlkit --test models -- --ignored --nocapture`.
#[test]
#[ignore]
fn time_resnet20_forward_backward() -> Result<()> {
    let (_, resnet) = build(|vb| ResNet::new(vb, ResNetConfig::cifar10(20)))?;
    let x = images(16, 3, 7)?;
    let y = Tensor::new(&[0u32; 16], &Device::Cpu)?;
    for round in 0..4 {
        let start = std::time::Instant::now();
        let loss = candle_nn::loss::cross_entropy(&resnet.forward_t(&x, true)?, &y)?;
        let forward = start.elapsed().as_secs_f64();
        loss.backward()?;
        let total = start.elapsed().as_secs_f64();
        println!("round {round}: forward {forward:.3} s, forward + backward {total:.3} s");
    }
    Ok(())
}

/// The 3×3/2 max pool equals a hand loop and back-propagates (candle's own cannot when the
/// kernel differs from the stride), routing each gradient to the window's maximum: both the CPU
/// kernel and the candle-ops version used on other devices.
#[test]
fn strided_max_pool_matches_a_loop_and_has_a_gradient() {
    use dlkit::models::layers::{max_pool2d, max_pool2d_by_views};
    for pool in [max_pool2d, max_pool2d_by_views] {
        strided_max_pool_check(pool);
    }
}

fn strided_max_pool_check(pool: fn(&candle_core::Tensor, usize, usize) -> candle_core::Result<candle_core::Tensor>) {
    use candle_core::{Device, Tensor, Var};
    let (h, w) = (7usize, 6usize);
    let values: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 23) as f32).collect();
    let x = Var::from_tensor(&Tensor::from_vec(values.clone(), (1, 1, h, w), &Device::Cpu).unwrap()).unwrap();
    let y = pool(x.as_tensor(), 3, 2).unwrap();
    let (oh, ow) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1);
    assert_eq!(y.dims(), &[1, 1, oh, ow]);
    let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in 0..oh {
        for j in 0..ow {
            let mut m = f32::MIN;
            for dy in 0..3 {
                for dx in 0..3 {
                    m = m.max(values[(2 * i + dy) * w + 2 * j + dx]);
                }
            }
            assert_eq!(got[i * ow + j], m, "output ({i}, {j})");
        }
    }
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // every output sends gradient 1 to (at least) its maximum, and nothing flows elsewhere
    assert!(g.iter().sum::<f32>() >= (oh * ow) as f32);
    for (k, gk) in g.iter().enumerate() {
        if *gk > 0.0 {
            assert!(got.contains(&values[k]), "gradient at a non-maximum pixel {k}");
        }
    }
}
