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

/// Bounds for a cyclical batch size read off a batch-size sweep (batch size, final training
/// loss after the same number of steps), by the rule the notebook states: `max` is the
/// smallest batch size whose loss is within `tolerance` (relative) of the sweep's lowest —
/// larger batches buy little more — and `min` is `max / 8` (three halvings), raised to the
/// smallest power-of-two fraction of `max` the sweep tried. `None` when no loss is finite.
pub fn bounds_from_sweep(points: &[(usize, f64)], tolerance: f64) -> Option<(usize, usize)> {
    let finite: Vec<&(usize, f64)> = points.iter().filter(|p| p.1.is_finite() && p.0 > 0).collect();
    let lowest = finite.iter().map(|p| p.1).reduce(f64::min)?;
    let max = finite.iter().filter(|p| p.1 <= lowest + tolerance * lowest.abs()).map(|p| p.0).min()?;
    let smallest = finite.iter().map(|p| p.0).min()?;
    let mut min = max;
    while min % 2 == 0 && min / 2 >= smallest && max / (min / 2) <= 8 {
        min /= 2;
    }
    Some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_come_from_the_sweep() {
        // Losses fall with the batch size until 256, within 5 % of the lowest from 128 on.
        let sweep = [(16, 2.0), (32, 1.5), (64, 1.1), (128, 0.84), (256, 0.82), (512, f64::NAN)];
        assert_eq!(bounds_from_sweep(&sweep, 0.05), Some((16, 128)));
        // max / 8 is limited by the smallest batch tried.
        assert_eq!(bounds_from_sweep(&[(64, 1.0), (128, 0.9), (256, 0.5)], 0.05), Some((64, 256)));
        assert_eq!(bounds_from_sweep(&[(64, f64::NAN)], 0.05), None);
        let (min, max) = bounds_from_sweep(&sweep, 0.05).unwrap();
        assert!(CyclicBatchSize::new(min, max, 1).is_ok(), "the bounds make a valid cycle");
    }
}
