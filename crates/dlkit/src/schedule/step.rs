//! Step decay: the learning rate is the base rate times a multiplier that drops at given epochs.
//!
//! The coursework's ResNet-on-CIFAR schedule is the Keras example's `lr_schedule(epoch)`:
//!
//! ```text
//! lr = 1e-3
//! if epoch > 85:   lr *= 0.5e-3
//! elif epoch > 75: lr *= 1e-3
//! elif epoch > 65: lr *= 1e-2
//! elif epoch > 50: lr *= 1e-1
//! ```
//!
//! with 0-based epochs (Keras' `LearningRateScheduler` passes 0 for the first epoch) and
//! *strict* comparisons: the drop to 1e-4 happens at epoch 51, the 52nd epoch.

use super::{check_lr, LrSchedule};
use crate::error::{Error, Result};

/// `lr(epoch) = base_lr × m`, where `m` is the multiplier of the last boundary `(e, m)` with
/// `epoch > e` (strictly), or 1 before the first boundary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepSchedule {
    /// Learning rate before the first boundary.
    pub base_lr: f64,
    /// `(epoch, multiplier)` pairs in non-decreasing epoch order; the multiplier (of the base
    /// rate, not cumulative) applies to epochs strictly after `epoch`.
    pub boundaries: Vec<(usize, f64)>,
}

impl StepSchedule {
    /// Length in epochs of the run the ResNet-on-CIFAR boundaries were set for.
    pub const RESNET_CIFAR_EPOCHS: usize = 100;

    /// A step schedule; fails unless the rates are finite and positive and the boundary
    /// epochs do not decrease.
    pub fn new(base_lr: f64, boundaries: Vec<(usize, f64)>) -> Result<Self> {
        let s = StepSchedule { base_lr, boundaries };
        s.validate()?;
        Ok(s)
    }

    /// The coursework's schedule: `base_lr` (1e-3 in the coursework), ×0.1 after epoch 50,
    /// ×0.01 after 65, ×0.001 after 75, ×0.0005 after 85 (0-based epochs, strict `>`).
    pub fn resnet_cifar(base_lr: f64) -> Result<Self> {
        StepSchedule::new(base_lr, vec![(50, 1e-1), (65, 1e-2), (75, 1e-3), (85, 0.5e-3)])
    }

    /// The coursework's schedule squeezed into `total_epochs` epochs (for quick runs):
    /// [`StepSchedule::resnet_cifar`] rescaled from 100 epochs, see [`StepSchedule::rescaled`].
    pub fn resnet_cifar_scaled(base_lr: f64, total_epochs: usize) -> Result<Self> {
        StepSchedule::resnet_cifar(base_lr)?.rescaled(Self::RESNET_CIFAR_EPOCHS, total_epochs)
    }

    /// The same shape for a run of `to_epochs` instead of `from_epochs`: each boundary epoch
    /// `e` becomes `⌊e · to_epochs / from_epochs⌋` (so 100 → 10 epochs maps 50, 65, 75, 85
    /// to 5, 6, 7, 8); the multipliers are kept.
    pub fn rescaled(&self, from_epochs: usize, to_epochs: usize) -> Result<Self> {
        if from_epochs == 0 {
            return Err(Error::Config("cannot rescale a schedule from a 0-epoch run".into()));
        }
        let boundaries =
            self.boundaries.iter().map(|&(e, m)| (e * to_epochs / from_epochs, m)).collect();
        StepSchedule::new(self.base_lr, boundaries)
    }

    /// Check the rates and the boundary order.
    pub fn validate(&self) -> Result<()> {
        check_lr(self.base_lr)?;
        for &(epoch, multiplier) in &self.boundaries {
            if !(multiplier.is_finite() && multiplier > 0.0) {
                return Err(Error::Config(format!(
                    "step multiplier after epoch {epoch} must be finite and positive, got {multiplier}"
                )));
            }
        }
        if self.boundaries.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(Error::Config(format!(
                "step boundaries must be in epoch order, got {:?}",
                self.boundaries
            )));
        }
        Ok(())
    }

    /// The learning rate for `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let multiplier =
            self.boundaries.iter().rev().find(|&&(e, _)| epoch > e).map_or(1.0, |&(_, m)| m);
        self.base_lr * multiplier
    }
}

impl LrSchedule for StepSchedule {
    fn at_epoch(&mut self, epoch: usize) -> Option<f64> {
        Some(self.lr_at(epoch))
    }
}
