//! Seeded (inverted) dropout: the mask is drawn on the host from a seeded generator, so a
//! training run is reproducible on every device (candle's CPU generator cannot be seeded).
//!
//! Each mask comes from a generator seeded by `(layer seed, draw index)`. The training loop sets
//! the draw index of every forward pass from the step number ([`with_draw_index`]), so masks
//! depend only on where the run is — a run resumed from a checkpoint draws the same masks as an
//! uninterrupted one. Outside the loop each layer counts its own calls.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static DRAW_INDEX: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Run `f` (a training forward pass) with dropout masks drawn for position `index` of the run.
pub fn with_draw_index<R>(index: u64, f: impl FnOnce() -> R) -> R {
    let previous = DRAW_INDEX.with(|d| d.replace(Some(index)));
    let result = f();
    DRAW_INDEX.with(|d| d.set(previous));
    result
}

/// Dropout with rate `p`: in training mode each element is zeroed with probability `p` and the
/// survivors are scaled by 1/(1−p); in evaluation mode it is the identity.
#[derive(Debug)]
pub struct Dropout {
    p: f32,
    seed: u64,
    calls: AtomicU64,
}

impl Dropout {
    /// Dropout with rate `p` ∈ [0, 1), masks drawn from `seed`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            candle_core::bail!("dropout rate must be in [0, 1), got {p}");
        }
        Ok(Dropout { p, seed, calls: AtomicU64::new(0) })
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
        let index = DRAW_INDEX.with(Cell::get).unwrap_or_else(|| self.calls.fetch_add(1, Ordering::Relaxed));
        let mix = self.seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix);
        let mask: Vec<f32> =
            (0..x.elem_count()).map(|_| if rng.random::<f32>() < keep { scale } else { 0.0 }).collect();
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

    #[test]
    fn masks_depend_on_the_draw_index_not_on_earlier_calls() -> Result<()> {
        let x = Tensor::ones(64, candle_core::DType::F32, &Device::Cpu)?;
        let d = Dropout::new(0.5, 9)?;
        let first = with_draw_index(5, || d.forward_t(&x, true))?.to_vec1::<f32>()?;
        d.forward_t(&x, true)?; // a call outside the loop moves only the layer's own counter
        let again = with_draw_index(5, || d.forward_t(&x, true))?.to_vec1::<f32>()?;
        let other = with_draw_index(6, || d.forward_t(&x, true))?.to_vec1::<f32>()?;
        let fresh = with_draw_index(5, || Dropout::new(0.5, 9)?.forward_t(&x, true))?.to_vec1::<f32>()?;
        assert_eq!(first, again);
        assert_eq!(first, fresh);
        assert_ne!(first, other);
        Ok(())
    }
}
