//! Lower the learning rate when a monitored figure stops improving (Keras `ReduceLROnPlateau`).

use super::{monitored, require_validation, parse_state, state_json, Callback, CallbackState, Context, MonitorMode};
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Monitor};

/// Keras's `ReduceLROnPlateau(monitor, factor, patience, mode, min_delta, cooldown, min_lr)`,
/// tf.keras 2.x semantics, at the end of every epoch:
///
/// 1. In cooldown (`cooldown_counter > 0`): `cooldown_counter −= 1` and `wait = 0`.
/// 2. If the value improves (`value < best − min_delta`, or `> best + min_delta` when higher is
///    better; `best` starts at ∓∞): `best = value`, `wait = 0`.
/// 3. Otherwise, when not in cooldown: `wait += 1`; once `wait ≥ patience` and
///    `lr > min_lr`: `lr = max(lr·factor, min_lr)`, `cooldown_counter = cooldown`, `wait = 0`.
///
/// The new rate applies from the next epoch. Together with a [`super::LearningRateScheduler`]
/// (which sets the rate at the start of every epoch) the scheduler's function receives the
/// reduced rate; a schedule that ignores it overwrites the reduction, as in Keras.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReduceLrOnPlateau {
    /// The figure watched (Keras default `val_loss`).
    pub monitor: Monitor,
    /// Factor applied to the rate, in (0, 1) (Keras default 0.1).
    pub factor: f64,
    /// Epochs without improvement before a reduction (Keras default 10).
    pub patience: usize,
    /// Which direction improves.
    pub mode: MonitorMode,
    /// Smallest change that counts as an improvement (Keras default 1e-4).
    pub min_delta: f64,
    /// Epochs to wait after a reduction before counting again (Keras default 0).
    pub cooldown: usize,
    /// The rate is never lowered below this (Keras default 0).
    pub min_lr: f64,
    #[serde(skip)]
    state: PlateauState,
}

/// What [`ReduceLrOnPlateau`] carries across epochs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct PlateauState {
    wait: usize,
    cooldown_counter: usize,
    #[serde(with = "crate::serde_float::option")]
    best: Option<f64>,
    /// (epoch from 1, new learning rate) of each reduction.
    reductions: Vec<(usize, f64)>,
}

impl ReduceLrOnPlateau {
    /// Multiply the rate by `factor` after `patience` epochs without improvement of `monitor`
    /// (Keras's defaults for the rest: min_delta 1e-4, cooldown 0, min_lr 0).
    pub fn new(monitor: Monitor, factor: f64, patience: usize) -> Self {
        ReduceLrOnPlateau {
            monitor,
            factor,
            patience,
            mode: MonitorMode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            state: PlateauState::default(),
        }
    }

    /// The same with the smallest change that counts as an improvement.
    pub fn min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta;
        self
    }

    /// The same with `epochs` of rest after each reduction.
    pub fn cooldown(mut self, epochs: usize) -> Self {
        self.cooldown = epochs;
        self
    }

    /// The same with a floor for the learning rate.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// The same with an explicit direction (Keras `mode`).
    pub fn mode(mut self, mode: MonitorMode) -> Self {
        self.mode = mode;
        self
    }

    /// The reductions made so far: (epoch from 1 after which it happened, new rate).
    pub fn reductions(&self) -> &[(usize, f64)] {
        &self.state.reductions
    }

    fn improves(&self, value: f64) -> bool {
        match self.state.best {
            None => !value.is_nan(),
            Some(best) if self.mode.higher_is_better(&self.monitor) => value > best + self.min_delta,
            Some(best) => value < best - self.min_delta,
        }
    }
}

impl Callback for ReduceLrOnPlateau {
    fn name(&self) -> &str {
        "reduce_lr_on_plateau"
    }

    fn on_train_begin(&mut self, ctx: &mut Context) -> Result<()> {
        require_validation(&self.monitor, ctx, "ReduceLROnPlateau")?;
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(Error::Config(format!("ReduceLROnPlateau: factor must be in (0, 1), got {}", self.factor)));
        }
        if !(self.min_delta >= 0.0 && self.min_delta.is_finite() && self.min_lr >= 0.0 && self.min_lr.is_finite()) {
            return Err(Error::Config(format!(
                "ReduceLROnPlateau: min_delta and min_lr must be finite and ≥ 0, got {} and {}",
                self.min_delta, self.min_lr
            )));
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        let value = monitored(record, &self.monitor, "ReduceLROnPlateau")?;
        let s = &mut self.state;
        if s.cooldown_counter > 0 {
            s.cooldown_counter -= 1;
            s.wait = 0;
        }
        if self.improves(value) {
            self.state.best = Some(value);
            self.state.wait = 0;
            return Ok(());
        }
        let s = &mut self.state;
        if s.cooldown_counter == 0 {
            s.wait += 1;
            let lr = ctx.learning_rate();
            if s.wait >= self.patience && lr > self.min_lr {
                let new_lr = (lr * self.factor).max(self.min_lr);
                ctx.set_learning_rate(new_lr);
                s.reductions.push((record.epoch, new_lr));
                s.cooldown_counter = self.cooldown;
                s.wait = 0;
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<CallbackState> {
        Ok(CallbackState { values: state_json(self.name(), &self.state)?, tensors: Vec::new() })
    }

    fn load_state(&mut self, state: CallbackState) -> Result<()> {
        self.state = parse_state(self.name(), state.values)?;
        Ok(())
    }
}
