//! The training loop on small synthetic problems: every optimizer lowers the MLP's loss,
//! runs are reproducible from a seed, the best-validation weights are kept and checkpointed.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use dlkit::data::{Dataset, DeviceData, Normalization};
use dlkit::models::{init, Mlp, MlpConfig};
use dlkit::optim::{vars_in_name_order, OptimizerConfig};
use dlkit::callbacks::ModelCheckpoint;
use dlkit::train::{evaluate, Monitor, Progress, Trainer};

/// Ten classes of 3×32×32 images: class c is bright in channel c % 3 and in a band of rows
/// that depends on c, plus seeded noise — learnable, but not in one step.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 56) as u8 / 4
    };
    let mut images = Vec::with_capacity(n * 3072);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 10;
        labels.push(c as u8);
        for ch in 0..3 {
            for row in 0..32 {
                for _ in 0..32 {
                    let lit = ch == c % 3 && row / 4 == c % 8;
                    images.push(if lit { 180 } else { 40 } + noise());
                }
            }
        }
    }
    let classes = (0..10).map(|c| format!("class{c}")).collect();
    Dataset::new(images, labels, (3, 32, 32), classes).unwrap()
}

fn data(n: usize, seed: u64) -> DeviceData {
    DeviceData::new(&synthetic(n, seed), &Device::Cpu, Normalization::UnitRange).unwrap()
}

fn coursework_mlp(vm: &VarMap, seed: u64, dropout: bool) -> Mlp {
    let cfg = if dropout { MlpConfig::cifar10().with_dropout() } else { MlpConfig::cifar10() };
    Mlp::new(init::seeded(vm, seed, DType::F32, &Device::Cpu), &MlpConfig { seed, ..cfg }).unwrap()
}

#[test]
fn one_epoch_with_each_optimizer_lowers_the_mlp_loss() {
    let train = data(1280, 1); // ten steps: RMSProp's first steps overshoot before they settle
    for name in ["sgd", "momentum", "sgd-nesterov", "adagrad", "rmsprop", "nadam", "adadelta", "adam"] {
        let vm = VarMap::new();
        let mlp = coursework_mlp(&vm, 0, false);
        let before = evaluate(&mlp, &train, 512).unwrap().loss;
        let mut opt = OptimizerConfig::from_name(name, None).unwrap().build(vars_in_name_order(&vm)).unwrap();
        Trainer::new(&mlp, &vm, &mut opt)
            .batch_size(128)
            .progress(Progress::Quiet)
            .fit(&train, None)
            .unwrap();
        let after = evaluate(&mlp, &train, 512).unwrap().loss;
        assert!(after < before, "{name}: loss {before} → {after}");
    }
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let (train, val) = (data(200, 2), data(50, 3));
    let run = |seed| {
        let vm = VarMap::new();
        let mlp = coursework_mlp(&vm, seed, true);
        let mut opt = OptimizerConfig::from_name("adam", None).unwrap().build(vars_in_name_order(&vm)).unwrap();
        let h = Trainer::new(&mlp, &vm, &mut opt)
            .epochs(2)
            .batch_size(64)
            .seed(seed)
            .progress(Progress::Quiet)
            .fit(&train, Some(&val))
            .unwrap();
        h.epochs.iter().map(|e| (e.train_loss, e.val_acc)).collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn keep_best_restores_the_best_epoch_and_checkpoints_it() {
    let (train, val) = (data(200, 4), data(100, 5));
    let vm = VarMap::new();
    let mlp = coursework_mlp(&vm, 1, false);
    // a learning rate large enough that later epochs get worse than the best one
    let mut opt = OptimizerConfig::from_name("sgd", Some(0.05)).unwrap().build(vars_in_name_order(&vm)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("best.safetensors");
    let h = Trainer::new(&mlp, &vm, &mut opt)
        .epochs(4)
        .batch_size(50)
        .progress(Progress::Quiet)
        .keep_best(Monitor::ValLoss)
        .callback(ModelCheckpoint::best_only(&ckpt, Monitor::ValLoss))
        .fit(&train, Some(&val))
        .unwrap();
    let best = h.best_epoch.unwrap();
    let best_loss = h.epochs.iter().filter_map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    assert_eq!(h.epochs[best - 1].val_loss, Some(best_loss));
    // the weights in the VarMap are the best epoch's: evaluating gives its validation loss
    let now = evaluate(&mlp, &val, 1000).unwrap().loss;
    assert!((now - best_loss).abs() < 1e-4 * best_loss, "{now} vs {best_loss}");
    // and the checkpoint holds the same weights
    let vm2 = VarMap::new();
    let mlp2 = coursework_mlp(&vm2, 99, false);
    let mut vm2 = vm2;
    vm2.load(&ckpt).unwrap();
    assert!((evaluate(&mlp2, &val, 1000).unwrap().loss - best_loss).abs() < 1e-4 * best_loss);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left beside the checkpoint");
}

#[test]
fn history_records_epochs_and_iterations() {
    let train = data(100, 6);
    let vm = VarMap::new();
    let mlp = coursework_mlp(&vm, 2, false);
    let mut opt = OptimizerConfig::from_name("sgd", None).unwrap().build(vars_in_name_order(&vm)).unwrap();
    let h = Trainer::new(&mlp, &vm, &mut opt)
        .epochs(3)
        .batch_size(32)
        .progress(Progress::Quiet)
        .record_iterations(true)
        .schedule(dlkit::schedule::CyclicLr::triangular(0.001, 0.01, 2).unwrap())
        .fit(&train, None)
        .unwrap();
    assert_eq!(h.epochs.len(), 3);
    assert_eq!(h.iterations.len(), 3 * 4, "100 samples in batches of 32 is 4 steps an epoch");
    let lrs: Vec<f64> = h.iterations.iter().map(|r| r.lr).collect();
    // triangular 0.001..0.01, step 2: 0.001, 0.0055, 0.01, 0.0055, 0.001, …
    for (i, lr) in lrs.iter().enumerate() {
        let want = [0.001, 0.0055, 0.01, 0.0055][i % 4];
        assert!((lr - want).abs() < 1e-12, "iteration {i}: {lr}");
    }
    assert!(h.epochs.iter().all(|e| e.val_acc.is_none() && e.seconds > 0.0));
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let train = data(10, 7);
    let vm = VarMap::new();
    let mlp = coursework_mlp(&vm, 0, false);
    let mut opt = OptimizerConfig::from_name("sgd", None).unwrap().build(vars_in_name_order(&vm)).unwrap();
    assert!(Trainer::new(&mlp, &vm, &mut opt).batch_size(0).fit(&train, None).is_err());
    let needs_validation = ModelCheckpoint::best_only("x.safetensors", Monitor::ValLoss);
    let e = Trainer::new(&mlp, &vm, &mut opt).callback(needs_validation).fit(&train, None).unwrap_err();
    assert!(e.to_string().contains("val_loss"), "{e}");
    assert!(OptimizerConfig::from_name("sgd", Some(-1.0)).is_err());
}

/// Optimizer state must not hold the backward graph: if it did, every step's activations would
/// stay alive and memory would grow without bound (a notebook run once grew to 21 GB this way).
#[test]
fn optimizer_state_is_detached_from_the_graph() {
    use dlkit::optim::OptimizerState;
    let train = data(64, 8);
    for name in ["sgd", "momentum", "adagrad", "rmsprop", "nadam", "adadelta", "adam"] {
        let vm = VarMap::new();
        let cfg = MlpConfig { inputs: 3072, hidden: vec![8], classes: 10, ..MlpConfig::cifar10() };
        let mlp = Mlp::new(init::seeded(&vm, 0, DType::F32, &Device::Cpu), &cfg).unwrap();
        let vars = vars_in_name_order(&vm);
        let mut opt = OptimizerConfig::from_name(name, None).unwrap().build(vars.clone()).unwrap();
        Trainer::new(&mlp, &vm, &mut opt).batch_size(32).progress(Progress::Quiet).fit(&train, None).unwrap();
        for (key, t) in opt.state().unwrap() {
            if t.dtype() != DType::F32 {
                continue;
            }
            let grads = t.sum_all().unwrap().backward().unwrap();
            for v in &vars {
                assert!(grads.get(v).is_none(), "{name}: state {key} still depends on the weights through the graph");
            }
        }
    }
}

#[test]
fn a_diverging_run_fails_naming_the_step_or_is_recorded_when_asked() {
    use dlkit::train::OnDivergence;
    let (train, val) = (data(256, 9), data(64, 10));
    let fit = |policy| {
        let vm = VarMap::new();
        let mlp = coursework_mlp(&vm, 0, false);
        let mut opt = OptimizerConfig::from_name("sgd", Some(1e12)).unwrap().build(vars_in_name_order(&vm)).unwrap();
        let result = Trainer::new(&mlp, &vm, &mut opt)
            .epochs(3)
            .batch_size(32)
            .progress(Progress::Quiet)
            .on_divergence(policy)
            .fit(&train, Some(&val));
        result
    };
    let failed = fit(OnDivergence::Fail);
    match failed {
        Err(dlkit::Error::Diverged(d)) => {
            assert_eq!((d.epoch, d.lr), (1, 1e12));
            assert!(d.step >= 1 && !d.loss.is_finite());
            let message = dlkit::Error::Diverged(d).to_string();
            assert!(message.contains("epoch 1") && message.contains(&format!("step {}", d.step)), "{message}");
        }
        other => panic!("expected a divergence error, got {other:?}"),
    }
    let h = fit(OnDivergence::Record).unwrap();
    let d = h.diverged.expect("the divergence is recorded");
    assert_eq!(h.epochs.len(), d.epoch, "the run stops in the epoch where it diverged");
    assert!(h.epochs.last().unwrap().train_loss.is_nan() || !h.epochs.last().unwrap().train_loss.is_finite());
    // The record, NaN and all, survives a JSON round trip.
    let text = serde_json::to_string(&h).unwrap();
    let back: dlkit::history::History = serde_json::from_str(&text).unwrap();
    assert_eq!(back.diverged.unwrap().step, d.step);
}

#[test]
fn gradient_accumulation_over_micro_batches_equals_the_whole_batch() {
    let train = data(192, 11);
    let weights = |micro: Option<usize>| {
        let vm = VarMap::new();
        let mlp = coursework_mlp(&vm, 3, false);
        let mut opt = OptimizerConfig::from_name("momentum", Some(0.01)).unwrap().build(vars_in_name_order(&vm)).unwrap();
        let mut trainer = Trainer::new(&mlp, &vm, &mut opt).epochs(2).batch_size(64).progress(Progress::Quiet);
        if let Some(m) = micro {
            trainer = trainer.micro_batch(m);
        }
        let h = trainer.fit(&train, None).unwrap();
        let w: Vec<f32> = vars_in_name_order(&vm).iter().flat_map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect();
        (w, h.epochs[1].train_loss)
    };
    let (whole, loss_whole) = weights(None);
    let (chunked, loss_chunked) = weights(Some(16));
    let max_diff = whole.iter().zip(&chunked).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max_diff < 1e-5, "weights differ by {max_diff}");
    assert!((loss_whole - loss_chunked).abs() < 1e-5 * loss_whole.abs(), "{loss_whole} vs {loss_chunked}");
}
