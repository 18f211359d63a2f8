//! Reproducible weight initialisation: a `VarBuilder` whose random draws come from a seed.
//!
//! candle's CPU random number generator cannot be seeded, so `VarMap`'s own initialisation
//! differs run to run. [`seeded`] wraps a `VarMap`: every new variable is drawn on the host
//! from a generator seeded by `(seed, variable name)`, then moved to the device. The same
//! seed gives the same weights on CPU and CUDA, whatever order the layers are built in.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};

/// A `VarBuilder` over `varmap` whose initial values are drawn from `seed`.
pub fn seeded(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    let backend: Box<dyn SimpleBackend> = Box::new(SeededVarMap { varmap: varmap.clone(), seed });
    VarBuilder::from_backend(backend, dtype, device.clone())
}

/// Keras's `glorot_uniform`: U(−l, l) with l = √(6 / (fan_in + fan_out)).
pub fn glorot_uniform(fan_in: usize, fan_out: usize) -> Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -limit, up: limit }
}

/// He normal initialisation: N(0, 2 / fan_in) (Keras truncates at 2σ; this does not).
pub fn he_normal(fan_in: usize) -> Init {
    Init::Randn { mean: 0.0, stdev: (2.0 / fan_in as f64).sqrt() }
}

struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

impl SeededVarMap {
    fn draw(&self, shape: &Shape, name: &str, init: Init) -> Result<Vec<f32>> {
        let n = shape.elem_count();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ fnv1a(name));
        let err = |e: &dyn std::fmt::Display| candle_core::Error::Msg(format!("init {name}: {e}"));
        let normal = |rng: &mut rand::rngs::StdRng, mean: f64, std: f64| -> Result<Vec<f32>> {
            let d = Normal::new(mean, std).map_err(|e| err(&e))?;
            Ok((0..n).map(|_| d.sample(rng) as f32).collect())
        };
        let uniform = |rng: &mut rand::rngs::StdRng, lo: f64, up: f64| -> Result<Vec<f32>> {
            if lo == up {
                return Ok(vec![lo as f32; n]);
            }
            let d = Uniform::new(lo, up).map_err(|e| err(&e))?;
            Ok((0..n).map(|_| d.sample(rng) as f32).collect())
        };
        match init {
            Init::Const(c) => Ok(vec![c as f32; n]),
            Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming { dist, fan, non_linearity } => {
                let fan = match fan {
                    FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                    FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
                };
                let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, -bound, bound)
                    }
                }
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        if let Some(var) = data.get(name) {
            let t = var.as_tensor();
            if t.shape() != &s {
                candle_core::bail!("{name}: shape {:?} already stored, {s:?} requested", t.shape());
            }
            return Ok(t.clone());
        }
        let values = self.draw(&s, name, h)?;
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: a seeded VarMap creates variables with a shape; use `get`")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

/// FNV-1a: a stable hash of a name (std's hasher may change between releases).
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() -> Result<()> {
        let build = |seed| -> Result<Vec<f32>> {
            let vm = VarMap::new();
            let vb = seeded(&vm, seed, DType::F32, &Device::Cpu);
            let w = vb.get_with_hints((4, 5), "w", glorot_uniform(5, 4))?;
            w.flatten_all()?.to_vec1()
        };
        assert_eq!(build(1)?, build(1)?);
        assert_ne!(build(1)?, build(2)?);
        let w = build(3)?;
        let limit = (6.0f32 / 9.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        Ok(())
    }

    #[test]
    fn variables_land_in_the_varmap_and_are_trainable() -> Result<()> {
        let vm = VarMap::new();
        let vb = seeded(&vm, 0, DType::F32, &Device::Cpu);
        let b = vb.get_with_hints(3, "b", Init::Const(0.5))?;
        assert_eq!(b.to_vec1::<f32>()?, vec![0.5; 3]);
        assert_eq!(vm.all_vars().len(), 1);
        // the tensor handed out is the variable itself: updating the Var changes it
        vm.all_vars()[0].set(&Tensor::new(&[1f32, 2., 3.], &Device::Cpu)?)?;
        assert_eq!(b.to_vec1::<f32>()?, vec![1., 2., 3.]);
        Ok(())
    }
}
