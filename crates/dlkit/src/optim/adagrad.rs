//! AdaGrad: per-weight learning rates shrinking with the sum of squared gradients, as Keras's `Adagrad`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_epsilon, check_learning_rate, trainable};

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

impl AdaGradParams {
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
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
}

/// AdaGrad (see [`AdaGradParams`] for the update rule).
#[derive(Debug)]
pub struct AdaGrad {
    vars: Vec<Var>,
    /// Sum of squared gradients a per variable.
    accumulators: Vec<Tensor>,
    params: AdaGradParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "adagrad";

/// One AdaGrad update of weight `w` with gradient `g` and accumulator `a`:
/// returns the new weight and the new accumulator.
fn adagrad_update(w: &Tensor, g: &Tensor, a: &Tensor, p: &AdaGradParams) -> Result<(Tensor, Tensor)> {
    let a = a.add(&g.sqr()?)?;
    let step = g.affine(p.learning_rate, 0.0)?.div(&a.sqrt()?.affine(1.0, p.epsilon)?)?;
    Ok((w.sub(&step)?, a))
}

impl AdaGrad {
    /// The hyperparameters in use.
    pub fn params(&self) -> &AdaGradParams {
        &self.params
    }
}

impl candle_nn::Optimizer for AdaGrad {
    type Config = AdaGradParams;

    fn new(vars: Vec<Var>, params: AdaGradParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let accumulators = state::filled_like(&vars, params.initial_accumulator_value)?;
        Ok(Self { vars, accumulators, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (var, a) in self.vars.iter().zip(self.accumulators.iter_mut()) {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let (w, new_a) = adagrad_update(&var.as_tensor().detach(), g, a, &self.params)?;
            var.set(&w)?;
            *a = new_a;
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

impl OptimizerState for AdaGrad {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(NAME, self.step)?];
        state::push_slot(&mut out, NAME, "accumulator", &self.accumulators);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        self.accumulators = state::read_slot(saved, NAME, "accumulator", &self.vars)?;
        self.step = step;
        Ok(())
    }
}
