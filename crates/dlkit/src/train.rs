//! The training loop: epochs × mini-batches, cross-entropy, accuracy, evaluation, per-epoch
//! history, progress, learning-rate schedules, augmentation and best-validation weights.
//!
//! ```ignore
//! let history = Trainer::new(&model, &varmap, &mut optimizer)
//!     .epochs(10).batch_size(128).seed(0).keep_best(true)
//!     .fit(&train, Some(&validation))?;
//! ```

use crate::data::DeviceData;
use crate::error::{Error, Result};
use crate::models::Network;
use crate::schedule::{BatchSizeSchedule, LrSchedule};
use candle_core::{DType, Tensor};
use candle_nn::{Optimizer, VarMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Mean cross-entropy (plus the model's penalty, as Keras reports it).
    pub loss: f64,
    /// Fraction of samples whose arg-max logit is the label.
    pub accuracy: f64,
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (data loss + penalty).
    pub train_loss: f64,
    /// Training accuracy over the epoch (in training mode, on augmented batches).
    pub train_acc: f64,
    /// Validation loss after the epoch, when validation data was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch, when validation data was given.
    pub val_acc: Option<f64>,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Batch size used in this epoch.
    pub batch_size: usize,
    /// Wall-clock seconds of the epoch's training steps (augmentation included, evaluation not).
    pub seconds: f64,
    /// Of `seconds`, the time spent in augmentation.
    pub augment_seconds: f64,
}

/// One optimisation step, recorded when [`Trainer::record_iterations`] is on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IterationRecord {
    /// Global step number, from 0.
    pub iteration: usize,
    /// Learning rate used for the step.
    pub lr: f64,
    /// The batch's training loss.
    pub loss: f64,
}

/// The record of a training run: one entry per epoch, and optionally per iteration.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// Per-epoch records, in order.
    pub epochs: Vec<EpochRecord>,
    /// Per-step records (empty unless requested).
    #[serde(default)]
    pub iterations: Vec<IterationRecord>,
    /// The epoch (from 1) whose weights were kept as best, if any.
    #[serde(default)]
    pub best_epoch: Option<usize>,
}

impl History {
    /// The highest validation accuracy reached.
    pub fn best_val_acc(&self) -> Option<f64> {
        self.epochs.iter().filter_map(|e| e.val_acc).reduce(f64::max)
    }

    /// Training seconds summed over the epochs.
    pub fn total_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// Augmentation seconds summed over the epochs.
    pub fn augment_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.augment_seconds).sum()
    }

    /// The last epoch's training loss.
    pub fn final_train_loss(&self) -> Option<f64> {
        self.epochs.last().map(|e| e.train_loss)
    }

    /// (epoch, value) points of a per-epoch quantity, for charts.
    pub fn series(&self, f: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<(f64, f64)> {
        self.epochs.iter().filter_map(|e| f(e).map(|v| (e.epoch as f64, v))).collect()
    }

    /// (epoch, training loss) points.
    pub fn train_loss(&self) -> Vec<(f64, f64)> {
        self.series(|e| Some(e.train_loss))
    }

    /// (epoch, validation loss) points.
    pub fn val_loss(&self) -> Vec<(f64, f64)> {
        self.series(|e| e.val_loss)
    }

    /// (epoch, training accuracy) points.
    pub fn train_acc(&self) -> Vec<(f64, f64)> {
        self.series(|e| Some(e.train_acc))
    }

    /// (epoch, validation accuracy) points.
    pub fn val_acc(&self) -> Vec<(f64, f64)> {
        self.series(|e| e.val_acc)
    }

    /// (epoch, validation error = 1 − accuracy) points.
    pub fn val_error(&self) -> Vec<(f64, f64)> {
        self.series(|e| e.val_acc.map(|a| 1.0 - a))
    }
}

/// How much the loop prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing.
    Quiet,
    /// One line per epoch.
    Epochs,
    /// One line per epoch, and a live bar when stderr is a terminal.
    Bar,
}

/// Which validation figure picks the best weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Highest validation accuracy.
    ValAccuracy,
    /// Lowest validation loss (Keras `ModelCheckpoint`'s default).
    ValLoss,
}

/// A batch transformation applied before each training step (augmentation).
pub type BatchTransform<'a> = Box<dyn FnMut(&Tensor, &Tensor) -> Result<(Tensor, Tensor)> + 'a>;

/// Trains a [`Network`] whose variables live in a `VarMap` with any candle optimizer.
pub struct Trainer<'a, M: Network + ?Sized, O: Optimizer> {
    model: &'a M,
    varmap: &'a VarMap,
    optimizer: &'a mut O,
    epochs: usize,
    batch_size: usize,
    seed: u64,
    progress: Progress,
    label: String,
    schedule: Option<Box<dyn LrSchedule + 'a>>,
    batch_sizes: Option<Box<dyn BatchSizeSchedule + 'a>>,
    augment: Option<BatchTransform<'a>>,
    keep_best: Option<Monitor>,
    checkpoint: Option<PathBuf>,
    record_iterations: bool,
    max_batches: Option<usize>,
}

impl<'a, M: Network + ?Sized, O: Optimizer> Trainer<'a, M, O> {
    /// A trainer for `model` (variables in `varmap`) stepping `optimizer`; 1 epoch of batch 32.
    pub fn new(model: &'a M, varmap: &'a VarMap, optimizer: &'a mut O) -> Self {
        Trainer {
            model,
            varmap,
            optimizer,
            epochs: 1,
            batch_size: 32,
            seed: 0,
            progress: Progress::Bar,
            label: String::new(),
            schedule: None,
            batch_sizes: None,
            augment: None,
            keep_best: None,
            checkpoint: None,
            record_iterations: false,
            max_batches: None,
        }
    }

    /// Number of epochs.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Mini-batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Seed of the shuffling order (and of nothing else: models and augmentation own theirs).
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

    /// A learning-rate policy, asked each epoch and each iteration.
    pub fn schedule(mut self, schedule: impl LrSchedule + 'a) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// A batch-size policy, asked at the start of each epoch (cyclical batch size).
    pub fn batch_sizes(mut self, policy: impl BatchSizeSchedule + 'a) -> Self {
        self.batch_sizes = Some(Box::new(policy));
        self
    }

    /// A transformation of each training batch (images, labels) → (images, labels).
    pub fn augment(
        mut self,
        f: impl FnMut(&Tensor, &Tensor) -> Result<(Tensor, Tensor)> + 'a,
    ) -> Self {
        self.augment = Some(Box::new(f));
        self
    }

    /// Keep the weights of the best validation epoch and restore them when training ends
    /// (Keras `ModelCheckpoint(save_best_only=True)` followed by loading it).
    pub fn keep_best(mut self, monitor: Monitor) -> Self {
        self.keep_best = Some(monitor);
        self
    }

    /// Also write the best weights to this safetensors file (atomically).
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }

    /// Record the learning rate and loss of every step in the history (one device sync a step).
    pub fn record_iterations(mut self, on: bool) -> Self {
        self.record_iterations = on;
        self
    }

    /// Stop each epoch after this many batches (quick runs on big datasets).
    pub fn max_batches(mut self, n: usize) -> Self {
        self.max_batches = Some(n);
        self
    }

    /// Train on `train`, evaluating on `validation` after each epoch.
    pub fn fit(mut self, train: &DeviceData, validation: Option<&DeviceData>) -> Result<History> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::Config("epochs and batch size must be at least 1".into()));
        }
        if train.is_empty() {
            return Err(Error::Config("the training set is empty".into()));
        }
        crate::runtime::tune_cpu();
        if self.checkpoint.is_some() && (validation.is_none() || self.keep_best.is_none()) {
            return Err(Error::Config("a checkpoint needs validation data and keep_best".into()));
        }
        let mut history = History::default();
        let mut best: Option<(f64, Vec<Tensor>)> = None;
        let mut iteration = 0;
        let device = train.device().clone();
        for epoch in 0..self.epochs {
            if let Some(lr) = self.schedule.as_mut().and_then(|s| s.at_epoch(epoch)) {
                self.optimizer.set_learning_rate(lr);
            }
            if let Some(policy) = self.batch_sizes.as_mut() {
                self.batch_size = policy.at_epoch(epoch).max(1);
            }
            let start = Instant::now();
            let mut augment_seconds = 0.0;
            let batches = train.batches(self.batch_size, self.seed, epoch)?;
            let total = self.max_batches.map_or(batches.num_batches(), |m| m.min(batches.num_batches()));
            let mut loss_sum = Tensor::zeros((), DType::F32, &device)?;
            let mut correct = Tensor::zeros((), DType::F32, &device)?;
            let mut seen = 0usize;
            for (b, batch) in batches.take(total).enumerate() {
                let (mut x, mut y) = batch?;
                if let Some(lr) = self.schedule.as_mut().and_then(|s| s.at_iteration(iteration)) {
                    self.optimizer.set_learning_rate(lr);
                }
                if let Some(f) = self.augment.as_mut() {
                    let t = Instant::now();
                    (x, y) = f(&x, &y)?;
                    device.synchronize()?;
                    augment_seconds += t.elapsed().as_secs_f64();
                }
                let n = y.dims1()?;
                let logits = self.model.forward_t(&x, true)?;
                let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                if let Some(p) = self.model.penalty()? {
                    loss = (loss + p)?;
                }
                self.optimizer.backward_step(&loss)?;
                let loss = loss.detach();
                if self.record_iterations {
                    let l = loss.to_scalar::<f32>()? as f64;
                    let lr = self.optimizer.learning_rate();
                    history.iterations.push(IterationRecord { iteration, lr, loss: l });
                }
                loss_sum = (loss_sum + loss.affine(n as f64, 0.0)?)?;
                correct = (correct + count_correct(&logits.detach(), &y)?)?;
                seen += n;
                iteration += 1;
                if self.progress == Progress::Bar && std::io::stderr().is_terminal() {
                    draw_bar(&self.label, epoch + 1, self.epochs, b + 1, total, start.elapsed().as_secs_f64());
                }
            }
            let train_loss = loss_sum.to_scalar::<f32>()? as f64 / seen as f64;
            let train_acc = correct.to_scalar::<f32>()? as f64 / seen as f64;
            device.synchronize()?;
            let seconds = start.elapsed().as_secs_f64();
            if !train_loss.is_finite() {
                eprintln!("warning: training loss is {train_loss} at epoch {} (learning rate too high?)", epoch + 1);
            }
            let val = validation.map(|v| evaluate(self.model, v, self.batch_size.max(256))).transpose()?;
            let record = EpochRecord {
                epoch: epoch + 1,
                train_loss,
                train_acc,
                val_loss: val.map(|m| m.loss),
                val_acc: val.map(|m| m.accuracy),
                lr: self.optimizer.learning_rate(),
                batch_size: self.batch_size,
                seconds,
                augment_seconds,
            };
            if self.progress != Progress::Quiet {
                print_epoch(&self.label, self.epochs, &record);
            }
            if let (Some(monitor), Some(m)) = (self.keep_best, val) {
                let score = match monitor {
                    Monitor::ValAccuracy => m.accuracy,
                    Monitor::ValLoss => -m.loss,
                };
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, snapshot(self.varmap)?));
                    history.best_epoch = Some(epoch + 1);
                    if let Some(path) = &self.checkpoint {
                        save_weights(self.varmap, path)?;
                    }
                }
            }
            history.epochs.push(record);
        }
        if let Some((_, weights)) = best {
            restore(self.varmap, &weights)?;
        }
        Ok(history)
    }
}

/// Loss and accuracy of `model` on `data` in evaluation mode.
pub fn evaluate<M: Network + ?Sized>(model: &M, data: &DeviceData, batch_size: usize) -> Result<Metrics> {
    if data.is_empty() {
        return Err(Error::Config("cannot evaluate on an empty dataset".into()));
    }
    let device = data.device();
    let mut loss_sum = Tensor::zeros((), DType::F32, device)?;
    let mut correct = Tensor::zeros((), DType::F32, device)?;
    let batch_size = batch_size.max(1);
    let mut start = 0;
    while start < data.len() {
        let n = batch_size.min(data.len() - start);
        let (x, y) = data.range(start, n)?;
        // detached: the running sums must not keep every batch's graph (and activations) alive
        let logits = model.forward_t(&x, false)?.detach();
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        loss_sum = (loss_sum + loss.affine(n as f64, 0.0)?)?;
        correct = (correct + count_correct(&logits, &y)?)?;
        start += n;
    }
    let penalty = match model.penalty()? {
        Some(p) => p.to_scalar::<f32>()? as f64,
        None => 0.0,
    };
    let n = data.len() as f64;
    Ok(Metrics {
        loss: loss_sum.to_scalar::<f32>()? as f64 / n + penalty,
        accuracy: correct.to_scalar::<f32>()? as f64 / n,
    })
}

/// Class predictions (arg-max logit) of `model` on `data`, in stored order.
pub fn predict<M: Network + ?Sized>(model: &M, data: &DeviceData, batch_size: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let n = batch_size.max(1).min(data.len() - start);
        let (x, _) = data.range(start, n)?;
        out.extend(model.forward_t(&x, false)?.detach().argmax(1)?.to_vec1::<u32>()?);
        start += n;
    }
    Ok(out)
}

fn count_correct(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(logits.argmax(1)?.eq(y)?.to_dtype(DType::F32)?.sum_all()?)
}

/// Copies of every variable's current value, by name.
pub(crate) fn snapshot(varmap: &VarMap) -> Result<Vec<Tensor>> {
    let data = varmap.data().lock().map_err(|_| Error::Config("VarMap lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names.iter().map(|n| Ok(data[*n].as_tensor().copy()?)).collect()
}

pub(crate) fn restore(varmap: &VarMap, weights: &[Tensor]) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| Error::Config("VarMap lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (n, w) in names.iter().zip(weights) {
        data[*n].set(w)?;
    }
    Ok(())
}

/// Save all variables to a safetensors file, atomically (temp file + rename).
pub fn save_weights(varmap: &VarMap, path: &std::path::Path) -> Result<()> {
    crate::runs::write_atomically(path, |tmp| Ok(varmap.save(tmp)?))
}

fn draw_bar(label: &str, epoch: usize, epochs: usize, done: usize, total: usize, secs: f64) {
    let width = 30;
    let filled = width * done / total.max(1);
    let eta = secs / done as f64 * (total - done) as f64;
    eprint!(
        "\r{label} epoch {epoch}/{epochs} [{}{}] {done}/{total} {secs:.0}s eta {eta:.0}s ",
        "=".repeat(filled),
        " ".repeat(width - filled)
    );
    if done == total {
        eprint!("\r{}\r", " ".repeat(label.len() + 80));
    }
    let _ = std::io::stderr().flush();
}

fn print_epoch(label: &str, epochs: usize, r: &EpochRecord) {
    let val = match (r.val_loss, r.val_acc) {
        (Some(l), Some(a)) => format!("  val_loss {l:.4}  val_acc {a:.4}"),
        _ => String::new(),
    };
    let label = if label.is_empty() { String::new() } else { format!("{label}  ") };
    println!(
        "{label}epoch {}/{epochs}  loss {:.4}  acc {:.4}{val}  lr {:.3e}  {:.1}s",
        r.epoch, r.train_loss, r.train_acc, r.lr, r.seconds
    );
}
