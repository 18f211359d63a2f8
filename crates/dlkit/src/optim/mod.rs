//! Optimizers implementing `candle_nn::Optimizer`, with Keras (tf.keras 2.x) defaults and update rules.
//!
//! One file per optimizer ([`Sgd`], [`AdaGrad`], [`RmsProp`], [`Nadam`], [`AdaDelta`], [`Adam`]),
//! each with a `…Params` struct whose `Default` is the Keras default and whose doc comment gives
//! the exact update rule. [`OptimizerConfig`] picks one by name (as the coursework passed
//! `optimizer="adam"` to Keras) and builds an [`AnyOptimizer`]; [`OptimizerState`] saves and
//! restores the optimizer's moments and step counter for checkpoints. [`l2_penalty`] is Keras's
//! `kernel_regularizer=l2(λ)` term. [`WeightEma`] keeps an exponential moving average of the
//! weights to evaluate with.

mod adadelta;
mod adagrad;
mod adam;
mod config;
mod ema;
mod nadam;
mod rmsprop;
mod rule;
mod sgd;
mod state;

pub use adadelta::{AdaDelta, AdaDeltaParams};
pub use adagrad::{AdaGrad, AdaGradParams};
pub use adam::{Adam, AdamParams};
pub use config::{AnyOptimizer, OptimizerConfig, OPTIMIZER_NAMES};
pub use ema::{EmaConfig, RunningStats, WeightEma};
pub use nadam::{Nadam, NadamCoefficients, NadamParams};
pub use rmsprop::{RmsProp, RmsPropParams};
pub use rule::{SlotOptimizer, UpdateRule};
pub use sgd::{Sgd, SgdParams};
pub use state::OptimizerState;

use candle_core::{Tensor, Var};

/// What the training loop needs of an optimizer: a step from gradients, the learning rate, and
/// its state for checkpoints. Every optimizer that implements `candle_nn::Optimizer` and
/// [`OptimizerState`] (all of dlkit's) is one.
pub trait TrainOptimizer {
    /// Apply one update from `grads`.
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Change the learning rate.
    fn set_learning_rate(&mut self, lr: f64);
    /// Every state tensor by name (see [`OptimizerState::state`]).
    fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>>;
    /// Put back a state from [`TrainOptimizer::state`].
    fn load_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> candle_core::Result<()>;
}

impl<O: candle_nn::Optimizer + OptimizerState> TrainOptimizer for O {
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> candle_core::Result<()> {
        candle_nn::Optimizer::step(self, grads)
    }

    fn learning_rate(&self) -> f64 {
        candle_nn::Optimizer::learning_rate(self)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        candle_nn::Optimizer::set_learning_rate(self, lr)
    }

    fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        OptimizerState::state(self)
    }

    fn load_state(&mut self, state: &std::collections::HashMap<String, Tensor>) -> candle_core::Result<()> {
        OptimizerState::load_state(self, state)
    }
}

/// Keras's default L2 factor: `regularizers.l2()` means λ = 0.01.
pub const DEFAULT_L2: f64 = 0.01;

/// Keras's `kernel_regularizer=l2(λ)` penalty: λ·Σ w² over all the given weight tensors.
///
/// The result is a scalar tensor on the weights' device, to be added to the data loss
/// (`Network::penalty`); its gradient is 2λw for each weight. λ must be finite and ≥ 0 and
/// at least one weight tensor must be given.
pub fn l2_penalty(weights: &[&Tensor], lambda: f64) -> candle_core::Result<Tensor> {
    if !lambda.is_finite() || lambda < 0.0 {
        return Err(
            crate::Error::Config(format!("l2 penalty factor must be finite and >= 0, got {lambda}")).into()
        );
    }
    let (first, rest) = weights
        .split_first()
        .ok_or_else(|| crate::Error::Config("l2_penalty needs at least one weight tensor".to_string()))?;
    let mut sum = crate::kernels::penalty::sum_of_squares(first)?;
    for w in rest {
        sum = (sum + crate::kernels::penalty::sum_of_squares(w)?)?;
    }
    sum.affine(lambda, 0.0)
}

/// The variables of a `VarMap` sorted by name: a stable order for building an optimizer,
/// so that a saved optimizer state (keyed by position) lines up with the same variables
/// when it is loaded in another process (`VarMap::all_vars` has no fixed order).
pub fn vars_in_name_order(varmap: &candle_nn::VarMap) -> Vec<Var> {
    let data = match varmap.data().lock() {
        Ok(guard) => guard,
        // A panic elsewhere while holding the lock leaves the map itself intact.
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut named: Vec<(&String, &Var)> = data.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Check a learning rate: finite and ≥ 0.
pub(crate) fn check_learning_rate(optimizer: &str, lr: f64) -> crate::Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(crate::Error::Config(format!("{optimizer}: learning_rate must be finite and >= 0, got {lr}")))
    }
}

/// Check a decay factor or momentum (ρ, β₁, β₂, μ): finite and in [0, 1).
pub(crate) fn check_fraction(optimizer: &str, name: &str, value: f64) -> crate::Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(crate::Error::Config(format!("{optimizer}: {name} must be in [0, 1), got {value}")))
    }
}

/// Check an epsilon: finite and > 0.
pub(crate) fn check_epsilon(optimizer: &str, epsilon: f64) -> crate::Result<()> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(crate::Error::Config(format!("{optimizer}: epsilon must be finite and > 0, got {epsilon}")))
    }
}

/// Keep only the floating-point variables (integer variables cannot be trained).
pub(crate) fn trainable(vars: Vec<Var>) -> Vec<Var> {
    vars.into_iter().filter(|v| v.dtype().is_float()).collect()
}

/// The gradient of `var`, detached from the backward graph (`None` when it got none).
///
/// Gradients carry the graph of the backward pass, which holds the step's activations: an
/// optimizer that built its state from them directly would chain every step's graph to the
/// next and memory would grow without bound.
pub(crate) fn detached_gradient(grads: &candle_core::backprop::GradStore, var: &Var) -> Option<Tensor> {
    grads.get(var).map(Tensor::detach)
}
