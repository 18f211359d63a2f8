//! One optimisation step (forward, loss, backward, update), with gradient accumulation over
//! micro-batches, and the running totals an epoch record is made of.

use crate::error::Result;
use crate::evaluate::count_correct;
use crate::history::EpochRecord;
use crate::models::{dropout, Network};
use crate::optim::TrainOptimizer;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use std::time::Instant;

/// Sums over an epoch's steps.
#[derive(Default)]
pub(super) struct Totals {
    /// Σ loss × samples (host; the loss is read every step to catch divergence).
    loss: f64,
    /// Correct predictions (a device scalar, read once at the end of the epoch).
    correct: Option<Tensor>,
    /// Samples trained on (after augmentation copies).
    pub samples: usize,
}

impl Totals {
    /// The epoch's record (validation figures are filled in by the caller).
    pub fn record(&self, epoch: usize, lr: f64, batch_size: usize, start: Instant, augment_seconds: f64) -> Result<EpochRecord> {
        let correct = match &self.correct {
            Some(c) => c.to_scalar::<f32>()? as f64,
            None => 0.0,
        };
        let n = self.samples.max(1) as f64;
        Ok(EpochRecord {
            epoch: epoch + 1,
            train_loss: self.loss / n,
            train_acc: correct / n,
            val_loss: None,
            val_acc: None,
            lr,
            batch_size,
            seconds: start.elapsed().as_secs_f64(),
            augment_seconds,
            eval_seconds: 0.0,
            extra: Default::default(),
        })
    }

    fn add(&mut self, loss: f64, samples: usize, correct: Tensor) -> Result<()> {
        self.loss += loss * samples as f64;
        self.samples += samples;
        self.correct = Some(match self.correct.take() {
            Some(c) => (c + correct)?,
            None => correct,
        });
        Ok(())
    }
}

/// Train on the batch `x`, `y`: one update from the gradient of the batch's mean loss (plus the
/// model's penalty), computed over chunks of at most `micro_batch` samples when given. Dropout
/// masks are drawn for position `(iteration, chunk)` of the run. Returns the batch's loss.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_step(
    model: &dyn Network,
    varmap: &VarMap,
    optimizer: &mut dyn TrainOptimizer,
    x: &Tensor,
    y: &Tensor,
    micro_batch: Option<usize>,
    iteration: usize,
    totals: &mut Totals,
) -> Result<f64> {
    let n = y.dims1()?;
    let chunk = micro_batch.unwrap_or(n).clamp(1, n.max(1));
    let mut grads: Option<GradStore> = None;
    let mut batch_loss = 0.0;
    let mut correct = Tensor::zeros((), DType::F32, x.device())?;
    for (c, start) in (0..n).step_by(chunk).enumerate() {
        let len = chunk.min(n - start);
        let (xc, yc) = if len == n { (x.clone(), y.clone()) } else { (x.narrow(0, start, len)?, y.narrow(0, start, len)?) };
        let draw = ((iteration as u64) << 16) | c as u64;
        let logits = dropout::with_draw_index(draw, || model.forward_t(&xc, true))?;
        // The batch's mean loss is Σ_c (len_c / n)·mean_c; the penalty is added once.
        let mut loss = candle_nn::loss::cross_entropy(&logits, &yc)?;
        if len != n {
            loss = loss.affine(len as f64 / n as f64, 0.0)?;
        }
        if c == 0 {
            if let Some(p) = model.penalty()? {
                loss = (loss + p)?;
            }
        }
        let chunk_grads = loss.backward()?;
        batch_loss += loss.to_scalar::<f32>()? as f64;
        correct = (correct + count_correct(&logits.detach(), &yc)?)?;
        grads = Some(match grads {
            None => chunk_grads,
            Some(sum) => add_gradients(varmap, sum, chunk_grads)?,
        });
    }
    if batch_loss.is_finite() {
        if let Some(grads) = &grads {
            optimizer.step(grads)?;
        }
    }
    totals.add(batch_loss, n, correct)?;
    Ok(batch_loss)
}

/// `sum + more`, variable by variable.
fn add_gradients(varmap: &VarMap, mut sum: GradStore, mut more: GradStore) -> Result<GradStore> {
    for var in varmap.all_vars() {
        if let Some(b) = more.remove(var.as_tensor()) {
            let total = match sum.remove(var.as_tensor()) {
                Some(a) => (a + b)?,
                None => b,
            };
            sum.insert(var.as_tensor(), total.detach());
        }
    }
    Ok(sum)
}
