//! Cyclical learning rate, learning-rate finder and cyclical batch size, checked against the
//! published formulas worked out here independently.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use dlkit::data::{Dataset, DeviceData, Normalization};
use dlkit::models::{init, Mlp, MlpConfig};
use dlkit::schedule::{log_space, BatchSizeSchedule, CyclicBatchSize, CyclicLr, LrFinder, LrSchedule, ScaleMode};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
}

#[test]
fn triangular_rises_to_max_at_step_size_and_returns() {
    // base 0.001, max 0.006, step 2000: a straight line up to 0.006 at it = 2000, down to 0.001 at 4000.
    let clr = CyclicLr::triangular(0.001, 0.006, 2000).unwrap();
    for (it, want) in [(0, 0.001), (500, 0.00225), (1000, 0.0035), (2000, 0.006), (3000, 0.0035), (4000, 0.001), (6000, 0.006)] {
        assert!(close(clr.lr(it), want), "it {it}: {} vs {want}", clr.lr(it));
    }
}

#[test]
fn triangular2_halves_the_amplitude_each_cycle() {
    let clr = CyclicLr::triangular2(0.001, 0.006, 2000).unwrap();
    // peaks at 2000 (cycle 1), 6000 (cycle 2), 10000 (cycle 3): amplitude 0.005, 0.0025, 0.00125
    assert!(close(clr.lr(2000), 0.006));
    assert!(close(clr.lr(6000), 0.0035));
    assert!(close(clr.lr(10000), 0.00225));
    // half-way up the second cycle: 0.001 + 0.0025 / 2
    assert!(close(clr.lr(5000), 0.00225));
}

#[test]
fn exp_range_decays_with_gamma_to_the_iteration() {
    let gamma: f64 = 0.99994;
    let clr = CyclicLr::exp_range(0.001, 0.006, 2000, gamma).unwrap();
    // ln(0.99994) = −6.00018e−5 → γ^2000 = e^(−0.120003600144) = 0.886916…
    let g2000 = (-0.120_003_600_144_f64).exp();
    assert!((clr.lr(2000) - (0.001 + 0.005 * g2000)).abs() < 1e-12);
    let g6000 = (-0.360_010_800_432_f64).exp();
    assert!((clr.lr(6000) - (0.001 + 0.005 * g6000)).abs() < 1e-12);
    assert!(clr.lr(6000) < clr.lr(2000));
}

#[test]
fn custom_scale_and_schedule_trait() {
    let mut clr = CyclicLr::custom(0.0, 1.0, 10, |c| 1.0 / c, ScaleMode::Cycle).unwrap();
    assert!(close(clr.lr(10), 1.0));
    assert!(close(clr.lr(30), 0.5));
    assert_eq!(clr.at_iteration(5), Some(0.5));
    assert!(CyclicLr::triangular(0.1, 0.01, 10).is_err());
    assert!(CyclicLr::triangular(0.01, 0.1, 0).is_err());
    assert!(CyclicLr::exp_range(0.01, 0.1, 10, 1.5).is_err());
}

#[test]
fn cyclical_batch_size_halves_to_min_and_doubles_back() {
    let mut p = CyclicBatchSize::new(64, 512, 2).unwrap();
    let sizes: Vec<usize> = (0..16).map(|e| p.at_epoch(e)).collect();
    assert_eq!(sizes, [512, 512, 256, 256, 128, 128, 64, 64, 128, 128, 256, 256, 512, 512, 256, 256]);
    assert!(sizes.contains(&64) && sizes.contains(&512));
    assert!(CyclicBatchSize::new(64, 500, 1).is_err());
}

#[test]
fn log_space_covers_the_coursework_grid() {
    let lrs = log_space(1e-9, 10.0, 11);
    assert_eq!(lrs.len(), 11);
    for (i, lr) in lrs.iter().enumerate() {
        let want = 10f64.powi(i as i32 - 9);
        assert!((lr / want - 1.0).abs() < 1e-9, "{lr} vs {want}");
    }
}

fn tiny_problem() -> (VarMap, Mlp, DeviceData) {
    let dev = Device::Cpu;
    let n = 64;
    let images: Vec<u8> = (0..n * 4).map(|i| ((i * 37) % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let ds = Dataset::new(images, labels, (1, 2, 2), vec!["a".into(), "b".into()]).unwrap();
    let data = DeviceData::new(&ds, &dev, Normalization::UnitRange).unwrap();
    let vm = VarMap::new();
    let cfg = MlpConfig { inputs: 4, hidden: vec![8], classes: 2, l2: 0.0, ..MlpConfig::cifar10() };
    let mlp = Mlp::new(init::seeded(&vm, 1, DType::F32, &dev), &cfg).unwrap();
    (vm, mlp, data)
}

fn weights(vm: &VarMap) -> Vec<(String, Vec<f32>)> {
    let mut w: Vec<_> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn finder_grows_lr_geometrically_smooths_and_restores_weights() {
    let (vm, mlp, data) = tiny_problem();
    let before = weights(&vm);
    let mut sgd = candle_nn::SGD::new(vm.all_vars(), 1e-4).unwrap();
    let finder = LrFinder { stop_factor: 1e9, ..LrFinder::new(1e-4, 1e-2, 20).unwrap() };
    let r = finder.run(&mlp, &vm, &mut sgd, &data, 16, 0).unwrap();
    assert_eq!(r.lrs.len(), 20);
    // lr_i = 1e-4 · (100)^(i/20)
    for (i, lr) in r.lrs.iter().enumerate() {
        let want = 1e-4 * 100f64.powf(i as f64 / 20.0);
        assert!((lr / want - 1.0).abs() < 1e-9, "batch {i}: {lr} vs {want}");
    }
    // smoothing: avg_t = 0.98 avg + 0.02 loss_t, smooth_t = avg_t / (1 − 0.98^t)
    let mut avg = 0.0;
    for (t, (raw, smooth)) in r.raw_losses.iter().zip(&r.losses).enumerate() {
        avg = 0.98 * avg + 0.02 * raw;
        let want = avg / (1.0 - 0.98f64.powi(t as i32 + 1));
        assert!((smooth - want).abs() < 1e-9 * want.abs().max(1.0));
    }
    assert!(close(r.losses[0], r.raw_losses[0]));
    assert!(!r.diverged);
    assert_eq!(weights(&vm), before, "the finder must restore the weights");
}

#[test]
fn finder_stops_when_the_loss_diverges() {
    let (vm, mlp, data) = tiny_problem();
    let mut sgd = candle_nn::SGD::new(vm.all_vars(), 1e-3).unwrap();
    let finder = LrFinder::new(1e-3, 1e6, 400).unwrap();
    let r = finder.run(&mlp, &vm, &mut sgd, &data, 16, 0).unwrap();
    assert!(r.diverged, "a learning rate of 1e6 must blow the loss up");
    assert!(r.lrs.len() < 400);
    let last = *r.losses.last().unwrap();
    let best = r.losses[..r.losses.len() - 1].iter().copied().fold(f64::INFINITY, f64::min);
    assert!(!last.is_finite() || last > 4.0 * best);
    let _ = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    let _ = sgd.learning_rate();
}
