//! The callbacks' Keras semantics, driven epoch by epoch with chosen figures. Every expected
//! outcome below is worked out by hand from tf.keras 2.x's `callbacks.py` (quoted in each
//! callback's documentation).

use super::*;
use crate::history::tests::epoch;
use crate::optim::OptimizerConfig;
use candle_core::{DType, Device};
use candle_nn::{Init, VarBuilder};

/// A one-variable "model" whose weight is set to the epoch number before each epoch's end, so
/// restored weights say which epoch they came from.
struct Rig {
    varmap: VarMap,
    model: crate::models::Mlp,
    optimizer: crate::optim::AnyOptimizer,
    history: History,
}

impl Rig {
    fn new(lr: f64) -> Self {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config = crate::models::MlpConfig { inputs: 1, hidden: vec![], classes: 1, l2: 0.0, ..crate::models::MlpConfig::cifar10() };
        let model = crate::models::Mlp::new(vb.clone(), &config).unwrap();
        let optimizer = OptimizerConfig::from_name("sgd", Some(lr)).unwrap().build(varmap.all_vars()).unwrap();
        Rig { varmap, model, optimizer, history: History::default() }
    }

    fn weight(&self) -> f32 {
        self.varmap.data().lock().unwrap()["fc1.weight"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
    }

    fn set_weight(&self, v: f32) {
        let data = self.varmap.data().lock().unwrap();
        data["fc1.weight"].set(&Tensor::new(&[[v]], &Device::Cpu).unwrap()).unwrap();
    }

    /// Run `callbacks` over epochs with these (val_loss, val_accuracy) figures; returns the
    /// number of epochs run and the learning rate each epoch used.
    fn run(&mut self, callbacks: &mut [&mut dyn Callback], figures: &[(f64, f64)]) -> (usize, Vec<f64>) {
        let mut lrs = Vec::new();
        for (e, &(val_loss, val_acc)) in figures.iter().enumerate() {
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(e, &mut self.ctx()).unwrap();
            }
            lrs.push(self.optimizer.learning_rate());
            self.set_weight(e as f32);
            let mut record = epoch(e + 1, 1.0, 0.5, val_loss, val_acc);
            let mut stop = false;
            for cb in callbacks.iter_mut() {
                let mut ctx = self.ctx();
                cb.on_epoch_end(&mut record, &mut ctx).unwrap();
                stop |= ctx.stop;
            }
            self.history.epochs.push(record);
            if stop {
                break;
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_train_end(&mut self.ctx()).unwrap();
        }
        (self.history.epochs.len(), lrs)
    }

    fn ctx(&mut self) -> Context<'_> {
        Context {
            model: &self.model,
            varmap: &self.varmap,
            validation: None,
            epochs: 100,
            history: &mut self.history,
            optimizer: &mut self.optimizer,
            stop: false,
            eval_batch_size: 1,
        }
    }
}

fn losses(values: &[f64]) -> Vec<(f64, f64)> {
    values.iter().map(|&l| (l, 0.0)).collect()
}

fn accuracies(values: &[f64]) -> Vec<(f64, f64)> {
    values.iter().map(|&a| (1.0, a)).collect()
}

#[test]
fn early_stopping_stops_patience_epochs_after_the_last_improvement() {
    // val_loss 1.0, 0.9 improve (wait 0); 0.95 → wait 1; 0.91 → wait 2 ≥ 2: stop after epoch 4.
    let mut es = EarlyStopping::new(Monitor::ValLoss, 2);
    let (epochs, _) = Rig::new(0.1).run(&mut [&mut es], &losses(&[1.0, 0.9, 0.95, 0.91, 0.5]));
    assert_eq!((epochs, es.stopped_epoch(), es.best_epoch()), (4, Some(3), Some(1)));
}

#[test]
fn early_stopping_min_delta_counts_only_large_enough_improvements() {
    // min_delta 0.05: 0.96 + 0.05 ≥ 1.0 is no improvement (wait 1), 0.94 + 0.05 < 1.0 is one.
    let mut es = EarlyStopping::new(Monitor::ValLoss, 2).min_delta(0.05);
    let (epochs, _) = Rig::new(0.1).run(&mut [&mut es], &losses(&[1.0, 0.96, 0.94, 0.93, 0.92]));
    assert_eq!((epochs, es.best_epoch()), (5, Some(2)), "0.93 and 0.92 do not improve on 0.94 by 0.05: stop at 5");
    let mut impatient = EarlyStopping::new(Monitor::ValLoss, 1).min_delta(0.05);
    let (epochs, _) = Rig::new(0.1).run(&mut [&mut impatient], &losses(&[1.0, 0.96, 0.5]));
    assert_eq!(epochs, 2);
}

#[test]
fn early_stopping_with_a_baseline_keeps_counting_until_it_is_beaten() {
    // Improvements below the baseline 0.5 do not reset wait, but Keras returns before its stop
    // test on an improving epoch: 0.3, 0.4, 0.45 improve (wait 1, 2, 3); 0.44 → wait 4: stop.
    let mut es = EarlyStopping::new(Monitor::ValAccuracy, 2).baseline(0.5);
    let (epochs, _) = Rig::new(0.1).run(&mut [&mut es], &accuracies(&[0.3, 0.4, 0.45, 0.44, 0.9]));
    assert_eq!(epochs, 4);
}

#[test]
fn early_stopping_restores_the_best_weights_only_when_it_stops() {
    let mut rig = Rig::new(0.1);
    let mut es = EarlyStopping::new(Monitor::ValAccuracy, 2).restoring_best_weights();
    rig.run(&mut [&mut es], &accuracies(&[0.2, 0.6, 0.5, 0.4, 0.9]));
    assert_eq!(rig.weight(), 1.0, "stopped after epoch 4 with epoch 2's weights (set to 1)");
    assert_eq!(rig.history.best_epoch, Some(2));

    let mut rig = Rig::new(0.1);
    let mut es = EarlyStopping::new(Monitor::ValAccuracy, 5).restoring_best_weights();
    rig.run(&mut [&mut es], &accuracies(&[0.2, 0.6, 0.5]));
    assert_eq!(rig.weight(), 2.0, "no early stop: tf.keras 2.x keeps the last weights");
}

#[test]
fn reduce_lr_on_plateau_follows_keras_with_cooldown_and_min_lr() {
    // factor 0.5, patience 2, cooldown 2, min_lr 0.1, a flat val_loss. Epoch by epoch:
    // e0 best = 1 · e1 wait 1 · e2 wait 2 → lr 0.5, cooldown 2 · e3 cooldown 1 · e4 cooldown 0,
    // wait 0 then +1 · e5 wait 2 → 0.25, cooldown 2 · e6 · e7 wait 1 · e8 → 0.125 · e9 · e10 wait 1
    // · e11 → max(0.0625, 0.1) = 0.1 · then lr = min_lr: no more reductions.
    let mut plateau = ReduceLrOnPlateau::new(Monitor::ValLoss, 0.5, 2).cooldown(2).min_lr(0.1).min_delta(0.0);
    let mut rig = Rig::new(1.0);
    let (_, lrs) = rig.run(&mut [&mut plateau], &losses(&[1.0; 16]));
    let want = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.1, 0.1, 0.1, 0.1];
    assert_eq!(lrs, want);
    assert_eq!(plateau.reductions().iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 6, 9, 12]);
}

#[test]
fn reduce_lr_on_plateau_resets_on_improvement_beyond_min_delta() {
    // min_delta 1e-4 (Keras default): 0.99995 is no improvement on 1.0, 0.9 is.
    let mut plateau = ReduceLrOnPlateau::new(Monitor::ValLoss, 0.1, 2);
    let (_, lrs) = Rig::new(1.0).run(&mut [&mut plateau], &losses(&[1.0, 0.99995, 0.9, 0.95, 0.96, 0.97]));
    let want = [1.0, 1.0, 1.0, 1.0, 1.0, 0.1];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{lrs:?}");
    }
}

#[test]
fn a_scheduler_that_ignores_the_rate_overwrites_plateau_reductions_as_in_keras() {
    let flat = losses(&[1.0; 5]);
    // patience 1: a reduction after every epoch but the first.
    let mut plateau = ReduceLrOnPlateau::new(Monitor::ValLoss, 0.5, 1);
    let mut fixed = LearningRateScheduler::new(|_, _| 1.0);
    let (_, lrs) = Rig::new(1.0).run(&mut [&mut fixed, &mut plateau], &flat);
    assert_eq!(lrs, [1.0; 5], "schedule(epoch) = 1.0 undoes each reduction");
    let mut plateau = ReduceLrOnPlateau::new(Monitor::ValLoss, 0.5, 1);
    let mut keep = LearningRateScheduler::new(|epoch, lr| if epoch == 0 { 1.0 } else { lr });
    let (_, lrs) = Rig::new(1.0).run(&mut [&mut keep, &mut plateau], &flat);
    assert_eq!(lrs, [1.0, 1.0, 0.5, 0.25, 0.125]);
}

#[test]
fn model_checkpoint_saves_improving_epochs_under_the_formatted_name() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("CIFAR10-EP{epoch:02d}-ACC{val_acc:.4f}.safetensors");
    let mut ckpt = ModelCheckpoint::best_only(&pattern, Monitor::ValAccuracy).restoring_best_at_end();
    let mut rig = Rig::new(0.1);
    rig.run(&mut [&mut ckpt], &accuracies(&[0.5, 0.625, 0.55, 0.75, 0.75]));
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["CIFAR10-EP01-ACC0.5000.safetensors", "CIFAR10-EP02-ACC0.6250.safetensors", "CIFAR10-EP04-ACC0.7500.safetensors"]);
    assert_eq!(rig.weight(), 3.0, "restored epoch 4's weights (the tie at epoch 5 is not better)");
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    vb.pp("fc1").get_with_hints((1, 1), "weight", Init::Const(0.0)).unwrap();
    vb.pp("fc1").get_with_hints(1, "bias", Init::Const(0.0)).unwrap();
    crate::io::load_varmap(&vm, &dir.path().join("CIFAR10-EP02-ACC0.6250.safetensors")).unwrap();
    let w = vm.data().lock().unwrap()["fc1.weight"].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(w, [1.0], "the file holds epoch 2's weights");
}

#[test]
fn callback_state_round_trips_so_a_resumed_run_continues_counting() {
    let mut es = EarlyStopping::new(Monitor::ValLoss, 3);
    Rig::new(0.1).run(&mut [&mut es], &losses(&[1.0, 1.1, 1.2]));
    let saved = es.state().unwrap();
    let mut resumed = EarlyStopping::new(Monitor::ValLoss, 3);
    resumed.load_state(saved).unwrap();
    // wait was 2 after three epochs: one more epoch without improvement stops it.
    let mut rig = Rig::new(0.1);
    rig.history.epochs = (1..=3).map(|e| epoch(e, 1.0, 0.5, 1.0, 0.5)).collect();
    let mut record = epoch(4, 1.0, 0.5, 1.3, 0.0);
    let mut ctx = rig.ctx();
    resumed.on_epoch_end(&mut record, &mut ctx).unwrap();
    assert!(ctx.stop);
}
