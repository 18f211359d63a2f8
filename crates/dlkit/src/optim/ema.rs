//! An exponential moving average (EMA) of the weights, to evaluate with averaged weights.
//!
//! After every optimizer step, each shadow copy moves towards its variable:
//!
//! ```text
//! shadow ← d·shadow + (1 − d)·w        (shadow₀ = w at construction)
//! ```
//! with `d` the decay (e.g. 0.999: an average over roughly the last 1/(1 − d) = 1000 steps).
//! Optionally the decay warms up as torch-ema's `ExponentialMovingAverage(use_num_updates=True)`
//! does: at the n-th update (n = 1, 2, …) `d = min(decay, (1 + n) / (10 + n))`, so early
//! averages forget the random initial weights quickly. timm's `ModelEmaV2`, the usual choice in
//! PyTorch training scripts of the reference's time (PyTorch 1.7), has no warm-up, so it is off
//! by default.
//!
//! **Batch-norm running statistics.** timm's `ModelEmaV2` averages every floating-point entry
//! of the model's `state_dict`, running means and variances included; torch-ema averages only
//! the parameters and evaluates with the model's current running statistics. In a candle
//! `VarMap` the running statistics are variables too (`…running_mean`, `…running_var`), so
//! [`RunningStats::Average`] (the default, timm's behaviour, which the reference's PyTorch setup
//! most plausibly used) averages them with the weights, and [`RunningStats::Current`] leaves them
//! out (torch-ema's).
//!
//! Use: `update()` after each optimizer step; `apply()` before evaluating (the variables then
//! hold the averages) and `restore()` after (the raw weights come back); or `swap()` twice.
//! On the CPU the update is one fused in-place pass over each shadow and its variable; on other
//! devices it is tensor ops.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Elements per parallel chunk of the fused CPU update.
const CHUNK: usize = 1 << 14;

/// What happens to batch norm's running statistics (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RunningStats {
    /// Averaged like the weights (timm `ModelEmaV2`).
    #[default]
    Average,
    /// Not averaged: evaluation uses the model's current statistics (torch-ema).
    Current,
}

/// Hyperparameters of [`WeightEma`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// Decay d in [0, 1): the weight of the old average at each update (e.g. 0.999).
    pub decay: f64,
    /// torch-ema's warm-up: d = min(decay, (1 + n)/(10 + n)) at the n-th update.
    #[serde(default)]
    pub warmup: bool,
    /// Whether batch norm's running statistics are averaged.
    #[serde(default)]
    pub running_stats: RunningStats,
}

impl EmaConfig {
    /// Decay `decay`, no warm-up, running statistics averaged (timm's `ModelEmaV2`).
    pub fn new(decay: f64) -> crate::Result<Self> {
        let c = EmaConfig { decay, warmup: false, running_stats: RunningStats::Average };
        c.validate()?;
        Ok(c)
    }

    /// Check the decay: finite and in [0, 1).
    pub fn validate(&self) -> crate::Result<()> {
        if (0.0..1.0).contains(&self.decay) {
            Ok(())
        } else {
            Err(crate::Error::Config(format!("weight EMA: decay must be in [0, 1), got {}", self.decay)))
        }
    }

    /// The decay used by the `n`-th update (n = 1, 2, …).
    pub fn decay_at(&self, n: u64) -> f64 {
        if self.warmup {
            self.decay.min((1.0 + n as f64) / (10.0 + n as f64))
        } else {
            self.decay
        }
    }
}

/// Whether a `VarMap` name is a batch-norm running statistic.
fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Shadow copies of a set of named variables, moved towards them by [`WeightEma::update`].
#[derive(Debug)]
pub struct WeightEma {
    config: EmaConfig,
    names: Vec<String>,
    vars: Vec<Var>,
    /// The averages, in variables of their own (separate storage from `vars`).
    shadows: Vec<Var>,
    /// The raw weights while [`WeightEma::apply`] has put the averages in place.
    saved: Option<Vec<Tensor>>,
    /// Whether `vars` hold the averages after [`WeightEma::swap`].
    swapped: bool,
    updates: u64,
}

impl WeightEma {
    /// An EMA of `vars` (name, variable), starting from their current values. Non-float
    /// variables are skipped, as are running statistics with [`RunningStats::Current`].
    pub fn new(vars: Vec<(String, Var)>, config: EmaConfig) -> crate::Result<Self> {
        config.validate()?;
        let mut named: Vec<(String, Var)> = vars
            .into_iter()
            .filter(|(name, var)| {
                var.dtype().is_float() && !(config.running_stats == RunningStats::Current && is_running_stat(name))
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = named.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(crate::Error::Config(format!("weight EMA: variable name `{}` given twice", w[0].0)));
        }
        let shadows = named.iter().map(|(_, v)| Var::from_tensor(&v.as_tensor().detach())).collect::<Result<_>>()?;
        let (names, vars) = named.into_iter().unzip();
        Ok(WeightEma { config, names, vars, shadows, saved: None, swapped: false, updates: 0 })
    }

    /// An EMA of every variable of `varmap` (running statistics as `config` says).
    pub fn from_varmap(varmap: &candle_nn::VarMap, config: EmaConfig) -> crate::Result<Self> {
        let named = {
            let data = varmap.data().lock().map_err(|_| crate::Error::Config("VarMap lock poisoned".into()))?;
            data.iter().map(|(name, var)| (name.clone(), var.clone())).collect()
        };
        Self::new(named, config)
    }

    /// The hyperparameters.
    pub fn config(&self) -> &EmaConfig {
        &self.config
    }

    /// The names of the averaged variables, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Updates made so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The average of the variable `name`, if it is averaged.
    pub fn shadow(&self, name: &str) -> Option<&Tensor> {
        let i = self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()?;
        Some(if self.swapped { self.vars[i].as_tensor() } else { self.shadows[i].as_tensor() })
    }

    fn check_raw_in_place(&self, what: &str) -> Result<()> {
        if self.saved.is_some() || self.swapped {
            candle_core::bail!("weight EMA: {what} while the averages are in place; restore() or swap() back first")
        }
        Ok(())
    }

    /// Move every shadow towards its variable: `shadow ← d·shadow + (1 − d)·w`. Call after
    /// each optimizer step (not while the averages are applied).
    pub fn update(&mut self) -> Result<()> {
        self.check_raw_in_place("update()")?;
        self.updates += 1;
        let decay = self.config.decay_at(self.updates);
        for (shadow, var) in self.shadows.iter().zip(&self.vars) {
            let w = var.as_tensor().detach();
            if crate::kernels::applies_to(&w) && crate::kernels::applies_to(shadow.as_tensor()) {
                shadow.as_tensor().inplace_op2(&w.contiguous()?, &FusedEma { decay: decay as f32 })?;
            } else {
                let s = shadow.as_tensor();
                shadow.set(&((s * decay)? + (&w * (1.0 - decay))?)?)?;
            }
        }
        Ok(())
    }

    /// Put the averages into the variables, keeping the raw weights for [`WeightEma::restore`].
    pub fn apply(&mut self) -> Result<()> {
        self.check_raw_in_place("apply()")?;
        let mut saved = Vec::with_capacity(self.vars.len());
        for (var, shadow) in self.vars.iter().zip(&self.shadows) {
            saved.push(var.as_tensor().detach().copy()?);
            var.set(shadow.as_tensor())?;
        }
        self.saved = Some(saved);
        Ok(())
    }

    /// Put back the raw weights saved by [`WeightEma::apply`] (an error if nothing was applied).
    pub fn restore(&mut self) -> Result<()> {
        let Some(saved) = self.saved.take() else {
            candle_core::bail!("weight EMA: restore() without a previous apply()")
        };
        for (var, raw) in self.vars.iter().zip(&saved) {
            var.set(raw)?;
        }
        Ok(())
    }

    /// Exchange the variables' values with the averages: once to evaluate with the averages,
    /// again to go back. Costs no extra copy of the model between the two calls.
    pub fn swap(&mut self) -> Result<()> {
        if self.saved.is_some() {
            candle_core::bail!("weight EMA: swap() while apply() is in force; restore() first")
        }
        for (var, shadow) in self.vars.iter().zip(&self.shadows) {
            let raw = var.as_tensor().detach().copy()?;
            var.set(shadow.as_tensor())?;
            shadow.set(&raw)?;
        }
        self.swapped = !self.swapped;
        Ok(())
    }

    /// The averages by name (`ema.<variable name>`) and the update counter (`ema.updates`), on
    /// the CPU, for a checkpoint.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let updates = i64::try_from(self.updates)
            .map_err(|_| candle_core::Error::Msg(format!("EMA update counter {} too large to save", self.updates)))?;
        let mut out = vec![("ema.updates".to_string(), Tensor::new(updates, &Device::Cpu)?)];
        for name in &self.names {
            let shadow = self.shadow(name).ok_or_else(|| candle_core::Error::Msg(format!("no shadow for {name}")))?;
            out.push((format!("ema.{name}"), shadow.to_device(&Device::Cpu)?));
        }
        Ok(out)
    }

    /// Load averages saved by [`WeightEma::state`]. Every averaged variable must be there with
    /// its shape; nothing changes otherwise. Not while the averages are in place.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.check_raw_in_place("load_state()")?;
        let updates = state
            .get("ema.updates")
            .ok_or_else(|| candle_core::Error::Msg("EMA state has no `ema.updates`".into()))?
            .to_dtype(DType::I64)?
            .to_scalar::<i64>()?;
        let updates = u64::try_from(updates)
            .map_err(|_| candle_core::Error::Msg(format!("EMA state `ema.updates` is negative: {updates}")))?;
        let mut loaded = Vec::with_capacity(self.names.len());
        for (name, shadow) in self.names.iter().zip(&self.shadows) {
            let key = format!("ema.{name}");
            let t = state.get(&key).ok_or_else(|| candle_core::Error::Msg(format!("EMA state has no `{key}`")))?;
            if t.dims() != shadow.dims() {
                candle_core::bail!("EMA state `{key}` has shape {:?}, the variable {:?}", t.dims(), shadow.dims())
            }
            loaded.push(t.to_dtype(shadow.dtype())?.to_device(shadow.device())?);
        }
        for (shadow, t) in self.shadows.iter().zip(&loaded) {
            shadow.set(t)?;
        }
        self.updates = updates;
        Ok(())
    }
}

/// `shadow ← d·shadow + (1 − d)·w` in place on the CPU, one pass.
struct FusedEma {
    decay: f32,
}

impl InplaceOp2 for FusedEma {
    fn name(&self) -> &'static str {
        "dlkit-weight-ema"
    }

    fn cpu_fwd(&self, ss: &mut CpuStorage, sl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<()> {
        let w = crate::kernels::f32_slice(ws, wl, self.name())?;
        let CpuStorage::F32(s) = ss else { candle_core::bail!("{}: the average must be f32", self.name()) };
        let Some((start, end)) = sl.contiguous_offsets() else {
            candle_core::bail!("{}: the average must be contiguous", self.name())
        };
        let s = &mut s[start..end];
        if s.len() != w.len() {
            candle_core::bail!("{}: average and weight differ in size", self.name())
        }
        let (d, one_minus_d) = (self.decay, 1.0 - self.decay);
        s.par_chunks_mut(CHUNK).zip(w.par_chunks(CHUNK)).for_each(|(s, w)| {
            s.iter_mut().zip(w).for_each(|(s, &w)| *s = d * *s + one_minus_d * w);
        });
        Ok(())
    }
}
