//! Training-mode batch normalisation on the CPU, forward and backward, in two passes each.
//!
//! For channel `c` over the `N = batch × pixels` values `x`:
//! - forward: `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased, as in the normalisation of Keras and
//!   PyTorch), `x̂ = (x − μ) / √(σ² + ε)`, `y = γ·x̂ + β`;
//! - backward: `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ / √(σ² + ε) · (dy − dβ/N − x̂·dγ/N)`.
//!
//! With `relu` set, the op is batch norm followed by ReLU, `y = max(γ·x̂ + β, 0)`, in the same
//! passes: the backward pass uses `dy` where `y > 0` and 0 elsewhere in place of `dy`. That saves
//! the ReLU's own two passes and the gradient buffer candle would allocate between the two ops.
//!
//! The batch statistics come back to the caller (for the running averages) through
//! [`BatchStats`], and the backward pass reuses them.

use super::{f32_slice, output_buffer, with_f32};
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

/// Lanes of the partial sums in [`lane_sum`] and [`gradient_sums`]: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// `Σ f(v)` over `values` in [`LANES`] interleaved `f32` partial sums, added in `f64` at the end.
///
/// The compiler may not reorder float additions, so a single running sum cannot be vectorised;
/// interleaved sums can. The order is fixed, so the result is the same bits every time.
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        acc.iter_mut().zip(chunk).for_each(|(a, &v)| *a += f(v));
    }
    lanes_total(acc, tail)
}

/// The sum of [`LANES`] partial sums and a tail, in `f64`, in a fixed order.
fn lanes_total(acc: [f32; LANES], tail: f32) -> f64 {
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}

/// `(Σ dy·(x − mean), Σ dy)` over one plane, with the partial sums of [`lane_sum`]; with `RELU`,
/// `dy` counts only where the output `y` is positive (`y` is not read otherwise).
fn gradient_sums<const RELU: bool>(x: &[f32], y: &[f32], dy: &[f32], mean: f32) -> (f64, f64) {
    let (mut acc_g, mut acc_b) = ([0f32; LANES], [0f32; LANES]);
    let gate = |y: f32, d: f32| if RELU && y <= 0.0 { 0.0 } else { d };
    let (cx, cy, cd) = (x.chunks_exact(LANES), y.chunks_exact(LANES), dy.chunks_exact(LANES));
    let (mut tail_g, mut tail_b) = (0f32, 0f32);
    for ((&x, &y), &d) in cx.remainder().iter().zip(cy.remainder()).zip(cd.remainder()) {
        tail_g += gate(y, d) * (x - mean);
        tail_b += gate(y, d);
    }
    for ((x, y), d) in cx.zip(cy).zip(cd) {
        for l in 0..LANES {
            let d = gate(y[l], d[l]);
            acc_g[l] += d * (x[l] - mean);
            acc_b[l] += d;
        }
    }
    (lanes_total(acc_g, tail_g), lanes_total(acc_b, tail_b))
}

/// Mean and biased variance per channel (two passes; `f32` partial sums per plane, `f64` across
/// planes).
pub fn channel_stats(x: &[f32], batch: usize, channels: usize, pixels: usize) -> BatchStats {
    let count = batch * pixels;
    let (mean, variance) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = planes(x, channels, pixels, c).map(|p| lane_sum(p, |v| v)).sum();
            let mean = (sum / count as f64) as f32;
            let sq: f64 = planes(x, channels, pixels, c).map(|p| lane_sum(p, |v| (v - mean) * (v - mean))).sum();
            (mean, (sq / count as f64) as f32)
        })
        .unzip();
    BatchStats { mean, variance, count }
}

/// `y = γ·(x − μ)/√(σ² + ε) + β` per channel (then `max(y, 0)` with `relu`).
pub fn normalize(x: &[f32], stats: &BatchStats, gamma: &[f32], beta: &[f32], eps: f32, pixels: usize, relu: bool) -> Vec<f32> {
    if relu {
        normalize_with::<true>(x, stats, gamma, beta, eps, pixels)
    } else {
        normalize_with::<false>(x, stats, gamma, beta, eps, pixels)
    }
}

fn normalize_with<const RELU: bool>(x: &[f32], stats: &BatchStats, gamma: &[f32], beta: &[f32], eps: f32, pixels: usize) -> Vec<f32> {
    let channels = gamma.len();
    let scale: Vec<f32> = (0..channels).map(|c| gamma[c] / (stats.variance[c] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..channels).map(|c| beta[c] - stats.mean[c] * scale[c]).collect();
    scale_shift::<RELU>(x, &scale, &shift, pixels)
}

/// `x·scale + shift` per channel (then `max(·, 0)` with `RELU`) of a `batch × channels × pixels`
/// array, one channel's `scale` and `shift` per plane.
fn scale_shift<const RELU: bool>(x: &[f32], scale: &[f32], shift: &[f32], pixels: usize) -> Vec<f32> {
    let mut y = output_buffer(x.len());
    let image = scale.len() * pixels;
    y.par_chunks_mut(image).zip(x.par_chunks(image)).for_each(|(y, x)| {
        for (c, (y, x)) in y.chunks_mut(pixels).zip(x.chunks(pixels)).enumerate() {
            let (scale, shift) = (scale[c], shift[c]);
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = if RELU { (x * scale + shift).max(0.0) } else { x * scale + shift });
        }
    });
    y
}

/// `max(x·scale + shift, 0)` per channel of a CPU `f32` tensor `[N, C, …]`, in one pass: a batch
/// norm in evaluation mode (`scale` and `shift` from its running statistics, one per channel)
/// followed by ReLU.
pub fn affine_relu(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (_, channels, pixels) = dims(x.shape())?;
    let op = "batch norm (inference)";
    let y = with_f32(x, op, |x| {
        with_f32(scale, op, |scale| {
            with_f32(shift, op, |shift| {
                if scale.len() != channels || shift.len() != channels {
                    candle_core::bail!("{op}: {} scales and {} shifts for {channels} channels", scale.len(), shift.len())
                }
                Ok(scale_shift::<true>(x, scale, shift, pixels))
            })
        })
    })?;
    Tensor::from_vec(y, x.shape(), x.device())
}

/// Gradients (`dx`, `dγ`, `dβ`) of [`normalize`] given the output gradient `dy`; `relu` is the
/// output `y` of a [`normalize`] with `relu` set, `None` for a plain batch norm.
pub fn backward(
    x: &[f32],
    dy: &[f32],
    relu: Option<&[f32]>,
    stats: &BatchStats,
    gamma: &[f32],
    eps: f32,
    pixels: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    match relu {
        Some(y) => backward_with::<true>(x, y, dy, stats, gamma, eps, pixels),
        // `y` is never read without ReLU; `x` stands in for it.
        None => backward_with::<false>(x, x, dy, stats, gamma, eps, pixels),
    }
}

fn backward_with<const RELU: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    stats: &BatchStats,
    gamma: &[f32],
    eps: f32,
    pixels: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = gamma.len();
    let inv_std: Vec<f32> = stats.variance.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let plane = |values, c| planes(values, channels, pixels, c);
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let sums = plane(x, c).zip(plane(y, c)).zip(plane(dy, c));
            let (dg, db) = sums
                .map(|((xp, yp), dp)| gradient_sums::<RELU>(xp, yp, dp, stats.mean[c]))
                .fold((0f64, 0f64), |(dg, db), (g, b)| (dg + g, db + b));
            ((dg * inv_std[c] as f64) as f32, db as f32)
        })
        .unzip();
    let n = stats.count as f32;
    let mut dx = output_buffer(x.len());
    let image = channels * pixels;
    let inputs = x.par_chunks(image).zip(y.par_chunks(image)).zip(dy.par_chunks(image));
    dx.par_chunks_mut(image).zip(inputs).for_each(|(dx, ((x, y), dy))| {
        let planes = dx.chunks_mut(pixels).zip(x.chunks(pixels)).zip(y.chunks(pixels)).zip(dy.chunks(pixels));
        for (c, (((dx, x), y), dy)) in planes.enumerate() {
            let (mean, k) = (stats.mean[c], gamma[c] * inv_std[c]);
            let (db_n, dg_n) = (dbeta[c] / n, dgamma[c] * inv_std[c] / n);
            for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                let dy = if RELU && y <= 0.0 { 0.0 } else { dy };
                *dx = k * (dy - db_n - (x - mean) * dg_n);
            }
        }
    });
    (dx, dgamma, dbeta)
}

/// The training-mode batch norm as a candle custom op on (x, γ, β); it records the batch
/// statistics in `stats` for the running averages and its own backward pass.
struct BatchNormOp {
    eps: f32,
    relu: bool,
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
        let y = normalize(x, &stats, gamma, beta, self.eps, pixels, self.relu);
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
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, _, pixels) = dims(x.shape())?;
        let stats = read(&self.stats)?;
        let name = self.name();
        let (dx, dg, db) = with_f32(x, name, |x| {
            with_f32(dy, name, |dy| {
                with_f32(gamma, name, |g| match self.relu {
                    true => with_f32(y, name, |y| Ok(backward(x, dy, Some(y), &stats, g, self.eps, pixels))),
                    false => Ok(backward(x, dy, None, &stats, g, self.eps, pixels)),
                })
            })
        })?;
        Ok((
            x.track_op().then(|| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?,
            Some(Tensor::from_vec(dg, gamma.shape(), gamma.device())?),
            Some(Tensor::from_vec(db, beta.shape(), beta.device())?),
        ))
    }
}

/// Training-mode batch norm of a CPU `f32` tensor (`B × C × …`), followed by ReLU when `relu` is
/// set: returns the output and the batch statistics (for the running averages). CPU `f32` only:
/// `models::layers::BatchNorm` uses candle's batch norm elsewhere.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, relu: bool) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(BatchStats::default()));
    let op = BatchNormOp { eps: eps as f32, relu, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = read(&stats)?;
    Ok((y, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 131) % 1000) as f32 / 250.0) - 1.5).collect()
    }

    #[test]
    fn lane_sums_match_f64_sums_at_every_tail_length() {
        for n in [0, 1, 15, 16, 17, 31, 64, 67, 1000] {
            let a = values(n, 1);
            let exact: f64 = a.iter().map(|&v| v as f64 * 2.0).sum();
            assert!((lane_sum(&a, |v| 2.0 * v) - exact).abs() < 1e-4, "lane_sum, {n} values");
        }
    }

    /// One channel of [`reference`]: statistics, parameter gradients, and `(index, y, dx)` of each
    /// of its values.
    struct Expected {
        mean: f64,
        var: f64,
        dgamma: f64,
        dbeta: f64,
        values: Vec<(usize, f64, f64)>,
    }

    /// Batch norm (then ReLU when `relu`) over `batch × channels × pixels` values, and its
    /// gradients for the output gradient `dy`, all in f64 from the definitions.
    fn reference(x: &[f32], dy: &[f32], gamma: &[f32], beta: &[f32], eps: f64, pixels: usize, relu: bool) -> Vec<Expected> {
        let channels = gamma.len();
        let batch = x.len() / (channels * pixels);
        let n = (batch * pixels) as f64;
        (0..channels)
            .map(|c| {
                let idx: Vec<usize> = (0..batch).flat_map(|b| (0..pixels).map(move |p| (b * channels + c) * pixels + p)).collect();
                let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / n;
                let var = idx.iter().map(|&i| (x[i] as f64 - mean).powi(2)).sum::<f64>() / n;
                let inv = 1.0 / (var + eps).sqrt();
                let out = |i: usize| gamma[c] as f64 * (x[i] as f64 - mean) * inv + beta[c] as f64;
                // The gradient reaching the batch norm: ReLU passes it where its output is positive.
                let g = |i: usize| if relu && out(i) <= 0.0 { 0.0 } else { dy[i] as f64 };
                let db: f64 = idx.iter().map(|&i| g(i)).sum();
                let dg: f64 = idx.iter().map(|&i| g(i) * (x[i] as f64 - mean) * inv).sum();
                let values = idx
                    .iter()
                    .map(|&i| {
                        let y = if relu { out(i).max(0.0) } else { out(i) };
                        (i, y, gamma[c] as f64 * inv * (g(i) - db / n - (x[i] as f64 - mean) * inv * dg / n))
                    })
                    .collect();
                Expected { mean, var, dgamma: dg, dbeta: db, values }
            })
            .collect()
    }

    #[test]
    fn statistics_outputs_and_gradients_match_an_f64_reference_with_and_without_relu() {
        // 3 images × 2 channels × 67 pixels: 4 full lane blocks and a tail of 3 per plane; β > 0
        // on one channel and < 0 on the other, so ReLU cuts different shares of each.
        let (batch, channels, pixels) = (3, 2, 67);
        let (x, dy) = (values(batch * channels * pixels, 3), values(batch * channels * pixels, 4));
        let (gamma, beta, eps) = ([0.7f32, -1.3], [0.2f32, -0.4], 1e-3);
        for relu in [false, true] {
            let stats = channel_stats(&x, batch, channels, pixels);
            let y = normalize(&x, &stats, &gamma, &beta, eps, pixels, relu);
            let (dx, dgamma, dbeta) = backward(&x, &dy, relu.then_some(&y[..]), &stats, &gamma, eps, pixels);
            for (c, e) in reference(&x, &dy, &gamma, &beta, eps as f64, pixels, relu).into_iter().enumerate() {
                assert!((stats.mean[c] as f64 - e.mean).abs() < 1e-6 && (stats.variance[c] as f64 - e.var).abs() < 1e-5);
                assert!((dbeta[c] as f64 - e.dbeta).abs() < 1e-4 && (dgamma[c] as f64 - e.dgamma).abs() < 1e-4, "relu {relu}: dγ, dβ");
                for (i, expected_y, expected_dx) in e.values {
                    assert!((y[i] as f64 - expected_y).abs() < 1e-5, "relu {relu}: y[{i}]");
                    assert!((dx[i] as f64 - expected_dx).abs() < 1e-4, "relu {relu}: dx[{i}]");
                }
            }
            if relu {
                assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0), "ReLU cut some outputs, not all");
            }
        }
    }

    #[test]
    fn inference_affine_relu_by_hand() {
        // 2 images × 2 channels × 3 pixels; channel 0: 2x + 1, channel 1: −x (then ReLU).
        let dev = candle_core::Device::Cpu;
        let x = Tensor::new(&[[[-1f32, 0.0, 2.0], [1.0, -2.0, 0.5]], [[-0.5, 3.0, -4.0], [-1.0, 0.0, 7.0]]], &dev).unwrap();
        let (scale, shift) = (Tensor::new(&[2f32, -1.0], &dev).unwrap(), Tensor::new(&[1f32, 0.0], &dev).unwrap());
        let y = affine_relu(&x, &scale, &shift).unwrap();
        let expected = [[[0f32, 1.0, 5.0], [0.0, 2.0, 0.0]], [[0.0, 7.0, 0.0], [1.0, 0.0, 0.0]]];
        assert_eq!(y.to_vec3::<f32>().unwrap(), expected);
        assert!(affine_relu(&x, &shift.narrow(0, 0, 1).unwrap(), &shift).is_err(), "one scale for two channels");
    }
}
