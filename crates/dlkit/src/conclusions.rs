//! Conclusions computed from a run's own numbers: checks that a quick run learned what it
//! should (its expected range), tables that put this run beside the reference report's
//! figures (labelled as the report's), and rankings written as sentences.

use crate::error::{Error, Result};
use crate::runs::Mode;
use crate::table::Table;
use std::ops::RangeInclusive;

/// Check a headline figure against the range stated in the notebook. In quick mode a value
/// outside the range is an error (so a regression to chance fails the notebook, and CI); in
/// full mode the range is for the quick configuration only and nothing is checked.
pub fn expect_range(what: &str, value: f64, range: RangeInclusive<f64>, mode: Mode) -> Result<String> {
    let (lo, hi) = (*range.start(), *range.end());
    if mode == Mode::Full {
        return Ok(format!("{what}: {value:.4} (the expected range {lo}–{hi} is for quick mode)"));
    }
    if range.contains(&value) {
        Ok(format!("{what}: {value:.4}, inside the expected quick-mode range {lo}–{hi}"))
    } else {
        Err(Error::Config(format!(
            "{what} is {value:.4}, outside the expected quick-mode range {lo}–{hi}: this run did not learn as it should"
        )))
    }
}

/// A table of this run's figures beside the reference report's. Rows without a reference
/// figure show "–"; the reference column is titled with its source.
#[derive(Debug, Clone)]
pub struct Comparison {
    table: Table,
}

impl Comparison {
    /// A comparison titled `title`, whose reference column is headed `reference` (e.g.
    /// "reference report (Keras, 200 epochs, GPU)").
    pub fn new(title: &str, mode: Mode, reference: &str) -> Self {
        let this_run = format!("this run ({} mode)", mode.name());
        Comparison { table: Table::new(["figure", this_run.as_str(), reference]).title(title) }
    }

    /// A row: this run's value and the reference's, both already formatted.
    pub fn row(mut self, figure: &str, this_run: impl Into<String>, reference: Option<&str>) -> Self {
        self.table.row([figure.to_string(), this_run.into(), reference.unwrap_or("–").to_string()]);
        self
    }

    /// A row of fractions shown as percentages with two decimals (`0.9` → `90.00 %`).
    pub fn percent(self, figure: &str, this_run: f64, reference: Option<f64>) -> Self {
        let reference = reference.map(percent);
        self.row(figure, percent(this_run), reference.as_deref())
    }

    /// The table.
    pub fn table(self) -> Table {
        self.table
    }

    /// Show the table in a notebook cell.
    pub fn evcxr_display(&self) {
        self.table.evcxr_display();
    }
}

/// `0.9` → `"90.00 %"` (NaN → `"–"`).
pub fn percent(fraction: f64) -> String {
    if fraction.is_nan() {
        "–".into()
    } else {
        format!("{:.2} %", 100.0 * fraction)
    }
}

/// `"a (0.41), then b (0.39), then c (0.30)"`: names ordered by value, highest first
/// (lowest first when `higher_is_better` is false), each with its value to `digits` decimals.
pub fn ranking(values: &[(String, f64)], higher_is_better: bool, digits: usize) -> String {
    let mut sorted: Vec<&(String, f64)> = values.iter().filter(|(_, v)| !v.is_nan()).collect();
    sorted.sort_by(|a, b| if higher_is_better { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
    sorted.iter().map(|(n, v)| format!("{n} ({v:.digits$})")).collect::<Vec<_>>().join(", then ")
}

/// Where a value that should fall (an error, a loss) stopped falling along an ordered list of
/// settings: the first setting whose value is not below the best of those before it, or `None`
/// when every step lowered it. `values` start with the baseline.
pub fn stopped_falling(values: &[(String, f64)]) -> Option<&str> {
    let mut best = values.first()?.1;
    for (name, v) in &values[1..] {
        if *v < best {
            best = *v;
        } else {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_mode_fails_outside_the_range_and_full_mode_only_reports() {
        assert!(expect_range("test accuracy", 0.31, 0.25..=0.40, Mode::Quick).is_ok());
        let e = expect_range("test accuracy", 0.10, 0.25..=0.40, Mode::Quick).unwrap_err().to_string();
        assert!(e.contains("0.1000") && e.contains("0.25–0.4"), "{e}");
        assert!(expect_range("test accuracy", 0.10, 0.25..=0.40, Mode::Full).is_ok());
    }

    #[test]
    fn the_first_setting_that_does_not_improve_is_named() {
        let v = |xs: &[(&str, f64)]| xs.iter().map(|(n, x)| (n.to_string(), *x)).collect::<Vec<_>>();
        assert_eq!(stopped_falling(&v(&[("M=1", 0.5), ("M=2", 0.45), ("M=4", 0.47), ("M=8", 0.4)])), Some("M=4"));
        assert_eq!(stopped_falling(&v(&[("M=1", 0.5), ("M=2", 0.45)])), None);
        assert_eq!(stopped_falling(&v(&[("M=1", 0.5), ("M=2", f64::NAN)])), Some("M=2"));
    }

    #[test]
    fn rankings_read_highest_first_and_skip_nan() {
        let v = vec![("adam".to_string(), 0.35), ("sgd".to_string(), f64::NAN), ("nadam".to_string(), 0.4)];
        assert_eq!(ranking(&v, true, 2), "nadam (0.40), then adam (0.35)");
        assert_eq!(ranking(&v, false, 1), "adam (0.3), then nadam (0.4)");
        assert_eq!(percent(0.9), "90.00 %");
    }
}
