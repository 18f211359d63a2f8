//! Run records: a training run's configuration, history and test result, saved as JSON under
//! `runs/<section>/<mode>/<name>.json` so that a later cell (or a re-run) re-plots without
//! retraining. Files are written atomically: a temp file in the same folder, then a rename.

use crate::error::{Error, Result};
use crate::train::{History, Metrics};
use std::path::{Path, PathBuf};

/// Quick (CPU, minutes) or full (the coursework's configuration) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// A subset and few epochs: minutes on a 2-core laptop. Chosen by `DLKIT_QUICK=1`.
    Quick,
    /// The coursework's configuration (a GPU job for the bigger sections).
    Full,
}

impl Mode {
    /// `Quick` when the environment variable `DLKIT_QUICK` is set to anything but `0`/empty.
    pub fn from_env() -> Mode {
        match std::env::var("DLKIT_QUICK") {
            Ok(v) if !v.is_empty() && v != "0" => Mode::Quick,
            _ => Mode::Full,
        }
    }

    /// `quick` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    /// Pick the quick or the full value.
    pub fn pick<T>(self, quick: T, full: T) -> T {
        match self {
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }

    /// True in quick mode.
    pub fn is_quick(self) -> bool {
        self == Mode::Quick
    }
}

/// A finished training run: what was trained, how it went, how it tested.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// The coursework section (`01_optimizers`, …); names the folder.
    pub section: String,
    /// The run's name within the section (`adam`, `adam-dropout`, …); names the file.
    pub name: String,
    /// Quick or full mode.
    pub mode: Mode,
    /// The configuration, free-form (model, optimizer, epochs, batch size, seed, …).
    pub config: serde_json::Value,
    /// Per-epoch history.
    pub history: History,
    /// Test-set result with the kept weights, if measured.
    pub test: Option<Metrics>,
    /// Device the run used (`cpu`, `cuda:0`).
    pub device: String,
    /// Seconds since the Unix epoch when the record was made.
    pub created: u64,
}

impl RunRecord {
    /// A record stamped with the current time.
    pub fn new(
        section: &str,
        name: &str,
        mode: Mode,
        config: serde_json::Value,
        history: History,
        test: Option<Metrics>,
        device: &candle_core::Device,
    ) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        RunRecord {
            section: section.into(),
            name: name.into(),
            mode,
            config,
            history,
            test,
            device: device_name(device),
            created,
        }
    }

    /// Where this record is stored under `root`.
    pub fn path_in(&self, root: &Path) -> PathBuf {
        record_path(root, &self.section, self.mode, &self.name)
    }

    /// Write the record under `root` (atomically); returns the file's path.
    pub fn save_in(&self, root: &Path) -> Result<PathBuf> {
        let path = self.path_in(root);
        write_json(&path, self)?;
        Ok(path)
    }

    /// Write the record under [`runs_root`].
    pub fn save(&self) -> Result<PathBuf> {
        self.save_in(&runs_root())
    }

    /// Read a record from a file.
    pub fn load_file(path: &Path) -> Result<RunRecord> {
        read_json(path)
    }

    /// Read the record `section/mode/name` from [`runs_root`], if it exists.
    pub fn load(section: &str, mode: Mode, name: &str) -> Result<Option<RunRecord>> {
        let path = record_path(&runs_root(), section, mode, name);
        if !path.exists() {
            return Ok(None);
        }
        RunRecord::load_file(&path).map(Some)
    }
}

/// The runs folder: `$DLKIT_RUNS` if set, else the repository's `runs/`.
pub fn runs_root() -> PathBuf {
    match std::env::var_os("DLKIT_RUNS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::repository_root().join("runs"),
    }
}

/// `<root>/<section>/<mode>/<name>.json`.
pub fn record_path(root: &Path, section: &str, mode: Mode, name: &str) -> PathBuf {
    root.join(section).join(mode.name()).join(format!("{name}.json"))
}

/// True when `DLKIT_RETRAIN` asks to recompute saved results.
fn retrain_requested() -> bool {
    std::env::var("DLKIT_RETRAIN").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Load the record `section/mode/name` if it exists and `DLKIT_RETRAIN` is not set; otherwise
/// call `train` to produce it and save it. Notebooks wrap every long run in this.
pub fn load_or_run(
    section: &str,
    mode: Mode,
    name: &str,
    train: impl FnOnce() -> Result<RunRecord>,
) -> Result<RunRecord> {
    load_or_compute(section, mode, name, train)
}

/// Any long computation's result (an LR finder curve, a sweep), saved as JSON under
/// `runs/<section>/<mode>/<name>.json` and re-loaded on the next run unless `DLKIT_RETRAIN` is set.
pub fn load_or_compute<T: serde::Serialize + serde::de::DeserializeOwned>(
    section: &str,
    mode: Mode,
    name: &str,
    compute: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let path = record_path(&runs_root(), section, mode, name);
    if !retrain_requested() && path.exists() {
        let value = read_json(&path)?;
        println!("{section}/{name}: loaded the saved result ({})", mode.name());
        return Ok(value);
    }
    let value = compute()?;
    write_json(&path, &value)?;
    Ok(value)
}

/// A device's name for records: `cpu`, `cuda:N`, `metal:N`.
pub fn device_name(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Write `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Json { path: path.into(), source: e })?;
    write_bytes_atomically(path, &json)
}

/// Read a JSON file written by [`write_json`].
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.into(), source: e })
}

/// Write `bytes` to `path` atomically (see [`write_atomically`]).
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e)))
}

/// Create `path` by letting `write` fill a temp file beside it, then renaming it into place,
/// so an interrupted run never leaves a half-written file. Parent folders are created.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = path.file_name().ok_or_else(|| Error::Config(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp{}", file.to_string_lossy(), std::process::id()));
    match write(&tmp) {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::EpochRecord;

    fn record() -> RunRecord {
        let history = History {
            epochs: vec![EpochRecord {
                epoch: 1,
                train_loss: 2.5,
                train_acc: 0.25,
                val_loss: Some(2.25),
                val_acc: Some(0.3),
                lr: 0.01,
                batch_size: 128,
                seconds: 1.5,
                augment_seconds: 0.0,
            }],
            iterations: vec![],
            best_epoch: Some(1),
        };
        RunRecord::new(
            "00_test",
            "sgd",
            Mode::Quick,
            serde_json::json!({"optimizer": "sgd", "epochs": 1}),
            history,
            Some(Metrics { loss: 2.0, accuracy: 0.35 }),
            &candle_core::Device::Cpu,
        )
    }

    #[test]
    fn run_record_round_trips_through_json() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let r = record();
        let path = r.save_in(dir.path())?;
        assert_eq!(path, dir.path().join("00_test/quick/sgd.json"));
        assert_eq!(RunRecord::load_file(&path)?, r);
        // nothing but the record is left in the folder
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sgd.json")]);
        Ok(())
    }

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let r = write_atomically(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Config("interrupted".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_record_is_a_json_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, b"{\"section\": ").unwrap();
        let e = RunRecord::load_file(&path).unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
    }
}
