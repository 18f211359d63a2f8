//! RMSProp: divide the gradient by a running root-mean-square of recent gradients, as Keras's `RMSprop`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::rule::{learning_rate_field, SlotOptimizer, UpdateRule};
use super::{check_epsilon, check_fraction, check_learning_rate};

/// Hyperparameters of [`RmsProp`]. `Default` is Keras's `RMSprop()`:
/// η = 0.001, ρ = 0.9, μ = 0, ε = 1e-7, not centered.
///
/// Update of a weight w with gradient g (Keras 2.x `optimizer_v2.RMSprop`; s₀ = m₀ = v₀ = 0):
///
/// - s ← ρ·s + (1 − ρ)·g²
/// - centered: m ← ρ·m + (1 − ρ)·g and d = s − m²; otherwise d = s
/// - μ = 0 (Keras's own code; ε outside the root): w ← w − η·g / (√d + ε)
/// - μ > 0 (TensorFlow's `ApplyRMSProp` kernel; ε inside the root):
///   v ← μ·v + η·g / √(d + ε), then w ← w − v
///
/// The two ε placements are Keras's, kept so that results match it in both cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RmsPropParams {
    /// Learning rate η (Keras default 0.001).
    pub learning_rate: f64,
    /// Decay ρ in [0, 1) of the mean square (Keras default 0.9).
    pub rho: f64,
    /// Momentum μ in [0, 1) (Keras default 0).
    pub momentum: f64,
    /// ε > 0 for numerical stability (Keras default 1e-7).
    pub epsilon: f64,
    /// Normalise by the estimated variance s − m² instead of the mean square s (Keras default false).
    pub centered: bool,
}

impl Default for RmsPropParams {
    fn default() -> Self {
        Self { learning_rate: 0.001, rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }
    }
}

/// RMSProp (see [`RmsPropParams`] for the update rule).
pub type RmsProp = SlotOptimizer<RmsPropParams>;

impl RmsPropParams {
    /// The update of one element: mean square `s`, mean gradient `m` (centered) and velocity
    /// `v` (μ > 0).
    #[inline(always)]
    fn element(&self, w: &mut f32, g: f32, s: &mut f32, m: Option<&mut f32>, v: Option<&mut f32>) {
        let (lr, rho, mu, eps) = (self.learning_rate as f32, self.rho as f32, self.momentum as f32, self.epsilon as f32);
        *s = rho * *s + (1.0 - rho) * g * g;
        let d = match m {
            Some(m) => {
                *m = rho * *m + (1.0 - rho) * g;
                *s - *m * *m
            }
            None => *s,
        };
        match v {
            None => *w -= lr * g / (d.sqrt() + eps),
            Some(v) => {
                *v = mu * *v + lr * g / (d + eps).sqrt();
                *w -= *v;
            }
        }
    }
}

impl UpdateRule for RmsPropParams {
    const NAME: &'static str = "rmsprop";
    type Coefficients = ();

    fn validate(&self) -> crate::Result<()> {
        check_learning_rate("RMSProp", self.learning_rate)?;
        check_fraction("RMSProp", "rho", self.rho)?;
        check_fraction("RMSProp", "momentum", self.momentum)?;
        check_epsilon("RMSProp", self.epsilon)
    }

    fn slots(&self) -> Vec<(&'static str, f64)> {
        let mut slots = vec![("mean_square", 0.0)];
        if self.centered {
            slots.push(("mean_gradient", 0.0));
        }
        if self.momentum > 0.0 {
            slots.push(("velocity", 0.0));
        }
        slots
    }

    learning_rate_field!();

    fn update_slice(&self, _: &(), w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let wg = w.iter_mut().zip(g);
        match (self.centered, slots) {
            (_, [s]) => wg.zip(s.iter_mut()).for_each(|((w, &g), s)| self.element(w, g, s, None, None)),
            (true, [s, m]) => {
                wg.zip(s.iter_mut()).zip(m.iter_mut()).for_each(|(((w, &g), s), m)| self.element(w, g, s, Some(m), None))
            }
            (false, [s, v]) => {
                wg.zip(s.iter_mut()).zip(v.iter_mut()).for_each(|(((w, &g), s), v)| self.element(w, g, s, None, Some(v)))
            }
            (_, [s, m, v]) => wg
                .zip(s.iter_mut())
                .zip(m.iter_mut())
                .zip(v.iter_mut())
                .for_each(|((((w, &g), s), m), v)| self.element(w, g, s, Some(m), Some(v))),
            _ => unreachable!("RMSProp has one to three slots"),
        }
    }

    fn update_tensors(&self, _: &(), w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let mut slots = slots.iter();
        let mut next = || slots.next().ok_or_else(|| candle_core::Error::Msg("RMSProp: missing slot".into()));
        let s = next()?.affine(self.rho, 0.0)?.add(&g.sqr()?.affine(1.0 - self.rho, 0.0)?)?;
        let m = if self.centered { Some(next()?.affine(self.rho, 0.0)?.add(&g.affine(1.0 - self.rho, 0.0)?)?) } else { None };
        let d = match &m {
            Some(m) => s.sub(&m.sqr()?)?,
            None => s.clone(),
        };
        let lr_g = g.affine(self.learning_rate, 0.0)?;
        let (w, v) = if self.momentum > 0.0 {
            let v = next()?.affine(self.momentum, 0.0)?.add(&lr_g.div(&d.affine(1.0, self.epsilon)?.sqrt()?)?)?;
            (w.sub(&v)?, Some(v))
        } else {
            (w.sub(&lr_g.div(&d.sqrt()?.affine(1.0, self.epsilon)?)?)?, None)
        };
        Ok((w, [Some(s), m, v].into_iter().flatten().collect()))
    }
}
