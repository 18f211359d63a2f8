//! Data augmentation on mini-batches: Keras's random affine augmentation, the integer
//! shift + flip approximation, and cutout with M copies.
//!
//! Every augmentation is a handful of tensor operations on the batch's own device (CPU or
//! CUDA): the only host work per batch is drawing a few random numbers per image (angles,
//! offsets, flips, square centres). Masks and source coordinates are built from `arange`
//! rows/columns and the per-image numbers, never by looping over pixels.
//!
//! Each augmentation splits into two steps so that its geometry can be checked and shown:
//! `draw` (the seeded random choices, returned as plain numbers) and `apply_with` (the
//! deterministic tensor work for those choices). The [`Augment`] trait runs both.
//!
//! - [`RandomAffine`]: Keras's `ImageDataGenerator` rotation / shift / shear / zoom / flips,
//!   reproduced exactly (bilinear interpolation, `'nearest'` or `'constant'` fill).
//! - [`ShiftFlip`]: whole-pixel shifts with zero fill, then a flip — the cheaper
//!   approximation of Keras's shift + flip that section 04 uses.
//! - [`Cutout`]: squares blanked out, optionally in M copies per image.
//!
//! Inputs are image batches `[B, C, H, W]` (normally f32) and label vectors `[B]`.
//!
//! **Order of normalisation and augmentation.** dlkit normalises a batch when it is cut
//! ([`crate::data::DeviceData`]) and augments the normalised batch; Keras's generator
//! transforms the raw image and standardises afterwards. The two agree wherever the output
//! pixel is a blend of input pixels: the bilinear weights sum to 1, so they commute with the
//! per-channel map `x ↦ (x − mean_c) / std_c`, and `'nearest'` fill only repeats input
//! pixels. Filled pixels do not commute: a fill value here (cutout's `fill`, ShiftFlip's zero,
//! `FillMode::Constant(cval)`) is a value *after* normalisation. Keras's `cval` is in the
//! units of the images it transforms (raw pixels, or [0, 1] if the images were divided by 255
//! first), so its equivalent here is `(cval/255 − mean_c) / (std_c + 1e-6)` per channel with
//! featurewise statistics, `cval/255` with [`crate::data::Normalization::UnitRange`] — and a
//! Keras `cval = 0` after featurewise centring is *not* 0 here, it is each channel's `−mean/std`.

mod cutout;
mod random_affine;
mod shift_flip;

pub use cutout::{Cutout, CutoutParams, Square};
pub use random_affine::{
    AffineTransform, FillMode, KerasVersion, RandomAffine, RandomAffineParams,
};
pub use shift_flip::{ShiftAndFlip, ShiftFlip, ShiftFlipParams};

use crate::error::{Error, Result};
use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A random transformation of a training batch (images and their labels).
pub trait Augment {
    /// Augment the batch `x: [B, C, H, W]` with labels `y: [B]`, drawing from `rng`;
    /// returns the new images and their labels (possibly more samples than came in).
    fn apply(&self, x: &Tensor, y: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)>;

    /// How many output samples each input image becomes (1 unless copies are made).
    fn copies(&self) -> usize {
        1
    }
}

/// A seeded batch transformation for the training loop, e.g.
/// `trainer.augment(augment::seeded(Augmentation::shift_flip_cutout(4)?, 7))`.
pub fn seeded<A: Augment>(
    augmentation: A,
    seed: u64,
) -> impl FnMut(&Tensor, &Tensor) -> Result<(Tensor, Tensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    move |x, y| augmentation.apply(x, y, &mut rng)
}

/// The coursework's augmentation pipeline, in this order: integer shift + flip, Keras's random
/// affine augmentation, then cutout with M copies (each step skipped when `None`).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    /// Random whole-pixel shift and horizontal flip (skipped when `None`).
    pub shift_flip: Option<ShiftFlip>,
    /// Keras `ImageDataGenerator` rotation / shift / shear / zoom / flips (skipped when
    /// `None`; absent from records written before it existed).
    #[serde(default)]
    pub random_affine: Option<RandomAffine>,
    /// Cutout, possibly with several copies per image (skipped when `None`).
    pub cutout: Option<Cutout>,
}

impl Augmentation {
    /// No augmentation at all: batches pass through unchanged.
    pub fn none() -> Self {
        Augmentation::default()
    }

    /// Check every part's hyperparameters.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.shift_flip {
            s.validate()?;
        }
        if let Some(c) = &self.cutout {
            c.validate()?;
        }
        Ok(())
    }

    /// Samples each image becomes (cutout copies), 1 without cutout.
    pub fn samples_per_image(&self) -> usize {
        self.cutout.as_ref().map_or(1, |c| c.copies)
    }

    /// Shift ±4 px + flip, then cutout (side 6, one hole) with `copies` copies per image.
    pub fn shift_flip_cutout(copies: usize) -> Result<Self> {
        Ok(Augmentation {
            shift_flip: Some(ShiftFlip::default()),
            random_affine: None,
            cutout: Some(Cutout::new(6, 1, copies)?),
        })
    }

    /// Keras's `ImageDataGenerator` augmentation alone.
    pub fn keras(random_affine: RandomAffine) -> Result<Self> {
        random_affine.validate()?;
        Ok(Augmentation { random_affine: Some(random_affine), ..Augmentation::default() })
    }
}

impl Augment for Augmentation {
    fn apply(&self, x: &Tensor, y: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let (mut x, mut y) = (x.clone(), y.clone());
        if let Some(shift_flip) = &self.shift_flip {
            (x, y) = shift_flip.apply(&x, &y, rng)?;
        }
        if let Some(random_affine) = &self.random_affine {
            (x, y) = random_affine.apply(&x, &y, rng)?;
        }
        if let Some(cutout) = &self.cutout {
            (x, y) = cutout.apply(&x, &y, rng)?;
        }
        Ok((x, y))
    }

    fn copies(&self) -> usize {
        self.cutout.as_ref().map_or(1, |c| c.copies)
    }
}

/// Check that `x` is an image batch `[B, C, H, W]` and `y` holds `B` labels; returns the dims.
fn batch_dims(x: &Tensor, y: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let dims = image_dims(x)?;
    if y.dims() != [dims.0] {
        return Err(Error::Config(format!(
            "augmentation expects {} labels of shape [{}], got shape {:?}",
            dims.0,
            dims.0,
            y.dims()
        )));
    }
    Ok(dims)
}

/// Check that `x` is an image batch `[B, C, H, W]` and return its dims.
fn image_dims(x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [b, c, h, w] => Ok((b, c, h, w)),
        ref other => Err(Error::Config(format!(
            "augmentation expects images [B, C, H, W], got shape {other:?}"
        ))),
    }
}
