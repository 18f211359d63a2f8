//! Headline numbers of a notebook section, for the submission index.
//!
//! A notebook ends by writing the few numbers a marker looks for first, with the mode it ran in:
//!
//! ```no_run
//! # use dlkit::{report::Headline, runs::Mode};
//! Headline::new("01_optimizers", Mode::Quick)
//!     .add("test accuracy (Adam)", 0.4312)
//!     .add("best validation accuracy (Adam)", 0.4405)
//!     .save()?;
//! # Ok::<(), dlkit::Error>(())
//! ```
//!
//! The file is `runs/<section>/<mode>/headline.json` (under `$DLKIT_RUNS` when set), with the
//! section named after the notebook's file (`01_optimizers` for `01_optimizers.ipynb`);
//! `bash scripts/notebooks.sh --export` reads it into `submission/index.html`. The format:
//!
//! ```json
//! { "section": "01_optimizers", "mode": "quick", "written_unix": 1795000000,
//!   "numbers": [ { "name": "test accuracy (Adam)", "value": 0.4312 } ] }
//! ```
//! Values that are not finite are written as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.

use crate::error::{Error, Result};
use crate::runs::Mode;
use std::path::{Path, PathBuf};

/// The file name of a section's headline numbers inside `runs/<section>/<mode>/`.
pub const HEADLINE_FILE: &str = "headline.json";

/// One named number.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadlineNumber {
    /// What it is, in the course's words ("test accuracy (Adam)").
    pub name: String,
    /// Its value.
    #[serde(with = "crate::serde_float")]
    pub value: f64,
}

/// A section's headline numbers and the mode they were obtained in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Headline {
    /// The section: the notebook's file name without `.ipynb`.
    pub section: String,
    /// `quick` or `full` ([`Mode::name`]).
    pub mode: String,
    /// When it was saved, in seconds since 1970 (0 until saved).
    pub written_unix: u64,
    /// The numbers, in the order they were added.
    pub numbers: Vec<HeadlineNumber>,
}

impl Headline {
    /// No numbers yet, for `section` (the notebook's file name without `.ipynb`) in `mode`.
    pub fn new(section: &str, mode: Mode) -> Self {
        Headline { section: section.to_string(), mode: mode.name().to_string(), written_unix: 0, numbers: Vec::new() }
    }

    /// Add a number; adding a name again replaces its value and keeps its place.
    pub fn add(mut self, name: &str, value: f64) -> Self {
        match self.numbers.iter_mut().find(|n| n.name == name) {
            Some(n) => n.value = value,
            None => self.numbers.push(HeadlineNumber { name: name.to_string(), value }),
        }
        self
    }

    /// The value named `name`, if added.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.numbers.iter().find(|n| n.name == name).map(|n| n.value)
    }

    /// `<root>/<section>/<mode>/headline.json`.
    pub fn path_in(root: &Path, section: &str, mode: Mode) -> PathBuf {
        root.join(section).join(mode.name()).join(HEADLINE_FILE)
    }

    /// Save under the runs folder ([`crate::runs::runs_root`]); returns the file written.
    pub fn save(&self) -> Result<PathBuf> {
        self.save_in(&crate::runs::runs_root())
    }

    /// Save under `root` (atomically, stamped with the time); returns the file written.
    pub fn save_in(&self, root: &Path) -> Result<PathBuf> {
        let mode = check_fields(&self.section, &self.mode)?;
        if self.numbers.is_empty() {
            return Err(Error::Config(format!(
                "the headline of section {} has no numbers; add at least one with .add(name, value)",
                self.section
            )));
        }
        let written_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let path = Self::path_in(root, &self.section, mode);
        crate::io::write_json(&path, &Headline { written_unix, ..self.clone() })?;
        Ok(path)
    }

    /// Read the headline saved for `section` in `mode` under the runs folder.
    pub fn load(section: &str, mode: Mode) -> Result<Headline> {
        Self::load_in(&crate::runs::runs_root(), section, mode)
    }

    /// Read the headline saved for `section` in `mode` under `root`.
    pub fn load_in(root: &Path, section: &str, mode: Mode) -> Result<Headline> {
        let path = Self::path_in(root, section, mode);
        let headline: Headline = crate::io::read_json(&path)?;
        if headline.section != section || headline.mode != mode.name() {
            return Err(Error::bad_file(
                &path,
                format!(
                    "holds the headline of section {} in {} mode, not {section} in {} mode",
                    headline.section,
                    headline.mode,
                    mode.name()
                ),
            ));
        }
        Ok(headline)
    }
}

/// The section must be a plain folder name and the mode `quick` or `full`; returns the mode.
fn check_fields(section: &str, mode: &str) -> Result<Mode> {
    let plain = !section.is_empty()
        && section != "."
        && section != ".."
        && !section.contains(['/', '\\'])
        && !section.chars().any(char::is_control);
    if !plain {
        return Err(Error::Config(format!(
            "headline section {section:?} must be a plain folder name: the notebook's file name without .ipynb, e.g. \"01_optimizers\""
        )));
    }
    match mode {
        "quick" => Ok(Mode::Quick),
        "full" => Ok(Mode::Full),
        other => Err(Error::Config(format!("headline mode {other:?} must be \"quick\" or \"full\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headline_is_saved_where_the_exporter_looks_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = Headline::new("01_optimizers", Mode::Quick)
            .add("test accuracy (Adam)", 0.4312)
            .add("diverged loss", f64::NAN)
            .add("test accuracy (Adam)", 0.5)
            .save_in(dir.path())
            .unwrap();
        assert_eq!(path, dir.path().join("01_optimizers").join("quick").join("headline.json"));

        // The file as scripts/export_submission.py reads it: plain JSON, NaN as a string,
        // a re-added name keeps its place with the new value.
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["section"], "01_optimizers");
        assert_eq!(json["mode"], "quick");
        assert_eq!(json["numbers"][0]["name"], "test accuracy (Adam)");
        assert_eq!(json["numbers"][0]["value"], 0.5);
        assert_eq!(json["numbers"][1]["value"], "NaN");
        assert_eq!(json["numbers"].as_array().unwrap().len(), 2);
        assert!(json["written_unix"].as_u64().unwrap() > 1_700_000_000);

        let back = Headline::load_in(dir.path(), "01_optimizers", Mode::Quick).unwrap();
        assert_eq!(back.get("test accuracy (Adam)"), Some(0.5));
        assert!(back.get("diverged loss").unwrap().is_nan());
        assert_eq!(back.get("absent"), None);
    }

    #[test]
    fn bad_sections_empty_headlines_and_mismatched_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "..", "runs/01", "a\\b"] {
            let err = Headline::new(bad, Mode::Full).add("x", 1.0).save_in(dir.path()).unwrap_err().to_string();
            assert!(err.contains("plain folder name"), "{bad:?}: {err}");
        }
        let err = Headline::new("00_quickstart", Mode::Full).save_in(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no numbers"), "{err}");
        let err = Headline { mode: "fast".into(), ..Headline::new("00", Mode::Quick).add("x", 1.0) }
            .save_in(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"quick\" or \"full\""), "{err}");

        // A file copied into the wrong folder says whose headline it holds.
        let saved = Headline::new("00_quickstart", Mode::Quick).add("x", 1.0).save_in(dir.path()).unwrap();
        let wrong = Headline::path_in(dir.path(), "00_quickstart", Mode::Full);
        std::fs::create_dir_all(wrong.parent().unwrap()).unwrap();
        std::fs::copy(&saved, &wrong).unwrap();
        let err = Headline::load_in(dir.path(), "00_quickstart", Mode::Full).unwrap_err().to_string();
        assert!(err.contains("00_quickstart in quick mode, not 00_quickstart in full mode"), "{err}");
        assert!(err.contains("headline.json"), "{err}");
    }
}
