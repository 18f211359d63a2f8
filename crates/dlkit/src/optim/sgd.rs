//! Stochastic gradient descent with optional (Nesterov) momentum, as Keras's `SGD`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_fraction, check_learning_rate};

/// Hyperparameters of [`Sgd`]. `Default` is Keras's `SGD()`: η = 0.01, μ = 0, no Nesterov.
///
/// Update of a weight w with gradient g (Keras 2.x, `ResourceApplyKerasMomentum`):
///
/// - μ = 0: w ← w − η·g
/// - μ > 0: v ← μ·v − η·g (v₀ = 0), then
///   - plain momentum: w ← w + v
///   - Nesterov:       w ← w + μ·v − η·g (with the new v)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdParams {
    /// Learning rate η (Keras default 0.01).
    pub learning_rate: f64,
    /// Momentum μ in [0, 1) (Keras default 0).
    pub momentum: f64,
    /// Nesterov momentum instead of plain momentum (Keras default false).
    pub nesterov: bool,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self { learning_rate: 0.01, momentum: 0.0, nesterov: false }
    }
}

/// Stochastic gradient descent with optional momentum (see [`SgdParams`] for the update rule).
pub type Sgd = SlotOptimizer<SgdParams>;

impl UpdateRule for SgdParams {
    const NAME: &'static str = "sgd";
    type Coefficients = ();

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("SGD", self.learning_rate)?;
        check_fraction("SGD", "momentum", self.momentum)
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        if self.momentum > 0.0 {
            vec![("velocity", 0.0)]
        } else {
            Vec::new()
        }
    }

    learning_rate_field!();

    fn update_slice(&self, _: &(), w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let (lr, mu) = (self.learning_rate as f32, self.momentum as f32);
        match slots {
            [] => w.iter_mut().zip(g).for_each(|(w, &g)| *w -= lr * g),
            [v] if self.nesterov => {
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    *v = mu * *v - lr * g;
                    *w += mu * *v - lr * g;
                }
            }
            [v] => {
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    *v = mu * *v - lr * g;
                    *w += *v;
                }
            }
            _ => unreachable!("SGD has one slot with momentum, none without"),
        }
    }

    fn update_tensors(&self, _: &(), w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let lr_g = g.affine(self.learning_rate, 0.0)?;
        match slots.first() {
            None => Ok((w.sub(&lr_g)?, Vec::new())),
            Some(v) => {
                let v = v.affine(self.momentum, 0.0)?.sub(&lr_g)?;
                let w = if self.nesterov { w.add(&v.affine(self.momentum, 0.0)?)?.sub(&lr_g)? } else { w.add(&v)? };
                Ok((w, vec![v]))
            }
        }
    }
}
