//! Picking an optimizer by name: a serialisable [`OptimizerConfig`] and the [`AnyOptimizer`] it builds.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use super::rule::UpdateRule;
use super::state::OptimizerState;
use super::{
    check_learning_rate, AdaDelta, AdaDeltaParams, AdaGrad, AdaGradParams, Adam, AdamParams, Nadam,
    NadamParams, RmsProp, RmsPropParams, Sgd, SgdParams,
};

/// The names [`OptimizerConfig::from_name`] accepts.
pub const OPTIMIZER_NAMES: [&str; 8] =
    ["sgd", "sgd-nesterov", "momentum", "adagrad", "rmsprop", "nadam", "adadelta", "adam"];

/// Momentum used by the `momentum` and `sgd-nesterov` names.
const NAMED_MOMENTUM: f64 = 0.9;

/// Which optimizer to use and its hyperparameters; serialises as e.g.
/// `{"optimizer": "adam", "learning_rate": 0.001, "beta_1": 0.9, ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "optimizer", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd(SgdParams),
    /// AdaGrad.
    AdaGrad(AdaGradParams),
    /// RMSProp.
    RmsProp(RmsPropParams),
    /// Nadam.
    Nadam(NadamParams),
    /// AdaDelta.
    AdaDelta(AdaDeltaParams),
    /// Adam.
    Adam(AdamParams),
}

impl OptimizerConfig {
    /// The configuration Keras uses for `optimizer="<name>"`, optionally with learning rate `lr`.
    ///
    /// Names (case-insensitive, `_` or `-`): `sgd`, `sgd-nesterov` (momentum 0.9, Nesterov),
    /// `momentum` (SGD with momentum 0.9), `adagrad`, `rmsprop`, `nadam`, `adadelta`, `adam`.
    pub fn from_name(name: &str, lr: Option<f64>) -> crate::Result<OptimizerConfig> {
        let key = name.trim().to_lowercase().replace('_', "-");
        let mut config = match key.as_str() {
            "sgd" => Self::Sgd(SgdParams::default()),
            "sgd-nesterov" => {
                Self::Sgd(SgdParams { momentum: NAMED_MOMENTUM, nesterov: true, ..SgdParams::default() })
            }
            "momentum" => Self::Sgd(SgdParams { momentum: NAMED_MOMENTUM, ..SgdParams::default() }),
            "adagrad" => Self::AdaGrad(AdaGradParams::default()),
            "rmsprop" => Self::RmsProp(RmsPropParams::default()),
            "nadam" => Self::Nadam(NadamParams::default()),
            "adadelta" => Self::AdaDelta(AdaDeltaParams::default()),
            "adam" => Self::Adam(AdamParams::default()),
            _ => {
                return Err(crate::Error::Config(format!(
                    "unknown optimizer `{name}`; valid names: {}",
                    OPTIMIZER_NAMES.join(", ")
                )))
            }
        };
        if let Some(lr) = lr {
            check_learning_rate(config.name(), lr)?;
            config.set_learning_rate(lr);
        }
        Ok(config)
    }

    /// The [`OPTIMIZER_NAMES`] entry that describes this configuration (`sgd`, `momentum` or
    /// `sgd-nesterov` for SGD); other hyperparameters are not part of the name (use serde for those).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(p) if p.momentum > 0.0 && p.nesterov => "sgd-nesterov",
            Self::Sgd(p) if p.momentum > 0.0 => "momentum",
            Self::Sgd(_) => "sgd",
            Self::AdaGrad(_) => "adagrad",
            Self::RmsProp(_) => "rmsprop",
            Self::Nadam(_) => "nadam",
            Self::AdaDelta(_) => "adadelta",
            Self::Adam(_) => "adam",
        }
    }

    /// Every hyperparameter as `name = value`, comma-separated (for tables of settings).
    pub fn describe(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields
                .iter()
                .filter(|(k, _)| k.as_str() != "optimizer")
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => self.name().to_string(),
        }
    }

    /// The (initial) learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Self::Sgd(p) => p.learning_rate,
            Self::AdaGrad(p) => p.learning_rate,
            Self::RmsProp(p) => p.learning_rate,
            Self::Nadam(p) => p.learning_rate,
            Self::AdaDelta(p) => p.learning_rate,
            Self::Adam(p) => p.learning_rate,
        }
    }

    /// Replace the (initial) learning rate; checked by [`OptimizerConfig::validate`] / `build`.
    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::Sgd(p) => p.learning_rate = lr,
            Self::AdaGrad(p) => p.learning_rate = lr,
            Self::RmsProp(p) => p.learning_rate = lr,
            Self::Nadam(p) => p.learning_rate = lr,
            Self::AdaDelta(p) => p.learning_rate = lr,
            Self::Adam(p) => p.learning_rate = lr,
        }
    }

    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            Self::Sgd(p) => p.validate(),
            Self::AdaGrad(p) => p.validate(),
            Self::RmsProp(p) => p.validate(),
            Self::Nadam(p) => p.validate(),
            Self::AdaDelta(p) => p.validate(),
            Self::Adam(p) => p.validate(),
        }
    }

    /// Build the optimizer over `vars` (give them in a stable order, see
    /// [`super::vars_in_name_order`], if its state will be saved and restored).
    pub fn build(&self, vars: Vec<Var>) -> crate::Result<AnyOptimizer> {
        self.validate()?;
        Ok(match *self {
            Self::Sgd(p) => AnyOptimizer::Sgd(Sgd::new(vars, p)?),
            Self::AdaGrad(p) => AnyOptimizer::AdaGrad(AdaGrad::new(vars, p)?),
            Self::RmsProp(p) => AnyOptimizer::RmsProp(RmsProp::new(vars, p)?),
            Self::Nadam(p) => AnyOptimizer::Nadam(Nadam::new(vars, p)?),
            Self::AdaDelta(p) => AnyOptimizer::AdaDelta(AdaDelta::new(vars, p)?),
            Self::Adam(p) => AnyOptimizer::Adam(Adam::new(vars, p)?),
        })
    }
}

impl Default for OptimizerConfig {
    /// Keras's `optimizer="adam"`.
    fn default() -> Self {
        Self::Adam(AdamParams::default())
    }
}

/// Any of the six optimizers, chosen at run time (built by [`OptimizerConfig::build`]).
#[derive(Debug)]
pub enum AnyOptimizer {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum.
    Sgd(Sgd),
    /// AdaGrad.
    AdaGrad(AdaGrad),
    /// RMSProp.
    RmsProp(RmsProp),
    /// Nadam.
    Nadam(Nadam),
    /// AdaDelta.
    AdaDelta(AdaDelta),
    /// Adam.
    Adam(Adam),
}

/// Apply the same expression to whichever optimizer `self` holds.
macro_rules! dispatch {
    ($self:expr, $opt:ident => $body:expr) => {
        match $self {
            AnyOptimizer::Sgd($opt) => $body,
            AnyOptimizer::AdaGrad($opt) => $body,
            AnyOptimizer::RmsProp($opt) => $body,
            AnyOptimizer::Nadam($opt) => $body,
            AnyOptimizer::AdaDelta($opt) => $body,
            AnyOptimizer::Adam($opt) => $body,
        }
    };
}

impl AnyOptimizer {
    /// The configuration this optimizer was built with (with its current learning rate).
    pub fn config(&self) -> OptimizerConfig {
        match self {
            Self::Sgd(o) => OptimizerConfig::Sgd(*o.params()),
            Self::AdaGrad(o) => OptimizerConfig::AdaGrad(*o.params()),
            Self::RmsProp(o) => OptimizerConfig::RmsProp(*o.params()),
            Self::Nadam(o) => OptimizerConfig::Nadam(*o.params()),
            Self::AdaDelta(o) => OptimizerConfig::AdaDelta(*o.params()),
            Self::Adam(o) => OptimizerConfig::Adam(*o.params()),
        }
    }
}

impl Optimizer for AnyOptimizer {
    type Config = OptimizerConfig;

    fn new(vars: Vec<Var>, config: OptimizerConfig) -> Result<Self> {
        Ok(config.build(vars)?)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        dispatch!(self, o => o.step(grads))
    }

    fn learning_rate(&self) -> f64 {
        dispatch!(self, o => o.learning_rate())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        dispatch!(self, o => o.set_learning_rate(lr))
    }
}

impl OptimizerState for AnyOptimizer {
    fn iterations(&self) -> u64 {
        dispatch!(self, o => o.iterations())
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        dispatch!(self, o => o.state())
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        dispatch!(self, o => o.load_state(state))
    }
}
