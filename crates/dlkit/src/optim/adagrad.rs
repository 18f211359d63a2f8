//! AdaGrad: per-weight learning rates shrinking with the sum of squared gradients, as Keras's `Adagrad`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_epsilon, check_learning_rate};

/// Hyperparameters of [`AdaGrad`]. `Default` is Keras's `Adagrad()`:
/// η = 0.001, initial accumulator a₀ = 0.1, ε = 1e-7.
///
/// Update of a weight w with gradient g (Keras 2.x, `ResourceApplyAdagradV2`; ε outside the root):
///
/// - a ← a + g²
/// - w ← w − η·g / (√a + ε)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaGradParams {
    /// Learning rate η (Keras default 0.001).
    pub learning_rate: f64,
    /// Starting value a₀ ≥ 0 of every accumulator (Keras default 0.1).
    pub initial_accumulator_value: f64,
    /// ε > 0 added to the root of the accumulator (Keras default 1e-7).
    pub epsilon: f64,
}

impl Default for AdaGradParams {
    fn default() -> Self {
        Self { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7 }
    }
}

/// AdaGrad (see [`AdaGradParams`] for the update rule).
pub type AdaGrad = SlotOptimizer<AdaGradParams>;

impl UpdateRule for AdaGradParams {
    const NAME: &'static str = "adagrad";
    type Coefficients = ();

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("AdaGrad", self.learning_rate)?;
        check_epsilon("AdaGrad", self.epsilon)?;
        let a0 = self.initial_accumulator_value;
        if !(a0.is_finite() && a0 >= 0.0) {
            return Err(crate::Error::Config(format!(
                "AdaGrad: initial_accumulator_value must be finite and >= 0, got {a0}"
            )));
        }
        Ok(())
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        vec![("accumulator", self.initial_accumulator_value)]
    }

    learning_rate_field!();

    fn update_slice(&self, _: &(), w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let (lr, eps) = (self.learning_rate as f32, self.epsilon as f32);
        let [a] = slots else { unreachable!("AdaGrad has one slot") };
        for ((w, &g), a) in w.iter_mut().zip(g).zip(a.iter_mut()) {
            *a += g * g;
            *w -= lr * g / (a.sqrt() + eps);
        }
    }

    fn update_tensors(&self, _: &(), w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let a = slots[0].add(&g.sqr()?)?;
        let step = g.affine(self.learning_rate, 0.0)?.div(&a.sqrt()?.affine(1.0, self.epsilon)?)?;
        Ok((w.sub(&step)?, vec![a]))
    }
}
