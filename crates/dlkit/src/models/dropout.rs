//! Seeded (inverted) dropout: the mask is drawn on the host from a seeded generator, so a
//! training run is reproducible on every device (candle's CPU generator cannot be seeded).

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use std::sync::Mutex;

/// Dropout with rate `p`: in training mode each element is zeroed with probability `p` and the
/// survivors are scaled by 1/(1−p); in evaluation mode it is the identity.
#[derive(Debug)]
pub struct Dropout {
    p: f32,
    rng: Mutex<rand::rngs::StdRng>,
}

impl Dropout {
    /// Dropout with rate `p` ∈ [0, 1), masks drawn from `seed`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            candle_core::bail!("dropout rate must be in [0, 1), got {p}");
        }
        Ok(Dropout { p, rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)) })
    }

    /// The drop rate.
    pub fn rate(&self) -> f32 {
        self.p
    }

    /// Apply dropout (training) or pass through (evaluation).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = {
            let mut rng =
                self.rng.lock().map_err(|_| candle_core::Error::Msg("dropout rng poisoned".into()))?;
            (0..x.elem_count()).map(|_| if rng.random::<f32>() < keep { scale } else { 0.0 }).collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn training_mode_zeroes_about_p_and_rescales_survivors() -> Result<()> {
        let d = Dropout::new(0.25, 7)?;
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu)?;
        let y = d.forward_t(&x, true)?.to_vec1::<f32>()?;
        let zeros = y.iter().filter(|v| **v == 0.0).count();
        assert!((2300..2700).contains(&zeros), "{zeros} zeros of 10000 at p = 0.25");
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 4.0 / 3.0).abs() < 1e-6));
        Ok(())
    }

    #[test]
    fn evaluation_mode_is_identity_and_seed_reproduces_masks() -> Result<()> {
        let x = Tensor::arange(0f32, 100., &Device::Cpu)?;
        let d = Dropout::new(0.5, 1)?;
        assert_eq!(d.forward_t(&x, false)?.to_vec1::<f32>()?, x.to_vec1::<f32>()?);
        let a = Dropout::new(0.5, 3)?.forward_t(&x, true)?.to_vec1::<f32>()?;
        let b = Dropout::new(0.5, 3)?.forward_t(&x, true)?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        assert!(Dropout::new(1.0, 0).is_err());
        Ok(())
    }
}
