//! Cutout (DeVries & Taylor, 2017): blank out random squares, optionally in M copies per image.
//!
//! Geometry, exactly as the paper's code (uoguelph-mlrg/Cutout, `util/cutout.py`) and the
//! coursework helper (integer division): for each of the `holes` squares a centre `(cy, cx)` is
//! drawn uniformly in `[0, H) × [0, W)` (`cy` first), and the square covers rows `y1 ≤ i < y2`
//! and columns `x1 ≤ j < x2` with
//! `y1 = clip(cy − length/2, 0, H)`, `y2 = clip(cy + length/2, 0, H)` (same for `x` with `W`).
//! So squares near a border are cut off by it, an odd `length` covers `length − 1` pixels
//! a side, and squares of one sample may overlap (their union is cut). Every channel of a
//! covered pixel is set to `fill`.
//!
//! With `copies = M`, a batch of `B` images becomes `B·M` samples in copy-major order:
//! sample `k·B + b` is copy `k` of image `b` (the first `B` samples are one copy of the
//! whole batch), each with its own squares; the labels are the batch's labels repeated `M`
//! times (`y.repeat(M)`).

use super::{batch_dims, image_dims, Augment};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

/// Cutout with `holes` squares of side `length` per sample, `copies` samples per image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cutout {
    /// Side of each square in pixels, the reference's `length` (coursework helper: 6; the
    /// paper uses 16 on CIFAR-10). Records written before the rename call it `size`.
    #[serde(alias = "size")]
    pub length: usize,
    /// Number of squares per sample (default 1).
    pub holes: usize,
    /// Number of differently masked copies of each image, M (default 1).
    pub copies: usize,
    /// Value written into the squares (default 0).
    pub fill: f32,
}

/// The random squares drawn for a set of samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoutParams {
    /// Image height the centres were drawn for.
    pub height: usize,
    /// Image width the centres were drawn for.
    pub width: usize,
    /// Side of the squares.
    pub length: usize,
    /// Squares per sample.
    pub holes: usize,
    /// Centres `(cy, cx)`, sample-major: hole `k` of sample `s` is at index `s·holes + k`.
    pub centres: Vec<(usize, usize)>,
}

/// A square clipped to the image: rows `top..bottom`, columns `left..right` (ends excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Square {
    /// First covered row.
    pub top: usize,
    /// One past the last covered row.
    pub bottom: usize,
    /// First covered column.
    pub left: usize,
    /// One past the last covered column.
    pub right: usize,
}

impl Default for Cutout {
    fn default() -> Self {
        Cutout { length: 6, holes: 1, copies: 1, fill: 0.0 }
    }
}

impl Cutout {
    /// Cutout with zero fill: `holes` squares of side `length`, `copies` copies per image.
    pub fn new(length: usize, holes: usize, copies: usize) -> Result<Self> {
        let c = Cutout { length, holes, copies, fill: 0.0 };
        c.validate()?;
        Ok(c)
    }

    /// The same cutout, filling the squares with `fill` instead of 0.
    pub fn with_fill(self, fill: f32) -> Result<Self> {
        let c = Cutout { fill, ..self };
        c.validate()?;
        Ok(c)
    }

    /// Check the hyperparameters (at least one copy, a finite fill value).
    pub fn validate(&self) -> Result<()> {
        if self.copies == 0 {
            return Err(Error::Config("cutout needs at least one copy per image".into()));
        }
        if !self.fill.is_finite() {
            return Err(Error::Config(format!("cutout fill must be finite, got {}", self.fill)));
        }
        Ok(())
    }

    /// Draw the square centres for `samples` images of `height × width` pixels.
    /// Per sample and per hole, in this order: `cy` uniform in `[0, H)`, then `cx` in `[0, W)`.
    pub fn draw(
        &self,
        samples: usize,
        height: usize,
        width: usize,
        rng: &mut StdRng,
    ) -> Result<CutoutParams> {
        self.validate()?;
        let count = samples * self.holes;
        if count > 0 && (height == 0 || width == 0) {
            return Err(Error::Config(format!(
                "cannot cut squares out of {height}×{width} images"
            )));
        }
        let centres = (0..count)
            .map(|_| {
                let cy = rng.random_range(0..height);
                let cx = rng.random_range(0..width);
                (cy, cx)
            })
            .collect();
        Ok(CutoutParams { height, width, length: self.length, holes: self.holes, centres })
    }

    /// Make the `M` copies of `x: [B, C, H, W]` and `y: [B]` and cut the squares of `params`
    /// (drawn for `B·M` samples) out of them; see the module documentation for the order.
    pub fn apply_with(
        &self,
        params: &CutoutParams,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        self.validate()?;
        batch_dims(x, y)?;
        let (x, y) = if self.copies == 1 {
            (x.clone(), y.clone())
        } else {
            (x.repeat((self.copies, 1, 1, 1))?, y.repeat(self.copies)?)
        };
        Ok((self.mask_with(params, &x)?, y))
    }

    /// Cut the squares of `params` out of `x: [N, C, H, W]` (sample `s` gets `params`'
    /// sample `s`), setting every channel inside them to `fill`. No copies are made.
    pub fn mask_with(&self, params: &CutoutParams, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = image_dims(x)?;
        if params.samples() != n || params.height != h || params.width != w {
            return Err(Error::Config(format!(
                "cutout squares drawn for {} samples of {}×{}, the images are {n} of {h}×{w}",
                params.samples(),
                params.height,
                params.width
            )));
        }
        let k = params.holes;
        if n == 0 || k == 0 {
            return Ok(x.clone());
        }
        let dev = x.device();
        let squares = (0..n)
            .flat_map(|s| (0..k).map(move |hole| params.square(s, hole)))
            .collect::<Option<Vec<Square>>>()
            .ok_or_else(|| Error::Config("cutout parameters hold too few centres".into()))?;
        let edge = |f: fn(&Square) -> usize| -> Result<Tensor> {
            let v: Vec<f32> = squares.iter().map(|q| f(q) as f32).collect();
            Ok(Tensor::from_vec(v, (n, k, 1, 1), dev)?)
        };
        let rows =
            Tensor::arange(0u32, h as u32, dev)?.to_dtype(DType::F32)?.reshape((1, 1, h, 1))?;
        let cols =
            Tensor::arange(0u32, w as u32, dev)?.to_dtype(DType::F32)?.reshape((1, 1, 1, w))?;
        // u8 masks (1 = inside): rows [N, K, H, 1] and columns [N, K, 1, W].
        let inside = |coords: &Tensor, lo: &Tensor, hi: &Tensor| -> Result<Tensor> {
            Ok(coords.broadcast_ge(lo)?.mul(&coords.broadcast_lt(hi)?)?)
        };
        let in_rows = inside(&rows, &edge(|q| q.top)?, &edge(|q| q.bottom)?)?;
        let in_cols = inside(&cols, &edge(|q| q.left)?, &edge(|q| q.right)?)?;
        let in_hole = in_rows.broadcast_mul(&in_cols)?; // [N, K, H, W]
        let covered = if k == 1 { in_hole } else { in_hole.max_keepdim(1)? } // [N, 1, H, W]
            .broadcast_as((n, c, h, w))?;
        let fill = Tensor::new(self.fill, dev)?.to_dtype(x.dtype())?.broadcast_as((n, c, h, w))?;
        Ok(covered.where_cond(&fill, x)?)
    }
}

impl CutoutParams {
    /// Number of samples the squares were drawn for.
    pub fn samples(&self) -> usize {
        self.centres.len().checked_div(self.holes).unwrap_or(0)
    }

    /// The clipped square of hole `hole` of sample `sample` (see the module documentation);
    /// `None` when there is no such hole.
    pub fn square(&self, sample: usize, hole: usize) -> Option<Square> {
        if hole >= self.holes {
            return None;
        }
        let &(cy, cx) = self.centres.get(sample * self.holes + hole)?;
        let half = self.length / 2;
        Some(Square {
            top: cy.saturating_sub(half).min(self.height),
            bottom: (cy + half).min(self.height),
            left: cx.saturating_sub(half).min(self.width),
            right: (cx + half).min(self.width),
        })
    }
}

impl Augment for Cutout {
    fn apply(&self, x: &Tensor, y: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let (b, _, h, w) = batch_dims(x, y)?;
        let params = self.draw(b * self.copies, h, w, rng)?;
        self.apply_with(&params, x, y)
    }

    fn copies(&self) -> usize {
        self.copies
    }
}
