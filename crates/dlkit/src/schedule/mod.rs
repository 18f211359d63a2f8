//! Learning-rate and batch-size policies.
//!
//! The training loop asks an [`LrSchedule`] for the learning rate at the start of every
//! epoch ([`LrSchedule::at_epoch`]) and before every optimisation step
//! ([`LrSchedule::at_iteration`]); a schedule answers `None` to leave the rate as it is.
//! Epoch-wise policies (the step schedule) answer the first question, iteration-wise
//! policies (cyclical learning rates, the learning-rate range test) the second; PyTorch's
//! cosine, warm-restart and multi-step schedulers ([`cosine`]) answer either, as configured.

pub mod batch_size;
pub mod clr;
pub mod cosine;
pub mod finder;
mod step;

pub use batch_size::{BatchSizeSchedule, CyclicBatchSize};
pub use clr::{CyclicLr, Scale, ScaleMode};
pub use cosine::{CosineAnnealing, CosineWarmRestarts, MultiStep, StepUnit};
pub use finder::{log_space, sweep, FinderResult, LrFinder};
pub use step::StepSchedule;

use crate::error::{Error, Result};

/// A learning-rate policy queried by the training loop.
pub trait LrSchedule {
    /// Learning rate for this epoch (0-based), asked at the start of each epoch;
    /// `None` leaves the rate unchanged.
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        let _ = epoch;
        None
    }

    /// Learning rate for this iteration (global batch counter, 0-based, not reset at epoch
    /// boundaries), asked before each optimisation step; `None` leaves the rate unchanged.
    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        let _ = iteration;
        None
    }
}

impl<S: LrSchedule + ?Sized> LrSchedule for Box<S> {
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        (**self).at_epoch(epoch)
    }

    fn at_iteration(&mut self, iteration: usize) -> Option<f64> {
        (**self).at_iteration(iteration)
    }
}

/// The same learning rate for the whole run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Constant {
    /// The learning rate.
    pub lr: f64,
}

impl Constant {
    /// A constant learning rate `lr` (finite and positive).
    pub fn new(lr: f64) -> Result<Self> {
        check_lr(lr)?;
        Ok(Constant { lr })
    }
}

impl LrSchedule for Constant {
    fn at_epoch(&mut self, _epoch: usize) -> Option<f64> {
        Some(self.lr)
    }
}

/// A learning rate must be finite and positive.
fn check_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!("learning rate must be finite and positive, got {lr}")))
    }
}
