//! AdaDelta: steps scaled by the ratio of running RMS of updates to running RMS of gradients, as Keras's `Adadelta`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_epsilon, check_fraction, check_learning_rate, trainable};

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

impl AdaDeltaParams {
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        check_learning_rate("AdaDelta", self.learning_rate)?;
        check_fraction("AdaDelta", "rho", self.rho)?;
        check_epsilon("AdaDelta", self.epsilon)
    }
}

/// AdaDelta (see [`AdaDeltaParams`] for the update rule).
#[derive(Debug)]
pub struct AdaDelta {
    vars: Vec<Var>,
    /// Running mean a of squared gradients per variable.
    gradient_averages: Vec<Tensor>,
    /// Running mean u of squared updates per variable.
    update_averages: Vec<Tensor>,
    params: AdaDeltaParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "adadelta";

/// One AdaDelta update of weight `w` with gradient `g` and running means `a` (squared gradients)
/// and `u` (squared updates): returns the new weight, a and u.
fn adadelta_update(
    w: &Tensor,
    g: &Tensor,
    a: &Tensor,
    u: &Tensor,
    p: &AdaDeltaParams,
) -> Result<(Tensor, Tensor, Tensor)> {
    let a = a.affine(p.rho, 0.0)?.add(&g.sqr()?.affine(1.0 - p.rho, 0.0)?)?;
    let delta = u.affine(1.0, p.epsilon)?.sqrt()?.div(&a.affine(1.0, p.epsilon)?.sqrt()?)?.mul(g)?;
    let u = u.affine(p.rho, 0.0)?.add(&delta.sqr()?.affine(1.0 - p.rho, 0.0)?)?;
    let w = w.sub(&delta.affine(p.learning_rate, 0.0)?)?;
    Ok((w, a, u))
}

impl AdaDelta {
    /// The hyperparameters in use.
    pub fn params(&self) -> &AdaDeltaParams {
        &self.params
    }
}

impl candle_nn::Optimizer for AdaDelta {
    type Config = AdaDeltaParams;

    fn new(vars: Vec<Var>, params: AdaDeltaParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let gradient_averages = state::filled_like(&vars, 0.0)?;
        let update_averages = state::filled_like(&vars, 0.0)?;
        Ok(Self { vars, gradient_averages, update_averages, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let w = var.as_tensor().detach();
            let (w, a, u) =
                adadelta_update(&w, g, &self.gradient_averages[i], &self.update_averages[i], &self.params)?;
            var.set(&w)?;
            self.gradient_averages[i] = a;
            self.update_averages[i] = u;
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

impl OptimizerState for AdaDelta {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(NAME, self.step)?];
        state::push_slot(&mut out, NAME, "gradient_average", &self.gradient_averages);
        state::push_slot(&mut out, NAME, "update_average", &self.update_averages);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        let gradient_averages = state::read_slot(saved, NAME, "gradient_average", &self.vars)?;
        let update_averages = state::read_slot(saved, NAME, "update_average", &self.vars)?;
        self.step = step;
        self.gradient_averages = gradient_averages;
        self.update_averages = update_averages;
        Ok(())
    }
}
