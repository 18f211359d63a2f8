//! A learning-rate policy from [`crate::schedule`] (step, cyclical, cosine, …) as a callback.

use super::{Callback, Context};
use crate::error::Result;
use crate::schedule::LrSchedule;

/// Applies an [`LrSchedule`]: asked at the start of every epoch and before every step; the
/// policy answers `None` to leave the rate as it is. Policies are functions of the epoch or the
/// global step, so a resumed run picks up where it stopped with no saved state.
pub struct ScheduleCallback<'a> {
    schedule: Box<dyn LrSchedule + 'a>,
}

impl<'a> ScheduleCallback<'a> {
    /// Drive the learning rate from `schedule`.
    pub fn new(schedule: impl LrSchedule + 'a) -> Self {
        ScheduleCallback { schedule: Box::new(schedule) }
    }
}

impl Callback for ScheduleCallback<'_> {
    fn name(&self) -> &str {
        "schedule"
    }

    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut Context) -> Result<()> {
        if let Some(lr) = self.schedule.at_epoch(epoch) {
            ctx.set_learning_rate(lr);
        }
        Ok(())
    }

    fn on_batch_begin(&mut self, iteration: usize, ctx: &mut Context) -> Result<()> {
        if let Some(lr) = self.schedule.at_iteration(iteration) {
            ctx.set_learning_rate(lr);
        }
        Ok(())
    }
}
