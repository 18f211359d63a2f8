//! Saving and restoring an optimizer's state (moments, accumulators, step counter) for checkpoints.
//!
//! State tensors are named `<optimizer>.<slot>.<index>` (e.g. `adam.m.3`), where `index` is the
//! position of the variable in the `Vec<Var>` the optimizer was built from, plus
//! `<optimizer>.step` for the step counter. Build the optimizer from the variables in a stable
//! order (see [`super::vars_in_name_order`]) so that a state saved in one process lines up with
//! the same variables in another.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor, Var};

/// An optimizer whose state can be captured and restored, so training resumes exactly.
pub trait OptimizerState {
    /// The number of updates made so far (Keras's `optimizer.iterations`).
    fn iterations(&self) -> u64;

    /// Every state tensor, by name, including the step counter.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;

    /// Replace the state with `state` (as produced by [`OptimizerState::state`] of the same kind of
    /// optimizer over variables of the same shapes). Nothing is changed if an entry is missing or
    /// has the wrong shape.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;

    /// Write the state to a safetensors file (via a temporary file, so a crash leaves no half file).
    fn save_state_file(&self, path: &Path) -> crate::Result<()> {
        let mut map = HashMap::new();
        for (name, tensor) in self.state()? {
            map.insert(name, tensor.to_device(&Device::Cpu)?);
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        candle_core::safetensors::save(&map, &tmp)
            .map_err(|e| crate::Error::bad_file(&tmp, format!("cannot write optimizer state: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| crate::Error::io(path, e))
    }

    /// Read a state written by [`OptimizerState::save_state_file`] and load it.
    fn load_state_file(&mut self, path: &Path) -> crate::Result<()> {
        let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
        let map = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| crate::Error::bad_file(path, format!("not a safetensors optimizer state: {e}")))?;
        self.load_state(&map)
            .map_err(|e| crate::Error::bad_file(path, format!("cannot restore optimizer state: {e}")))
    }
}

/// The name of the step counter of `optimizer`.
fn step_key(optimizer: &str) -> String {
    format!("{optimizer}.step")
}

/// The name of slot `slot` of the variable at `index`.
fn slot_key(optimizer: &str, slot: &str, index: usize) -> String {
    format!("{optimizer}.{slot}.{index}")
}

/// Fetch a named entry or say which one is missing.
fn entry<'a>(state: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    state.get(key).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "optimizer state has no entry `{key}` (saved by another kind of optimizer?)"
        ))
    })
}

/// The step counter as a named scalar (i64, on the CPU).
pub(crate) fn step_entry(optimizer: &str, step: u64) -> Result<(String, Tensor)> {
    let step = i64::try_from(step)
        .map_err(|_| candle_core::Error::Msg(format!("step counter {step} too large to save")))?;
    Ok((step_key(optimizer), Tensor::new(step, &Device::Cpu)?))
}

/// Read the step counter of `optimizer`.
pub(crate) fn read_step(state: &HashMap<String, Tensor>, optimizer: &str) -> Result<u64> {
    let key = step_key(optimizer);
    let step = entry(state, &key)?.to_dtype(DType::I64)?.to_scalar::<i64>()?;
    u64::try_from(step)
        .map_err(|_| candle_core::Error::Msg(format!("optimizer state `{key}` is negative: {step}")))
}

/// A named f64 scalar (on the CPU) for host-side state such as Nadam's momentum product.
pub(crate) fn scalar_entry(optimizer: &str, name: &str, value: f64) -> Result<(String, Tensor)> {
    Ok((format!("{optimizer}.{name}"), Tensor::new(value, &Device::Cpu)?))
}

/// Read a named f64 scalar written by [`scalar_entry`].
pub(crate) fn read_scalar(state: &HashMap<String, Tensor>, optimizer: &str, name: &str) -> Result<f64> {
    entry(state, &format!("{optimizer}.{name}"))?.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// Append one slot's tensors (one per variable) to `out`.
pub(crate) fn push_slot(out: &mut Vec<(String, Tensor)>, optimizer: &str, slot: &str, tensors: &[Tensor]) {
    for (i, t) in tensors.iter().enumerate() {
        out.push((slot_key(optimizer, slot, i), t.clone()));
    }
}

/// Read one slot's tensors for `vars`, checking each shape and moving it to the variable's
/// dtype and device; also checks that the state holds no more variables than `vars`.
pub(crate) fn read_slot(
    state: &HashMap<String, Tensor>,
    optimizer: &str,
    slot: &str,
    vars: &[Var],
) -> Result<Vec<Tensor>> {
    let extra = slot_key(optimizer, slot, vars.len());
    if state.contains_key(&extra) {
        return Err(candle_core::Error::Msg(format!(
            "optimizer state has `{extra}` but the optimizer has only {} variables",
            vars.len()
        )));
    }
    vars.iter()
        .enumerate()
        .map(|(i, var)| {
            let key = slot_key(optimizer, slot, i);
            let t = entry(state, &key)?;
            if t.dims() != var.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "optimizer state `{key}` has shape {:?} but variable {i} has shape {:?} \
                     (were the variables given in a different order?)",
                    t.dims(),
                    var.dims()
                )));
            }
            t.to_dtype(var.dtype())?.to_device(var.device())
        })
        .collect()
}

/// A tensor of `value` shaped like the variable (an initial moment or accumulator).
pub(crate) fn filled(var: &Var, value: f64) -> Result<Tensor> {
    if value == 0.0 {
        var.zeros_like()
    } else {
        var.ones_like()?.affine(value, 0.0)
    }
}
