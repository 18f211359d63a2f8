//! Stop training when a monitored figure stops improving (Keras `EarlyStopping`).

use super::{monitored, require_validation, parse_state, state_json, Callback, CallbackState, Context, MonitorMode};
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Monitor};
use crate::models::WeightSnapshot;

/// Keras's `EarlyStopping(monitor, min_delta, patience, mode, baseline, restore_best_weights,
/// start_from_epoch)`, with tf.keras 2.x semantics:
///
/// - An epoch *improves* when `value − min_delta > best` (higher is better) or
///   `value + min_delta < best` (lower is better); `best` starts at ∓∞.
/// - Every epoch counts: `wait += 1`; an improvement sets `best`, the best epoch and (with
///   `restore_best_weights`) copies the weights, and resets `wait` to 0 unless a `baseline` is
///   set and not beaten. Then, if `wait ≥ patience` (and it is not the first epoch), training
///   stops after this epoch. So with patience p the run stops p epochs after the last
///   improvement.
/// - `restore_best_weights` puts the best epoch's weights back **only when the run stops
///   early**; a run that reaches its last epoch keeps its last weights, as in tf.keras 2.x
///   (add a [`super::ModelCheckpoint`] to always end with the best weights). If no epoch ever
///   improved, the weights of the first monitored epoch are restored.
/// - Epochs before `start_from_epoch` (0-based) are not monitored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EarlyStopping {
    /// The figure watched (Keras default `val_loss`).
    pub monitor: Monitor,
    /// Smallest change that counts as an improvement (≥ 0).
    pub min_delta: f64,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Which direction improves.
    pub mode: MonitorMode,
    /// A value the figure must beat before `wait` is reset, if any.
    pub baseline: Option<f64>,
    /// Restore the best epoch's weights when stopping early.
    pub restore_best_weights: bool,
    /// Epochs (from 0) to skip before watching.
    pub start_from_epoch: usize,
    #[serde(skip)]
    state: EarlyStoppingState,
    #[serde(skip)]
    best_weights: Option<WeightSnapshot>,
}

/// The counters [`EarlyStopping`] carries across epochs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct EarlyStoppingState {
    wait: usize,
    #[serde(with = "crate::serde_float::option")]
    best: Option<f64>,
    best_epoch: Option<usize>,
    stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Stop when `monitor` has not improved for `patience` epochs (no min_delta, no baseline,
    /// no weight restore; set the public fields to change those).
    pub fn new(monitor: Monitor, patience: usize) -> Self {
        EarlyStopping {
            monitor,
            min_delta: 0.0,
            patience,
            mode: MonitorMode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            state: EarlyStoppingState::default(),
            best_weights: None,
        }
    }

    /// The same, restoring the best weights when it stops early.
    pub fn restoring_best_weights(mut self) -> Self {
        self.restore_best_weights = true;
        self
    }

    /// The same with the smallest change that counts as an improvement.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// The same with a value the figure must beat before the patience count is reset.
    pub fn baseline(mut self, baseline: f64) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// The same with an explicit direction (Keras `mode`).
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same, watching only from epoch `epoch` (from 0) on.
    pub fn start_from_epoch(mut self, epoch: usize) -> Self {
        self.start_from_epoch = epoch;
        self
    }

    /// The epoch (from 0) at which it stopped the run, if it did.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.state.stopped_epoch
    }

    /// The epoch (from 0) with the best monitored value so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.state.best_epoch
    }

    fn improves(&self, value: f64, reference: Option<f64>) -> bool {
        let Some(reference) = reference else { return true };
        if self.mode.higher_is_better(&self.monitor) {
            value - self.min_delta > reference
        } else {
            value + self.min_delta < reference
        }
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &str {
        "early_stopping"
    }

    fn on_train_begin(&mut self, ctx: &mut Context) -> Result<()> {
        require_validation(&self.monitor, ctx, "early stopping")?;
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite()) {
            return Err(Error::Config(format!("early stopping: min_delta must be finite and ≥ 0, got {}", self.min_delta)));
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        let epoch = record.epoch - 1;
        if epoch < self.start_from_epoch {
            return Ok(());
        }
        let value = monitored(record, &self.monitor, "early stopping")?;
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(WeightSnapshot::capture(ctx.varmap)?);
        }
        self.state.wait += 1;
        if value.is_finite() && self.improves(value, self.state.best) {
            self.state.best = Some(value);
            self.state.best_epoch = Some(epoch);
            if self.restore_best_weights {
                self.best_weights = Some(WeightSnapshot::capture(ctx.varmap)?);
            }
            if self.baseline.is_none_or(|b| self.improves(value, Some(b))) {
                self.state.wait = 0;
            }
            return Ok(());
        }
        if self.state.wait >= self.patience && epoch > 0 {
            self.state.stopped_epoch = Some(epoch);
            ctx.stop_training();
            if let Some(weights) = self.best_weights.as_ref().filter(|_| self.restore_best_weights) {
                weights.restore(ctx.varmap)?;
                ctx.history.best_epoch = self.state.best_epoch.map(|e| e + 1);
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<CallbackState> {
        Ok(CallbackState {
            values: state_json(self.name(), &self.state)?,
            tensors: self.best_weights.as_ref().map(|w| w.tensors().to_vec()).unwrap_or_default(),
        })
    }

    fn load_state(&mut self, state: CallbackState) -> Result<()> {
        self.state = parse_state(self.name(), state.values)?;
        self.best_weights = (!state.tensors.is_empty()).then(|| WeightSnapshot::from_tensors(state.tensors));
        Ok(())
    }
}
