//! Adam: momentum on the gradient and on its square, with bias correction, as Keras's `Adam`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_epsilon, check_fraction, check_learning_rate};

/// Hyperparameters of [`Adam`]. `Default` is Keras's `Adam()`:
/// η = 0.001, β₁ = 0.9, β₂ = 0.999, ε = 1e-7, no AMSGrad.
///
/// Update at step t = 1, 2, … of a weight w with gradient g (Keras 2.x, `ResourceApplyAdam`;
/// m₀ = v₀ = v̂₀ = 0; ε is Kingma & Ba's "ε hat", outside the root of the uncorrected v):
///
/// - m ← β₁·m + (1 − β₁)·g
/// - v ← β₂·v + (1 − β₂)·g²
/// - AMSGrad only: v̂ ← max(v̂, v), and v̂ replaces v below
/// - ηₜ = η·√(1 − β₂ᵗ) / (1 − β₁ᵗ)
/// - w ← w − ηₜ·m / (√v + ε)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamParams {
    /// Learning rate η (Keras default 0.001).
    pub learning_rate: f64,
    /// Decay β₁ in [0, 1) of the first moment (Keras default 0.9).
    pub beta_1: f64,
    /// Decay β₂ in [0, 1) of the second moment (Keras default 0.999).
    pub beta_2: f64,
    /// ε > 0 added to the root of the second moment (Keras default 1e-7).
    pub epsilon: f64,
    /// Use the running maximum of the second moment (AMSGrad; Keras default false).
    pub amsgrad: bool,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    }
}

/// Adam (see [`AdamParams`] for the update rule).
pub type Adam = SlotOptimizer<AdamParams>;

impl UpdateRule for AdamParams {
    const NAME: &'static str = "adam";
    /// The bias-corrected step size ηₜ.
    type Coefficients = f64;

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("Adam", self.learning_rate)?;
        check_fraction("Adam", "beta_1", self.beta_1)?;
        check_fraction("Adam", "beta_2", self.beta_2)?;
        check_epsilon("Adam", self.epsilon)
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        let mut slots = vec![("m", 0.0), ("v", 0.0)];
        if self.amsgrad {
            slots.push(("v_max", 0.0));
        }
        slots
    }

    learning_rate_field!();

    fn coefficients(&self, t: u64, _: &mut [f64]) -> f64 {
        let t = t as f64;
        self.learning_rate * (1.0 - self.beta_2.powf(t)).sqrt() / (1.0 - self.beta_1.powf(t))
    }

    fn update_slice(&self, &step_size: &f64, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let (b1, b2, eps, step_size) = (self.beta_1 as f32, self.beta_2 as f32, self.epsilon as f32, step_size as f32);
        match slots {
            [m, v] => {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *w -= step_size * *m / (v.sqrt() + eps);
                }
            }
            [m, v, v_max] => {
                for ((((w, &g), m), v), v_max) in
                    w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(v_max.iter_mut())
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *v_max = v_max.max(*v);
                    *w -= step_size * *m / (v_max.sqrt() + eps);
                }
            }
            _ => unreachable!("Adam has two slots, three with AMSGrad"),
        }
    }

    fn update_tensors(&self, &step_size: &f64, w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let m = slots[0].affine(self.beta_1, 0.0)?.add(&g.affine(1.0 - self.beta_1, 0.0)?)?;
        let v = slots[1].affine(self.beta_2, 0.0)?.add(&g.sqr()?.affine(1.0 - self.beta_2, 0.0)?)?;
        let v_max = slots.get(2).map(|v_max| v_max.maximum(&v)).transpose()?;
        let denominator = v_max.as_ref().unwrap_or(&v).sqrt()?.affine(1.0, self.epsilon)?;
        let w = w.sub(&m.affine(step_size, 0.0)?.div(&denominator)?)?;
        Ok((w, [Some(m), Some(v), v_max].into_iter().flatten().collect()))
    }
}
