//! How long a notebook's runs will take, said before they start: each run that is not saved
//! yet has a few of its training steps timed on the chosen device, and the whole run is
//! extrapolated from them (steps × step time, plus evaluations).

use super::{Experiment, Prepared};
use crate::error::Result;
use crate::runs::Mode;
use crate::table::Table;
use candle_nn::VarMap;
use rand::SeedableRng;
use std::time::Instant;

/// One run's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// The run's name.
    pub name: String,
    /// True when a saved record with the same configuration will be loaded instead.
    pub saved: bool,
    /// Training steps the run makes.
    pub steps: usize,
    /// Measured seconds per training step (0 when saved).
    pub seconds_per_step: f64,
    /// Estimated seconds for the whole run, evaluations included (0 when saved).
    pub seconds: f64,
}

/// The estimates of a list of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One row per run.
    pub rows: Vec<PlanRow>,
    /// The mode the runs are for.
    pub mode: Mode,
    /// The device and machine the step times were measured on.
    pub machine: String,
}

/// Time two training steps of every run of `experiments` that is not saved yet (after one
/// warm-up step) on `data`'s device and extrapolate each run.
pub fn plan(experiments: &[Experiment], data: &Prepared, mode: Mode) -> Result<Plan> {
    let mut rows = Vec::new();
    for e in experiments {
        e.check(data)?;
        let steps = e.steps(data.train.len());
        if e.is_saved(data, mode) {
            rows.push(PlanRow { name: e.name.clone(), saved: true, steps, seconds_per_step: 0.0, seconds: 0.0 });
            continue;
        }
        let step = time_steps(e, data)?;
        // An evaluation is a forward pass: about a third of a training step per sample.
        let per_sample = step / (e.batch_size as f64 * copies(e) as f64);
        let evaluations = e.epochs as f64 * data.validation.len() as f64 * per_sample / 3.0;
        rows.push(PlanRow { name: e.name.clone(), saved: false, steps, seconds_per_step: step, seconds: steps as f64 * step + evaluations });
    }
    let device = crate::runs::device_name(data.train.device());
    Ok(Plan { rows, mode, machine: format!("{device} ({})", crate::runtime::machine()) })
}

fn copies(e: &Experiment) -> usize {
    e.augmentation.as_ref().map_or(1, |a| a.samples_per_image())
}

/// Median-free quick timing: one warm-up step, then the mean of two.
fn time_steps(e: &Experiment, data: &Prepared) -> Result<f64> {
    let varmap = VarMap::new();
    let model = e.model.build(&varmap, e.seed, data.train.device())?;
    let mut optimizer = e.optimizer.build(crate::optim::vars_in_name_order(&varmap))?;
    let n = e.batch_size.min(data.train.len()) as u32;
    let indices: Vec<u32> = (0..n).collect();
    let (mut x, mut y) = data.train.batch(&indices)?;
    if let Some(a) = &e.augmentation {
        (x, y) = crate::augment::Augment::apply(a, &x, &y, &mut rand::rngs::StdRng::seed_from_u64(0))?;
    }
    let mut step = || -> Result<()> {
        let logits = model.forward_t(&x, true)?;
        let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        if let Some(p) = model.penalty()? {
            loss = (loss + p)?;
        }
        crate::optim::TrainOptimizer::step(&mut optimizer, &loss.backward()?)?;
        loss.to_scalar::<f32>()?;
        Ok(())
    };
    step()?;
    let start = Instant::now();
    step()?;
    step()?;
    Ok(start.elapsed().as_secs_f64() / 2.0)
}

impl Plan {
    /// Estimated seconds for all the runs that will train.
    pub fn total_seconds(&self) -> f64 {
        self.rows.iter().map(|r| r.seconds).sum()
    }

    /// One sentence: how many runs train, how many load, and the estimated time.
    pub fn summary(&self) -> String {
        let training = self.rows.iter().filter(|r| !r.saved).count();
        let saved = self.rows.len() - training;
        let minutes = self.total_seconds() / 60.0;
        format!(
            "{} mode: {training} run(s) to train, {saved} saved; estimated {minutes:.1} min on {}",
            self.mode.name(),
            self.machine
        )
    }

    /// The estimates as a table.
    pub fn table(&self) -> Table {
        let mut table = Table::new(["run", "steps", "s / step (measured)", "estimate"]).title(self.summary());
        for r in &self.rows {
            let estimate = if r.saved { "saved: loads".to_string() } else { format!("{:.0} s", r.seconds) };
            let per_step = if r.saved { "-".to_string() } else { format!("{:.3}", r.seconds_per_step) };
            table.row([r.name.clone(), r.steps.to_string(), per_step, estimate]);
        }
        table
    }

    /// Show the table in a notebook cell.
    pub fn evcxr_display(&self) {
        self.table().evcxr_display();
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}
