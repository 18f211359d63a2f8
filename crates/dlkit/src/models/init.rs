//! Reproducible weight initialisation: a `VarBuilder` whose random draws come from a seed.
//!
//! candle's CPU random number generator cannot be seeded, so `VarMap`'s own initialisation
//! differs run to run. [`seeded`] wraps a `VarMap`: every new variable is drawn on the host
//! from a generator seeded by `(seed, variable name)`, then moved to the device. The same
//! seed gives the same weights on CPU and CUDA, whatever order the layers are built in.
//!
//! Kaiming (He) normal requests are drawn as Keras draws `he_normal`: tf_keras's
//! `VarianceScaling(scale=2, mode='fan_in', distribution='truncated_normal')` samples a normal
//! of std `σ₀ = √(2/fan_in) / 0.87962566103423978`, redrawing every value beyond 2σ₀, so
//! that the truncated values have std `√(2/fan_in)` (0.8796… is the std of a standard normal
//! truncated to ±2). candle's own `VarMap` draws the same request untruncated.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};

/// The standard deviation of a standard normal truncated to [−2, 2]
/// (`scipy.stats.truncnorm.std(-2, 2)`; tf_keras's `VarianceScaling` writes 0.87962566103423978).
pub const TRUNCATED_NORMAL_STD: f64 = 0.879_625_661_034_239_8;

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

/// Keras's `he_normal`: a normal truncated at 2σ₀ with std √(2 / fan_in) after truncation,
/// fan_in taken from the kernel's shape (`in·k·k` for candle's `[out, in, k, k]` convolution
/// kernels, `in` for `[out, in]` dense weights — Keras's fan_in for the same layer). Drawn
/// truncated by [`seeded`] VarBuilders; a plain `VarMap` draws N(0, 2 / fan_in).
pub fn he_normal() -> Init {
    Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::ReLU,
    }
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
                    NormalOrUniform::Normal => Ok(truncated_normal(&mut rng, n, std)),
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

/// `n` values of Keras's truncated normal with std `std` after truncation: σ₀ = std / 0.8796…,
/// every draw beyond 2σ₀ redrawn (TensorFlow's `truncated_normal`).
fn truncated_normal(rng: &mut rand::rngs::StdRng, n: usize, std: f64) -> Vec<f32> {
    let sigma = std / TRUNCATED_NORMAL_STD;
    (0..n)
        .map(|_| loop {
            let z: f64 = StandardNormal.sample(rng);
            if z.abs() <= 2.0 {
                break (sigma * z) as f32;
            }
        })
        .collect()
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
    fn he_normal_is_keras_truncated_normal() -> Result<()> {
        // Kernels of 64 × 64 × 3 × 3: fan_in = 576, std √(2/576), σ₀ = std / 0.8796….
        let std = (2.0f64 / 576.0).sqrt();
        let sigma0 = std / TRUNCATED_NORMAL_STD;
        let vm = VarMap::new();
        let vb = seeded(&vm, 5, DType::F32, &Device::Cpu);
        let mut w = Vec::new();
        for k in 0..4 {
            let t = vb.get_with_hints((64, 64, 3, 3), &format!("w{k}"), he_normal())?;
            w.extend(t.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f64::from));
        }
        let n = w.len() as f64; // 147 456 values
                                // Every value within 2σ₀, and the edge reached.
        let max = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            max <= 2.0 * sigma0 * (1.0 + 1e-6) && max > 1.99 * sigma0,
            "max {max}, 2σ₀ {}",
            2.0 * sigma0
        );
        // Std after truncation √(2/fan_in): the sample std's standard error is ≈ 0.15 %.
        let sample_std = (w.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        assert!((sample_std / std - 1.0).abs() < 0.01, "std {sample_std} vs {std}");
        // The truncated shape: P(|z| ≤ 1 | |z| ≤ 2) = 0.68269 / 0.95450 = 0.71523
        // (scipy.stats, bench/keras_affine_reference.py); an untruncated normal with the same
        // std would give P(|v| ≤ σ₀) = 0.744. Standard error ≈ 0.0012.
        let within = w.iter().filter(|v| v.abs() <= sigma0).count() as f64 / n;
        assert!((within - 0.715_232_8).abs() < 0.006, "P(|v| ≤ σ₀) = {within}");
        // Seeded by (seed, name): the same draw again, another name draws other values.
        let again = seeded(&VarMap::new(), 5, DType::F32, &Device::Cpu)
            .get_with_hints((64, 64, 3, 3), "w2", he_normal())?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let w2: Vec<f32> = w[2 * 36864..3 * 36864].iter().map(|&v| v as f32).collect();
        assert_eq!(again, w2);
        assert_ne!(&w[..36864], &w[36864..2 * 36864]);
        Ok(())
    }

    #[test]
    fn keras_fans_of_convolution_kernels() -> Result<()> {
        use crate::models::layers::{conv2d, KernelInit, Padding};
        let vm = VarMap::new();
        let vb = seeded(&vm, 1, DType::F32, &Device::Cpu);
        // Glorot on a 3×3 conv from 16 to 64 channels: fan_in = 9·16 = 144, fan_out = 9·64 =
        // 576, bound √(6/720) (with fans 16 and 64 it would be √(6/80), three times larger).
        let conv = conv2d(16, 64, 3, 1, Padding::Same, KernelInit::GlorotUniform, vb.pp("glorot"))?;
        let w: Vec<f32> = conv.weight().flatten_all()?.to_vec1()?;
        let bound = (6.0f32 / 720.0).sqrt();
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound && max > 0.99 * bound, "max {max}, bound {bound}");
        // He normal on a 3×3 conv from 32 to 64 channels: fan_in = 9·32 = 288.
        let conv = conv2d(32, 64, 3, 1, Padding::Same, KernelInit::HeNormal, vb.pp("he"))?;
        let w: Vec<f32> = conv.weight().flatten_all()?.to_vec1()?;
        let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!((std / (2.0f64 / 288.0).sqrt() - 1.0).abs() < 0.03, "std {std}");
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
