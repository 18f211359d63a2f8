//! Training-mode batch normalisation on the CPU, forward and backward, in two passes each.
//!
//! For channel `c` over the `N = batch × pixels` values `x`:
//! - forward: `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased, as in the normalisation of Keras and
//!   PyTorch), `x̂ = (x − μ) / √(σ² + ε)`, `y = γ·x̂ + β`;
//! - backward: `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ / √(σ² + ε) · (dy − dβ/N − x̂·dγ/N)`.
//!
//! The batch statistics come back to the caller (for the running averages) through
//! [`BatchStats`], and the backward pass reuses them.

use super::{f32_slice, with_f32};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Per-channel statistics of one training batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Biased variance of each channel.
    pub variance: Vec<f32>,
    /// Values per channel (batch × pixels).
    pub count: usize,
}

/// (batch, channels, pixels per channel) of an input of rank ≥ 2.
fn dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    let d = shape.dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm: input must have at least 2 dimensions, got {shape:?}")
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// The planes (`pixels` values each) of channel `c` in a `batch × channels × pixels` array.
fn planes(x: &[f32], channels: usize, pixels: usize, c: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks(pixels).skip(c).step_by(channels)
}

/// Mean and biased variance per channel (two passes, f64 sums).
pub fn channel_stats(x: &[f32], batch: usize, channels: usize, pixels: usize) -> BatchStats {
    let count = batch * pixels;
    let (mean, variance) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = planes(x, channels, pixels, c).map(|p| p.iter().map(|&v| v as f64).sum::<f64>()).sum();
            let mean = sum / count as f64;
            let sq: f64 = planes(x, channels, pixels, c)
                .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum();
            (mean as f32, (sq / count as f64) as f32)
        })
        .unzip();
    BatchStats { mean, variance, count }
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` per channel.
pub fn normalize(x: &[f32], stats: &BatchStats, gamma: &[f32], beta: &[f32], eps: f32, pixels: usize) -> Vec<f32> {
    let channels = gamma.len();
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(pixels).zip(x.par_chunks(pixels)).enumerate().for_each(|(i, (y, x))| {
        let c = i % channels;
        let scale = gamma[c] / (stats.variance[c] + eps).sqrt();
        let shift = beta[c] - stats.mean[c] * scale;
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * scale + shift);
    });
    y
}

/// Gradients (`dx`, `dγ`, `dβ`) of [`normalize`] given the output gradient `dy`.
pub fn backward(
    x: &[f32],
    dy: &[f32],
    stats: &BatchStats,
    gamma: &[f32],
    eps: f32,
    pixels: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = gamma.len();
    let inv_std: Vec<f32> = stats.variance.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (mut dg, mut db) = (0f64, 0f64);
            for (xp, dp) in planes(x, channels, pixels, c).zip(planes(dy, channels, pixels, c)) {
                let (mut g, mut b) = (0f32, 0f32);
                for (&x, &d) in xp.iter().zip(dp) {
                    g += d * (x - stats.mean[c]);
                    b += d;
                }
                dg += g as f64;
                db += b as f64;
            }
            ((dg * inv_std[c] as f64) as f32, db as f32)
        })
        .unzip();
    let n = stats.count as f32;
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(pixels).zip(x.par_chunks(pixels).zip(dy.par_chunks(pixels))).enumerate().for_each(
        |(i, (dx, (x, dy)))| {
            let c = i % channels;
            let (mean, k) = (stats.mean[c], gamma[c] * inv_std[c]);
            let (db_n, dg_n) = (dbeta[c] / n, dgamma[c] * inv_std[c] / n);
            for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                *dx = k * (dy - db_n - (x - mean) * dg_n);
            }
        },
    );
    (dx, dgamma, dbeta)
}

/// The training-mode batch norm as a candle custom op on (x, γ, β); it records the batch
/// statistics in `stats` for the running averages and its own backward pass.
struct BatchNormOp {
    eps: f32,
    stats: Arc<Mutex<BatchStats>>,
}

/// A copy of the statistics behind the lock.
fn read(stats: &Mutex<BatchStats>) -> Result<BatchStats> {
    stats.lock().map(|s| s.clone()).map_err(|_| candle_core::Error::Msg("batch norm: poisoned statistics lock".into()))
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "dlkit-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, channels, pixels) = dims(xl.shape())?;
        let x = f32_slice(xs, xl, self.name())?;
        let gamma = f32_slice(gs, gl, self.name())?;
        let beta = f32_slice(bs, bl, self.name())?;
        if gamma.len() != channels || beta.len() != channels {
            candle_core::bail!("batch norm: {channels} channels but γ has {} and β {} values", gamma.len(), beta.len())
        }
        let stats = channel_stats(x, batch, channels, pixels);
        let y = normalize(x, &stats, gamma, beta, self.eps, pixels);
        if let Ok(mut slot) = self.stats.lock() {
            *slot = stats;
        }
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, _, pixels) = dims(x.shape())?;
        let stats = read(&self.stats)?;
        let (dx, dg, db) = with_f32(x, self.name(), |x| {
            with_f32(dy, self.name(), |dy| with_f32(gamma, self.name(), |g| Ok(backward(x, dy, &stats, g, self.eps, pixels))))
        })?;
        Ok((
            x.track_op().then(|| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?,
            Some(Tensor::from_vec(dg, gamma.shape(), gamma.device())?),
            Some(Tensor::from_vec(db, beta.shape(), beta.device())?),
        ))
    }
}

/// Training-mode batch norm of a CPU `f32` tensor (`B × C × …`): returns the normalised output and
/// the batch statistics (for the running averages). CPU `f32` only: `models::layers::BatchNorm`
/// uses candle's batch norm elsewhere.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = BatchNormOp { eps: eps as f32, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = read(&stats)?;
    Ok((y, stats))
}
