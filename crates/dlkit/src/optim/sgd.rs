//! Stochastic gradient descent with optional (Nesterov) momentum, as Keras's `SGD`, and
//! optional weight decay as PyTorch's `SGD(weight_decay=…)` applies it.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_fraction, check_learning_rate};

/// Hyperparameters of [`Sgd`]. `Default` is Keras's `SGD()`: η = 0.01, μ = 0, no Nesterov,
/// no weight decay.
///
/// Update of a weight w with gradient g (Keras 2.x, `ResourceApplyKerasMomentum`):
///
/// - weight decay λ (PyTorch's): g ← g + λ·w first (λ = 0: nothing);
/// - μ = 0: w ← w − η·g
/// - μ > 0: v ← μ·v − η·g (v₀ = 0), then
///   - plain momentum: w ← w + v
///   - Nesterov:       w ← w + μ·v − η·g (with the new v)
///
/// PyTorch keeps b = −v/η instead of v (`b ← μ·b + g`, `w ← w − η·(g + μ·b)` with Nesterov):
/// with a constant η the two give the same weights, so with weight decay this is PyTorch's
/// `SGD(lr=η, momentum=μ, nesterov=…, weight_decay=λ)`. When η changes (a schedule), Keras's v
/// carries the old rates for a while and PyTorch's b does not: the runs then differ slightly.
///
/// Weight decay is not Keras's L2 regulariser: `kernel_regularizer=l2(λ)` adds λ·Σw² to the
/// loss, whose gradient is 2λ·w (twice this λ), only for the kernels it is set on and as part
/// of the loss the model reports. Weight decay here acts on every variable the optimizer
/// updates (kernels, biases, batch-norm γ and β, as PyTorch with one parameter group) and
/// leaves the reported loss alone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdParams {
    /// Learning rate η (Keras default 0.01).
    pub learning_rate: f64,
    /// Momentum μ in [0, 1) (Keras default 0).
    pub momentum: f64,
    /// Nesterov momentum instead of plain momentum (Keras default false).
    pub nesterov: bool,
    /// PyTorch's weight decay λ ≥ 0 (default 0; a record without it reads as 0).
    pub weight_decay: f64,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self { learning_rate: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// Stochastic gradient descent with optional momentum (see [`SgdParams`] for the update rule).
pub type Sgd = SlotOptimizer<SgdParams>;

impl UpdateRule for SgdParams {
    const NAME: &'static str = "sgd";
    type Coefficients = ();

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("SGD", self.learning_rate)?;
        check_fraction("SGD", "momentum", self.momentum)?;
        if self.weight_decay.is_finite() && self.weight_decay >= 0.0 {
            Ok(())
        } else {
            Err(crate::Error::Config(format!("SGD: weight_decay must be finite and >= 0, got {}", self.weight_decay)))
        }
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
        let (lr, mu, wd) = (self.learning_rate as f32, self.momentum as f32, self.weight_decay as f32);
        // g + λ·w; with λ = 0 this adds 0·w, which leaves g unchanged for finite weights.
        match slots {
            [] => w.iter_mut().zip(g).for_each(|(w, &g)| *w -= lr * (g + wd * *w)),
            [v] if self.nesterov => {
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    let g = g + wd * *w;
                    *v = mu * *v - lr * g;
                    *w += mu * *v - lr * g;
                }
            }
            [v] => {
                for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
                    *v = mu * *v - lr * (g + wd * *w);
                    *w += *v;
                }
            }
            _ => unreachable!("SGD has one slot with momentum, none without"),
        }
    }

    fn update_tensors(&self, _: &(), w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let decayed;
        let g = if self.weight_decay > 0.0 {
            decayed = g.add(&w.affine(self.weight_decay, 0.0)?)?;
            &decayed
        } else {
            g
        };
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
