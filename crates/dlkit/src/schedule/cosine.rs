//! PyTorch's learning-rate schedulers of the section-07 reference: cosine annealing
//! (`CosineAnnealingLR`), cosine annealing with warm restarts (`CosineAnnealingWarmRestarts`,
//! SGDR: Loshchilov & Hutter 2017) and step decay at milestones (`MultiStepLR`).
//!
//! With `t` the number of `scheduler.step()` calls made so far (0 before the first):
//!
//! ```text
//! cosine:        lr(t) = η_min + (η₀ − η_min)·(1 + cos(π·t / T_max)) / 2
//! warm restarts: lr(t) = η_min + (η₀ − η_min)·(1 + cos(π·T_cur / T_i)) / 2, where the periods
//!                are T_0, T_0·T_mult, T_0·T_mult², … and T_cur counts steps since the last restart
//! multi-step:    lr(t) = η₀ · γ^(number of milestones ≤ t)
//! ```
//! η₀ is the optimizer's initial learning rate (`base_lr` here). PyTorch's cosine keeps
//! following the cosine after `T_max` (the rate climbs back towards η₀ over the next `T_max`
//! steps); so does this one. PyTorch computes the cosine recursively (each rate from the
//! previous one); these closed forms are the same numbers up to rounding.
//!
//! PyTorch users call `scheduler.step()` once per epoch (the usual) or once per mini-batch;
//! [`StepUnit`] says which, and the periods (`t_max`, `t_0`, `milestones`) count in that unit.
//! Per epoch, the rate of epoch `e` (0-based) is `lr(e)`, answered by [`LrSchedule::at_epoch`];
//! per iteration, step `i` (0-based, over the whole run) uses `lr(i)`, answered by
//! [`LrSchedule::at_iteration`]. SGDR with restarts after fractions of an epoch
//! (`scheduler.step(epoch + i / iters)`) is the per-iteration form with `t_0` in iterations.

use super::{check_lr, LrSchedule};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// What one step of a PyTorch-style schedule is: which loop calls `scheduler.step()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StepUnit {
    /// Once per epoch: periods and milestones count epochs (PyTorch's usual use).
    #[default]
    Epoch,
    /// Once per mini-batch: periods and milestones count iterations over the whole run.
    Iteration,
}

impl StepUnit {
    /// The rate for epoch `epoch` when this unit is the epoch, else `None`.
    fn for_epoch(self, epoch: usize, lr: impl FnOnce(usize) -> f64) -> Option<f64> {
        (self == StepUnit::Epoch).then(|| lr(epoch))
    }

    /// The rate for iteration `iteration` when this unit is the iteration, else `None`.
    fn for_iteration(self, iteration: usize, lr: impl FnOnce(usize) -> f64) -> Option<f64> {
        (self == StepUnit::Iteration).then(|| lr(iteration))
    }
}

/// Half a cosine from `base_lr` down to `eta_min`: `eta_min + (base_lr − eta_min)·(1 + cos(π·t/T))/2`.
fn half_cosine(base_lr: f64, eta_min: f64, t: f64, period: f64) -> f64 {
    eta_min + (base_lr - eta_min) * (1.0 + (PI * t / period).cos()) / 2.0
}

/// Check the floor of a cosine schedule: finite, ≥ 0 and not above the base rate.
fn check_eta_min(schedule: &str, base_lr: f64, eta_min: f64) -> Result<()> {
    check_lr(base_lr)?;
    if eta_min.is_finite() && (0.0..=base_lr).contains(&eta_min) {
        Ok(())
    } else {
        Err(Error::Config(format!("{schedule}: eta_min must be in [0, base_lr = {base_lr}], got {eta_min}")))
    }
}

/// PyTorch's `CosineAnnealingLR(optimizer, T_max, eta_min)` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineAnnealing {
    /// Initial learning rate η₀ (the optimizer's).
    pub base_lr: f64,
    /// Steps from η₀ down to `eta_min` (PyTorch `T_max`), ≥ 1.
    pub t_max: usize,
    /// Lowest learning rate (PyTorch `eta_min`, default 0).
    pub eta_min: f64,
    /// Whether a step is an epoch or an iteration.
    #[serde(default)]
    pub unit: StepUnit,
}

impl CosineAnnealing {
    /// Cosine annealing from `base_lr` to `eta_min` over `t_max` epochs.
    pub fn new(base_lr: f64, t_max: usize, eta_min: f64) -> Result<Self> {
        let s = CosineAnnealing { base_lr, t_max, eta_min, unit: StepUnit::Epoch };
        s.validate()?;
        Ok(s)
    }

    /// The same schedule stepped once per iteration (`t_max` then counts iterations).
    pub fn per_iteration(self) -> Self {
        CosineAnnealing { unit: StepUnit::Iteration, ..self }
    }

    /// Check the hyperparameters: a positive base rate, `T_max` ≥ 1, 0 ≤ `eta_min` ≤ base rate.
    pub fn validate(&self) -> Result<()> {
        if self.t_max == 0 {
            return Err(Error::Config("cosine annealing: t_max must be at least 1 step, got 0".into()));
        }
        check_eta_min("cosine annealing", self.base_lr, self.eta_min)
    }

    /// The learning rate after `t` steps.
    pub fn lr_at(&self, t: usize) -> f64 {
        half_cosine(self.base_lr, self.eta_min, t as f64, self.t_max as f64)
    }
}

impl LrSchedule for CosineAnnealing {
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        self.unit.for_epoch(epoch, |t| self.lr_at(t))
    }

    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        self.unit.for_iteration(iteration, |t| self.lr_at(t))
    }
}

/// PyTorch's `CosineAnnealingWarmRestarts(optimizer, T_0, T_mult, eta_min)`: SGDR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineWarmRestarts {
    /// Initial learning rate η₀, restored at every restart.
    pub base_lr: f64,
    /// Steps until the first restart (PyTorch `T_0`), ≥ 1.
    pub t_0: usize,
    /// Factor by which each period is longer than the one before (PyTorch `T_mult`), ≥ 1.
    pub t_mult: usize,
    /// Lowest learning rate (PyTorch `eta_min`, default 0).
    pub eta_min: f64,
    /// Whether a step is an epoch or an iteration.
    #[serde(default)]
    pub unit: StepUnit,
}

impl CosineWarmRestarts {
    /// Warm restarts stepped per epoch: periods of `t_0`, `t_0·t_mult`, … epochs.
    pub fn new(base_lr: f64, t_0: usize, t_mult: usize, eta_min: f64) -> Result<Self> {
        let s = CosineWarmRestarts { base_lr, t_0, t_mult, eta_min, unit: StepUnit::Epoch };
        s.validate()?;
        Ok(s)
    }

    /// The same schedule stepped once per iteration (the periods then count iterations).
    pub fn per_iteration(self) -> Self {
        CosineWarmRestarts { unit: StepUnit::Iteration, ..self }
    }

    /// Check the hyperparameters: a positive base rate, `T_0` ≥ 1, `T_mult` ≥ 1 (integers, as
    /// PyTorch requires), 0 ≤ `eta_min` ≤ base rate.
    pub fn validate(&self) -> Result<()> {
        if self.t_0 == 0 {
            return Err(Error::Config("warm restarts: t_0 must be at least 1 step, got 0".into()));
        }
        if self.t_mult == 0 {
            return Err(Error::Config("warm restarts: t_mult must be at least 1, got 0".into()));
        }
        check_eta_min("warm restarts", self.base_lr, self.eta_min)
    }

    /// `(T_cur, T_i)` after `t` steps: steps since the last restart, and the current period.
    pub fn position(&self, t: usize) -> (usize, usize) {
        let (mut t_cur, mut period) = (t, self.t_0.max(1));
        while t_cur >= period {
            t_cur -= period;
            period = period.saturating_mul(self.t_mult.max(1));
        }
        (t_cur, period)
    }

    /// The learning rate after `t` steps.
    pub fn lr_at(&self, t: usize) -> f64 {
        let (t_cur, period) = self.position(t);
        half_cosine(self.base_lr, self.eta_min, t_cur as f64, period as f64)
    }
}

impl LrSchedule for CosineWarmRestarts {
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        self.unit.for_epoch(epoch, |t| self.lr_at(t))
    }

    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        self.unit.for_iteration(iteration, |t| self.lr_at(t))
    }
}

/// PyTorch's `MultiStepLR(optimizer, milestones, gamma)`: the rate is multiplied by γ at each
/// milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStep {
    /// Initial learning rate η₀.
    pub base_lr: f64,
    /// Steps at which the rate is multiplied by γ, in non-decreasing order; from step `m` on
    /// the factor applies (a milestone listed twice applies twice, as in PyTorch).
    pub milestones: Vec<usize>,
    /// Factor per milestone (PyTorch default 0.1), in (0, 1].
    pub gamma: f64,
    /// Whether a step is an epoch or an iteration.
    #[serde(default)]
    pub unit: StepUnit,
}

impl MultiStep {
    /// η₀·γ^k after the k-th milestone, stepped per epoch.
    pub fn new(base_lr: f64, milestones: Vec<usize>, gamma: f64) -> Result<Self> {
        let s = MultiStep { base_lr, milestones, gamma, unit: StepUnit::Epoch };
        s.validate()?;
        Ok(s)
    }

    /// The same schedule stepped once per iteration (milestones then count iterations).
    pub fn per_iteration(self) -> Self {
        MultiStep { unit: StepUnit::Iteration, ..self }
    }

    /// Check the hyperparameters: a positive base rate, γ in (0, 1], milestones in order.
    pub fn validate(&self) -> Result<()> {
        check_lr(self.base_lr)?;
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::Config(format!("multi-step: gamma must be in (0, 1], got {}", self.gamma)));
        }
        if self.milestones.windows(2).any(|w| w[1] < w[0]) {
            return Err(Error::Config(format!(
                "multi-step: milestones must be in non-decreasing order, got {:?}",
                self.milestones
            )));
        }
        Ok(())
    }

    /// The learning rate after `t` steps.
    pub fn lr_at(&self, t: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= t).count();
        self.base_lr * self.gamma.powi(passed as i32)
    }
}

impl LrSchedule for MultiStep {
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        self.unit.for_epoch(epoch, |t| self.lr_at(t))
    }

    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        self.unit.for_iteration(iteration, |t| self.lr_at(t))
    }
}
