//! AdaDelta: steps scaled by the ratio of running RMS of updates to running RMS of gradients, as Keras's `Adadelta`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_epsilon, check_fraction, check_learning_rate};

/// Hyperparameters of [`AdaDelta`]. `Default` is Keras's `Adadelta()`: η = 0.001, ρ = 0.95, ε = 1e-7.
///
/// Update of a weight w with gradient g (Keras 2.x, TensorFlow's `ApplyAdadelta` kernel;
/// a₀ = u₀ = 0; ε inside both roots):
///
/// - a ← ρ·a + (1 − ρ)·g²
/// - Δ = √(u + ε) / √(a + ε) · g (with the previous u)
/// - u ← ρ·u + (1 − ρ)·Δ²
/// - w ← w − η·Δ
///
/// Zeiler's original method is η = 1 (Keras 2.x's default of 0.001 is kept for fidelity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaDeltaParams {
    /// Learning rate η (Keras default 0.001).
    pub learning_rate: f64,
    /// Decay ρ in [0, 1) of both running averages (Keras default 0.95).
    pub rho: f64,
    /// ε > 0 inside both roots (Keras default 1e-7).
    pub epsilon: f64,
}

impl Default for AdaDeltaParams {
    fn default() -> Self {
        Self { learning_rate: 0.001, rho: 0.95, epsilon: 1e-7 }
    }
}

/// AdaDelta (see [`AdaDeltaParams`] for the update rule).
pub type AdaDelta = SlotOptimizer<AdaDeltaParams>;

impl UpdateRule for AdaDeltaParams {
    const NAME: &'static str = "adadelta";
    type Coefficients = ();

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("AdaDelta", self.learning_rate)?;
        check_fraction("AdaDelta", "rho", self.rho)?;
        check_epsilon("AdaDelta", self.epsilon)
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        vec![("gradient_average", 0.0), ("update_average", 0.0)]
    }

    learning_rate_field!();

    fn update_slice(&self, _: &(), w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let (lr, rho, eps) = (self.learning_rate as f32, self.rho as f32, self.epsilon as f32);
        let [a, u] = slots else { unreachable!("AdaDelta has two slots") };
        for (((w, &g), a), u) in w.iter_mut().zip(g).zip(a.iter_mut()).zip(u.iter_mut()) {
            *a = rho * *a + (1.0 - rho) * g * g;
            let delta = (*u + eps).sqrt() / (*a + eps).sqrt() * g;
            *u = rho * *u + (1.0 - rho) * delta * delta;
            *w -= lr * delta;
        }
    }

    fn update_tensors(&self, _: &(), w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let (rho, eps) = (self.rho, self.epsilon);
        let a = slots[0].affine(rho, 0.0)?.add(&g.sqr()?.affine(1.0 - rho, 0.0)?)?;
        let delta = slots[1].affine(1.0, eps)?.sqrt()?.div(&a.affine(1.0, eps)?.sqrt()?)?.mul(g)?;
        let u = slots[1].affine(rho, 0.0)?.add(&delta.sqr()?.affine(1.0 - rho, 0.0)?)?;
        Ok((w.sub(&delta.affine(self.learning_rate, 0.0)?)?, vec![a, u]))
    }
}
