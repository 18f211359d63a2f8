//! The one optimizer loop behind all six optimizers: an element-wise [`UpdateRule`] and the
//! [`SlotOptimizer`] that applies it to every variable.
//!
//! Each optimizer keeps a few tensors ("slots") per weight (Adam: `m`, `v`) and updates every
//! element independently. On the CPU the update is one fused pass over the weight, its gradient
//! and its slots, in place: for Adam 28 bytes per parameter (read w, g, m, v; write w, m, v),
//! where a chain of tensor ops reads and writes a full-size temporary per op. On other devices
//! the same rule runs as candle tensor ops ([`UpdateRule::update_tensors`]), so the optimizer
//! works on CUDA unchanged; the tests check that both paths agree.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use super::state::{self, OptimizerState};
use super::{detached_gradient, trainable};

/// Elements per parallel chunk of the fused CPU update.
const CHUNK: usize = 1 << 14;

/// An element-wise optimizer update (the hyperparameter structs implement it).
pub trait UpdateRule: Clone + std::fmt::Debug + Send + Sync {
    /// Name used in saved state (e.g. `adam`).
    const NAME: &'static str;
    /// Scalars computed once per step, the same for every variable (e.g. Adam's ηₜ).
    type Coefficients: Copy + Default + Send + Sync;

    /// Check every hyperparameter; an invalid one is an `Error::Config` naming it.
    fn validate(&self) -> crate::Result<()>;
    /// The slots each weight carries, with their initial values (depends on the options).
    fn slots(&self) -> Vec<(&'static str, f64)>;
    /// Scalars carried from step to step (e.g. Nadam's momentum product), with initial values.
    fn carried(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// The learning rate η.
    fn learning_rate(&self) -> f64;
    /// Change the learning rate (schedules call this between steps).
    fn set_learning_rate(&mut self, lr: f64);
    /// The coefficients of step `t` (1, 2, …), updating the carried scalars (none by default).
    fn coefficients(&self, _t: u64, _carried: &mut [f64]) -> Self::Coefficients {
        Self::Coefficients::default()
    }
    /// The update on the CPU, in place, for one chunk: `w`, `g` and each slot have equal length.
    fn update_slice(&self, c: &Self::Coefficients, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]);
    /// The same update as tensor ops (any device): returns the new weight and slots.
    fn update_tensors(&self, c: &Self::Coefficients, w: &Tensor, g: &Tensor, slots: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)>;
}

/// The [`UpdateRule`] learning-rate accessors of a hyperparameter struct with a
/// `learning_rate` field.
macro_rules! learning_rate_field {
    () => {
        fn learning_rate(&self) -> f64 {
            self.learning_rate
        }

        fn set_learning_rate(&mut self, lr: f64) {
            self.learning_rate = lr;
        }
    };
}
pub(crate) use learning_rate_field;

/// Where a variable's slots live: host vectors updated in place on the CPU, tensors elsewhere.
#[derive(Debug, Clone)]
enum Slots {
    Host(Vec<Vec<f32>>),
    Device(Vec<Tensor>),
}

impl Slots {
    /// The slots as tensors shaped like `var` (host slots are copied).
    fn tensors(&self, var: &Var) -> Result<Vec<Tensor>> {
        match self {
            Slots::Host(host) => host.iter().map(|h| Tensor::from_slice(h, var.shape(), var.device())).collect(),
            Slots::Device(tensors) => Ok(tensors.clone()),
        }
    }
}

/// An optimizer from an element-wise rule: `Adam` is `SlotOptimizer<AdamParams>`, and so on.
#[derive(Debug)]
pub struct SlotOptimizer<R: UpdateRule> {
    vars: Vec<Var>,
    slots: Vec<Slots>,
    carried: Vec<f64>,
    rule: R,
    step: u64,
    fused: bool,
}

impl<R: UpdateRule> SlotOptimizer<R> {
    /// The hyperparameters in use.
    pub fn params(&self) -> &R {
        &self.rule
    }

    /// Use tensor ops instead of the fused CPU pass (to compare the two; slower on the CPU).
    /// The slots keep their values.
    pub fn with_tensor_ops(mut self) -> Result<Self> {
        self.fused = false;
        for (var, slots) in self.vars.iter().zip(self.slots.iter_mut()) {
            *slots = Slots::Device(slots.tensors(var)?);
        }
        Ok(self)
    }

    fn uses_host_slots(&self, var: &Var) -> bool {
        self.fused && crate::kernels::applies_to(var.as_tensor())
    }

    fn fresh_slots(&self, var: &Var) -> Result<Slots> {
        if self.uses_host_slots(var) {
            let n = var.elem_count();
            Ok(Slots::Host(self.rule.slots().iter().map(|&(_, init)| vec![init as f32; n]).collect()))
        } else {
            self.device_slots(var)
        }
    }

    /// Slots as tensors on the variable's device.
    fn device_slots(&self, var: &Var) -> Result<Slots> {
        let tensors = self.rule.slots().iter().map(|&(_, init)| state::filled(var, init)).collect::<Result<_>>()?;
        Ok(Slots::Device(tensors))
    }
}

/// The fused CPU update of one variable, as an in-place op on the weight. The slots sit behind
/// a mutex only because `InplaceOp2::cpu_fwd` receives `&self`; nothing else locks it.
struct FusedUpdate<'a, R: UpdateRule> {
    rule: &'a R,
    coefficients: R::Coefficients,
    slots: std::sync::Mutex<&'a mut Vec<Vec<f32>>>,
}

impl<R: UpdateRule> InplaceOp2 for FusedUpdate<'_, R> {
    fn name(&self) -> &'static str {
        "dlkit-optimizer-update"
    }

    fn cpu_fwd(&self, ws: &mut CpuStorage, wl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<()> {
        let g = crate::kernels::f32_slice(gs, gl, self.name())?;
        let CpuStorage::F32(w) = ws else { candle_core::bail!("{}: weights must be f32", self.name()) };
        let Some((start, end)) = wl.contiguous_offsets() else {
            candle_core::bail!("{}: weights must be contiguous", self.name())
        };
        let w = &mut w[start..end];
        let mut slots = self.slots.lock().map_err(|_| candle_core::Error::Msg("optimizer slots lock poisoned".into()))?;
        if g.len() != w.len() || slots.iter().any(|s| s.len() != w.len()) {
            candle_core::bail!("{}: weight, gradient and slots differ in size", self.name())
        }
        // Chunk every slot alike, then hand each parallel task its chunk of all of them.
        let mut slot_chunks: Vec<Vec<&mut [f32]>> = (0..w.len().div_ceil(CHUNK)).map(|_| Vec::new()).collect();
        for slot in slots.iter_mut() {
            for (i, chunk) in slot.chunks_mut(CHUNK).enumerate() {
                slot_chunks[i].push(chunk);
            }
        }
        w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(slot_chunks.into_par_iter()).for_each(
            |((w, g), mut s)| self.rule.update_slice(&self.coefficients, w, g, &mut s),
        );
        Ok(())
    }
}

impl<R: UpdateRule> candle_nn::Optimizer for SlotOptimizer<R> {
    type Config = R;

    fn new(vars: Vec<Var>, rule: R) -> Result<Self> {
        rule.validate()?;
        let vars = trainable(vars);
        let carried = rule.carried().iter().map(|&(_, init)| init).collect();
        let mut opt = SlotOptimizer { vars, slots: Vec::new(), carried, rule, step: 0, fused: true };
        opt.slots = opt.vars.iter().map(|v| opt.fresh_slots(v)).collect::<Result<_>>()?;
        Ok(opt)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.rule.coefficients(self.step, &mut self.carried);
        for (var, slots) in self.vars.iter().zip(self.slots.iter_mut()) {
            let Some(g) = detached_gradient(grads, var) else { continue };
            match slots {
                Slots::Host(host) => {
                    let op = FusedUpdate { rule: &self.rule, coefficients: c, slots: std::sync::Mutex::new(host) };
                    var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
                }
                Slots::Device(tensors) => {
                    let (w, new) = self.rule.update_tensors(&c, &var.as_tensor().detach(), &g, tensors)?;
                    var.set(&w)?;
                    *tensors = new;
                }
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.rule.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.rule.set_learning_rate(lr);
    }
}

impl<R: UpdateRule> OptimizerState for SlotOptimizer<R> {
    fn iterations(&self) -> u64 {
        self.step
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![state::step_entry(R::NAME, self.step)?];
        for (&(name, _), value) in self.rule.carried().iter().zip(&self.carried) {
            out.push(state::scalar_entry(R::NAME, name, *value)?);
        }
        let per_var = self.vars.iter().zip(&self.slots).map(|(var, slots)| slots.tensors(var)).collect::<Result<Vec<_>>>()?;
        for (k, &(slot, _)) in self.rule.slots().iter().enumerate() {
            let tensors: Vec<Tensor> = per_var.iter().map(|slots| slots[k].clone()).collect();
            state::push_slot(&mut out, R::NAME, slot, &tensors);
        }
        Ok(out)
    }

    fn load_state(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let step = state::read_step(saved, R::NAME)?;
        let carried =
            self.rule.carried().iter().map(|&(name, _)| state::read_scalar(saved, R::NAME, name)).collect::<Result<Vec<_>>>()?;
        let by_slot = self
            .rule
            .slots()
            .iter()
            .map(|&(slot, _)| state::read_slot(saved, R::NAME, slot, &self.vars))
            .collect::<Result<Vec<_>>>()?;
        let slots = (0..self.vars.len())
            .map(|i| {
                let tensors: Vec<Tensor> = by_slot.iter().map(|slot| slot[i].clone()).collect();
                if self.uses_host_slots(&self.vars[i]) {
                    let host = tensors.iter().map(|t| t.flatten_all()?.to_vec1::<f32>()).collect::<Result<_>>()?;
                    Ok(Slots::Host(host))
                } else {
                    Ok(Slots::Device(tensors))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.step = step;
        self.carried = carried;
        self.slots = slots;
        Ok(())
    }
}
