//! `runtime::set_kernels(Kernels::Candle)` runs the code path CUDA takes (candle's convolution,
//! batch norm, pooling, activations, dense layers, L2 sums, the optimizers' tensor ops) on the
//! CPU; a short training run gives the same history either way, within float rounding.
//!
//! Its own test binary: the switch is process-wide.

use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::optim::{vars_in_name_order, OptimizerConfig};
use dlkit::runtime::{set_kernels, Kernels};

mod common;

/// A few seeded synthetic CIFAR-shaped batches (`common::synthetic_batches`).
fn batches(count: usize, batch: usize) -> Vec<(Tensor, Tensor)> {
    common::synthetic_batches(count, batch, 0x9E3779B97F4A7C15u64, (3, 1))
}

/// (per-step training losses, evaluation-mode logits on the first batch) of a seeded model
/// trained with `optimizer` on `data`.
fn history(model: &str, optimizer: &str, data: &[(Tensor, Tensor)]) -> (Vec<f32>, Vec<f32>) {
    let varmap = VarMap::new();
    let net = ModelChoice::from_name(model, 3).unwrap().build(&varmap, 1, &Device::Cpu).unwrap();
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
    for (model, optimizer) in [("resnet8", "adam"), ("resnet8", "momentum"), ("vgg-cnn", "momentum"), ("mlp", "adagrad")] {
        set_kernels(Kernels::Dlkit);
        let ours = history(model, optimizer, &data);
        set_kernels(Kernels::Candle);
        let theirs = history(model, optimizer, &data);
        set_kernels(Kernels::Dlkit);
        assert_close(&format!("{model} {optimizer} loss"), &ours.0, &theirs.0, 1e-3);
        assert_close(&format!("{model} {optimizer} logits"), &ours.1, &theirs.1, 1e-2);
        // The losses moved, so the comparison covers several real updates.
        assert!(ours.0.iter().any(|&l| (l - ours.0[0]).abs() > 1e-3), "{model}: loss never moved: {:?}", ours.0);
    }
}

#[test]
fn kernels_parse_from_their_names() {
    assert_eq!(Kernels::from_name("candle").unwrap(), Kernels::Candle);
    assert_eq!(Kernels::from_name(" DLKIT ").unwrap(), Kernels::Dlkit);
    let err = Kernels::from_name("cuda").unwrap_err().to_string();
    assert!(err.contains("DLKIT_KERNELS") && err.contains("candle"), "{err}");
}
