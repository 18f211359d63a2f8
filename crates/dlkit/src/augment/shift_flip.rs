//! Random integer shift with zero fill, then a random horizontal flip: the cheap
//! approximation of Keras's shift + flip that section 04 uses.
//!
//! It stands in for the coursework's Keras
//! `ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)`.
//! Differences, on purpose: Keras draws a *real* shift of up to 10 % of the side
//! (±3.2 px on 32×32 images), interpolates, and fills uncovered pixels with the nearest edge
//! pixel (`fill_mode='nearest'`); here the shift is a whole number of pixels drawn uniformly
//! in `[−max_shift, max_shift]` (±4 px by default) and uncovered pixels are set to zero.
//! As in Keras, the shift is applied first and the flip second. For Keras's augmentation
//! itself use [`super::RandomAffine`] (`width_shift_range: 0.1, height_shift_range: 0.1,
//! horizontal_flip: true`).

use super::{batch_dims, image_dims, Augment};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

/// Shift each image by a random whole number of pixels (zero fill) and flip it left–right
/// with probability `flip_probability`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShiftFlip {
    /// Largest shift in pixels, in each direction (default 4).
    pub max_shift: usize,
    /// Probability of a horizontal flip (default 0.5).
    pub flip_probability: f64,
}

/// The random choices made for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftAndFlip {
    /// Rows the content moves down (negative: up).
    pub dy: i64,
    /// Columns the content moves right (negative: left), before the flip.
    pub dx: i64,
    /// Whether the shifted image is then mirrored left–right.
    pub flip: bool,
}

/// The random choices for a whole batch, one entry per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftFlipParams {
    /// Shift and flip of image `b` at index `b`.
    pub per_image: Vec<ShiftAndFlip>,
}

impl Default for ShiftFlip {
    fn default() -> Self {
        ShiftFlip { max_shift: 4, flip_probability: 0.5 }
    }
}

impl ShiftFlip {
    /// Shifts of up to `max_shift` pixels and flips with probability `flip_probability`.
    pub fn new(max_shift: usize, flip_probability: f64) -> Result<Self> {
        let s = ShiftFlip { max_shift, flip_probability };
        s.validate()?;
        Ok(s)
    }

    /// Check the hyperparameters (the flip probability must lie in [0, 1]).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(Error::Config(format!(
                "flip probability must lie in [0, 1], got {}",
                self.flip_probability
            )));
        }
        if i64::try_from(self.max_shift).is_err() {
            return Err(Error::Config(format!("max_shift {} is too large", self.max_shift)));
        }
        Ok(())
    }

    /// Draw the shifts and flips for `batch` images. Per image, in this order:
    /// `dy`, then `dx` (each uniform in `[−max_shift, max_shift]`), then the flip.
    pub fn draw(&self, batch: usize, rng: &mut StdRng) -> Result<ShiftFlipParams> {
        self.validate()?;
        let m = self.max_shift as i64;
        let per_image = (0..batch)
            .map(|_| {
                let dy = rng.random_range(-m..=m);
                let dx = rng.random_range(-m..=m);
                let flip = rng.random_bool(self.flip_probability);
                ShiftAndFlip { dy, dx, flip }
            })
            .collect();
        Ok(ShiftFlipParams { per_image })
    }

    /// Shift and flip the images `x: [B, C, H, W]` as `params` says.
    ///
    /// Output pixel `(i, j)` of image `b` is input pixel `(i − dy, j' − dx)` with
    /// `j' = W − 1 − j` when the image is flipped and `j' = j` otherwise; it is 0 when that
    /// source lies outside the image. All channels move together.
    pub fn apply_with(&self, params: &ShiftFlipParams, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = image_dims(x)?;
        if params.per_image.len() != b {
            return Err(Error::Config(format!(
                "shift/flip parameters are for {} images, the batch has {b}",
                params.per_image.len()
            )));
        }
        if b == 0 || h == 0 || w == 0 {
            return Ok(x.clone());
        }
        let dev = x.device();
        let column = |f: fn(&ShiftAndFlip) -> f32| -> Result<Tensor> {
            let v: Vec<f32> = params.per_image.iter().map(f).collect();
            Ok(Tensor::from_vec(v, (b, 1, 1), dev)?)
        };
        let dy = column(|p| p.dy as f32)?;
        let dx = column(|p| p.dx as f32)?;
        let flip = column(|p| if p.flip { 1.0 } else { 0.0 })?;

        // Source coordinates, as exact small integers in f32.
        let rows = Tensor::arange(0u32, h as u32, dev)?.to_dtype(DType::F32)?.reshape((1, h, 1))?;
        let cols = Tensor::arange(0u32, w as u32, dev)?.to_dtype(DType::F32)?.reshape((1, 1, w))?;
        let src_row = rows.broadcast_sub(&dy)?; // [B, H, 1]
                                                // j' = j + flip·(W − 1 − 2j): j when not flipped, W − 1 − j when flipped.
        let mirror_step = cols.affine(-2.0, (w - 1) as f64)?;
        let src_col = cols.broadcast_add(&flip.broadcast_mul(&mirror_step)?)?.broadcast_sub(&dx)?; // [B, 1, W]

        let inside_rows = src_row.ge(0f32)?.mul(&src_row.lt(h as f32)?)?;
        let inside_cols = src_col.ge(0f32)?.mul(&src_col.lt(w as f32)?)?;
        let inside = inside_rows.broadcast_mul(&inside_cols)?.reshape((b, 1, h, w))?; // u8

        // Flat source index (clamped; pixels outside are masked to zero below).
        let flat = src_row
            .clamp(0f32, (h - 1) as f32)?
            .affine(w as f64, 0.0)?
            .broadcast_add(&src_col.clamp(0f32, (w - 1) as f32)?)? // [B, H, W]
            .to_dtype(DType::U32)?
            .reshape((b, 1, h * w))?
            .broadcast_as((b, c, h * w))?
            .contiguous()?;
        let moved = x.reshape((b, c, h * w))?.gather(&flat, 2)?.reshape((b, c, h, w))?;
        let zeros = Tensor::zeros((), x.dtype(), dev)?.broadcast_as((b, c, h, w))?;
        Ok(inside.broadcast_as((b, c, h, w))?.where_cond(&moved, &zeros)?)
    }
}

impl Augment for ShiftFlip {
    fn apply(&self, x: &Tensor, y: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let (b, ..) = batch_dims(x, y)?;
        let params = self.draw(b, rng)?;
        Ok((self.apply_with(&params, x)?, y.clone()))
    }
}
