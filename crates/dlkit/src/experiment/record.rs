//! A finished training run: what was trained (the typed experiment and its data), how it went
//! (the history) and how it tested, with the device and machine it ran on.

use super::{DataSpec, Experiment};
use crate::history::{History, Metrics};
use crate::runs::Mode;

/// A finished training run, saved under `runs/<section>/<mode>/<name>.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// The experiment as configured.
    pub experiment: Experiment,
    /// The data it trained and tested on.
    pub data: DataSpec,
    /// Quick or full mode.
    pub mode: Mode,
    /// Per-epoch history.
    pub history: History,
    /// Test-set result with the kept weights (none when the run diverged).
    pub test: Option<Metrics>,
    /// Device the run used (`cpu`, `cuda:0`).
    pub device: String,
    /// The machine: CPU model and threads (timings are only comparable on the same one).
    pub machine: String,
    /// Seconds since the Unix epoch when the record was made.
    pub created: u64,
}

impl RunRecord {
    /// A record stamped with the current time and this machine.
    pub fn new(experiment: Experiment, data: DataSpec, mode: Mode, history: History, test: Option<Metrics>, device: &candle_core::Device) -> Self {
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        RunRecord {
            experiment,
            data,
            mode,
            history,
            test,
            device: crate::runs::device_name(device),
            machine: crate::runtime::machine(),
            created,
        }
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        &self.experiment.name
    }

    /// Test accuracy with the kept weights (NaN when not measured).
    pub fn test_accuracy(&self) -> f64 {
        self.test.map_or(f64::NAN, |t| t.accuracy)
    }

    /// Test error, 1 − accuracy (NaN when not measured).
    pub fn test_error(&self) -> f64 {
        1.0 - self.test_accuracy()
    }

    /// Samples per optimisation step: the batch size times the augmentation's copies.
    pub fn samples_per_step(&self) -> usize {
        let copies = self.experiment.augmentation.as_ref().map_or(1, |a| a.samples_per_image());
        self.experiment.batch_size * copies
    }
}
