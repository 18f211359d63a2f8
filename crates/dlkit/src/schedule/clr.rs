//! Cyclical learning rates (Smith, "Cyclical Learning Rates for Training Neural Networks",
//! 2017), driven per iteration, as the Keras `CyclicLR` callback the coursework uses:
//!
//! ```text
//! cycle = ⌊1 + it / (2·step_size)⌋
//! x     = |it / step_size − 2·cycle + 1|
//! lr    = base_lr + (max_lr − base_lr) · max(0, 1 − x) · scale(cycle or it)
//! ```
//! `triangular`: scale = 1; `triangular2`: scale = 1 / 2^(cycle−1) (the amplitude halves every
//! cycle); `exp_range(γ)`: scale = γ^it (decays every iteration).

use super::LrSchedule;
use crate::error::{Error, Result};
use std::sync::Arc;

/// What the scale function of a cyclical learning rate is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    /// The cycle number (from 1).
    Cycle,
    /// The iteration number (from 0).
    Iterations,
}

/// The amplitude scale of a cyclical learning rate.
#[derive(Clone)]
pub enum Scale {
    /// Constant amplitude.
    Triangular,
    /// Amplitude halves each cycle.
    Triangular2,
    /// Amplitude times γ^iteration.
    ExpRange(f64),
    /// A custom function of the cycle or the iteration.
    Custom(Arc<dyn Fn(f64) -> f64 + Send + Sync>, ScaleMode),
}

impl std::fmt::Debug for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scale::Triangular => write!(f, "triangular"),
            Scale::Triangular2 => write!(f, "triangular2"),
            Scale::ExpRange(g) => write!(f, "exp_range({g})"),
            Scale::Custom(_, m) => write!(f, "custom({m:?})"),
        }
    }
}

/// A cyclical learning rate between `base_lr` and `max_lr` with half-cycle `step_size`.
#[derive(Debug, Clone)]
pub struct CyclicLr {
    /// Lower bound of the cycle.
    pub base_lr: f64,
    /// Upper bound of the (first) cycle.
    pub max_lr: f64,
    /// Iterations in half a cycle (the coursework uses 2–8 × iterations per epoch).
    pub step_size: usize,
    /// The amplitude policy.
    pub scale: Scale,
}

impl CyclicLr {
    fn new(base_lr: f64, max_lr: f64, step_size: usize, scale: Scale) -> Result<Self> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(base_lr) || !ok(max_lr) || max_lr < base_lr || step_size == 0 {
            return Err(Error::Config(format!(
                "cyclical lr needs 0 ≤ base_lr ≤ max_lr and step_size ≥ 1 (got {base_lr}, {max_lr}, {step_size})"
            )));
        }
        if let Scale::ExpRange(g) = scale {
            if !(g > 0.0 && g <= 1.0) {
                return Err(Error::Config(format!("exp_range gamma must be in (0, 1], got {g}")));
            }
        }
        Ok(CyclicLr { base_lr, max_lr, step_size, scale })
    }

    /// Constant-amplitude triangle.
    pub fn triangular(base_lr: f64, max_lr: f64, step_size: usize) -> Result<Self> {
        Self::new(base_lr, max_lr, step_size, Scale::Triangular)
    }

    /// Triangle whose amplitude halves each cycle.
    pub fn triangular2(base_lr: f64, max_lr: f64, step_size: usize) -> Result<Self> {
        Self::new(base_lr, max_lr, step_size, Scale::Triangular2)
    }

    /// Triangle whose amplitude decays as γ^iteration.
    pub fn exp_range(base_lr: f64, max_lr: f64, step_size: usize, gamma: f64) -> Result<Self> {
        Self::new(base_lr, max_lr, step_size, Scale::ExpRange(gamma))
    }

    /// Triangle scaled by a custom function of the cycle or the iteration.
    pub fn custom(
        base_lr: f64,
        max_lr: f64,
        step_size: usize,
        scale: impl Fn(f64) -> f64 + Send + Sync + 'static,
        mode: ScaleMode,
    ) -> Result<Self> {
        Self::new(base_lr, max_lr, step_size, Scale::Custom(Arc::new(scale), mode))
    }

    /// The learning rate at iteration `it` (from 0).
    pub fn lr(&self, it: usize) -> f64 {
        let it_f = it as f64;
        let step = self.step_size as f64;
        let cycle = (1.0 + it_f / (2.0 * step)).floor();
        let x = (it_f / step - 2.0 * cycle + 1.0).abs();
        let scale = match &self.scale {
            Scale::Triangular => 1.0,
            Scale::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            Scale::ExpRange(g) => g.powf(it_f),
            Scale::Custom(f, ScaleMode::Cycle) => f(cycle),
            Scale::Custom(f, ScaleMode::Iterations) => f(it_f),
        };
        self.base_lr + (self.max_lr - self.base_lr) * (1.0 - x).max(0.0) * scale
    }
}

impl LrSchedule for CyclicLr {
    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        Some(self.lr(iteration))
    }
}
