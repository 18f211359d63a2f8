//! RMSProp: divide the gradient by a running root-mean-square of recent gradients, as Keras's `RMSprop`.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::state::{self, OptimizerState};
use super::{check_epsilon, check_fraction, check_learning_rate, trainable};

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

impl RmsPropParams {
    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        check_learning_rate("RMSProp", self.learning_rate)?;
        check_fraction("RMSProp", "rho", self.rho)?;
        check_fraction("RMSProp", "momentum", self.momentum)?;
        check_epsilon("RMSProp", self.epsilon)
    }
}

/// RMSProp (see [`RmsPropParams`] for the update rule).
#[derive(Debug)]
pub struct RmsProp {
    vars: Vec<Var>,
    /// Running mean square s per variable.
    mean_squares: Vec<Tensor>,
    /// Running mean gradient m per variable; empty unless centered.
    mean_gradients: Vec<Tensor>,
    /// Velocity v per variable; empty when μ = 0.
    velocities: Vec<Tensor>,
    params: RmsPropParams,
    step: u64,
}

/// Name used in saved state.
const NAME: &str = "rmsprop";

/// The state of one variable after an RMSProp update.
struct RmsPropSlots {
    w: Tensor,
    mean_square: Tensor,
    mean_gradient: Option<Tensor>,
    velocity: Option<Tensor>,
}

/// One RMSProp update of weight `w` with gradient `g`, mean square `s`, mean gradient `m`
/// (present iff centered) and velocity `v` (present iff μ > 0).
fn rmsprop_update(
    w: &Tensor,
    g: &Tensor,
    s: &Tensor,
    m: Option<&Tensor>,
    v: Option<&Tensor>,
    p: &RmsPropParams,
) -> Result<RmsPropSlots> {
    let s = s.affine(p.rho, 0.0)?.add(&g.sqr()?.affine(1.0 - p.rho, 0.0)?)?;
    let m = m.map(|m| m.affine(p.rho, 0.0)?.add(&g.affine(1.0 - p.rho, 0.0)?)).transpose()?;
    let d = match &m {
        Some(m) => s.sub(&m.sqr()?)?,
        None => s.clone(),
    };
    let lr_g = g.affine(p.learning_rate, 0.0)?;
    let (w, v) = match v {
        None => (w.sub(&lr_g.div(&d.sqrt()?.affine(1.0, p.epsilon)?)?)?, None),
        Some(v) => {
            let v = v.affine(p.momentum, 0.0)?.add(&lr_g.div(&d.affine(1.0, p.epsilon)?.sqrt()?)?)?;
            (w.sub(&v)?, Some(v))
        }
    };
    Ok(RmsPropSlots { w, mean_square: s, mean_gradient: m, velocity: v })
}

impl RmsProp {
    /// The hyperparameters in use.
    pub fn params(&self) -> &RmsPropParams {
        &self.params
    }
}

impl candle_nn::Optimizer for RmsProp {
    type Config = RmsPropParams;

    fn new(vars: Vec<Var>, params: RmsPropParams) -> Result<Self> {
        params.validate()?;
        let vars = trainable(vars);
        let mean_squares = state::filled_like(&vars, 0.0)?;
        let mean_gradients = if params.centered { state::filled_like(&vars, 0.0)? } else { Vec::new() };
        let velocities = if params.momentum > 0.0 { state::filled_like(&vars, 0.0)? } else { Vec::new() };
        Ok(Self { vars, mean_squares, mean_gradients, velocities, params, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = super::detached_gradient(grads, var) else { continue };
            let g = &g;
            let w = var.as_tensor().detach();
            let new = rmsprop_update(
                &w,
                g,
                &self.mean_squares[i],
                self.mean_gradients.get(i),
                self.velocities.get(i),
                &self.params,
            )?;
            var.set(&new.w)?;
            self.mean_squares[i] = new.mean_square;
            if let Some(m) = new.mean_gradient {
                self.mean_gradients[i] = m;
            }
            if let Some(v) = new.velocity {
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

impl OptimizerState for RmsProp {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(NAME, self.step)?];
        state::push_slot(&mut out, NAME, "mean_square", &self.mean_squares);
        state::push_slot(&mut out, NAME, "mean_gradient", &self.mean_gradients);
        state::push_slot(&mut out, NAME, "velocity", &self.velocities);
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, NAME)?;
        let mean_squares = state::read_slot(saved, NAME, "mean_square", &self.vars)?;
        let mean_gradients = if self.params.centered {
            state::read_slot(saved, NAME, "mean_gradient", &self.vars)?
        } else {
            Vec::new()
        };
        let velocities = if self.params.momentum > 0.0 {
            state::read_slot(saved, NAME, "velocity", &self.vars)?
        } else {
            Vec::new()
        };
        self.step = step;
        self.mean_squares = mean_squares;
        self.mean_gradients = mean_gradients;
        self.velocities = velocities;
        Ok(())
    }
}
