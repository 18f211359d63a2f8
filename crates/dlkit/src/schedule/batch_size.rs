//! Cyclical batch size: instead of raising the learning rate, shrink the batch (Smith et al.,
//! "Don't Decay the Learning Rate, Increase the Batch Size", read backwards as the coursework
//! does). The batch size starts at `max` and halves every `step_epochs` epochs down to `min`,
//! then doubles back up to `max`, and so on: a triangle in log₂(batch size).

use crate::error::{Error, Result};

/// A batch-size policy queried by the training loop at the start of each epoch.
pub trait BatchSizeSchedule {
    /// The batch size for this epoch (0-based).
    fn at_epoch(&mut self, epoch: usize) -> usize;
}

/// Batch size cycling between `min` and `max` by halving/doubling every `step_epochs` epochs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CyclicBatchSize {
    /// Smallest batch size (a power-of-two fraction of `max`).
    pub min: usize,
    /// Largest batch size, where the cycle starts.
    pub max: usize,
    /// Epochs spent at each size.
    pub step_epochs: usize,
}

impl CyclicBatchSize {
    /// A cycle from `max` down to `min` and back, changing every `step_epochs` epochs.
    /// `max / min` must be a power of two.
    pub fn new(min: usize, max: usize, step_epochs: usize) -> Result<Self> {
        if min == 0 || max < min || step_epochs == 0 || !(max / min).is_power_of_two() || max % min != 0 {
            return Err(Error::Config(format!(
                "cyclical batch size needs 1 ≤ min ≤ max with max/min a power of two and step ≥ 1 (got {min}, {max}, {step_epochs})"
            )));
        }
        Ok(CyclicBatchSize { min, max, step_epochs })
    }

    /// The batch size at `epoch` (from 0).
    pub fn batch_size(&self, epoch: usize) -> usize {
        let levels = (self.max / self.min).trailing_zeros() as usize; // halvings from max to min
        if levels == 0 {
            return self.max;
        }
        let step = epoch / self.step_epochs;
        let phase = step % (2 * levels);
        let halvings = if phase <= levels { phase } else { 2 * levels - phase };
        self.max >> halvings
    }
}

impl BatchSizeSchedule for CyclicBatchSize {
    fn at_epoch(&mut self, epoch: usize) -> usize {
        self.batch_size(epoch)
    }
}
