//! Saved results: a long computation's result is stored as JSON under
//! `runs/<section>/<mode>/<name>.json` together with the full configuration it was computed
//! for, so that a re-run re-plots without retraining — and a changed setting computes again.
//!
//! A saved result is reused only when its configuration (every field of the typed config the
//! caller passes, the mode, and [`RESULTS_VERSION`]) matches the current one exactly; otherwise
//! the cell says which setting changed and computes afresh. `DLKIT_RETRAIN=1` always recomputes.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Bumped whenever a library change alters training results (an initialiser, a kernel's
/// arithmetic, an optimizer rule): results saved by an older library are then recomputed.
pub const RESULTS_VERSION: &str = concat!("dlkit ", env!("CARGO_PKG_VERSION"), ", results 2");

/// Quick (CPU, minutes) or full (the coursework's configuration) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// A subset and few epochs: minutes on a 2-core laptop.
    Quick,
    /// The coursework's configuration (a GPU job for the bigger sections).
    Full,
}

impl Mode {
    /// The mode asked for in `DLKIT_MODE` (`quick` or `full`; `DLKIT_QUICK=1` also means
    /// quick), else quick on a CPU and full on a GPU.
    pub fn choose(device: &candle_core::Device) -> Mode {
        match std::env::var("DLKIT_MODE").map(|v| v.to_ascii_lowercase()) {
            Ok(v) if v == "quick" => return Mode::Quick,
            Ok(v) if v == "full" => return Mode::Full,
            _ => {}
        }
        if std::env::var("DLKIT_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") || device.is_cpu() {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    /// `Quick` when `DLKIT_QUICK` is set to anything but `0`/empty or `DLKIT_MODE=quick`,
    /// else `Full` (prefer [`Mode::choose`], which also looks at the device).
    pub fn from_env() -> Mode {
        let quick = std::env::var("DLKIT_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
            || std::env::var("DLKIT_MODE").is_ok_and(|v| v.eq_ignore_ascii_case("quick"));
        if quick {
            Mode::Quick
        } else {
            Mode::Full
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

/// One line saying which mode a notebook runs in, on what, and how to change it.
pub fn describe(mode: Mode, device: &candle_core::Device) -> String {
    let on = format!("{} ({})", device_name(device), crate::runtime::machine());
    match mode {
        Mode::Quick => format!(
            "quick mode on {on}: subsets and few epochs, minutes on a laptop; \
             for the coursework's configuration write `let mode = Mode::Full;` (a GPU job)"
        ),
        Mode::Full => format!(
            "full mode on {on}: the coursework's configuration{}",
            if device.is_cpu() { " — on a CPU this takes hours to days; write `let mode = Mode::Quick;` to try it first" } else { "" }
        ),
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

/// The folder of a run's logs and checkpoints: `<root>/<section>/<mode>/<name>/`.
pub fn run_folder(section: &str, mode: Mode, name: &str) -> PathBuf {
    runs_root().join(section).join(mode.name()).join(name)
}

/// True when `DLKIT_RETRAIN` asks to recompute saved results.
fn retrain_requested() -> bool {
    std::env::var("DLKIT_RETRAIN").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What is stored: the library's results version, the configuration, and the value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved<T> {
    results_version: String,
    config: serde_json::Value,
    value: T,
}

/// The saved result `section/mode/name` if it was computed for exactly `config` (and this
/// library's [`RESULTS_VERSION`]); otherwise `compute()` it, save it with its configuration and
/// return it. Every notebook cell that trains wraps its work in this (or in
/// `Experiment::load_or_run`, which passes the experiment and its data as the configuration).
pub fn load_or_compute<C, T>(section: &str, mode: Mode, name: &str, config: &C, compute: impl FnOnce() -> Result<T>) -> Result<T>
where
    C: serde::Serialize + ?Sized,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    load_or_compute_in(&runs_root(), section, mode, name, config, compute)
}

/// [`load_or_compute`] with the results under `root` instead of [`runs_root`].
pub fn load_or_compute_in<C, T>(
    root: &Path,
    section: &str,
    mode: Mode,
    name: &str,
    config: &C,
    compute: impl FnOnce() -> Result<T>,
) -> Result<T>
where
    C: serde::Serialize + ?Sized,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let path = record_path(root, section, mode, name);
    let config = serde_json::to_value(config).map_err(|e| Error::Config(format!("{name}: configuration: {e}")))?;
    match reusable(&path, &config) {
        Ok(value) => {
            println!("{section}/{name}: loaded the saved result ({} mode; same configuration)", mode.name());
            return Ok(value);
        }
        Err(Some(why)) => println!("{section}/{name}: {why}; computing again"),
        Err(None) => {}
    }
    let value = compute()?;
    let saved = Saved { results_version: RESULTS_VERSION.to_string(), config, value };
    crate::io::write_json(&path, &saved)?;
    Ok(saved.value)
}

/// Whether [`load_or_compute`] would load the saved result for `config` instead of computing.
pub fn is_saved<C: serde::Serialize + ?Sized>(section: &str, mode: Mode, name: &str, config: &C) -> bool {
    let path = record_path(&runs_root(), section, mode, name);
    serde_json::to_value(config).is_ok_and(|c| reusable::<serde_json::Value>(&path, &c).is_ok())
}

/// The saved value at `path` if it was made for `config`; else why not (`None`: nothing saved).
fn reusable<T: serde::de::DeserializeOwned>(path: &Path, config: &serde_json::Value) -> std::result::Result<T, Option<String>> {
    if !path.exists() {
        return Err(None);
    }
    if retrain_requested() {
        return Err(Some("DLKIT_RETRAIN is set".into()));
    }
    let saved: Saved<serde_json::Value> =
        crate::io::read_json(path).map_err(|e| Some(format!("the saved file cannot be reused ({e})")))?;
    if saved.results_version != RESULTS_VERSION {
        return Err(Some(format!("saved by {}, this is {RESULTS_VERSION}", saved.results_version)));
    }
    if &saved.config != config {
        return Err(Some(format!("the configuration changed ({})", differences(&saved.config, config).join("; "))));
    }
    serde_json::from_value(saved.value).map_err(|e| Some(format!("the saved value does not parse ({e})")))
}

/// Where two configurations differ, as `path: old → new` (at most four).
pub fn differences(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), out);
                }
            }
            _ if a != b => out.push(format!("{path}: {a} → {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    let more = out.len().saturating_sub(4);
    out.truncate(4);
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out
}

/// A device's name for records: `cpu`, `cuda:N`, `metal:N`.
pub fn device_name(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_saved_result_is_reused_only_for_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        {
            let calls = Cell::new(0);
            #[derive(serde::Serialize, serde::Deserialize)]
            struct Losses(#[serde(with = "crate::serde_float::vec")] Vec<f64>);
            let run = |epochs: usize| {
                load_or_compute_in(dir.path(), "00_test", Mode::Quick, "r", &serde_json::json!({"epochs": epochs}), || {
                    calls.set(calls.get() + 1);
                    Ok(Losses(vec![epochs as f64, f64::NAN]))
                })
                .unwrap()
                .0
            };
            assert_eq!(run(5)[0], 5.0);
            assert_eq!(run(5)[0], 5.0);
            assert_eq!(calls.get(), 1, "same configuration: loaded, not recomputed");
            assert_eq!(run(10)[0], 10.0);
            assert_eq!(calls.get(), 2, "changed configuration: recomputed");
            assert!(run(10)[1].is_nan(), "NaN survives the round trip");
            assert_eq!(calls.get(), 2);
        }
    }

    #[test]
    fn an_unreadable_saved_file_is_recomputed_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(dir.path(), "00_test", Mode::Quick, "bad");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"section\": ").unwrap();
        let v: u32 = load_or_compute_in(dir.path(), "00_test", Mode::Quick, "bad", &1, || Ok(7)).unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn differences_name_the_changed_fields() {
        let a = serde_json::json!({"epochs": 5, "optimizer": {"name": "adam", "lr": 0.001}});
        let b = serde_json::json!({"epochs": 5, "optimizer": {"name": "adam", "lr": 0.01}});
        assert_eq!(differences(&a, &b), vec!["optimizer.lr: 0.001 → 0.01".to_string()]);
    }
}
