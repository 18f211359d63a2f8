//! One CSV row per epoch (Keras `CSVLogger`).

use super::{Callback, Context};
use crate::error::Result;
use crate::history::EpochRecord;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Keras's `CSVLogger(filename)`: a header `epoch,<log names in sorted order>` and one row per
/// epoch, with `epoch` counted **from 0** as Keras writes it. Columns are Keras's log names
/// (`accuracy`, `loss`, `lr`, `val_accuracy`, `val_loss`, and figures callbacks add) plus
/// `seconds` (training and evaluation time of the epoch). The file is rewritten atomically from
/// the whole history after each epoch, so it is never half-written and a resumed run's file
/// holds every epoch.
#[derive(Debug, Clone)]
pub struct CsvLogger {
    path: PathBuf,
}

impl CsvLogger {
    /// Log to `path` (folders are created).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger { path: path.into() }
    }

    /// The CSV text for these epochs.
    pub fn render(epochs: &[EpochRecord]) -> String {
        let columns: BTreeSet<String> = epochs
            .iter()
            .flat_map(|e| e.logs().into_keys())
            .filter(|k| k != "acc" && k != "val_acc")
            .chain(["seconds".to_string()])
            .collect();
        let mut text = format!("epoch,{}\n", columns.iter().cloned().collect::<Vec<_>>().join(","));
        for e in epochs {
            let mut logs = e.logs();
            logs.insert("seconds".into(), e.seconds + e.eval_seconds);
            let cells: Vec<String> =
                columns.iter().map(|c| logs.get(c).map_or(String::new(), |v| v.to_string())).collect();
            text.push_str(&format!("{},{}\n", e.epoch - 1, cells.join(",")));
        }
        text
    }
}

impl Callback for CsvLogger {
    fn name(&self) -> &str {
        "csv_logger"
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        let mut epochs = ctx.history.epochs.clone();
        epochs.push(record.clone());
        crate::io::write_bytes_atomically(&self.path, Self::render(&epochs).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::epoch;

    #[test]
    fn rows_follow_keras_columns_and_zero_based_epochs() {
        let text = CsvLogger::render(&[epoch(1, 2.5, 0.25, 2.0, 0.5), epoch(2, 1.5, 0.5, 1.75, 0.625)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "epoch,accuracy,loss,lr,seconds,val_accuracy,val_loss");
        assert_eq!(lines[1], "0,0.25,2.5,0.01,1.5,0.5,2");
        assert_eq!(lines[2], "1,0.5,1.5,0.01,1.5,0.625,1.75");
    }
}
