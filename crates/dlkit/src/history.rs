//! What a training run produced, as plain data: per-epoch and per-step records, the metrics a
//! callback can monitor, and how the run ended (early stop, divergence). Records are saved in
//! run records and checkpoints; non-finite values are kept (see [`crate::serde_float`]).

pub use crate::error::Divergence;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Loss and accuracy of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Mean cross-entropy (plus the model's penalty, as Keras reports it).
    #[serde(with = "crate::serde_float")]
    pub loss: f64,
    /// Fraction of samples whose arg-max logit is the label.
    #[serde(with = "crate::serde_float")]
    pub accuracy: f64,
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (data loss + penalty).
    #[serde(with = "crate::serde_float")]
    pub train_loss: f64,
    /// Training accuracy over the epoch (in training mode, on augmented batches).
    #[serde(with = "crate::serde_float")]
    pub train_acc: f64,
    /// Validation loss after the epoch, when validation data was given.
    #[serde(with = "crate::serde_float::option")]
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch, when validation data was given.
    #[serde(with = "crate::serde_float::option")]
    pub val_acc: Option<f64>,
    /// Learning rate used for the epoch's last step.
    pub lr: f64,
    /// Batch size used in this epoch (samples per optimizer step, before augmentation copies).
    pub batch_size: usize,
    /// Wall-clock seconds of the epoch's training steps (augmentation included, evaluation not).
    pub seconds: f64,
    /// Of `seconds`, the time spent in augmentation.
    pub augment_seconds: f64,
    /// Seconds spent evaluating on the validation data after the epoch. Keras's epoch time is
    /// `seconds + eval_seconds`.
    #[serde(default)]
    pub eval_seconds: f64,
    /// Further figures added by callbacks (e.g. `ema_val_accuracy`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

/// One optimisation step, recorded when the trainer records iterations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IterationRecord {
    /// Global step number, from 0.
    pub iteration: usize,
    /// Learning rate used for the step.
    pub lr: f64,
    /// The batch's training loss.
    #[serde(with = "crate::serde_float")]
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
    /// The epoch (from 1) whose weights the run ended with when a callback restored the best
    /// ones (model checkpoint or early stopping), if any.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// The epoch (from 1) after which early stopping ended the run, if it did.
    #[serde(default)]
    pub stopped_early: Option<usize>,
    /// Where the loss became non-finite, if it did (the run then ended there).
    #[serde(default)]
    pub diverged: Option<Divergence>,
}

impl History {
    /// The highest validation accuracy reached.
    pub fn best_val_acc(&self) -> Option<f64> {
        self.epochs.iter().filter_map(|e| e.val_acc).filter(|v| v.is_finite()).reduce(f64::max)
    }

    /// The lowest validation loss reached.
    pub fn best_val_loss(&self) -> Option<f64> {
        self.epochs.iter().filter_map(|e| e.val_loss).filter(|v| v.is_finite()).reduce(f64::min)
    }

    /// The epoch (from 1) with the best value of `monitor` (first one on ties).
    pub fn best_epoch_by(&self, monitor: &Monitor) -> Option<usize> {
        let better = |a: f64, b: f64| if monitor.higher_is_better() { a > b } else { a < b };
        let mut best: Option<(usize, f64)> = None;
        for e in &self.epochs {
            if let Some(v) = e.value(monitor).filter(|v| v.is_finite()) {
                if best.is_none_or(|(_, b)| better(v, b)) {
                    best = Some((e.epoch, v));
                }
            }
        }
        best.map(|(epoch, _)| epoch)
    }

    /// Training seconds summed over the epochs (evaluation excluded).
    pub fn total_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum()
    }

    /// Seconds as Keras reports an epoch's time (training and validation), summed.
    pub fn total_seconds_with_evaluation(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds + e.eval_seconds).sum()
    }

    /// Augmentation seconds summed over the epochs.
    pub fn augment_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.augment_seconds).sum()
    }

    /// The last epoch's training loss.
    pub fn final_train_loss(&self) -> Option<f64> {
        self.epochs.last().map(|e| e.train_loss)
    }

    /// One sentence on how training went, from the first and last epochs: "Over 5 epochs the
    /// training loss went from 27.53 to 23.91 and the training accuracy from 0.229 to 0.358."
    pub fn progress_sentence(&self) -> String {
        match (self.epochs.first(), self.epochs.last()) {
            (Some(a), Some(b)) => format!(
                "Over {} epochs the training loss went from {:.3} to {:.3} and the training accuracy from {:.3} to {:.3}.",
                self.epochs.len(),
                a.train_loss,
                b.train_loss,
                a.train_acc,
                b.train_acc
            ),
            _ => "No epoch was trained.".to_string(),
        }
    }

    /// The batch sizes the epochs used: `"64"`, or `"16–128"` when they varied.
    pub fn batch_size_range(&self) -> String {
        let sizes = self.epochs.iter().map(|e| e.batch_size);
        match (sizes.clone().min(), sizes.max()) {
            (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
            (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
            _ => "-".into(),
        }
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

    /// (epoch, training accuracy − validation accuracy) points: the generalisation gap.
    pub fn accuracy_gap(&self) -> Vec<(f64, f64)> {
        self.series(|e| e.val_acc.map(|v| e.train_acc - v))
    }

    /// (epoch, learning rate) points.
    pub fn learning_rates(&self) -> Vec<(f64, f64)> {
        self.series(|e| Some(e.lr))
    }

    /// (iteration, learning rate) points, one per recorded optimisation step (empty unless the
    /// run recorded iterations).
    pub fn iteration_learning_rates(&self) -> Vec<(f64, f64)> {
        self.iterations.iter().map(|i| (i.iteration as f64, i.lr)).collect()
    }

    /// (epoch, value) points of a figure a callback added (see [`EpochRecord::extra`]).
    pub fn extra(&self, name: &str) -> Vec<(f64, f64)> {
        self.series(|e| e.extra.get(name).copied())
    }
}

/// A figure a callback can watch, named as Keras names it in its logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Monitor {
    /// `loss`: the epoch's mean training loss.
    Loss,
    /// `accuracy` (or `acc`): the epoch's training accuracy.
    Accuracy,
    /// `val_loss`: validation loss (Keras `ModelCheckpoint`'s and `EarlyStopping`'s default).
    ValLoss,
    /// `val_accuracy` (or `val_acc`): validation accuracy.
    ValAccuracy,
    /// A figure added by a callback, e.g. `ema_val_accuracy`.
    Extra(String),
}

impl Monitor {
    /// Parse a Keras log name: `loss`, `accuracy`/`acc`, `val_loss`, `val_accuracy`/`val_acc`,
    /// or the name of a figure a callback adds.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim() {
            "loss" => Monitor::Loss,
            "accuracy" | "acc" => Monitor::Accuracy,
            "val_loss" => Monitor::ValLoss,
            "val_accuracy" | "val_acc" => Monitor::ValAccuracy,
            "" => return Err(Error::Config("monitor: empty name (use loss, accuracy, val_loss or val_accuracy)".into())),
            other => Monitor::Extra(other.to_string()),
        })
    }

    /// The Keras (TF 2.x) name.
    pub fn name(&self) -> &str {
        match self {
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
            Monitor::Extra(name) => name,
        }
    }

    /// Keras's `mode='auto'`: higher is better when the name contains `acc`.
    pub fn higher_is_better(&self) -> bool {
        self.name().contains("acc")
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl EpochRecord {
    /// The value of `monitor` in this epoch, if it was measured.
    pub fn value(&self, monitor: &Monitor) -> Option<f64> {
        match monitor {
            Monitor::Loss => Some(self.train_loss),
            Monitor::Accuracy => Some(self.train_acc),
            Monitor::ValLoss => self.val_loss,
            Monitor::ValAccuracy => self.val_acc,
            Monitor::Extra(name) => self.extra.get(name).copied(),
        }
    }

    /// Every figure of the epoch by its Keras log name (`loss`, `accuracy`, `val_loss`,
    /// `val_accuracy`, `lr`, the extras), with `acc`/`val_acc` as aliases, for file-name patterns
    /// and log files.
    pub fn logs(&self) -> BTreeMap<String, f64> {
        let mut logs = BTreeMap::new();
        logs.insert("loss".to_string(), self.train_loss);
        logs.insert("accuracy".to_string(), self.train_acc);
        logs.insert("acc".to_string(), self.train_acc);
        if let Some(v) = self.val_loss {
            logs.insert("val_loss".to_string(), v);
        }
        if let Some(v) = self.val_acc {
            logs.insert("val_accuracy".to_string(), v);
            logs.insert("val_acc".to_string(), v);
        }
        logs.insert("lr".to_string(), self.lr);
        for (k, v) in &self.extra {
            logs.insert(k.clone(), *v);
        }
        logs
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An epoch record with the given figures and one-second timings.
    pub(crate) fn epoch(epoch: usize, loss: f64, acc: f64, val_loss: f64, val_acc: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: loss,
            train_acc: acc,
            val_loss: Some(val_loss),
            val_acc: Some(val_acc),
            lr: 0.01,
            batch_size: 32,
            seconds: 1.0,
            augment_seconds: 0.0,
            eval_seconds: 0.5,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn iteration_learning_rates_are_one_point_per_recorded_step() {
        let step = |iteration, lr| IterationRecord { iteration, lr, loss: 1.0 };
        let h = History { iterations: vec![step(0, 0.1), step(1, 0.2), step(2, 0.15)], ..History::default() };
        assert_eq!(h.iteration_learning_rates(), vec![(0.0, 0.1), (1.0, 0.2), (2.0, 0.15)]);
        assert!(History::default().iteration_learning_rates().is_empty());
    }

    #[test]
    fn best_epoch_follows_the_monitor_direction_and_skips_nan() {
        let h = History {
            epochs: vec![
                epoch(1, 2.0, 0.3, 1.9, 0.35),
                epoch(2, 1.5, 0.5, 1.7, 0.45),
                epoch(3, 1.0, 0.7, f64::NAN, 0.44),
                epoch(4, 0.8, 0.8, 1.8, 0.45),
            ],
            ..History::default()
        };
        assert_eq!(h.best_epoch_by(&Monitor::ValLoss), Some(2));
        assert_eq!(h.best_epoch_by(&Monitor::ValAccuracy), Some(2), "first of the tied epochs");
        assert_eq!(h.best_epoch_by(&Monitor::Loss), Some(4));
        assert_eq!(h.best_val_loss(), Some(1.7));
        assert_eq!(h.total_seconds_with_evaluation(), 6.0);
        let gap = h.accuracy_gap();
        assert!((gap[3].1 - 0.35).abs() < 1e-12);
    }

    #[test]
    fn monitor_names_follow_keras() {
        assert_eq!(Monitor::from_name("val_acc").unwrap(), Monitor::ValAccuracy);
        assert_eq!(Monitor::from_name("val_accuracy").unwrap().name(), "val_accuracy");
        assert!(Monitor::ValAccuracy.higher_is_better() && !Monitor::ValLoss.higher_is_better());
        assert!(Monitor::from_name("ema_val_accuracy").unwrap().higher_is_better());
        assert!(Monitor::from_name("").is_err());
    }

    #[test]
    fn records_with_nan_losses_round_trip_through_json() {
        let mut h = History { epochs: vec![epoch(1, f64::NAN, 0.1, f64::INFINITY, 0.1)], ..History::default() };
        h.diverged = Some(Divergence { epoch: 1, step: 3, lr: 10.0, loss: f64::NAN });
        let text = serde_json::to_string(&h).unwrap();
        let back: History = serde_json::from_str(&text).unwrap();
        assert!(back.epochs[0].train_loss.is_nan() && back.epochs[0].val_loss == Some(f64::INFINITY));
        assert_eq!(back.diverged.unwrap().step, 3);
    }
}
