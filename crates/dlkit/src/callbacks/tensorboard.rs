//! A run's scalars as TensorBoard event files (Keras `TensorBoard`, scalars only).

use super::{Callback, Context};
use crate::error::{Error, Result};
use crate::history::EpochRecord;
use crate::tensorboard::LogDir;
use std::path::PathBuf;

/// Keras's `TensorBoard(log_dir)` for epoch scalars: after every epoch, `log_dir/train/` gets
/// `epoch_loss`, `epoch_accuracy`, `epoch_lr` (the rate the epoch used) and `epoch_seconds`
/// (training and evaluation), `log_dir/validation/` gets `epoch_loss` and `epoch_accuracy`,
/// and figures callbacks add go to `train/` (or `validation/` when named `val_…`). Steps are
/// epochs from 0, as Keras writes them. View with `tensorboard --logdir runs/`.
///
/// A run that starts afresh removes the event files an earlier run left in `log_dir`; a resumed
/// run adds to them.
pub struct TensorBoard {
    logs: LogDir,
}

impl TensorBoard {
    /// Write event files under `log_dir`.
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        TensorBoard { logs: LogDir::new(log_dir) }
    }
}

impl Callback for TensorBoard {
    fn name(&self) -> &str {
        "tensorboard"
    }

    fn on_train_begin(&mut self, ctx: &mut Context) -> Result<()> {
        let root = self.logs.root().to_path_buf();
        if ctx.history.epochs.is_empty() && root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, _ctx: &mut Context) -> Result<()> {
        let mut logs = record.logs();
        logs.retain(|k, _| k != "acc" && k != "val_acc");
        logs.insert("seconds".into(), record.seconds + record.eval_seconds);
        let scalars: Vec<(&str, f64)> = logs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.logs.log_epoch(record.epoch - 1, &scalars)
    }
}
