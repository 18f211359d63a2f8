//! In-memory copies of a model's variables: taken before an experiment that must not change the
//! weights (the learning-rate finder), for the best epoch (early stopping, checkpoints) or for
//! averaged weights, and put back by name.

use crate::error::{Error, Result};
use candle_core::Tensor;
use candle_nn::VarMap;

/// A copy of every variable of a `VarMap` (weights and batch-norm statistics), by name.
#[derive(Debug, Clone)]
pub struct WeightSnapshot {
    tensors: Vec<(String, Tensor)>,
}

impl WeightSnapshot {
    /// Copy the current value of every variable (sorted by name).
    pub fn capture(varmap: &VarMap) -> Result<Self> {
        let data = varmap.data().lock().map_err(|_| Error::Config("VarMap lock poisoned".into()))?;
        let mut tensors = data
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(WeightSnapshot { tensors })
    }

    /// A snapshot made of named tensors (e.g. read back from a checkpoint).
    pub fn from_tensors(mut tensors: Vec<(String, Tensor)>) -> Self {
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        WeightSnapshot { tensors }
    }

    /// The copied tensors, by name.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// Write the copies back into the variables of the same names; every variable of `varmap`
    /// must be in the snapshot with its shape.
    pub fn restore(&self, varmap: &VarMap) -> Result<()> {
        let data = varmap.data().lock().map_err(|_| Error::Config("VarMap lock poisoned".into()))?;
        for (name, var) in data.iter() {
            let saved = self
                .tensors
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .map(|i| &self.tensors[i].1)
                .map_err(|_| Error::Config(format!("the saved weights have no variable `{name}`")))?;
            if saved.dims() != var.dims() {
                return Err(Error::Config(format!(
                    "saved `{name}` has shape {:?}, the model's is {:?}",
                    saved.dims(),
                    var.dims()
                )));
            }
            var.set(saved)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarBuilder};

    #[test]
    fn restore_puts_back_the_captured_values_by_name() -> Result<()> {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let a = vb.get_with_hints(3, "a", Init::Const(1.0))?;
        let b = vb.get_with_hints(2, "b", Init::Const(2.0))?;
        let saved = WeightSnapshot::capture(&vm)?;
        for var in vm.all_vars() {
            var.set(&var.zeros_like()?)?;
        }
        saved.restore(&vm)?;
        assert_eq!(a.to_vec1::<f32>()?, vec![1.0; 3]);
        assert_eq!(b.to_vec1::<f32>()?, vec![2.0; 2]);
        let partial = WeightSnapshot::from_tensors(vec![("a".into(), a.copy()?)]);
        assert!(partial.restore(&vm).unwrap_err().to_string().contains("`b`"));
        Ok(())
    }
}
