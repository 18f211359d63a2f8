//! A notebook section's runs together: estimated before they start, trained (or loaded) in
//! order, then looked up by name and drawn or tabulated in one expression per cell.

use super::{plan, Experiment, Prepared, RunRecord};
use crate::error::{Error, Result};
use crate::history::History;
use crate::plot::LineChart;
use crate::runs::Mode;

/// The records of several experiments on the same data, in the order they were given.
#[derive(Debug, Clone)]
pub struct RunSet {
    records: Vec<RunRecord>,
}

impl RunSet {
    /// Say how long the runs will take (a table of measured step times and estimates, for
    /// the runs not saved yet), then load or train each one.
    pub fn load_or_run(experiments: &[Experiment], data: &Prepared, mode: Mode) -> Result<RunSet> {
        let estimate = plan(experiments, data, mode)?;
        println!("{}", estimate.summary());
        let records = experiments.iter().map(|e| e.load_or_run(data, mode)).collect::<Result<Vec<_>>>()?;
        Ok(RunSet { records })
    }

    /// A set of records made elsewhere.
    pub fn from_records(records: Vec<RunRecord>) -> Self {
        RunSet { records }
    }

    /// The same set with `record` added at the front.
    pub fn with(mut self, record: RunRecord) -> Self {
        self.records.insert(0, record);
        self
    }

    /// The records, in order.
    pub fn iter(&self) -> impl Iterator<Item = &RunRecord> {
        self.records.iter()
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no run.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The run named `name`, or an error listing the names there are.
    pub fn get(&self, name: &str) -> Result<&RunRecord> {
        self.records.iter().find(|r| r.name() == name).ok_or_else(|| {
            let names: Vec<&str> = self.records.iter().map(|r| r.name()).collect();
            Error::Config(format!("no run named `{name}` (runs: {})", names.join(", ")))
        })
    }

    /// The runs whose name passes `keep`, in order.
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> RunSet {
        RunSet { records: self.records.iter().filter(|r| keep(r.name())).cloned().collect() }
    }

    /// A chart with one series per run: `points` of its history, labelled by the run's name.
    pub fn chart(&self, title: &str, y_label: &str, points: impl Fn(&History) -> Vec<(f64, f64)>) -> LineChart {
        self.records.iter().fold(LineChart::new(title).x_label("epoch").y_label(y_label), |chart, r| {
            chart.series(r.name(), points(&r.history))
        })
    }

    /// The run with the highest `score` (NaN scores are never best), if any.
    pub fn best_by(&self, score: impl Fn(&RunRecord) -> f64) -> Option<&RunRecord> {
        self.records.iter().filter(|r| !score(r).is_nan()).max_by(|a, b| score(a).total_cmp(&score(b)))
    }

    /// The runs sorted by `score`, highest first (NaN last), with their scores.
    pub fn ranked(&self, score: impl Fn(&RunRecord) -> f64) -> Vec<(&RunRecord, f64)> {
        let mut ranked: Vec<(&RunRecord, f64)> = self.records.iter().map(|r| (r, score(r))).collect();
        ranked.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
            (false, false) => b.1.total_cmp(&a.1),
            (x, y) => x.cmp(&y),
        });
        ranked
    }
}
