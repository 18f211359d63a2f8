//! Stochastic gradient descent with optional (Nesterov) momentum, as Keras's `SGD`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_fraction, check_learning_rate, trainable};

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

impl SgdParams {
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        check_learning_rate("SGD", self.learning_rate)?;
        check_fraction("SGD", "momentum", self.momentum)
    }
}

/// Stochastic gradient descent with optional momentum (see [`SgdParams`] for the update rule).
#[derive(Debug)]
pub struct Sgd {
    vars: Vec<Var>,
    /// Velocity v per variable; empty when μ = 0.
    velocities: Vec<Tensor>,
    params: SgdParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "sgd";

/// One SGD update of weight `w` with gradient `g` and velocity `v` (present iff μ > 0):
/// returns the new weight and the new velocity.
fn sgd_update(w: &Tensor, g: &Tensor, v: Option<&Tensor>, p: &SgdParams) -> Result<(Tensor, Option<Tensor>)> {
    let lr_g = g.affine(p.learning_rate, 0.0)?;
    match v {
        None => Ok((w.sub(&lr_g)?, None)),
        Some(v) => {
            let v = v.affine(p.momentum, 0.0)?.sub(&lr_g)?;
            let w = if p.nesterov { w.add(&v.affine(p.momentum, 0.0)?)?.sub(&lr_g)? } else { w.add(&v)? };
            Ok((w, Some(v)))
        }
    }
}

impl Sgd {
    /// The hyperparameters in use.
    pub fn params(&self) -> &SgdParams {
        &self.params
    }
}

impl candle_nn::Optimizer for Sgd {
    type Config = SgdParams;

    fn new(vars: Vec<Var>, params: SgdParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let velocities = if params.momentum > 0.0 { state::filled_like(&vars, 0.0)? } else { Vec::new() };
        Ok(Self { vars, velocities, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let w = var.as_tensor().detach();
            let (w, v) = sgd_update(&w, g, self.velocities.get(i), &self.params)?;
            var.set(&w)?;
            if let Some(v) = v {
                self.velocities[i] = v;
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

impl OptimizerState for Sgd {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(NAME, self.step)?];
        state::push_slot(&mut out, NAME, "velocity", &self.velocities);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        if self.params.momentum > 0.0 {
            self.velocities = state::read_slot(saved, NAME, "velocity", &self.vars)?;
        }
        self.step = step;
        Ok(())
    }
}
