//! A model's loss, accuracy and predictions on a dataset, in evaluation mode (batch norm with
//! its running statistics, no dropout). Used after every epoch by the training loop, by
//! callbacks and for the final test.

use crate::data::DeviceData;
use crate::error::{Error, Result};
use crate::history::Metrics;
use crate::models::Network;
use candle_core::{DType, Tensor};

/// Loss and accuracy of `model` on `data` in evaluation mode (batches of `batch_size`).
pub fn evaluate<M: Network + ?Sized>(model: &M, data: &DeviceData, batch_size: usize) -> Result<Metrics> {
    if data.is_empty() {
        return Err(Error::Config("cannot evaluate on an empty dataset".into()));
    }
    let device = data.device();
    let mut loss_sum = Tensor::zeros((), DType::F32, device)?;
    let mut correct = Tensor::zeros((), DType::F32, device)?;
    let batch_size = batch_size.max(1);
    let frozen = model.inference()?;
    let mut start = 0;
    while start < data.len() {
        let n = batch_size.min(data.len() - start);
        let (x, y) = data.range(start, n)?;
        // no graph: the running sums must not keep every batch's activations alive
        let logits = frozen.forward(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        loss_sum = (loss_sum + loss.affine(n as f64, 0.0)?)?;
        correct = (correct + count_correct(&logits, &y)?)?;
        start += n;
    }
    let penalty = match model.penalty()? {
        Some(p) => p.to_scalar::<f32>()? as f64,
        None => 0.0,
    };
    let n = data.len() as f64;
    Ok(Metrics {
        loss: loss_sum.to_scalar::<f32>()? as f64 / n + penalty,
        accuracy: correct.to_scalar::<f32>()? as f64 / n,
    })
}

/// Class predictions (arg-max logit) of `model` on `data`, in stored order.
pub fn predict<M: Network + ?Sized>(model: &M, data: &DeviceData, batch_size: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(data.len());
    let frozen = model.inference()?;
    let mut start = 0;
    while start < data.len() {
        let n = batch_size.max(1).min(data.len() - start);
        let (x, _) = data.range(start, n)?;
        out.extend(frozen.forward(&x)?.argmax(1)?.to_vec1::<u32>()?);
        start += n;
    }
    Ok(out)
}

/// The number of rows of `logits` whose arg-max is the label, as an f32 scalar tensor.
pub fn count_correct(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(logits.argmax(1)?.eq(y)?.to_dtype(DType::F32)?.sum_all()?)
}
