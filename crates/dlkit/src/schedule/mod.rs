//! Learning-rate and batch-size policies, queried by the training loop.

/// A learning-rate policy queried by the training loop.
pub trait LrSchedule {
    /// The learning rate for this epoch (0-based), asked at the start of each epoch;
    /// `None` leaves it unchanged.
    fn at_epoch(&mut self, _epoch: usize) -> Option<f64> {
        None
    }
    /// The learning rate for this iteration (global batch counter, 0-based), asked before
    /// each step; `None` leaves it unchanged.
    fn at_iteration(&mut self, _iteration: usize) -> Option<f64> {
        None
    }
}

pub mod batch_size;
pub mod clr;
pub mod finder;

pub use batch_size::{BatchSizeSchedule, CyclicBatchSize};
pub use clr::{CyclicLr, Scale, ScaleMode};
pub use finder::{log_space, sweep, FinderResult, LrFinder};
