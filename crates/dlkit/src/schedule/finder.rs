//! Learning-rate range tests, both ways the coursework does them.
//!
//! (a) [`sweep`]: train a fresh model for a few epochs at each learning rate of a log-spaced
//! grid and record the final training loss.
//! (b) [`LrFinder`]: one run that multiplies the learning rate by a constant factor after every
//! batch, from `start_lr` to `end_lr`, records the smoothed loss
//! `avg_t = β·avg_{t−1} + (1−β)·loss_t`, `smooth_t = avg_t / (1 − β^t)` (β = 0.98), and stops
//! once `smooth_t > stop_factor × min smooth`. The model's weights are restored afterwards.

use crate::data::DeviceData;
use crate::error::{Error, Result};
use crate::models::Network;
use crate::models::WeightSnapshot;
use candle_nn::{Optimizer, VarMap};

/// `n` learning rates spaced evenly in log10 from `from` to `to` (both included).
pub fn log_space(from: f64, to: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![from];
    }
    let (a, b) = (from.log10(), to.log10());
    (0..n).map(|i| 10f64.powf(a + (b - a) * i as f64 / (n - 1) as f64)).collect()
}

/// Run `train(lr)` (which returns the final training loss) for every learning rate.
pub fn sweep(lrs: &[f64], mut train: impl FnMut(f64) -> Result<f64>) -> Result<Vec<(f64, f64)>> {
    lrs.iter().map(|&lr| Ok((lr, train(lr)?))).collect()
}

/// The one-run learning-rate finder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrFinder {
    /// First learning rate.
    pub start_lr: f64,
    /// Learning rate reached after `iterations` batches.
    pub end_lr: f64,
    /// Number of batches from `start_lr` to `end_lr`.
    pub iterations: usize,
    /// Smoothing factor of the loss (0.98).
    pub beta: f64,
    /// Stop when the smoothed loss exceeds this multiple of the best (4).
    pub stop_factor: f64,
}

/// What the finder saw: one entry per batch it trained.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinderResult {
    /// Learning rate of each batch.
    pub lrs: Vec<f64>,
    /// Bias-corrected smoothed loss after each batch.
    #[serde(with = "crate::serde_float::vec")]
    pub losses: Vec<f64>,
    /// The raw batch losses.
    #[serde(with = "crate::serde_float::vec")]
    pub raw_losses: Vec<f64>,
    /// True when the run stopped because the loss diverged.
    pub diverged: bool,
}

impl FinderResult {
    /// (lr, smoothed loss) points for a chart with a log x axis.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.lrs.iter().copied().zip(self.losses.iter().copied()).collect()
    }

    /// Bounds for a cyclical learning rate read off the curve, by the usual rule of thumb:
    /// `max_lr` a tenth of the rate at the lowest smoothed loss (still on the falling part of
    /// the curve, before it turns up), `base_lr` a tenth of `max_lr`.
    pub fn suggest(&self) -> Option<(f64, f64)> {
        let max_lr = self.lr_at_min_loss()? / 10.0;
        Some((max_lr / 10.0, max_lr))
    }

    /// The learning rate where the smoothed loss is lowest.
    pub fn lr_at_min_loss(&self) -> Option<f64> {
        self.points().into_iter().filter(|p| p.1.is_finite()).min_by(|a, b| a.1.total_cmp(&b.1)).map(|p| p.0)
    }
}

impl LrFinder {
    /// A finder from `start_lr` to `end_lr` over `iterations` batches (β 0.98, stop factor 4).
    pub fn new(start_lr: f64, end_lr: f64, iterations: usize) -> Result<Self> {
        if !(start_lr > 0.0 && end_lr > start_lr && end_lr.is_finite()) || iterations == 0 {
            return Err(Error::Config(format!(
                "lr finder needs 0 < start_lr < end_lr and iterations ≥ 1 (got {start_lr}, {end_lr}, {iterations})"
            )));
        }
        Ok(LrFinder { start_lr, end_lr, iterations, beta: 0.98, stop_factor: 4.0 })
    }

    /// The factor the learning rate is multiplied by after each batch.
    pub fn multiplier(&self) -> f64 {
        (self.end_lr / self.start_lr).powf(1.0 / self.iterations as f64)
    }

    /// Run the test on `data`; the weights in `varmap` are put back as they were at the end.
    /// (The optimizer's state is not restored: build a fresh one for the real training.)
    pub fn run<M: Network + ?Sized, O: Optimizer>(
        &self,
        model: &M,
        varmap: &VarMap,
        optimizer: &mut O,
        data: &DeviceData,
        batch_size: usize,
        seed: u64,
    ) -> Result<FinderResult> {
        let saved = WeightSnapshot::capture(varmap)?;
        let result = self.explore(model, optimizer, data, batch_size, seed);
        saved.restore(varmap)?;
        result
    }

    fn explore<M: Network + ?Sized, O: Optimizer>(
        &self,
        model: &M,
        optimizer: &mut O,
        data: &DeviceData,
        batch_size: usize,
        seed: u64,
    ) -> Result<FinderResult> {
        let mut out = FinderResult::default();
        let (mut lr, mult) = (self.start_lr, self.multiplier());
        let (mut average, mut best) = (0.0, f64::INFINITY);
        let mut epoch = 0;
        'outer: while out.lrs.len() < self.iterations {
            for batch in data.batches(batch_size, seed, epoch)? {
                let (x, y) = batch?;
                optimizer.set_learning_rate(lr);
                let logits = model.forward_t(&x, true)?;
                let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                if let Some(p) = model.penalty()? {
                    loss = (loss + p)?;
                }
                optimizer.backward_step(&loss)?;
                let raw = loss.to_scalar::<f32>()? as f64;
                let t = out.lrs.len() as i32 + 1;
                average = self.beta * average + (1.0 - self.beta) * raw;
                let smooth = average / (1.0 - self.beta.powi(t));
                out.lrs.push(lr);
                out.raw_losses.push(raw);
                out.losses.push(smooth);
                if t > 1 && (smooth > self.stop_factor * best || !smooth.is_finite()) {
                    out.diverged = true;
                    break 'outer;
                }
                best = best.min(smooth);
                lr *= mult;
                if out.lrs.len() >= self.iterations {
                    break 'outer;
                }
            }
            epoch += 1;
        }
        Ok(out)
    }
}
