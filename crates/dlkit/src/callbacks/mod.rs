//! Keras-style callbacks: small objects the training loop calls at the start and end of the run,
//! of each epoch and of each batch. Progress, checkpoints, early stopping, learning-rate
//! control, logs and weight averages are all callbacks, so the loop itself stays short.
//!
//! The loop ([`crate::train::Trainer::fit`]) calls, in the order the callbacks were added:
//! ```text
//! on_train_begin
//! for each epoch:  on_epoch_begin · for each batch: on_batch_begin, step, on_batch_end
//!                  · evaluate · on_epoch_end (may stop the run)
//! on_train_end
//! ```
//! Epochs are numbered from 0 in the hooks, as Keras passes them; records count from 1.
//! A callback that keeps state across epochs (a best value, a patience counter, averaged
//! weights) returns it from [`Callback::state`], so that an interrupted run resumes exactly.

mod csv_logger;
mod early_stopping;
mod lr_scheduler;
mod model_checkpoint;
mod progress;
mod reduce_lr;
mod schedule;
mod tensorboard;
mod weight_average;
#[cfg(test)]
mod tests;

pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use lr_scheduler::LearningRateScheduler;
pub use model_checkpoint::{format_pattern, ModelCheckpoint};
pub use progress::{Progress, ProgressLogger};
pub use reduce_lr::ReduceLrOnPlateau;
pub use schedule::ScheduleCallback;
pub use tensorboard::TensorBoard;
pub use weight_average::WeightAverage;

use crate::data::DeviceData;
use crate::error::{Error, Result};
use crate::history::{EpochRecord, History, Metrics, Monitor};
use crate::models::Network;
use crate::optim::TrainOptimizer;
use candle_core::Tensor;
use candle_nn::VarMap;

/// What the loop knows about one finished batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLogs {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Batch within the epoch, from 1.
    pub step: usize,
    /// Batches in this epoch.
    pub steps: usize,
    /// Optimisation steps done in the whole run before this one (from 0).
    pub iteration: usize,
    /// The batch's training loss (data loss + penalty).
    pub loss: f64,
    /// Samples trained on in this epoch so far (after augmentation copies).
    pub samples: usize,
    /// Seconds since the epoch began.
    pub seconds: f64,
}

/// What a callback can see and change while the loop runs.
pub struct Context<'a> {
    /// The model being trained.
    pub model: &'a dyn Network,
    /// Its variables (weights and batch-norm statistics).
    pub varmap: &'a VarMap,
    /// The validation data, if the run has any.
    pub validation: Option<&'a DeviceData>,
    /// The number of epochs the run was asked for.
    pub epochs: usize,
    /// The run so far (the current epoch's record is added after `on_epoch_end`).
    pub history: &'a mut History,
    pub(crate) optimizer: &'a mut dyn TrainOptimizer,
    pub(crate) stop: bool,
    pub(crate) eval_batch_size: usize,
}

impl Context<'_> {
    /// The optimizer's current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.optimizer.learning_rate()
    }

    /// Set the optimizer's learning rate (from the next step on).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.optimizer.set_learning_rate(lr);
    }

    /// Ask the loop to stop after this epoch (Keras `model.stop_training = True`).
    pub fn stop_training(&mut self) {
        self.stop = true;
    }

    /// Loss and accuracy on the validation data with the weights as they are now.
    pub fn evaluate_validation(&self) -> Result<Option<Metrics>> {
        self.validation
            .map(|v| crate::evaluate::evaluate(self.model, v, self.eval_batch_size))
            .transpose()
    }
}

/// State a callback carries across epochs, for resuming a run: figures as JSON, and tensors
/// (e.g. best or averaged weights) by name.
#[derive(Debug, Clone, Default)]
pub struct CallbackState {
    /// Counters, best values and the like.
    pub values: serde_json::Value,
    /// Weights the callback holds.
    pub tensors: Vec<(String, Tensor)>,
}

/// A hook into the training loop (Keras `tf.keras.callbacks.Callback`).
#[allow(unused_variables)]
pub trait Callback {
    /// A short name for messages and saved state (`early_stopping`, …).
    fn name(&self) -> &str;

    /// Before the first epoch (also after a resume, with the restored state).
    fn on_train_begin(&mut self, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// At the start of epoch `epoch` (from 0).
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// Before optimisation step `iteration` (global, from 0).
    fn on_batch_begin(&mut self, iteration: usize, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// After each optimisation step.
    fn on_batch_end(&mut self, batch: &BatchLogs, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// After the epoch's evaluation; `record` may receive extra figures (`record.extra`).
    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// After the last epoch (or the early stop).
    fn on_train_end(&mut self, ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    /// What must be saved to resume the run exactly (nothing by default).
    fn state(&self) -> Result<CallbackState> {
        Ok(CallbackState::default())
    }

    /// Put back a state saved by [`Callback::state`].
    fn load_state(&mut self, state: CallbackState) -> Result<()> {
        Ok(())
    }
}

/// Keras's `mode` argument: which direction of the monitored figure is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum MonitorMode {
    /// Higher is better for names containing `acc`, lower otherwise (Keras's default).
    #[default]
    Auto,
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

impl MonitorMode {
    /// Whether a higher value of `monitor` is an improvement under this mode.
    pub fn higher_is_better(self, monitor: &Monitor) -> bool {
        match self {
            MonitorMode::Auto => monitor.higher_is_better(),
            MonitorMode::Min => false,
            MonitorMode::Max => true,
        }
    }
}

/// The monitored value of an epoch, or an error naming the monitor when the epoch has none
/// (e.g. `val_loss` without validation data).
fn monitored(record: &EpochRecord, monitor: &Monitor, who: &str) -> Result<f64> {
    record.value(monitor).ok_or_else(|| {
        Error::Config(format!("{who}: the run logs no `{monitor}` (is there validation data?)"))
    })
}

/// Refuse, before training, to watch a validation figure of a run without validation data.
fn require_validation(monitor: &Monitor, ctx: &Context, who: &str) -> Result<()> {
    if ctx.validation.is_none() && monitor.name().starts_with("val_") {
        return Err(Error::Config(format!("{who} watches `{monitor}`, but the run has no validation data")));
    }
    Ok(())
}

/// Parse a callback's saved JSON state.
fn parse_state<T: serde::de::DeserializeOwned>(who: &str, values: serde_json::Value) -> Result<T> {
    serde_json::from_value(values).map_err(|e| Error::Config(format!("{who}: saved state does not match: {e}")))
}

/// A callback's state as JSON.
fn state_json<T: serde::Serialize>(who: &str, value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Config(format!("{who}: cannot save state: {e}")))
}
