//! Random rotation, shift, shear, zoom and flips exactly as Keras's `ImageDataGenerator` does
//! them, batched on the device.
//!
//! Keras (`get_random_transform`, then `apply_transform`) draws per image, in this order:
//! `theta` uniform in ±`rotation_range` degrees; `tx` uniform in ±`height_shift_range`, times
//! the image height when the range is below 1 (pixels otherwise); `ty` likewise from
//! `width_shift_range` and the width; `shear` uniform in ±`shear_range` degrees; `zx`, then `zy`,
//! each uniform in `zoom_range` (independently); then one uniform number for the horizontal
//! and one for the vertical flip (flip when below 0.5 and the flip is enabled). A quantity
//! whose range is zero is not drawn (the flips always are). [`RandomAffine::draw`] keeps this
//! order with the crate's seeded generator (the numbers themselves differ from numpy's).
//!
//! `apply_affine_transform` then composes `M = R(theta)·T(tx, ty)·Shear·Zoom(zx, zy)` about the
//! image centre, `A = Offset(o)·M·Offset(−o)`, and resamples every channel with
//! `scipy.ndimage.affine_transform(order=1)`: output pixel `p` takes the input at `A·p`,
//! interpolated bilinearly from its four neighbours. Outside the image, `'nearest'` clamps the
//! coordinate to the border; `'constant'` returns `cval` for a coordinate outside
//! `[0, n − 1]` on either axis (no blending with `cval` near the border). The flips come after
//! the affine step: the flipped output pixel `(i, j)` is the affine output at `(i, W − 1 − j)`
//! (left–right) or `(H − 1 − i, j)` (top–bottom).
//!
//! Whether a coordinate lands exactly on the border or one rounding step outside it decides
//! between a pixel and `cval` (it happens for right angles and whole-pixel shifts), so the
//! arithmetic follows Keras's to the last bit: the matrices are multiplied in f64 as numpy's
//! OpenBLAS `dot` rounds them on x86-64 (fused multiply–adds), and each coordinate is
//! `(offset + a·i) + b·j` in f64, scipy's order. On 4000 random cases, many of them on the
//! border, the output matched both Keras codes (test `matches_keras_on_random_cases`).
//! Values themselves are blended in the batch's dtype (f32), Keras blends in f64 and rounds
//! to f32: they agree to about 1e-6 relative.
//!
//! Two Keras codes disagree on the coordinates, so [`KerasVersion`] picks one:
//! - [`KerasVersion::TfKeras`] (keras ≥ 2.9, `tf_keras`): `M` is built for `(x, y)` =
//!   (column, row) and conjugated by the axis swap, so `tx` (the *height* range) moves the
//!   content along the columns, `zx` scales the columns and the rotation turns the other way;
//!   the centre is `o = (H/2 − 0.5, W/2 − 0.5)` on (column, row), the true centre for
//!   square images.
//! - [`KerasVersion::KerasPreprocessing`] (keras-preprocessing 1.1.2, which tf.keras ≤ 2.8
//!   calls): `M` acts on (row, column): `tx` moves rows, `zx` scales rows, and the centre is
//!   `o = (H/2 + 0.5, W/2 + 0.5)`, one pixel below and right of the true centre.
//!
//! `bench/keras_affine_reference.py` runs both Keras codes on a test image;
//! `tests/keras_augment.rs` pins this module to its output.
//!
//! Unlike [`super::ShiftFlip`] (whole-pixel shifts with zero fill, the approximation used in
//! section 04), this is Keras's augmentation itself: real-valued shifts, bilinear
//! interpolation and Keras's fill modes. Keras transforms images *before* standardising them;
//! dlkit transforms normalised batches (see the module documentation of [`super`] for what
//! that means for `cval`).

use super::{batch_dims, image_dims, Augment};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

/// How pixels that come from outside the image are filled (Keras's `fill_mode` and `cval`).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum FillMode {
    /// Keras's default `'nearest'`: the coordinate is clamped to the image, repeating the
    /// border pixels.
    #[default]
    Nearest,
    /// `'constant'` with `cval`: pixels whose source lies outside the image get this value
    /// (in the units of the batch, i.e. after normalisation).
    Constant(f32),
}

/// Which Keras code's coordinate conventions to reproduce (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum KerasVersion {
    /// keras ≥ 2.9 and `tf_keras` (`tf_keras/src/preprocessing/image.py`).
    #[default]
    TfKeras,
    /// keras-preprocessing 1.1.2, called by tf.keras ≤ 2.8.
    KerasPreprocessing,
}

/// Keras's `ImageDataGenerator` geometric augmentation: the same arguments, the same defaults
/// (everything off, `fill_mode='nearest'`). For example Keras's
/// `ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1,
/// zoom_range=0.2, horizontal_flip=True)` is
/// `RandomAffine { rotation_range: 15.0, width_shift_range: 0.1, height_shift_range: 0.1,
/// zoom_range: RandomAffine::zoom(0.2), horizontal_flip: true, ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RandomAffine {
    /// Largest rotation in degrees, either way (Keras `rotation_range`).
    pub rotation_range: f64,
    /// Horizontal shift range: a fraction of the width when below 1, else pixels
    /// (Keras `width_shift_range`, the float form).
    pub width_shift_range: f64,
    /// Vertical shift range: a fraction of the height when below 1, else pixels
    /// (Keras `height_shift_range`, the float form).
    pub height_shift_range: f64,
    /// Largest shear angle in degrees, either way (Keras `shear_range`).
    pub shear_range: f64,
    /// Zoom factors `[lower, upper]`; `[1, 1]` turns zoom off (Keras `zoom_range` as a pair;
    /// [`RandomAffine::zoom`] converts Keras's single number). Factors below 1 enlarge.
    pub zoom_range: [f64; 2],
    /// Mirror left–right with probability 1/2 (Keras `horizontal_flip`).
    pub horizontal_flip: bool,
    /// Mirror top–bottom with probability 1/2 (Keras `vertical_flip`).
    pub vertical_flip: bool,
    /// How pixels from outside the image are filled (Keras `fill_mode`, `cval`).
    pub fill_mode: FillMode,
    /// Which Keras code's coordinates to reproduce.
    #[serde(default)]
    pub keras: KerasVersion,
}

/// The random choices for one image, in Keras's names and units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineTransform {
    /// Rotation angle in degrees.
    pub theta: f64,
    /// Keras's `tx` in pixels, drawn from the height shift range (see [`KerasVersion`] for the
    /// axis it moves).
    pub tx: f64,
    /// Keras's `ty` in pixels, drawn from the width shift range.
    pub ty: f64,
    /// Shear angle in degrees.
    pub shear: f64,
    /// Keras's `zx` zoom factor.
    pub zx: f64,
    /// Keras's `zy` zoom factor.
    pub zy: f64,
    /// Whether the transformed image is mirrored left–right.
    pub flip_horizontal: bool,
    /// Whether the transformed image is mirrored top–bottom.
    pub flip_vertical: bool,
}

/// The random choices for a whole batch, one entry per image.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomAffineParams {
    /// The transformation of image `b` at index `b`.
    pub per_image: Vec<AffineTransform>,
}

type Matrix3 = [[f64; 3]; 3];

/// `a · b` for 3×3 matrices, rounded as `np.dot` rounds them on x86-64 with OpenBLAS
/// (a fused multiply–add chain over `k` in order). Only the last bit differs from a plain
/// sum, which decides whether a source coordinate lands exactly on the border or just
/// outside it (e.g. 180° rotations with `'constant'` fill).
fn dot(a: &Matrix3, b: &Matrix3) -> Matrix3 {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            let first = a[i][0] * b[0][j];
            *value = a[i][2].mul_add(b[2][j], a[i][1].mul_add(b[1][j], first));
        }
    }
    c
}

impl AffineTransform {
    /// No transformation at all: the image comes back unchanged.
    pub const IDENTITY: AffineTransform = AffineTransform {
        theta: 0.0,
        tx: 0.0,
        ty: 0.0,
        shear: 0.0,
        zx: 1.0,
        zy: 1.0,
        flip_horizontal: false,
        flip_vertical: false,
    };

    /// True when the transformation leaves every image unchanged.
    pub fn is_identity(&self) -> bool {
        self.affine_part().is_none() && !self.flip_horizontal && !self.flip_vertical
    }

    /// Keras's `transform_matrix` before centring: the product of the rotation, shift, shear
    /// and zoom matrices that are not the identity, in that order; `None` when all are.
    fn affine_part(&self) -> Option<Matrix3> {
        let mut m: Option<Matrix3> = None;
        let mut then = |next: Matrix3| m = Some(m.map_or(next, |a| dot(&a, &next)));
        if self.theta != 0.0 {
            let t = self.theta.to_radians();
            then([[t.cos(), -t.sin(), 0.0], [t.sin(), t.cos(), 0.0], [0.0, 0.0, 1.0]]);
        }
        if self.tx != 0.0 || self.ty != 0.0 {
            then([[1.0, 0.0, self.tx], [0.0, 1.0, self.ty], [0.0, 0.0, 1.0]]);
        }
        if self.shear != 0.0 {
            let s = self.shear.to_radians();
            then([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
        }
        if self.zx != 1.0 || self.zy != 1.0 {
            then([[self.zx, 0.0, 0.0], [0.0, self.zy, 0.0], [0.0, 0.0, 1.0]]);
        }
        m
    }

    /// The affine map from an output pixel `(row, column)` to the input coordinates it reads,
    /// `[[a, b, c], [d, e, f]]`: row `c + a·i + b·j`, column `f + d·i + e·j` — the matrix and
    /// offset Keras hands to `scipy.ndimage.affine_transform` for an image of `height × width`
    /// (flips not included: they act on the output afterwards).
    pub fn matrix(&self, height: usize, width: usize, keras: KerasVersion) -> [[f64; 3]; 2] {
        let Some(m) = self.affine_part() else {
            return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        };
        let half = match keras {
            KerasVersion::TfKeras => -0.5,
            KerasVersion::KerasPreprocessing => 0.5,
        };
        // transform_matrix_offset_center(m, h, w): the first coordinate is centred with h.
        let (ox, oy) = (height as f64 / 2.0 + half, width as f64 / 2.0 + half);
        let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
        let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
        let a = dot(&dot(&offset, &m), &reset);
        match keras {
            KerasVersion::KerasPreprocessing => [a[0], a[1]],
            // M' = P·M·P with P swapping the first two coordinates.
            KerasVersion::TfKeras => [[a[1][1], a[1][0], a[1][2]], [a[0][1], a[0][0], a[0][2]]],
        }
    }
}

impl Default for RandomAffine {
    fn default() -> Self {
        RandomAffine {
            rotation_range: 0.0,
            width_shift_range: 0.0,
            height_shift_range: 0.0,
            shear_range: 0.0,
            zoom_range: [1.0, 1.0],
            horizontal_flip: false,
            vertical_flip: false,
            fill_mode: FillMode::Nearest,
            keras: KerasVersion::TfKeras,
        }
    }
}

impl RandomAffine {
    /// Keras's single-number `zoom_range=z`: factors in `[1 − z, 1 + z]`.
    pub fn zoom(z: f64) -> [f64; 2] {
        [1.0 - z, 1.0 + z]
    }

    /// Check the hyperparameters: finite non-negative ranges, zoom factors with
    /// `0 < lower ≤ upper`, a finite `cval`.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("rotation_range", self.rotation_range),
            ("width_shift_range", self.width_shift_range),
            ("height_shift_range", self.height_shift_range),
            ("shear_range", self.shear_range),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::Config(format!(
                    "random affine {name} must be a finite number ≥ 0, got {value}"
                )));
            }
        }
        let [lower, upper] = self.zoom_range;
        if !(lower.is_finite() && upper.is_finite() && lower > 0.0 && lower <= upper) {
            return Err(Error::Config(format!(
                "random affine zoom_range must satisfy 0 < lower ≤ upper (finite), got [{lower}, {upper}]"
            )));
        }
        if let FillMode::Constant(cval) = self.fill_mode {
            if !cval.is_finite() {
                return Err(Error::Config(format!(
                    "random affine constant fill value (cval) must be finite, got {cval}"
                )));
            }
        }
        Ok(())
    }

    /// Draw the transformations of `batch` images of `height × width` pixels, in Keras's
    /// order (see the module documentation). Uniform numbers are `lo + (hi − lo)·u` with `u`
    /// in `[0, 1)`, as numpy's `uniform`.
    pub fn draw(
        &self,
        batch: usize,
        height: usize,
        width: usize,
        rng: &mut StdRng,
    ) -> Result<RandomAffineParams> {
        self.validate()?;
        let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.random::<f64>();
        let shift = |range: f64, side: usize, uniform: &mut dyn FnMut(f64, f64) -> f64| {
            if range == 0.0 {
                return 0.0;
            }
            let s = uniform(-range, range);
            if range < 1.0 {
                s * side as f64
            } else {
                s
            }
        };
        let per_image = (0..batch)
            .map(|_| {
                let r = self.rotation_range;
                let theta = if r != 0.0 { uniform(-r, r) } else { 0.0 };
                let tx = shift(self.height_shift_range, height, &mut uniform);
                let ty = shift(self.width_shift_range, width, &mut uniform);
                let s = self.shear_range;
                let shear = if s != 0.0 { uniform(-s, s) } else { 0.0 };
                let [lo, hi] = self.zoom_range;
                let (zx, zy) = if lo == 1.0 && hi == 1.0 {
                    (1.0, 1.0)
                } else {
                    let zx = uniform(lo, hi);
                    (zx, uniform(lo, hi))
                };
                let flip_horizontal = uniform(0.0, 1.0) < 0.5 && self.horizontal_flip;
                let flip_vertical = uniform(0.0, 1.0) < 0.5 && self.vertical_flip;
                AffineTransform { theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical }
            })
            .collect();
        Ok(RandomAffineParams { per_image })
    }

    /// Transform the images `x: [B, C, H, W]` as `params` says (all channels alike).
    ///
    /// Per image, the host computes the 2×3 matrix of [`AffineTransform::matrix`]; the device
    /// computes every output pixel's source coordinates in f64 (as scipy does), applies the
    /// fill rule, gathers the four neighbours of each source point and blends them with
    /// bilinear weights.
    pub fn apply_with(&self, params: &RandomAffineParams, x: &Tensor) -> Result<Tensor> {
        self.validate()?;
        let (b, c, h, w) = image_dims(x)?;
        if params.per_image.len() != b {
            return Err(Error::Config(format!(
                "random affine parameters are for {} images, the batch has {b}",
                params.per_image.len()
            )));
        }
        if b == 0 || h == 0 || w == 0 || params.per_image.iter().all(|p| p.is_identity()) {
            return Ok(x.clone());
        }
        let dev = x.device();
        let matrices: Vec<[[f64; 3]; 2]> =
            params.per_image.iter().map(|p| p.matrix(h, w, self.keras)).collect();
        let per_image = |f: &dyn Fn(usize) -> f64| -> Result<Tensor> {
            let v: Vec<f64> = (0..b).map(f).collect();
            Ok(Tensor::from_vec(v, (b, 1, 1), dev)?)
        };
        let entry = |r: usize, k: usize| per_image(&|n| matrices[n][r][k]);
        let flipped = |vertical: bool| {
            per_image(&|n| {
                let p = &params.per_image[n];
                let flip = if vertical { p.flip_vertical } else { p.flip_horizontal };
                if flip {
                    1.0
                } else {
                    0.0
                }
            })
        };
        // Output coordinates of the affine step: i' = i, or H − 1 − i when flipped (exact).
        let grid = |n: usize, shape: (usize, usize, usize), flip: &Tensor| -> Result<Tensor> {
            let t = Tensor::arange(0u32, n as u32, dev)?.to_dtype(DType::F64)?.reshape(shape)?;
            let mirror_step = t.affine(-2.0, (n - 1) as f64)?;
            Ok(t.broadcast_add(&flip.broadcast_mul(&mirror_step)?)?)
        };
        let i = grid(h, (1, h, 1), &flipped(true)?)?; // [B, H, 1]
        let j = grid(w, (1, 1, w), &flipped(false)?)?; // [B, 1, W]
                                                       // scipy: coordinate = (c + i·a) + j·b, in f64 and in this order.
        let source = |r: usize| -> Result<Tensor> {
            let ci = i.broadcast_mul(&entry(r, 0)?)?.broadcast_add(&entry(r, 2)?)?; // [B, H, 1]
            Ok(ci.broadcast_add(&j.broadcast_mul(&entry(r, 1)?)?)?) // [B, H, W]
        };
        let rows = Axis::new(&source(0)?, h)?;
        let cols = Axis::new(&source(1)?, w)?;

        // Blend the four neighbours, r0 c0 + r0 c1 + r1 c0 + r1 c1 (scipy's order), one
        // gather each: on the CPU one gather of all four and a sum over them is ~5× slower.
        let hw = h * w;
        let pixels = x.reshape((b, c, hw))?;
        let term = |row: &Tensor, row_weight: &Tensor, col: &Tensor, col_weight: &Tensor| {
            let index = row
                .affine(w as f64, 0.0)?
                .add(col)?
                .to_dtype(DType::U32)?
                .reshape((b, 1, hw))?
                .broadcast_as((b, c, hw))?
                .contiguous()?;
            let weight = row_weight.mul(col_weight)?.to_dtype(x.dtype())?.reshape((b, 1, hw))?;
            pixels.gather(&index, 2)?.broadcast_mul(&weight)
        };
        let (r, k) = (&rows, &cols);
        let out = term(&r.low, &r.low_weight, &k.low, &k.low_weight)?
            .add(&term(&r.low, &r.low_weight, &k.high, &k.high_weight)?)?
            .add(&term(&r.high, &r.high_weight, &k.low, &k.low_weight)?)?
            .add(&term(&r.high, &r.high_weight, &k.high, &k.high_weight)?)?
            .reshape((b, c, h, w))?;
        match self.fill_mode {
            FillMode::Nearest => Ok(out),
            FillMode::Constant(cval) => {
                let inside = rows.inside.mul(&cols.inside)?.reshape((b, 1, h, w))?;
                let fill =
                    Tensor::new(cval, dev)?.to_dtype(x.dtype())?.broadcast_as((b, c, h, w))?;
                Ok(inside.broadcast_as((b, c, h, w))?.where_cond(&out, &fill)?)
            }
        }
    }
}

/// Sampling along one axis of length `n`: the two neighbours of each (clamped) source
/// coordinate and their linear weights, and whether the coordinate lies in `[0, n − 1]`.
struct Axis {
    /// ⌊clamped coordinate⌋, as f64.
    low: Tensor,
    /// min(low + 1, n − 1), as f64.
    high: Tensor,
    /// 1 − fraction.
    low_weight: Tensor,
    /// The fractional part of the clamped coordinate.
    high_weight: Tensor,
    /// u8: 1 where the coordinate lies inside `[0, n − 1]` (for constant fill).
    inside: Tensor,
}

impl Axis {
    fn new(coordinate: &Tensor, n: usize) -> Result<Self> {
        let last = (n - 1) as f64;
        let clamped = coordinate.clamp(0f64, last)?;
        let inside = coordinate.eq(&clamped)?;
        let low = clamped.floor()?;
        let high_weight = clamped.sub(&low)?;
        let low_weight = high_weight.affine(-1.0, 1.0)?;
        let high = low.affine(1.0, 1.0)?.minimum(last)?;
        Ok(Axis { low, high, low_weight, high_weight, inside })
    }
}

impl Augment for RandomAffine {
    fn apply(&self, x: &Tensor, y: &Tensor, rng: &mut StdRng) -> Result<(Tensor, Tensor)> {
        let (b, _, h, w) = batch_dims(x, y)?;
        let params = self.draw(b, h, w, rng)?;
        Ok((self.apply_with(&params, x)?, y.clone()))
    }
}
