//! Nadam: Adam with Nesterov momentum and Dozat's momentum schedule, as Keras's `Nadam`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_epsilon, check_fraction, check_learning_rate, trainable};

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
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        check_learning_rate("Nadam", self.learning_rate)?;
        check_fraction("Nadam", "beta_1", self.beta_1)?;
        check_fraction("Nadam", "beta_2", self.beta_2)?;
        check_epsilon("Nadam", self.epsilon)
    }

    /// The scheduled momentum uₜ = β₁·(1 − ½·0.96^(0.004·t)).
    fn momentum_at(&self, t: f64) -> f64 {
        self.beta_1 * (1.0 - 0.5 * 0.96f64.powf(0.004 * t))
    }
}

/// Nadam (see [`NadamParams`] for the update rule).
#[derive(Debug)]
pub struct Nadam {
    vars: Vec<Var>,
    /// First moment m per variable.
    first_moments: Vec<Tensor>,
    /// Second moment v per variable.
    second_moments: Vec<Tensor>,
    /// Πₜ, the product of the scheduled momenta so far (Keras's `momentum_cache`).
    momentum_product: f64,
    params: NadamParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "nadam";

/// The scalar coefficients of one Nadam step, the same for every variable.
struct NadamCoefficients {
    /// Weight (1 − uₜ)/(1 − Πₜ) of the current gradient.
    gradient_weight: f64,
    /// Weight uₜ₊₁/(1 − Πₜ·uₜ₊₁) of the first moment.
    moment_weight: f64,
    /// Bias correction 1/(1 − β₂ᵗ) of the second moment.
    second_moment_scale: f64,
}

/// One Nadam update of weight `w` with gradient `g` and moments `m`, `v`:
/// returns the new weight, first and second moments.
fn nadam_update(
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    c: &NadamCoefficients,
    p: &NadamParams,
) -> Result<(Tensor, Tensor, Tensor)> {
    let m = m.affine(p.beta_1, 0.0)?.add(&g.affine(1.0 - p.beta_1, 0.0)?)?;
    let v = v.affine(p.beta_2, 0.0)?.add(&g.sqr()?.affine(1.0 - p.beta_2, 0.0)?)?;
    let m_bar = g.affine(c.gradient_weight, 0.0)?.add(&m.affine(c.moment_weight, 0.0)?)?;
    let denominator = v.affine(c.second_moment_scale, 0.0)?.sqrt()?.affine(1.0, p.epsilon)?;
    let w = w.sub(&m_bar.affine(p.learning_rate, 0.0)?.div(&denominator)?)?;
    Ok((w, m, v))
}

impl Nadam {
    /// The hyperparameters in use.
    pub fn params(&self) -> &NadamParams {
        &self.params
    }
}

impl candle_nn::Optimizer for Nadam {
    type Config = NadamParams;

    fn new(vars: Vec<Var>, params: NadamParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let first_moments = state::filled_like(&vars, 0.0)?;
        let second_moments = state::filled_like(&vars, 0.0)?;
        Ok(Self { vars, first_moments, second_moments, momentum_product: 1.0, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as f64;
        let p = &self.params;
        let u_t = p.momentum_at(t);
        let u_next = p.momentum_at(t + 1.0);
        self.momentum_product *= u_t;
        let c = NadamCoefficients {
            gradient_weight: (1.0 - u_t) / (1.0 - self.momentum_product),
            moment_weight: u_next / (1.0 - self.momentum_product * u_next),
            second_moment_scale: 1.0 / (1.0 - p.beta_2.powf(t)),
        };
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let w = var.as_tensor().detach();
            let (w, m, v) = nadam_update(&w, g, &self.first_moments[i], &self.second_moments[i], &c, p)?;
            var.set(&w)?;
            self.first_moments[i] = m;
            self.second_moments[i] = v;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.learning_rate = lr;
    }
}

impl OptimizerState for Nadam {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![
            state::step_entry(NAME, self.step)?,
            state::scalar_entry(NAME, "momentum_product", self.momentum_product)?,
        ];
        state::push_slot(&mut out, NAME, "m", &self.first_moments);
        state::push_slot(&mut out, NAME, "v", &self.second_moments);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        let momentum_product = state::read_scalar(saved, NAME, "momentum_product")?;
        let first_moments = state::read_slot(saved, NAME, "m", &self.vars)?;
        let second_moments = state::read_slot(saved, NAME, "v", &self.vars)?;
        self.step = step;
        self.momentum_product = momentum_product;
        self.first_moments = first_moments;
        self.second_moments = second_moments;
        Ok(())
    }
}
