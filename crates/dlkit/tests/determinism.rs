//! Deterministic CPU training: the same seed gives bit-identical weights run after run on the
//! same machine and thread count (GitHub issue #16, item 6).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use dlkit::experiment::ModelChoice;
use dlkit::optim::{vars_in_name_order, OptimizerConfig};

mod common;

/// A few seeded synthetic CIFAR-shaped batches (`common::synthetic_batches`).
fn batches(count: usize, batch: usize) -> Vec<(Tensor, Tensor)> {
    common::synthetic_batches(count, batch, 0x2545F4914F6CDD1Du64, (7, 3))
}

/// Trains a seeded ResNet-8 with Adam on `data` and returns every variable's values, by name.
fn train_resnet8(data: &[(Tensor, Tensor)]) -> Vec<(String, Vec<f32>)> {
    let varmap = VarMap::new();
    let model = ModelChoice::from_name("resnet8", 3).unwrap().build(&varmap, 3, &Device::Cpu).unwrap();
    let mut opt = OptimizerConfig::from_name("adam", Some(1e-2)).unwrap().build(vars_in_name_order(&varmap)).unwrap();
    for (x, y) in data {
        let logits = model.forward_t(x, true).unwrap();
        let loss = (candle_nn::loss::cross_entropy(&logits, y).unwrap() + model.penalty().unwrap().unwrap()).unwrap();
        opt.backward_step(&loss).unwrap();
    }
    let vars = varmap.data().lock().unwrap();
    let mut named: Vec<(String, Vec<f32>)> = vars
        .iter()
        .map(|(name, var)| (name.clone(), var.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn two_identical_resnet_runs_on_several_threads_give_bit_identical_weights() {
    dlkit::runtime::tune_cpu();
    let data = batches(3, 24);
    // Four workers on however many cores: work stealing then varies from run to run, which is
    // what made the convolution's kernel-gradient sums differ in their last bits.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    let runs: Vec<Vec<(String, Vec<f32>)>> = (0..3).map(|_| pool.install(|| train_resnet8(&data))).collect();
    let initial = {
        let varmap = VarMap::new();
        ModelChoice::from_name("resnet8", 3).unwrap().build(&varmap, 3, &Device::Cpu).unwrap();
        let w = varmap.data().lock().unwrap()["stem.conv.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        w
    };
    let stem = |run: &[(String, Vec<f32>)]| run.iter().find(|(n, _)| n == "stem.conv.weight").unwrap().1.clone();
    assert_ne!(stem(&runs[0]), initial, "training did not move the weights");
    for run in &runs[1..] {
        assert_eq!(run.len(), runs[0].len());
        for ((name, a), (_, b)) in runs[0].iter().zip(run) {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{name} differs between two identical runs");
        }
    }
}
