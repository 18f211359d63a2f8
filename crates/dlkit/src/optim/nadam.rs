//! Nadam: Adam with Nesterov momentum and Dozat's momentum schedule, as Keras's `Nadam`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_epsilon, check_fraction, check_learning_rate};

/// Hyperparameters of [`Nadam`]. `Default` is Keras's `Nadam()`:
/// η = 0.001, β₁ = 0.9, β₂ = 0.999, ε = 1e-7 (schedule decay 0.004 is fixed, as in Keras).
///
/// Update at step t = 1, 2, … of a weight w with gradient g (Keras 2.x `optimizer_v2.Nadam`;
/// m₀ = v₀ = 0, Π₀ = 1; ε outside the root):
///
/// - momentum schedule: uₜ = β₁·(1 − ½·0.96^(0.004·t)), uₜ₊₁ = β₁·(1 − ½·0.96^(0.004·(t+1)))
/// - running product: Πₜ = Πₜ₋₁·uₜ (kept between steps), and Πₜ·uₜ₊₁ for the look-ahead
/// - m ← β₁·m + (1 − β₁)·g
/// - v ← β₂·v + (1 − β₂)·g²
/// - m̄ = (1 − uₜ)·g / (1 − Πₜ) + uₜ₊₁·m / (1 − Πₜ·uₜ₊₁)
/// - v̂ = v / (1 − β₂ᵗ)
/// - w ← w − η·m̄ / (√v̂ + ε)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NadamParams {
    /// Learning rate η (Keras default 0.001).
    pub learning_rate: f64,
    /// Decay β₁ in [0, 1) of the first moment, scaled by the momentum schedule (Keras default 0.9).
    pub beta_1: f64,
    /// Decay β₂ in [0, 1) of the second moment (Keras default 0.999).
    pub beta_2: f64,
    /// ε > 0 added to the root of the corrected second moment (Keras default 1e-7).
    pub epsilon: f64,
}

impl Default for NadamParams {
    fn default() -> Self {
        Self { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }
}

impl NadamParams {
    /// The scheduled momentum uₜ = β₁·(1 − ½·0.96^(0.004·t)).
    fn momentum_at(&self, t: f64) -> f64 {
        self.beta_1 * (1.0 - 0.5 * 0.96f64.powf(0.004 * t))
    }
}

/// Nadam (see [`NadamParams`] for the update rule).
pub type Nadam = SlotOptimizer<NadamParams>;

/// The scalar coefficients of one Nadam step, the same for every variable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NadamCoefficients {
    /// Weight (1 − uₜ)/(1 − Πₜ) of the current gradient.
    gradient_weight: f64,
    /// Weight uₜ₊₁/(1 − Πₜ·uₜ₊₁) of the first moment.
    moment_weight: f64,
    /// Bias correction 1/(1 − β₂ᵗ) of the second moment.
    second_moment_scale: f64,
}

impl UpdateRule for NadamParams {
    const NAME: &'static str = "nadam";
    type Coefficients = NadamCoefficients;

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("Nadam", self.learning_rate)?;
        check_fraction("Nadam", "beta_1", self.beta_1)?;
        check_fraction("Nadam", "beta_2", self.beta_2)?;
        check_epsilon("Nadam", self.epsilon)
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        vec![("m", 0.0), ("v", 0.0)]
    }

    /// Πₜ, the product of the scheduled momenta so far (Keras's `momentum_cache`).
    fn carried(&self) -> Vec<(&'static str, f64)> {
        vec![("momentum_product", 1.0)]
    }

    learning_rate_field!();

    fn coefficients(&self, t: u64, carried: &mut [f64]) -> NadamCoefficients {
        let t = t as f64;
        let (u_t, u_next) = (self.momentum_at(t), self.momentum_at(t + 1.0));
        carried[0] *= u_t;
        let product = carried[0];
        NadamCoefficients {
            gradient_weight: (1.0 - u_t) / (1.0 - product),
            moment_weight: u_next / (1.0 - product * u_next),
            second_moment_scale: 1.0 / (1.0 - self.beta_2.powf(t)),
        }
    }

    fn update_slice(&self, c: &NadamCoefficients, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let (lr, b1, b2, eps) = (self.learning_rate as f32, self.beta_1 as f32, self.beta_2 as f32, self.epsilon as f32);
        let (gw, mw, scale) = (c.gradient_weight as f32, c.moment_weight as f32, c.second_moment_scale as f32);
        let [m, v] = slots else { unreachable!("Nadam has two slots") };
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let m_bar = gw * g + mw * *m;
            *w -= lr * m_bar / ((*v * scale).sqrt() + eps);
        }
    }

    fn update_tensors(&self, c: &NadamCoefficients, w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let m = slots[0].affine(self.beta_1, 0.0)?.add(&g.affine(1.0 - self.beta_1, 0.0)?)?;
        let v = slots[1].affine(self.beta_2, 0.0)?.add(&g.sqr()?.affine(1.0 - self.beta_2, 0.0)?)?;
        let m_bar = g.affine(c.gradient_weight, 0.0)?.add(&m.affine(c.moment_weight, 0.0)?)?;
        let denominator = v.affine(c.second_moment_scale, 0.0)?.sqrt()?.affine(1.0, self.epsilon)?;
        let w = w.sub(&m_bar.affine(self.learning_rate, 0.0)?.div(&denominator)?)?;
        Ok((w, vec![m, v]))
    }
}
