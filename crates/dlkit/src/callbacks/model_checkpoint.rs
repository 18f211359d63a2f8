//! Save the weights after epochs (the best ones only, if asked): Keras `ModelCheckpoint`.

use super::{monitored, require_validation, parse_state, state_json, Callback, CallbackState, Context, MonitorMode};
use crate::error::{Error, Result};
use crate::history::{EpochRecord, Monitor};
use crate::models::WeightSnapshot;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Keras's `ModelCheckpoint(filepath, monitor, save_best_only, mode)`, tf.keras 2.x semantics:
///
/// - With `save_best_only`, an epoch is saved when its monitored value is strictly better than
///   the best so far (`best` starts at ∓∞; no `min_delta`). Without it, every epoch is saved.
/// - `filepath` is a pattern formatted with the epoch **from 1** and the epoch's logs, as
///   Keras's `filepath.format(epoch=epoch + 1, **logs)`: `{epoch:02d}`, `{val_acc:.4f}`,
///   `{val_loss}`, … (see [`format_pattern`]). The report's
///   `CIFAR10-EP{epoch:02d}-ACC{val_acc:.4f}.safetensors` works as is. Weights are written as
///   safetensors, atomically.
/// - Without a `filepath` the best weights are kept in memory only.
/// - `restore_best_at_end` (not a Keras option: what the coursework did by loading the best
///   file after `fit`) puts the best weights back when training ends, so that the model is
///   tested with them.
#[derive(Debug, Clone)]
pub struct ModelCheckpoint {
    /// File-name pattern, or `None` to keep the best weights in memory only.
    pub filepath: Option<PathBuf>,
    /// The figure compared (Keras default `val_loss`).
    pub monitor: Monitor,
    /// Which direction improves.
    pub mode: MonitorMode,
    /// Save only epochs that improve on the best so far.
    pub save_best_only: bool,
    /// Put the best weights back when training ends.
    pub restore_best_at_end: bool,
    state: CheckpointState,
    best_weights: Option<WeightSnapshot>,
}

/// What [`ModelCheckpoint`] carries across epochs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct CheckpointState {
    #[serde(with = "crate::serde_float::option")]
    best: Option<f64>,
    best_epoch: Option<usize>,
    saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Save the weights of every epoch that improves `monitor` to files named by `pattern`.
    pub fn best_only(pattern: impl Into<PathBuf>, monitor: Monitor) -> Self {
        ModelCheckpoint {
            filepath: Some(pattern.into()),
            monitor,
            mode: MonitorMode::Auto,
            save_best_only: true,
            restore_best_at_end: false,
            state: CheckpointState::default(),
            best_weights: None,
        }
    }

    /// Keep the best weights by `monitor` in memory and put them back when training ends.
    pub fn keep_best(monitor: Monitor) -> Self {
        ModelCheckpoint { filepath: None, restore_best_at_end: true, ..Self::best_only("", monitor) }
    }

    /// Also put the best weights back when training ends.
    pub fn restoring_best_at_end(mut self) -> Self {
        self.restore_best_at_end = true;
        self
    }

    /// The files written so far, in order.
    pub fn saved_files(&self) -> &[PathBuf] {
        &self.state.saved
    }

    /// The epoch (from 1) of the best weights so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.state.best_epoch
    }

    fn improves(&self, value: f64) -> bool {
        match self.state.best {
            None => value.is_finite(),
            Some(best) if self.mode.higher_is_better(&self.monitor) => value > best,
            Some(best) => value < best,
        }
    }
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> &str {
        "model_checkpoint"
    }

    fn on_train_begin(&mut self, ctx: &mut Context) -> Result<()> {
        require_validation(&self.monitor, ctx, "model checkpoint")
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        let value = monitored(record, &self.monitor, "model checkpoint")?;
        let improved = self.improves(value);
        if improved {
            self.state.best = Some(value);
            self.state.best_epoch = Some(record.epoch);
            if self.restore_best_at_end {
                self.best_weights = Some(WeightSnapshot::capture(ctx.varmap)?);
            }
        }
        if let Some(pattern) = &self.filepath {
            if improved || !self.save_best_only {
                let path = PathBuf::from(format_pattern(&pattern.to_string_lossy(), record.epoch, &record.logs())?);
                crate::io::save_varmap(ctx.varmap, &path)?;
                self.state.saved.push(path);
            }
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Context) -> Result<()> {
        if let Some(weights) = self.best_weights.as_ref().filter(|_| self.restore_best_at_end) {
            weights.restore(ctx.varmap)?;
            ctx.history.best_epoch = self.state.best_epoch;
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

/// Format a Keras file-name pattern: `{epoch}` / `{epoch:02d}` is the epoch from 1, any other
/// `{name}` / `{name:.4f}` / `{name:d}` a value from `logs`; `{{` and `}}` are literal braces.
/// An unknown name or format is an error naming it.
pub fn format_pattern(pattern: &str, epoch: usize, logs: &BTreeMap<String, f64>) -> Result<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (brace, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.as_bytes().first() == Some(&brace) {
            out.push(brace as char);
            rest = &after[1..];
            continue;
        }
        if brace == b'}' {
            return Err(Error::Config(format!("checkpoint pattern `{pattern}`: unmatched `}}`")));
        }
        let end = after
            .find('}')
            .ok_or_else(|| Error::Config(format!("checkpoint pattern `{pattern}`: unmatched `{{`")))?;
        out.push_str(&format_field(pattern, &after[..end], epoch, logs)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One `{name:spec}` field of a pattern.
fn format_field(pattern: &str, field: &str, epoch: usize, logs: &BTreeMap<String, f64>) -> Result<String> {
    let (name, spec) = field.split_once(':').unwrap_or((field, ""));
    let bad = |what: &str| Error::Config(format!("checkpoint pattern `{pattern}`: {what} in `{{{field}}}`"));
    let value = if name == "epoch" {
        epoch as f64
    } else {
        *logs.get(name).ok_or_else(|| {
            let known: Vec<&str> = logs.keys().map(String::as_str).collect();
            bad(&format!("unknown name `{name}` (known: epoch, {})", known.join(", ")))
        })?
    };
    if spec.is_empty() {
        return Ok(if name == "epoch" { epoch.to_string() } else { value.to_string() });
    }
    let (width, kind) = spec.split_at(spec.len() - 1);
    let zero_pad = width.starts_with('0');
    match kind {
        "d" => {
            let width: usize = if width.is_empty() { 0 } else { width.parse().map_err(|_| bad("bad width"))? };
            let n = value.round() as i64;
            Ok(if zero_pad { format!("{n:0width$}") } else { format!("{n:width$}") })
        }
        "f" => {
            let precision: usize = width
                .strip_prefix('.')
                .ok_or_else(|| bad("expected `.Nf`"))?
                .parse()
                .map_err(|_| bad("bad precision"))?;
            Ok(format!("{value:.precision$}"))
        }
        _ => Err(bad("unsupported format (use d or .Nf)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_pattern_formats_like_python() {
        let logs: BTreeMap<String, f64> = [("val_acc".to_string(), 0.90004), ("val_loss".to_string(), 0.5)].into();
        let name = format_pattern("CIFAR10-EP{epoch:02d}-ACC{val_acc:.4f}.safetensors", 7, &logs).unwrap();
        // Python: "CIFAR10-EP{epoch:02d}-ACC{val_acc:.4f}".format(epoch=7, val_acc=0.90004)
        assert_eq!(name, "CIFAR10-EP07-ACC0.9000.safetensors");
        assert_eq!(format_pattern("e{epoch}-{val_loss:.2f}{{x}}", 12, &logs).unwrap(), "e12-0.50{x}");
        assert_eq!(format_pattern("{epoch:3d}", 5, &logs).unwrap(), "  5");
        let e = format_pattern("{val_accuracy:.4f}", 1, &logs).unwrap_err().to_string();
        assert!(e.contains("val_accuracy") && e.contains("val_acc"), "{e}");
        assert!(format_pattern("{epoch", 1, &logs).is_err());
        assert!(format_pattern("{epoch:x}", 1, &logs).is_err());
    }
}
