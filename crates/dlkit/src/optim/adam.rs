//! Adam: momentum on the gradient and on its square, with bias correction, as Keras's `Adam`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_epsilon, check_fraction, check_learning_rate, trainable};

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

impl AdamParams {
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        check_learning_rate("Adam", self.learning_rate)?;
        check_fraction("Adam", "beta_1", self.beta_1)?;
        check_fraction("Adam", "beta_2", self.beta_2)?;
        check_epsilon("Adam", self.epsilon)
    }
}

/// Adam (see [`AdamParams`] for the update rule).
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    /// First moment m per variable.
    first_moments: Vec<Tensor>,
    /// Second moment v per variable.
    second_moments: Vec<Tensor>,
    /// Running maximum v̂ of the second moment per variable; empty unless AMSGrad.
    max_second_moments: Vec<Tensor>,
    params: AdamParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "adam";

/// The state of one variable after an Adam update.
struct AdamSlots {
    w: Tensor,
    m: Tensor,
    v: Tensor,
    v_max: Option<Tensor>,
}

/// One Adam update of weight `w` with gradient `g`, moments `m`, `v` and, for AMSGrad, the
/// running maximum `v_max`; `step_size` is the bias-corrected ηₜ.
fn adam_update(
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    v_max: Option<&Tensor>,
    step_size: f64,
    p: &AdamParams,
) -> Result<AdamSlots> {
    let m = m.affine(p.beta_1, 0.0)?.add(&g.affine(1.0 - p.beta_1, 0.0)?)?;
    let v = v.affine(p.beta_2, 0.0)?.add(&g.sqr()?.affine(1.0 - p.beta_2, 0.0)?)?;
    let v_max = v_max.map(|v_max| v_max.maximum(&v)).transpose()?;
    let denominator = v_max.as_ref().unwrap_or(&v).sqrt()?.affine(1.0, p.epsilon)?;
    let w = w.sub(&m.affine(step_size, 0.0)?.div(&denominator)?)?;
    Ok(AdamSlots { w, m, v, v_max })
}

impl Adam {
    /// The hyperparameters in use.
    pub fn params(&self) -> &AdamParams {
        &self.params
    }
}

impl candle_nn::Optimizer for Adam {
    type Config = AdamParams;

    fn new(vars: Vec<Var>, params: AdamParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let first_moments = state::filled_like(&vars, 0.0)?;
        let second_moments = state::filled_like(&vars, 0.0)?;
        let max_second_moments = if params.amsgrad { state::filled_like(&vars, 0.0)? } else { Vec::new() };
        Ok(Self { vars, first_moments, second_moments, max_second_moments, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as f64;
        let p = &self.params;
        let step_size = p.learning_rate * (1.0 - p.beta_2.powf(t)).sqrt() / (1.0 - p.beta_1.powf(t));
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let w = var.as_tensor().detach();
            let new = adam_update(
                &w,
                g,
                &self.first_moments[i],
                &self.second_moments[i],
                self.max_second_moments.get(i),
                step_size,
                p,
            )?;
            var.set(&new.w)?;
            self.first_moments[i] = new.m;
            self.second_moments[i] = new.v;
            if let Some(v_max) = new.v_max {
                self.max_second_moments[i] = v_max;
            }
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

impl OptimizerState for Adam {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(NAME, self.step)?];
        state::push_slot(&mut out, NAME, "m", &self.first_moments);
        state::push_slot(&mut out, NAME, "v", &self.second_moments);
        state::push_slot(&mut out, NAME, "v_max", &self.max_second_moments);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        let first_moments = state::read_slot(saved, NAME, "m", &self.vars)?;
        let second_moments = state::read_slot(saved, NAME, "v", &self.vars)?;
        let max_second_moments = if self.params.amsgrad {
            state::read_slot(saved, NAME, "v_max", &self.vars)?
        } else {
            Vec::new()
        };
        self.step = step;
        self.first_moments = first_moments;
        self.second_moments = second_moments;
        self.max_second_moments = max_second_moments;
        Ok(())
    }
}
