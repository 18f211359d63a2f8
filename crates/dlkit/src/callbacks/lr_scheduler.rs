//! Set the learning rate at the start of every epoch from a function (Keras
//! `LearningRateScheduler`).

use super::{Callback, Context};
use crate::error::{Error, Result};

/// Keras's `LearningRateScheduler(schedule)`: at the start of epoch `e` (from 0) the rate
/// becomes `schedule(e, current_rate)`. The function may ignore the current rate (a pure
/// function of the epoch, like the coursework's `lr_schedule(epoch)`); it then also overwrites
/// any reduction a [`super::ReduceLrOnPlateau`] made at the end of the previous epoch, exactly
/// as Keras does. A non-finite or negative rate is an error naming the epoch.
pub struct LearningRateScheduler<'a> {
    schedule: Box<dyn FnMut(usize, f64) -> f64 + 'a>,
}

impl<'a> LearningRateScheduler<'a> {
    /// A scheduler calling `schedule(epoch, current_rate)` at the start of each epoch.
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + 'a) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule) }
    }
}

impl Callback for LearningRateScheduler<'_> {
    fn name(&self) -> &str {
        "learning_rate_scheduler"
    }

    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut Context) -> Result<()> {
        let lr = (self.schedule)(epoch, ctx.learning_rate());
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Config(format!("learning-rate schedule gave {lr} at epoch {epoch} (from 0)")));
        }
        ctx.set_learning_rate(lr);
        Ok(())
    }
}
