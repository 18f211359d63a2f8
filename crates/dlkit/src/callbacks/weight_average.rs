//! An exponential moving average of the weights, kept during training and evaluated beside
//! the raw weights after every epoch (the section-07 report's EMA).

use super::{BatchLogs, Callback, CallbackState, Context};
use crate::error::Result;
use crate::history::EpochRecord;
use crate::optim::{EmaConfig, WeightEma};
use candle_nn::VarMap;

/// Keeps a [`WeightEma`] of every variable (updated after each step), evaluates the averaged
/// weights on the validation data after each epoch — recorded as `ema_val_loss` and
/// `ema_val_accuracy` beside the raw weights' `val_loss` and `val_accuracy` — and leaves the
/// averaged weights in the model when training ends, so the test uses them (training always
/// steps the raw weights).
pub struct WeightAverage {
    ema: WeightEma,
}

impl WeightAverage {
    /// An average of every variable of `varmap` (starting from their current values).
    pub fn new(varmap: &VarMap, config: EmaConfig) -> Result<Self> {
        Ok(WeightAverage { ema: WeightEma::from_varmap(varmap, config)? })
    }
}

impl Callback for WeightAverage {
    fn name(&self) -> &str {
        "weight_average"
    }

    fn on_batch_end(&mut self, _batch: &BatchLogs, _ctx: &mut Context) -> Result<()> {
        Ok(self.ema.update()?)
    }

    fn on_epoch_end(&mut self, record: &mut EpochRecord, ctx: &mut Context) -> Result<()> {
        self.ema.swap()?;
        let metrics = ctx.evaluate_validation();
        self.ema.swap()?;
        if let Some(m) = metrics? {
            record.extra.insert("ema_val_loss".into(), m.loss);
            record.extra.insert("ema_val_accuracy".into(), m.accuracy);
        }
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut Context) -> Result<()> {
        Ok(self.ema.apply()?)
    }

    fn state(&self) -> Result<CallbackState> {
        Ok(CallbackState { values: serde_json::Value::Null, tensors: self.ema.state()? })
    }

    fn load_state(&mut self, state: CallbackState) -> Result<()> {
        Ok(self.ema.load_state(&state.tensors.into_iter().collect())?)
    }
}
