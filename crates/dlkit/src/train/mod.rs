//! The training loop: for each epoch, for each mini-batch a step; then an evaluation; then the
//! callbacks. Everything else — progress, learning-rate control, checkpoints, early stopping,
//! logs — is a [`Callback`](crate::callbacks::Callback).
//!
//! ```ignore
//! let history = Trainer::new(&model, &varmap, &mut optimizer)
//!     .epochs(10).batch_size(128).seed(0)
//!     .callback(EarlyStopping::new(Monitor::ValAccuracy, 5))
//!     .fit(&train, Some(&validation))?;
//! ```

mod backup;
mod step;

pub use crate::callbacks::Progress;
pub use crate::evaluate::{evaluate, predict};
pub use crate::history::{Divergence, EpochRecord, History, IterationRecord, Metrics, Monitor};

use crate::augment::Augment;
use crate::callbacks::{BatchLogs, Callback, Context, ModelCheckpoint, ProgressLogger, ScheduleCallback};
use crate::data::DeviceData;
use crate::error::{Error, Result};
use crate::models::Network;
use crate::optim::TrainOptimizer;
use crate::schedule::{BatchSizeSchedule, LrSchedule};
use candle_nn::VarMap;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

/// What the loop does when the training loss stops being a finite number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDivergence {
    /// Stop with [`Error::Diverged`], naming the epoch, step and learning rate (the default).
    #[default]
    Fail,
    /// Stop, and return the history with [`History::diverged`] set (for the learning-rate sweep
    /// and range test, where divergence is an expected outcome).
    Record,
}

/// Trains a [`Network`] whose variables live in a `VarMap`, with a dlkit optimizer.
pub struct Trainer<'a> {
    model: &'a dyn Network,
    varmap: &'a VarMap,
    optimizer: &'a mut dyn TrainOptimizer,
    epochs: usize,
    batch_size: usize,
    micro_batch: Option<usize>,
    seed: u64,
    max_batches: Option<usize>,
    eval_batch_size: usize,
    record_iterations: bool,
    on_divergence: OnDivergence,
    progress: Progress,
    label: String,
    batch_sizes: Option<Box<dyn BatchSizeSchedule + 'a>>,
    augment: Option<Box<dyn Augment + 'a>>,
    callbacks: Vec<Box<dyn Callback + 'a>>,
    backup: Option<PathBuf>,
}

impl<'a> Trainer<'a> {
    /// A trainer for `model` (variables in `varmap`) stepping `optimizer`; 1 epoch of batch 32.
    pub fn new(model: &'a dyn Network, varmap: &'a VarMap, optimizer: &'a mut dyn TrainOptimizer) -> Self {
        Trainer {
            model,
            varmap,
            optimizer,
            epochs: 1,
            batch_size: 32,
            micro_batch: None,
            seed: 0,
            max_batches: None,
            eval_batch_size: 256,
            record_iterations: false,
            on_divergence: OnDivergence::Fail,
            progress: Progress::Bar,
            label: String::new(),
            batch_sizes: None,
            augment: None,
            callbacks: Vec::new(),
            backup: None,
        }
    }

    /// Number of epochs.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Mini-batch size: samples per optimisation step.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Gradient accumulation: compute each step's gradient over chunks of at most `samples`
    /// samples (their gradients weighted by chunk size and summed), so a batch larger than
    /// memory allows still makes one update. The result equals the whole batch's gradient,
    /// except that batch normalisation sees the chunks' statistics.
    pub fn micro_batch(mut self, samples: usize) -> Self {
        self.micro_batch = Some(samples);
        self
    }

    /// Seed of the shuffling order, the augmentation and the dropout masks (the weights are
    /// seeded when the model is built).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How much to print.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// A name printed at the start of each progress line.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// A learning-rate policy, asked at each epoch and each step ([`ScheduleCallback`]).
    pub fn schedule(self, schedule: impl LrSchedule + 'a) -> Self {
        self.callback(ScheduleCallback::new(schedule))
    }

    /// A batch-size policy, asked at the start of each epoch (cyclical batch size).
    pub fn batch_sizes(mut self, policy: impl BatchSizeSchedule + 'a) -> Self {
        self.batch_sizes = Some(Box::new(policy));
        self
    }

    /// Augment every training batch; its random choices are drawn from the seed and the epoch,
    /// so a resumed run augments as an uninterrupted one.
    pub fn augment(mut self, augmentation: impl Augment + 'a) -> Self {
        self.augment = Some(Box::new(augmentation));
        self
    }

    /// Keep the weights of the best epoch by `monitor` and put them back when training ends
    /// (Keras `ModelCheckpoint(save_best_only=True)`, then loading the file).
    pub fn keep_best(self, monitor: Monitor) -> Self {
        self.callback(ModelCheckpoint::keep_best(monitor))
    }

    /// Add a callback (called in the order added, before the progress printer).
    pub fn callback(mut self, callback: impl Callback + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Add a boxed callback (see [`Trainer::callback`]).
    pub fn boxed_callback(mut self, callback: Box<dyn Callback + 'a>) -> Self {
        self.callbacks.push(callback);
        self
    }

    /// Record the learning rate and loss of every step in the history.
    pub fn record_iterations(mut self, on: bool) -> Self {
        self.record_iterations = on;
        self
    }

    /// Stop each epoch after this many batches (quick runs on big datasets).
    pub fn max_batches(mut self, n: usize) -> Self {
        self.max_batches = Some(n);
        self
    }

    /// Batch size of the evaluations (default 256; it changes the speed, not the result).
    pub fn eval_batch_size(mut self, n: usize) -> Self {
        self.eval_batch_size = n;
        self
    }

    /// What to do when the loss becomes NaN or infinite (default: fail with an error).
    pub fn on_divergence(mut self, policy: OnDivergence) -> Self {
        self.on_divergence = policy;
        self
    }

    /// Save the whole training state to `folder` after every epoch (weights, optimizer state,
    /// history, callbacks' state) and, when it holds a saved state, resume from it: an
    /// interrupted run ends as an uninterrupted one would (Keras `BackupAndRestore`). The
    /// folder is removed when training finishes.
    pub fn backup(mut self, folder: impl Into<PathBuf>) -> Self {
        self.backup = Some(folder.into());
        self
    }

    /// Check every setting before any work, naming the one that is wrong.
    fn check(&self, train: &DeviceData, validation: Option<&DeviceData>) -> Result<()> {
        let positive = [("epochs", self.epochs), ("batch size", self.batch_size), ("eval batch size", self.eval_batch_size)];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{name} must be at least 1")));
        }
        if self.micro_batch == Some(0) || self.max_batches == Some(0) {
            return Err(Error::Config("micro batch and max batches must be at least 1".into()));
        }
        if train.is_empty() {
            return Err(Error::Config("the training set is empty".into()));
        }
        if validation.is_some_and(DeviceData::is_empty) {
            return Err(Error::Config("the validation set is empty (give None for no validation)".into()));
        }
        Ok(())
    }

    /// Train on `train`, evaluating on `validation` after each epoch.
    pub fn fit(mut self, train: &DeviceData, validation: Option<&DeviceData>) -> Result<History> {
        self.check(train, validation)?;
        crate::runtime::tune_cpu();
        let mut callbacks = std::mem::take(&mut self.callbacks);
        callbacks.push(Box::new(ProgressLogger::new(&self.label, self.progress)));
        let mut history = History::default();
        let mut iteration = 0;
        if let Some(folder) = &self.backup {
            if let Some(state) = backup::load(folder, self.varmap, &mut *self.optimizer, &mut callbacks)? {
                println!("{}resuming after epoch {} from {}", self.prefix(), state.history.epochs.len(), folder.display());
                (history, iteration) = (state.history, state.iteration);
                self.batch_size = state.batch_size;
            }
        }
        self.each(&mut callbacks, &mut history, validation, |cb, ctx| cb.on_train_begin(ctx))?;
        for epoch in history.epochs.len()..self.epochs {
            if let Some(policy) = self.batch_sizes.as_mut() {
                self.batch_size = policy.at_epoch(epoch).max(1);
            }
            self.each(&mut callbacks, &mut history, validation, |cb, ctx| cb.on_epoch_begin(epoch, ctx))?;
            let Some(mut record) = self.train_epoch(epoch, &mut iteration, train, validation, &mut history, &mut callbacks)? else {
                break; // diverged, recorded in the history
            };
            let start = Instant::now();
            if let Some(m) = validation.map(|v| evaluate(self.model, v, self.eval_batch_size)).transpose()? {
                (record.val_loss, record.val_acc) = (Some(m.loss), Some(m.accuracy));
            }
            record.eval_seconds = start.elapsed().as_secs_f64();
            let stop = self.each(&mut callbacks, &mut history, validation, |cb, ctx| cb.on_epoch_end(&mut record, ctx))?;
            history.epochs.push(record);
            if stop {
                history.stopped_early = Some(epoch + 1);
            }
            if let Some(folder) = &self.backup {
                backup::save(folder, self.varmap, &*self.optimizer, &callbacks, &history, iteration, self.batch_size)?;
            }
            if stop {
                break;
            }
        }
        self.each(&mut callbacks, &mut history, validation, |cb, ctx| cb.on_train_end(ctx))?;
        if let Some(folder) = &self.backup {
            backup::remove(folder)?;
        }
        Ok(history)
    }

    /// One epoch of steps; `None` when the loss diverged and the policy is to record it.
    fn train_epoch(
        &mut self,
        epoch: usize,
        iteration: &mut usize,
        train: &DeviceData,
        validation: Option<&DeviceData>,
        history: &mut History,
        callbacks: &mut [Box<dyn Callback + 'a>],
    ) -> Result<Option<EpochRecord>> {
        let start = Instant::now();
        let batches = train.batches(self.batch_size, self.seed, epoch)?;
        let steps = self.max_batches.map_or(batches.num_batches(), |m| m.min(batches.num_batches()));
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix(self.seed ^ 0xA5A5_5A5A, epoch as u64));
        let (mut totals, mut augment_seconds) = (step::Totals::default(), 0.0);
        for (b, batch) in batches.take(steps).enumerate() {
            self.each(callbacks, history, validation, |cb, ctx| cb.on_batch_begin(*iteration, ctx))?;
            let (mut x, mut y) = batch?;
            if let Some(augment) = &self.augment {
                let t = Instant::now();
                (x, y) = augment.apply(&x, &y, &mut rng)?;
                x.device().synchronize()?;
                augment_seconds += t.elapsed().as_secs_f64();
            }
            let lr = self.optimizer.learning_rate();
            let loss = step::train_step(self.model, self.varmap, &mut *self.optimizer, &x, &y, self.micro_batch, *iteration, &mut totals)?;
            if self.record_iterations {
                history.iterations.push(IterationRecord { iteration: *iteration, lr, loss });
            }
            if !loss.is_finite() {
                let divergence = Divergence { epoch: epoch + 1, step: b + 1, lr, loss };
                if self.on_divergence == OnDivergence::Fail {
                    return Err(Error::Diverged(divergence));
                }
                println!("{}{divergence}", self.prefix());
                history.diverged = Some(divergence);
                history.epochs.push(totals.record(epoch, lr, self.batch_size, start, augment_seconds)?);
                return Ok(None);
            }
            *iteration += 1;
            let logs = BatchLogs {
                epoch,
                step: b + 1,
                steps,
                iteration: *iteration - 1,
                loss,
                samples: totals.samples,
                seconds: start.elapsed().as_secs_f64(),
            };
            self.each(callbacks, history, validation, |cb, ctx| cb.on_batch_end(&logs, ctx))?;
        }
        let lr = self.optimizer.learning_rate();
        Ok(Some(totals.record(epoch, lr, self.batch_size, start, augment_seconds)?))
    }

    /// Call `hook` on every callback with a fresh context; returns whether one asked to stop.
    fn each(
        &mut self,
        callbacks: &mut [Box<dyn Callback + 'a>],
        history: &mut History,
        validation: Option<&DeviceData>,
        mut hook: impl FnMut(&mut dyn Callback, &mut Context) -> Result<()>,
    ) -> Result<bool> {
        let mut ctx = Context {
            model: self.model,
            varmap: self.varmap,
            validation,
            epochs: self.epochs,
            history,
            optimizer: &mut *self.optimizer,
            stop: false,
            eval_batch_size: self.eval_batch_size,
        };
        for callback in callbacks.iter_mut() {
            hook(callback.as_mut(), &mut ctx)?;
        }
        Ok(ctx.stop)
    }

    fn prefix(&self) -> String {
        if self.label.is_empty() {
            String::new()
        } else {
            format!("{}  ", self.label)
        }
    }
}

/// A 64-bit mix of a seed and a counter (splitmix64's finaliser), for per-epoch generators.
fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
