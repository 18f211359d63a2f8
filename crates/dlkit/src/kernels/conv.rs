//! 2-D convolution as im2col + GEMM on the CPU, with both backward passes.
//!
//! For one image `X` (`C × H × W`) and a kernel `W` (`O × C·kh·kw`), im2col copies every
//! receptive field into a column of `cols` (`C·kh·kw × Ho·Wo`), so that
//! - forward: `Y = W · cols` (+ bias per output channel);
//! - input gradient: `dcols = Wᵀ · dY`, then col2im adds each column back onto the pixels it
//!   came from;
//! - kernel gradient: `dW = Σ_images dY · colsᵀ`, bias gradient `db = Σ dY` over images and
//!   pixels.
//!
//! Images are processed in parallel (rayon), each with a single-threaded GEMM. A 1×1 convolution
//! with stride 1 and no padding needs no im2col: the image already is its column matrix. A 3×3
//! convolution with stride 1 and enough channels takes [`super::winograd`] instead, for the forward
//! pass and both gradients.

use super::pool::Pool;
use super::winograd::{self, Plane};
use super::{bias_or_zeros, f32_slice, gradient_tensor, matmul, output_buffer, with_f32, MatRef};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Fewest input and output channels for which a 3×3 stride-1 layer takes [`super::winograd`]
/// (the stems, 3 channels in, stay im2col + GEMM).
///
/// Measured on a 2-core Intel Xeon (`dlkit bench --suite eval --threads 2`, two alternating runs
/// per setting, ms per batch of 256): with 16, ResNet-20 181 → 161–170, ResNet-44 382–402 →
/// 363–375, MiniGoogLeNet 996–1,013 → 870–872, the VGG-style CNN 442–446 → 359–363,
/// ResNet-50-D-SE 5,433–5,495 → 4,943–5,075, the Attention ResNets unchanged; with 32, ResNet-20
/// and ResNet-44 did not move. One layer alone (1 thread): 16 channels on 32 × 32, 88 → 53 µs;
/// 64 channels on 16 × 16, 199 → 131 µs; 64 on 8 × 8, no gain.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

/// Narrowest input (pixels) for which a 3×3 stride-1 layer takes [`super::winograd`]: narrower
/// maps have few tiles per row, and the transforms' one junk tile per row costs more (64 and 128
/// channels on 8 × 8: no gain or a loss, above).
pub const WINOGRAD_MIN_WIDTH: usize = 16;

/// The sizes of one convolution (square stride and padding, no dilation or groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvGeometry {
    /// The geometry of `x` (`B × C × H × W`) convolved with `w` (`O × C × kh × kw`).
    pub fn new(x: &Shape, w: &Shape, stride: usize, padding: usize) -> Result<Self> {
        let (batch, in_channels, height, width) = x.dims4()?;
        let (out_channels, w_channels, kernel_h, kernel_w) = w.dims4()?;
        if w_channels != in_channels {
            candle_core::bail!("conv2d: input has {in_channels} channels, kernel expects {w_channels}")
        }
        if stride == 0 {
            candle_core::bail!("conv2d: stride must be at least 1")
        }
        if height + 2 * padding < kernel_h || width + 2 * padding < kernel_w {
            candle_core::bail!("conv2d: {kernel_h}×{kernel_w} kernel larger than the padded {height}×{width} input")
        }
        Ok(ConvGeometry { batch, in_channels, height, width, out_channels, kernel_h, kernel_w, stride, padding })
    }

    /// Fails unless `bias` holds one value per output channel.
    fn check_bias(&self, bias: &Tensor) -> Result<()> {
        if bias.elem_count() != self.out_channels {
            candle_core::bail!("conv2d: bias has {} values for {} output channels", bias.elem_count(), self.out_channels)
        }
        Ok(())
    }

    /// Output height: `(H + 2p − kh) / s + 1`.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    /// Output width: `(W + 2p − kw) / s + 1`.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// Rows of the column matrix: `C · kh · kw`.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    fn out_pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// The Winograd plane of a 3×3 stride-1 convolution with padding at most 2 where it pays:
    /// both channel counts at least [`WINOGRAD_MIN_CHANNELS`] and the input at least
    /// [`WINOGRAD_MIN_WIDTH`] wide; `None` otherwise.
    fn winograd(&self) -> Option<Plane> {
        let shape = self.kernel_h == 3 && self.kernel_w == 3 && self.stride == 1 && self.padding <= 2;
        let pays = self.in_channels.min(self.out_channels) >= WINOGRAD_MIN_CHANNELS && self.width >= WINOGRAD_MIN_WIDTH;
        (shape && pays).then_some(Plane { height: self.height, width: self.width, padding: self.padding })
    }

    /// Images in each of the fixed runs the order-stable sums over images cut a batch into
    /// ([`image_chunks`] runs).
    fn images_per_run(&self) -> usize {
        self.batch.div_ceil(image_chunks(self.batch)).max(1)
    }

    fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.padding == 0
    }

    /// The output columns `ox` whose input column `ox·s + kj − p` lies inside the image.
    fn valid_columns(&self, kj: usize) -> std::ops::Range<usize> {
        let (s, p, w) = (self.stride, self.padding, self.width);
        let first = p.saturating_sub(kj).div_ceil(s);
        let end = (w + p).saturating_sub(kj).div_ceil(s).min(self.out_w());
        // Empty (and inside 0..Wo) when the tap never lands in the image.
        first.min(end)..end
    }

    /// Visits every (column-matrix row, output row) pair: `f(segment, input_row, kj)` where
    /// `segment` indexes the `Wo` values of that output row in the column matrix and
    /// `input_row` is the image row (channel-major) it reads, `None` in the padding.
    fn for_each_row(&self, mut f: impl FnMut(std::ops::Range<usize>, Option<usize>, usize)) {
        let (ow, n) = (self.out_w(), self.out_pixels());
        for c in 0..self.in_channels {
            for ki in 0..self.kernel_h {
                for kj in 0..self.kernel_w {
                    let row = (c * self.kernel_h + ki) * self.kernel_w + kj;
                    for oy in 0..self.out_h() {
                        let iy = (oy * self.stride + ki).checked_sub(self.padding).filter(|&iy| iy < self.height);
                        let start = row * n + oy * ow;
                        f(start..start + ow, iy.map(|iy| c * self.height + iy), kj);
                    }
                }
            }
        }
    }
}

/// Copies every receptive field of one image (`C × H × W`) into the columns of `cols`
/// (`C·kh·kw × Ho·Wo`), with zeros where the field hangs over the padding.
pub fn im2col(g: &ConvGeometry, image: &[f32], cols: &mut [f32]) {
    g.for_each_row(|segment, input_row, kj| {
        let dst = &mut cols[segment];
        let Some(input_row) = input_row else {
            dst.fill(0.0);
            return;
        };
        let src = &image[input_row * g.width..][..g.width];
        let valid = g.valid_columns(kj);
        dst[..valid.start].fill(0.0);
        dst[valid.end..].fill(0.0);
        if valid.is_empty() {
            return;
        }
        let first = valid.start * g.stride + kj - g.padding;
        if g.stride == 1 {
            dst[valid.clone()].copy_from_slice(&src[first..first + valid.len()]);
        } else {
            for (d, s) in dst[valid].iter_mut().zip(src[first..].iter().step_by(g.stride)) {
                *d = *s;
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds every column of `cols` back onto the pixels of `image`
/// (`C × H × W`) it was copied from.
pub fn col2im(g: &ConvGeometry, cols: &[f32], image: &mut [f32]) {
    g.for_each_row(|segment, input_row, kj| {
        let Some(input_row) = input_row else { return };
        let dst = &mut image[input_row * g.width..][..g.width];
        let src = &cols[segment];
        let valid = g.valid_columns(kj);
        if valid.is_empty() {
            return;
        }
        let first = valid.start * g.stride + kj - g.padding;
        if g.stride == 1 {
            for (d, s) in dst[first..first + valid.len()].iter_mut().zip(&src[valid]) {
                *d += s;
            }
        } else {
            for (d, s) in dst[first..].iter_mut().step_by(g.stride).zip(&src[valid]) {
                *d += s;
            }
        }
    });
}

/// How one image becomes a column matrix (`C·kh·kw` rows × `n` columns) for the GEMM.
///
/// - `Pointwise` (1×1, stride 1, no padding): the image itself, `n = H·W`.
/// - `Wide` (any other stride-1 convolution): the image is zero-padded to `Hp × Wp` and each row
///   of the column matrix is one contiguous run of `n = Ho·Wp` padded pixels, shifted by the
///   kernel tap (`ki·Wp + kj`). Outputs come out `Wp` wide; the last `Wp − Wo` columns of every
///   output row are junk and are dropped (forward) or zeroed (backward). This turns im2col and
///   col2im into `C·kh·kw` long copies/additions instead of one short one per output row.
/// - `Strided`: classic im2col, `n = Ho·Wo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lowering {
    Pointwise,
    Wide,
    Strided,
}

/// Per-worker buffers for one image at a time.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    padded: Vec<f32>,
    wide: Vec<f32>,
}

impl ConvGeometry {
    fn lowering(&self) -> Lowering {
        if self.is_pointwise() {
            Lowering::Pointwise
        } else if self.stride == 1 {
            Lowering::Wide
        } else {
            Lowering::Strided
        }
    }

    fn padded_h(&self) -> usize {
        self.height + 2 * self.padding
    }

    fn padded_w(&self) -> usize {
        self.width + 2 * self.padding
    }

    /// Columns of the lowered matrices (see [`Lowering`]).
    fn lowered_len(&self) -> usize {
        match self.lowering() {
            Lowering::Wide => self.out_h() * self.padded_w(),
            _ => self.out_pixels(),
        }
    }

    /// One padded image, plus `kw − 1` trailing zeros that the last shifted run may touch.
    fn padded_len(&self) -> usize {
        self.in_channels * self.padded_h() * self.padded_w() + self.kernel_w - 1
    }

    /// Zero-pads `image` into `padded` (`C × Hp × Wp`, then the trailing zeros).
    fn pad(&self, image: &[f32], padded: &mut Vec<f32>) {
        let (h, w, p, wp) = (self.height, self.width, self.padding, self.padded_w());
        padded.clear();
        padded.resize(self.padded_len(), 0.0);
        for (plane, src) in padded.chunks_mut(self.padded_h() * wp).zip(image.chunks(h * w)) {
            for (y, row) in src.chunks(w).enumerate() {
                plane[(y + p) * wp + p..][..w].copy_from_slice(row);
            }
        }
    }

    /// Where each shifted run of a padded image starts: row `(c, ki, kj)` of the column matrix is
/// the `lowered_len()` values from pixel `(ki, kj)` of plane c.
    fn run_starts(&self) -> impl Iterator<Item = usize> + '_ {
        let (plane, wp) = (self.padded_h() * self.padded_w(), self.padded_w());
        (0..self.in_channels).flat_map(move |c| {
            (0..self.kernel_h).flat_map(move |ki| (0..self.kernel_w).map(move |kj| c * plane + ki * wp + kj))
        })
    }

    /// The column matrix of one image (`image` itself for a pointwise convolution).
    fn columns<'a>(&self, image: &'a [f32], s: &'a mut Scratch) -> &'a [f32] {
        match self.lowering() {
            Lowering::Pointwise => image,
            Lowering::Wide => {
                self.pad(image, &mut s.padded);
                let n = self.lowered_len();
                s.cols.resize(self.patch_len() * n, 0.0);
                for (start, row) in self.run_starts().zip(s.cols.chunks_mut(n)) {
                    row.copy_from_slice(&s.padded[start..start + n]);
                }
                &s.cols
            }
            Lowering::Strided => {
                s.cols.resize(self.patch_len() * self.lowered_len(), 0.0);
                im2col(self, image, &mut s.cols);
                &s.cols
            }
        }
    }

    /// An output gradient (`O × Ho × Wo`) in the lowered layout: `Wp` wide with zeros in the junk
    /// columns for `Wide`, itself otherwise.
    fn lowered_output<'a>(&self, dy: &'a [f32], wide: &'a mut Vec<f32>) -> &'a [f32] {
        if self.lowering() != Lowering::Wide {
            return dy;
        }
        let (wo, wp) = (self.out_w(), self.padded_w());
        wide.clear();
        wide.resize(self.out_channels * self.lowered_len(), 0.0);
        for (dst, src) in wide.chunks_mut(wp).zip(dy.chunks(wo)) {
            dst[..wo].copy_from_slice(src);
        }
        wide
    }

    /// Adds a column-matrix gradient back onto the pixels of one image gradient `dx`.
    fn add_columns(&self, dcols: &[f32], dx: &mut [f32], padded: &mut Vec<f32>) {
        match self.lowering() {
            Lowering::Pointwise => dx.iter_mut().zip(dcols).for_each(|(d, s)| *d += s),
            Lowering::Strided => col2im(self, dcols, dx),
            Lowering::Wide => {
                padded.clear();
                padded.resize(self.padded_len(), 0.0);
                let n = self.lowered_len();
                for (start, row) in self.run_starts().zip(dcols.chunks(n)) {
                    padded[start..start + n].iter_mut().zip(row).for_each(|(d, s)| *d += s);
                }
                let (h, w, p, wp) = (self.height, self.width, self.padding, self.padded_w());
                for (plane, dst) in padded.chunks(self.padded_h() * wp).zip(dx.chunks_mut(h * w)) {
                    for (y, row) in dst.chunks_mut(w).enumerate() {
                        row.iter_mut().zip(&plane[(y + p) * wp + p..]).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

/// What the forward pass does to each output value after adding the bias: nothing (training,
/// where batch norm follows), or — for inference with batch norm folded into the kernel — the
/// ReLU that follows, or a residual block's "add the shortcut, then ReLU".
///
/// `R` is the residual: a slice for the kernel, a tensor for [`conv2d_inference`].
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<R> {
    /// `y`.
    Identity,
    /// `max(y, 0)`.
    Relu,
    /// `y + r` with `r` shaped like the output (`B × O × Ho × Wo`): a pre-activation unit's sum.
    Add(R),
    /// `max(y + r, 0)` with `r` shaped like the output (`B × O × Ho × Wo`).
    AddRelu(R),
}

impl<R> Epilogue<R> {
    /// ReLU when `relu`, otherwise nothing: the epilogue of a convolution with no residual.
    pub fn relu_if(relu: bool) -> Self {
        if relu { Epilogue::Relu } else { Epilogue::Identity }
    }

    /// The residual this epilogue adds, if any.
    fn residual(&self) -> Option<&R> {
        match self {
            Epilogue::Add(r) | Epilogue::AddRelu(r) => Some(r),
            Epilogue::Identity | Epilogue::Relu => None,
        }
    }
}

impl Epilogue<&[f32]> {
    /// Writes `src + bias` with the epilogue applied into `dst`, which starts at `offset` in the
    /// output.
    fn write(&self, dst: &mut [f32], src: &[f32], bias: f32, offset: usize) {
        match self {
            Epilogue::Identity => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + bias),
            Epilogue::Relu => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = (s + bias).max(0.0)),
            Epilogue::Add(r) => {
                let r = &r[offset..offset + dst.len()];
                dst.iter_mut().zip(src).zip(r).for_each(|((d, &s), &r)| *d = s + bias + r);
            }
            Epilogue::AddRelu(r) => {
                let r = &r[offset..offset + dst.len()];
                dst.iter_mut().zip(src).zip(r).for_each(|((d, &s), &r)| *d = (s + bias + r).max(0.0));
            }
        }
    }

    /// Adds each channel's bias to its plane of `y` (`plane` values each) and applies the
    /// epilogue, in place and in one pass; `y` starts at `offset` in the output.
    fn apply_biased(&self, y: &mut [f32], bias: &[f32], plane: usize, offset: usize) {
        for (c, (y, &b)) in y.chunks_mut(plane).zip(bias).enumerate() {
            let offset = offset + c * plane;
            match self {
                Epilogue::Identity => y.iter_mut().for_each(|v| *v += b),
                Epilogue::Relu => y.iter_mut().for_each(|v| *v = (*v + b).max(0.0)),
                Epilogue::Add(r) => y.iter_mut().zip(&r[offset..offset + plane]).for_each(|(v, &r)| *v = *v + b + r),
                Epilogue::AddRelu(r) => y.iter_mut().zip(&r[offset..offset + plane]).for_each(|(v, &r)| *v = (*v + b + r).max(0.0)),
            }
        }
    }

    /// Applies the epilogue in place to `y`, which starts at `offset` in the output.
    fn apply(&self, y: &mut [f32], offset: usize) {
        match self {
            Epilogue::Identity => {}
            Epilogue::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epilogue::Add(r) => {
                let r = &r[offset..offset + y.len()];
                y.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
            }
            Epilogue::AddRelu(r) => {
                let r = &r[offset..offset + y.len()];
                y.iter_mut().zip(r).for_each(|(v, &r)| *v = (*v + r).max(0.0));
            }
        }
    }
}

/// Forward pass: `x` (`B × C × H × W`), `w` (`O × C × kh × kw`), `bias` (`O`) → `B × O × Ho × Wo`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    forward_with(g, x, w, bias, Epilogue::Identity)
}

/// [`forward`] followed by `epilogue` on every output value, in the same pass over the output.
pub fn forward_with(g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32], epilogue: Epilogue<&[f32]>) -> Vec<f32> {
    let len = g.out_channels * g.out_pixels();
    let mut out = output_buffer(g.batch * len);
    forward_into(g, x, w, bias, epilogue, &mut out, (len, 0));
    out
}

/// [`forward_with`] into the channels `start / (Ho·Wo)`… of a larger output whose images are
/// `image_stride` values apart (`(image_stride, start)`), e.g. one branch of a concatenation.
fn forward_into(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    epilogue: Epilogue<&[f32]>,
    out: &mut [f32],
    (image_stride, start): (usize, usize),
) {
    let (o, p, n, m) = (g.out_channels, g.patch_len(), g.out_pixels(), g.lowered_len());
    if let Some(r) = epilogue.residual() {
        assert_eq!(r.len(), g.batch * o * n, "conv2d: the residual must be shaped like the output");
    }
    assert!(start + o * n <= image_stride && out.len() == g.batch * image_stride, "conv2d: output block out of bounds");
    let images = out.par_chunks_mut(image_stride).map(|y| &mut y[start..start + o * n]);
    if let Some(plane) = g.winograd() {
        let kernel = winograd::Kernel::new(w, o, g.in_channels);
        x.par_chunks(g.image_len()).zip(images).enumerate().for_each(|(i, (image, y))| {
            winograd::with_scratch(|s| winograd::convolve(plane, &kernel, image, bias, y, s));
            epilogue.apply(y, i * o * n);
        });
        return;
    }
    x.par_chunks(g.image_len()).zip(images).enumerate().for_each_init(
        Scratch::default,
        |s, (i, (image, y))| {
            let mut wide = std::mem::take(&mut s.wide);
            let target: &mut [f32] = if g.lowering() == Lowering::Wide {
                wide.resize(o * m, 0.0);
                &mut wide
            } else {
                y
            };
            // The bias comes in with the pass that copies out of the wide buffer or applies the
            // epilogue; with neither (a plain convolution in place), the product adds to it.
            let bias_first = g.lowering() != Lowering::Wide && matches!(epilogue, Epilogue::Identity);
            if bias_first {
                for (row, b) in target.chunks_mut(m).zip(bias) {
                    row.fill(*b);
                }
            }
            let cols = g.columns(image, s);
            matmul(o, m, p, target, MatRef::rows(w, p), MatRef::rows(cols, m), bias_first);
            if g.lowering() == Lowering::Wide {
                // Keep the first Wo columns of every Wp-wide output row (Ho rows per channel).
                let (wo, wp, ho) = (g.out_w(), g.padded_w(), g.out_h());
                for (r, (dst, src)) in y.chunks_mut(wo).zip(wide.chunks(wp)).enumerate() {
                    epilogue.write(dst, &src[..wo], bias[r / ho], i * o * n + r * wo);
                }
            } else if !bias_first {
                epilogue.apply_biased(y, bias, n, i * o * n);
            }
            s.wide = wide;
        },
    );
}

/// The gradients of one convolution (see [`backward`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Input gradient (`B × C × H × W`), when asked for.
    pub input: Option<Vec<f32>>,
    /// Kernel gradient (`O × C × kh × kw`), when asked for.
    pub kernel: Option<Vec<f32>>,
    /// Bias gradient (`O`), with the kernel gradient.
    pub bias: Option<Vec<f32>>,
}

/// Backward pass from `x`, `w` and the output gradient `dy` (`B × O × Ho × Wo`), in one pass
/// over the images (each output gradient is lowered once for both products):
/// `dx = col2im(Wᵀ · dY)` when `input` is set, and `dW = Σ dY · colsᵀ`, `db = Σ dY` when `kernel`
/// is set.
///
/// The sums over images are order-stable: the batch is cut into [`image_chunks`] fixed runs of
/// consecutive images, each run sums its images in order into its own partial `dW`/`db`, and the
/// partials are added in run order. The result is the same bits on every call with the same
/// thread count, whichever worker runs which run.
pub fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], input: bool, kernel: bool) -> Gradients {
    let Some(plane) = g.winograd() else {
        return lowered_backward(g, x, w, dy, input, kernel);
    };
    let (kernel, bias) = match kernel.then(|| winograd_kernel_gradient(g, plane, x, dy)) {
        Some((dw, db)) => (Some(dw), Some(db)),
        None => (None, None),
    };
    Gradients { input: input.then(|| winograd_input_gradient(g, plane, w, dy)), kernel, bias }
}

/// The kernel and bias gradients of a 3×3 stride-1 convolution by Winograd, summed over images in
/// the same fixed runs as [`lowered_backward`] (so the same bits whichever worker runs which).
fn winograd_kernel_gradient(g: &ConvGeometry, plane: Plane, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (o, n) = (g.out_channels, g.out_pixels());
    let per_run = g.images_per_run();
    let partials: Vec<(winograd::KernelGradient, Vec<f32>)> = x
        .par_chunks(per_run * g.image_len())
        .zip(dy.par_chunks(per_run * o * n))
        .map(|(x_run, dy_run)| {
            let (mut dw, mut db) = (winograd::KernelGradient::new(o, g.in_channels), vec![0f32; o]);
            winograd::with_scratch(|s| {
                for (image, dy) in x_run.chunks(g.image_len()).zip(dy_run.chunks(o * n)) {
                    add_bias_gradient(&mut db, dy, n);
                    dw.add(plane, image, dy, s);
                }
            });
            (dw, db)
        })
        .collect();
    let mut partials = partials.into_iter();
    let zero = || (winograd::KernelGradient::new(o, g.in_channels), vec![0f32; o]);
    let (mut dw, mut db) = partials.next().unwrap_or_else(zero);
    for (dw2, db2) in partials {
        dw.merge(&dw2);
        db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
    }
    (dw.finish(), db)
}

/// The input gradient of a 3×3 stride-1 convolution by Winograd: `dy` convolved with the kernel
/// rotated by 180° (channel axes swapped), padded by `2 − p`.
fn winograd_input_gradient(g: &ConvGeometry, plane: Plane, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (o, n) = (g.out_channels, g.out_pixels());
    let kernel = winograd::Kernel::for_input_gradient(w, o, g.in_channels);
    let transposed = Plane { height: g.out_h(), width: g.out_w(), padding: 2 - plane.padding };
    let zero_bias = vec![0f32; g.in_channels];
    let mut dx = output_buffer(g.batch * g.image_len());
    dy.par_chunks(o * n).zip(dx.par_chunks_mut(g.image_len())).for_each(|(dy, dx)| {
        winograd::with_scratch(|s| winograd::convolve(transposed, &kernel, dy, &zero_bias, dx, s))
    });
    dx
}

/// [`backward`] through the lowered (column-matrix) form for both gradients.
fn lowered_backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], input: bool, kernel: bool) -> Gradients {
    let (o, p, n, m) = (g.out_channels, g.patch_len(), g.out_pixels(), g.lowered_len());
    let mut dx = if input { vec![0f32; g.batch * g.image_len()] } else { Vec::new() };
    let per_run = g.images_per_run();
    let dx_runs: Vec<Option<&mut [f32]>> = if input {
        dx.chunks_mut(per_run * g.image_len()).map(Some).collect()
    } else {
        (0..g.batch.div_ceil(per_run)).map(|_| None).collect()
    };
    let zero_sums = || (vec![0f32; if kernel { o * p } else { 0 }], vec![0f32; if kernel { o } else { 0 }]);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx_runs
        .into_par_iter()
        .zip(x.par_chunks(per_run * g.image_len()).zip(dy.par_chunks(per_run * o * n)))
        .map(|(mut dx_run, (x_run, dy_run))| {
            let mut s = Scratch::default();
            let (mut dw, mut db) = zero_sums();
            for (i, (image, dy)) in x_run.chunks(g.image_len()).zip(dy_run.chunks(o * n)).enumerate() {
                let mut wide = std::mem::take(&mut s.wide);
                let dy_lowered = g.lowered_output(dy, &mut wide);
                if kernel {
                    add_bias_gradient(&mut db, dy, n);
                    let cols = g.columns(image, &mut s);
                    matmul(o, p, m, &mut dw, MatRef::rows(dy_lowered, m), MatRef::transposed(cols, m), true);
                }
                if let Some(dx_run) = dx_run.as_deref_mut() {
                    let dx = &mut dx_run[i * g.image_len()..(i + 1) * g.image_len()];
                    if g.lowering() == Lowering::Pointwise {
                        matmul(p, m, o, dx, MatRef::transposed(w, p), MatRef::rows(dy_lowered, m), false);
                    } else {
                        s.cols.resize(p * m, 0.0);
                        matmul(p, m, o, &mut s.cols, MatRef::transposed(w, p), MatRef::rows(dy_lowered, m), false);
                        g.add_columns(&s.cols, dx, &mut s.padded);
                    }
                }
                s.wide = wide;
            }
            (dw, db)
        })
        .collect();
    let mut partials = partials.into_iter();
    let (mut dw, mut db) = partials.next().unwrap_or_else(zero_sums);
    for (dw2, db2) in partials {
        dw.iter_mut().zip(&dw2).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&db2).for_each(|(a, b)| *a += b);
    }
    Gradients { input: input.then_some(dx), kernel: kernel.then_some(dw), bias: kernel.then_some(db) }
}

/// Adds one image's bias gradient to `db`: the sum of each output channel's `n` values of `dy`.
fn add_bias_gradient(db: &mut [f32], dy: &[f32], n: usize) {
    for (d, row) in db.iter_mut().zip(dy.chunks(n)) {
        *d += row.iter().sum::<f32>();
    }
}

/// Into how many runs of consecutive images a batch of `batch` is cut for the order-stable sums
/// over images: one per thread of the current rayon pool (at most one per image), so that each
/// worker gets one run and one partial sum.
pub fn image_chunks(batch: usize) -> usize {
    rayon::current_num_threads().clamp(1, batch.max(1))
}

/// The convolution as a candle custom op on (input, kernel, bias).
struct Conv2dOp {
    stride: usize,
    padding: usize,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "dlkit-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = ConvGeometry::new(xl.shape(), wl.shape(), self.stride, self.padding)?;
        let x = f32_slice(xs, xl, self.name())?;
        let w = f32_slice(ws, wl, self.name())?;
        let b = f32_slice(bs, bl, self.name())?;
        if b.len() != g.out_channels {
            candle_core::bail!("conv2d: bias has {} values for {} output channels", b.len(), g.out_channels)
        }
        let y = forward(&g, x, w, b);
        Ok((CpuStorage::F32(y), Shape::from((g.batch, g.out_channels, g.out_h(), g.out_w()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = ConvGeometry::new(x.shape(), w.shape(), self.stride, self.padding)?;
        let (input, kernel) = (x.track_op(), w.track_op() || bias.track_op());
        let grads = with_f32(x, self.name(), |xv| {
            with_f32(w, self.name(), |wv| with_f32(dy, self.name(), |dyv| Ok(backward(&g, xv, wv, dyv, input, kernel))))
        })?;
        Ok((gradient_tensor(grads.input, x)?, gradient_tensor(grads.kernel, w)?, gradient_tensor(grads.bias, bias)?))
    }
}

/// `conv2d(x, w) + bias` with square stride and zero padding, NCHW.
///
/// On CPU `f32` tensors this is the im2col + GEMM kernel above (with its own backward); elsewhere
/// it is candle's `conv2d` followed by a broadcast add, so the same model runs on CUDA.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    if super::applies_to(x) && super::applies_to(w) {
        x.contiguous()?.apply_op3(&w.contiguous()?, &bias_or_zeros(bias, w)?, Conv2dOp { stride, padding })
    } else {
        let y = x.conv2d(w, padding, stride, 1, 1)?;
        match bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Inference-only convolution: `epilogue(conv2d(x, w) + bias)`, recording no autograd graph
/// (use it with detached weights, e.g. a kernel with batch norm folded in).
///
/// On CPU `f32` tensors the epilogue (ReLU, or shortcut add + ReLU) is applied while the output is
/// written, instead of in separate passes; elsewhere it is candle's convolution and element-wise
/// ops.
pub fn conv2d_inference(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
    epilogue: Epilogue<&Tensor>,
) -> Result<Tensor> {
    let g = ConvGeometry::new(x.shape(), w.shape(), stride, padding)?;
    let out_shape = Shape::from((g.batch, g.out_channels, g.out_h(), g.out_w()));
    g.check_bias(bias)?;
    if let Some(r) = epilogue.residual() {
        if r.shape() != &out_shape {
            candle_core::bail!("conv2d: shortcut {:?} does not match the output {:?}", r.shape(), out_shape)
        }
    }
    let all_cpu = super::applies_to(x) && super::applies_to(w) && super::applies_to(bias);
    if all_cpu && epilogue.residual().is_none_or(|r| super::applies_to(r)) {
        let name = "dlkit-conv2d-inference";
        let y = with_f32(x, name, |x| {
            with_f32(w, name, |w| {
                with_f32(bias, name, |b| match epilogue {
                    Epilogue::Identity => Ok(forward_with(&g, x, w, b, Epilogue::Identity)),
                    Epilogue::Relu => Ok(forward_with(&g, x, w, b, Epilogue::Relu)),
                    Epilogue::Add(r) => with_f32(r, name, |r| Ok(forward_with(&g, x, w, b, Epilogue::Add(r)))),
                    Epilogue::AddRelu(r) => with_f32(r, name, |r| Ok(forward_with(&g, x, w, b, Epilogue::AddRelu(r)))),
                })
            })
        })?;
        Tensor::from_vec(y, out_shape, x.device())
    } else {
        let y = x.conv2d(w, padding, stride, 1, 1)?.broadcast_add(&bias.reshape((1, (), 1, 1))?)?;
        match epilogue {
            Epilogue::Identity => Ok(y),
            Epilogue::Relu => y.relu(),
            Epilogue::Add(r) => y + r,
            Epilogue::AddRelu(r) => (y + r)?.relu(),
        }
    }
}

/// One block of channels of [`conv2d_inference_concat`]'s output, computed from its input.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// A convolution: kernel, bias, stride, padding (then ReLU when the call asks for it).
    Conv(&'a Tensor, &'a Tensor, usize, usize),
    /// 'Valid' max pooling of the input itself, every channel: kernel, stride.
    MaxPool(usize, usize),
}

/// A [`Part`] sized for the input.
enum SizedPart<'a> {
    Conv(ConvGeometry, &'a Tensor, &'a Tensor),
    MaxPool(Pool, usize),
}

impl<'a> SizedPart<'a> {
    fn new(part: &Part<'a>, x: &Shape) -> Result<Self> {
        Ok(match *part {
            Part::Conv(w, b, stride, padding) => {
                let g = ConvGeometry::new(x, w.shape(), stride, padding)?;
                g.check_bias(b)?;
                SizedPart::Conv(g, w, b)
            }
            Part::MaxPool(kernel, stride) => {
                let (_, channels, h, w) = x.dims4()?;
                SizedPart::MaxPool(Pool::new(h, w, kernel, stride)?, channels)
            }
        })
    }

    /// Output channels, height and width.
    fn out_dims(&self) -> (usize, usize, usize) {
        match self {
            SizedPart::Conv(g, ..) => (g.out_channels, g.out_h(), g.out_w()),
            SizedPart::MaxPool(p, channels) => (*channels, p.out_h(), p.out_w()),
        }
    }
}

/// Inference layers of the same input `x` — convolutions, each followed by ReLU when `relu`,
/// and max pooling — their outputs side by side on the channel axis in the order given (an
/// inception or downsample module's concatenation). On CPU `f32` tensors each part writes its
/// channels of the result in place, with no separate outputs to copy; elsewhere it is
/// [`conv2d_inference`] and candle's pooling, then `cat`.
pub fn conv2d_inference_concat(x: &Tensor, parts: &[Part], relu: bool) -> Result<Tensor> {
    let sized = parts.iter().map(|p| SizedPart::new(p, x.shape())).collect::<Result<Vec<_>>>()?;
    let Some(first) = sized.first() else { candle_core::bail!("conv2d concat: no layers given") };
    let (_, ho, wo) = first.out_dims();
    if let Some((_, h, w)) = sized.iter().map(SizedPart::out_dims).find(|&(_, h, w)| (h, w) != (ho, wo)) {
        candle_core::bail!("conv2d concat: outputs of {h}×{w} and {ho}×{wo} cannot sit side by side")
    }
    let on_cpu = |p: &Part| match p {
        Part::Conv(w, b, ..) => super::applies_to(w) && super::applies_to(b),
        Part::MaxPool(..) => true,
    };
    if !(super::applies_to(x) && parts.iter().all(on_cpu)) {
        let outputs = parts.iter().map(|p| match *p {
            Part::Conv(w, b, stride, padding) => conv2d_inference(x, w, b, stride, padding, Epilogue::relu_if(relu)),
            Part::MaxPool(kernel, stride) => x.max_pool2d_with_stride(kernel, stride),
        });
        return Tensor::cat(&outputs.collect::<Result<Vec<_>>>()?, 1);
    }
    let (batch, n) = (x.dims4()?.0, ho * wo);
    let total = sized.iter().map(|p| p.out_dims().0).sum::<usize>();
    let mut out = output_buffer(batch * total * n);
    let name = "dlkit-conv2d-inference";
    with_f32(x, name, |x| {
        let mut start = 0;
        for part in &sized {
            match part {
                SizedPart::Conv(g, w, b) => with_f32(w, name, |w| {
                    with_f32(b, name, |b| {
                        forward_into(g, x, w, b, Epilogue::relu_if(relu), &mut out, (total * n, start));
                        Ok(())
                    })
                })?,
                SizedPart::MaxPool(pool, channels) => pool.forward_into(x, *channels, &mut out, (total * n, start)),
            }
            start += part.out_dims().0 * n;
        }
        Ok(())
    })?;
    Tensor::from_vec(out, (batch, total, ho, wo), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn randn(shape: &[usize], seed: u64) -> Vec<f32> {
        // A small deterministic generator, so the test needs no RNG state.
        let n: usize = shape.iter().product();
        (0..n).map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0).collect()
    }

    /// Checks the op and its gradients against candle's own convolution.
    fn agrees_with_candle(b: usize, c: usize, h: usize, w: usize, o: usize, k: usize, stride: usize, pad: usize) {
        let dev = Device::Cpu;
        let x = Var::from_vec(randn(&[b, c, h, w], 1), (b, c, h, w), &dev).unwrap();
        let wt = Var::from_vec(randn(&[o, c, k, k], 2), (o, c, k, k), &dev).unwrap();
        let bias = Var::from_vec(randn(&[o], 3), o, &dev).unwrap();
        let ours = conv2d(&x, &wt, Some(&bias), stride, pad).unwrap();
        let theirs = x.conv2d(&wt, pad, stride, 1, 1).unwrap().broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap()).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        // A weighted sum, so every output position gets a different gradient.
        let weights = Tensor::from_vec(randn(ours.dims(), 4), ours.shape(), &dev).unwrap();
        let g1 = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
            assert!(diff <= 1e-4 * scale, "{what}: max difference {diff} (scale {scale}) for k{k} s{stride} p{pad}");
        };
        close(&ours, &theirs, "output");
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), "input gradient");
        close(g1.get(&wt).unwrap(), g2.get(&wt).unwrap(), "kernel gradient");
        close(g1.get(&bias).unwrap(), g2.get(&bias).unwrap(), "bias gradient");
        // An input that needs no gradient (the images): the same kernel gradient, no input one.
        let g3 = (&conv2d(&x.detach(), &wt, Some(&bias), stride, pad).unwrap() * &weights)
            .unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g3.get(&x).is_none());
        close(g3.get(&wt).unwrap(), g1.get(&wt).unwrap(), "kernel gradient without input gradient");
    }

    #[test]
    fn forward_and_gradients_agree_with_candle_for_every_shape_the_models_use() {
        agrees_with_candle(3, 2, 6, 6, 4, 3, 1, 1); // 'same' 3×3
        agrees_with_candle(2, 3, 7, 5, 2, 3, 2, 1); // 'same' 3×3, stride 2, odd sizes
        agrees_with_candle(2, 3, 6, 6, 4, 1, 1, 0); // pointwise
        agrees_with_candle(2, 3, 6, 6, 4, 1, 2, 0); // ResNet projection: 1×1 stride 2
        agrees_with_candle(2, 2, 7, 7, 3, 3, 2, 0); // 'valid' 3×3 stride 2 (MiniGoogLeNet)
        agrees_with_candle(1, 1, 5, 5, 1, 5, 1, 2); // kernel as large as the image
        agrees_with_candle(2, 2, 6, 5, 3, 3, 1, 0); // 'valid' 3×3 stride 1: the wide rows are the image rows
        agrees_with_candle(2, 3, 4, 7, 2, 3, 1, 2); // more padding than 'same'
        agrees_with_candle(2, 2, 1, 1, 3, 5, 2, 2); // stride 2, kernel wider than a 1×1 map
        agrees_with_candle(1, 2, 2, 2, 2, 7, 2, 3); // stride 2, 7×7 kernel on a 2×2 input
        // Wide enough for Winograd: 'same', 'valid' and odd sizes.
        let c = WINOGRAD_MIN_CHANNELS;
        let (w, narrow) = (WINOGRAD_MIN_WIDTH, ConvGeometry { batch: 1, in_channels: c, height: 4, width: 4, out_channels: c, kernel_h: 3, kernel_w: 3, stride: 1, padding: 1 });
        assert!(narrow.winograd().is_none() && ConvGeometry { width: w, ..narrow }.winograd().is_some());
        agrees_with_candle(2, c, w, w, c + 3, 3, 1, 1);
        agrees_with_candle(2, c + 1, w + 1, w + 3, c, 3, 1, 0);
    }

    #[test]
    fn inference_epilogues_agree_with_candle_ops() {
        let dev = Device::Cpu;
        for &(b, c, h, w, o, k, stride, pad) in &[
            (3, 2, 6, 6, 4, 3, 1, 1),
            (2, 3, 7, 5, 2, 3, 2, 1),
            (2, 3, 6, 6, 4, 1, 1, 0),
            (2, 3, 6, 6, 4, 1, 2, 0),
            (1, 2, 7, 7, 3, 3, 2, 0),
            (2, 2, 6, 5, 3, 3, 1, 0),
        ] {
            let x = Tensor::from_vec(randn(&[b, c, h, w], 5), (b, c, h, w), &dev).unwrap();
            let wt = Tensor::from_vec(randn(&[o, c, k, k], 6), (o, c, k, k), &dev).unwrap();
            let bias = Tensor::from_vec(randn(&[o], 7), o, &dev).unwrap();
            let y = x.conv2d(&wt, pad, stride, 1, 1).unwrap().broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap()).unwrap();
            let r = Tensor::from_vec(randn(y.dims(), 8), y.shape(), &dev).unwrap();
            let cases = [
                (Epilogue::Identity, y.clone()),
                (Epilogue::Relu, y.relu().unwrap()),
                (Epilogue::Add(&r), (&y + &r).unwrap()),
                (Epilogue::AddRelu(&r), (&y + &r).unwrap().relu().unwrap()),
            ];
            for (epilogue, expected) in cases {
                let got = conv2d_inference(&x, &wt, &bias, stride, pad, epilogue).unwrap();
                assert!(!got.track_op());
                let diff = (&got - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-4, "{epilogue:?} k{k} s{stride} p{pad}: max difference {diff}");
            }
            let wrong = Tensor::zeros((b, o + 1, 1, 1), DType::F32, &dev).unwrap();
            assert!(conv2d_inference(&x, &wt, &bias, stride, pad, Epilogue::AddRelu(&wrong)).is_err());
            assert!(conv2d_inference(&x, &wt, &bias, stride, pad, Epilogue::Add(&wrong)).is_err());
        }
    }

    #[test]
    fn concatenated_branches_match_candles_convolutions_side_by_side() {
        // An inception-like module: a 1×1 and a 3×3 'same' convolution (im2col + GEMM on 7 × 7,
        // Winograd on 16 × 16 with 16 channels), and a 3×3 stride-2 one beside a 3×3 stride-2
        // 'valid' one; three images, so the images' blocks of the result interleave.
        let dev = Device::Cpu;
        for &(c, h, convs) in &[
            (3, 7, &[(5, 1, 1, 0), (2, 3, 1, 1)][..]),
            (16, 16, &[(16, 3, 1, 1), (8, 1, 1, 0), (16, 3, 1, 1)][..]),
            (4, 9, &[(3, 3, 2, 1), (2, 5, 2, 2)][..]),
        ] {
            let x = Tensor::from_vec(randn(&[3, c, h, h], 5), (3, c, h, h), &dev).unwrap();
            let params: Vec<(Tensor, Tensor, usize, usize)> = convs
                .iter()
                .enumerate()
                .map(|(i, &(o, k, stride, pad))| {
                    let w = Tensor::from_vec(randn(&[o, c, k, k], 6 + i as u64), (o, c, k, k), &dev).unwrap();
                    (w, Tensor::from_vec(randn(&[o], 9 + i as u64), o, &dev).unwrap(), stride, pad)
                })
                .collect();
            let branches: Vec<Part> = params.iter().map(|(w, b, s, p)| Part::Conv(w, b, *s, *p)).collect();
            for relu in [false, true] {
                let parts: Vec<Tensor> = params
                    .iter()
                    .map(|(w, b, s, p)| {
                        let y = x.conv2d(w, *p, *s, 1, 1).unwrap().broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
                        if relu { y.relu().unwrap() } else { y }
                    })
                    .collect();
                let expected = Tensor::cat(&parts, 1).unwrap();
                let got = conv2d_inference_concat(&x, &branches, relu).unwrap();
                assert_eq!(got.dims(), expected.dims());
                let diff = (&got - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-4, "{c} channels on {h}×{h}, relu {relu}: max difference {diff}");
            }
        }
        // Outputs of different sizes cannot be concatenated; nor can nothing.
        let x = Tensor::from_vec(randn(&[1, 2, 6, 6], 1), (1, 2, 6, 6), &dev).unwrap();
        let (w, b) = (Tensor::ones((1, 2, 3, 3), DType::F32, &dev).unwrap(), Tensor::zeros(1, DType::F32, &dev).unwrap());
        assert!(conv2d_inference_concat(&x, &[Part::Conv(&w, &b, 1, 1), Part::Conv(&w, &b, 1, 0)], true).is_err());
        assert!(conv2d_inference_concat(&x, &[Part::Conv(&w, &b, 1, 1), Part::MaxPool(3, 2)], true).is_err());
        assert!(conv2d_inference_concat(&x, &[], true).is_err());
    }

    #[test]
    fn a_convolution_beside_max_pooling_matches_concatenating_them() {
        // MiniGoogLeNet's downsample module: 3×3 stride-2 'valid' convolution + ReLU beside a
        // 3×3 stride-2 max pool, on odd and even sizes, the pool first or last.
        let dev = Device::Cpu;
        for &(batch, c, h, o) in &[(2, 3, 7, 4), (3, 5, 8, 2), (1, 1, 3, 1)] {
            let x = Tensor::from_vec(randn(&[batch, c, h, h], 11), (batch, c, h, h), &dev).unwrap();
            let w = Tensor::from_vec(randn(&[o, c, 3, 3], 12), (o, c, 3, 3), &dev).unwrap();
            let b = Tensor::from_vec(randn(&[o], 13), o, &dev).unwrap();
            let conv = x.conv2d(&w, 0, 2, 1, 1).unwrap().broadcast_add(&b.reshape((1, o, 1, 1)).unwrap()).unwrap().relu().unwrap();
            let pool = x.max_pool2d_with_stride(3, 2).unwrap();
            for pool_first in [false, true] {
                let (parts, expected) = if pool_first {
                    ([Part::MaxPool(3, 2), Part::Conv(&w, &b, 2, 0)], Tensor::cat(&[&pool, &conv], 1).unwrap())
                } else {
                    ([Part::Conv(&w, &b, 2, 0), Part::MaxPool(3, 2)], Tensor::cat(&[&conv, &pool], 1).unwrap())
                };
                let got = conv2d_inference_concat(&x, &parts, true).unwrap();
                assert_eq!(got.dims(), expected.dims());
                let diff = (&got - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(diff < 1e-5, "{batch}×{c}×{h}×{h}, pool first {pool_first}: max difference {diff}");
            }
        }
    }

    #[test]
    fn kernel_gradient_sums_do_not_depend_on_scheduling() {
        // The same backward pass, repeated on pools of 1, 3 and 4 threads: within one pool the
        // bits never change; the value agrees with a sequential sum over images.
        // Both paths: im2col + GEMM (3 channels) and Winograd (16 channels, 16 wide).
        let small = ConvGeometry { batch: 7, in_channels: 3, height: 9, width: 9, out_channels: 5, kernel_h: 3, kernel_w: 3, stride: 1, padding: 1 };
        let wide = ConvGeometry { in_channels: WINOGRAD_MIN_CHANNELS, out_channels: WINOGRAD_MIN_CHANNELS, height: 16, width: WINOGRAD_MIN_WIDTH, ..small };
        assert!(small.winograd().is_none() && wide.winograd().is_some());
        for g in [small, wide] {
            let x = randn(&[g.batch, g.in_channels, g.height, g.width], 11);
            let w = randn(&[g.out_channels, g.in_channels, 3, 3], 12);
            let dy = randn(&[g.batch, g.out_channels, g.out_h(), g.out_w()], 13);
            let sequential = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| backward(&g, &x, &w, &dy, true, true));
            for threads in [3, 4] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let first = pool.install(|| backward(&g, &x, &w, &dy, true, true));
                for _ in 0..20 {
                    assert_eq!(pool.install(|| backward(&g, &x, &w, &dy, true, true)), first, "{threads} threads");
                }
                let (a, b) = (first.kernel.as_ref().unwrap(), sequential.kernel.as_ref().unwrap());
                assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)));
                assert_eq!(first.input, sequential.input, "the input gradient has no sum over images");
            }
        }
    }

    #[test]
    fn im2col_of_a_tiny_image_by_hand() {
        // One 3×3 channel [1..9], 2×2 kernel, stride 1, padding 0 → 4 rows × 4 output pixels.
        let g = ConvGeometry { batch: 1, in_channels: 1, height: 3, width: 3, out_channels: 1, kernel_h: 2, kernel_w: 2, stride: 1, padding: 0 };
        let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut cols = vec![0.0; 16];
        im2col(&g, &image, &mut cols);
        #[rustfmt::skip]
        let expected = [1., 2., 4., 5.,   2., 3., 5., 6.,   4., 5., 7., 8.,   5., 6., 8., 9.];
        assert_eq!(cols, expected);
        // col2im adds each pixel once per receptive field that covers it: corners 1, edges 2,
        // centre 4 (times its value when cols holds the copies).
        let mut back = vec![0.0; 9];
        col2im(&g, &vec![1.0; 16], &mut back);
        assert_eq!(back, [1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    }

    #[test]
    fn padding_columns_are_zero_and_stride_skips_pixels() {
        // 1×4×4 image, 3×3 kernel, stride 2, padding 1 → 2×2 output; the first row of cols is
        // the top-left kernel tap, which sees the padding except at output (1,1) → pixel (1,1).
        let g = ConvGeometry { batch: 1, in_channels: 1, height: 4, width: 4, out_channels: 1, kernel_h: 3, kernel_w: 3, stride: 2, padding: 1 };
        let image: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut cols = vec![f32::NAN; 9 * 4];
        im2col(&g, &image, &mut cols);
        assert_eq!(&cols[0..4], &[0., 0., 0., 5.]);
        // The centre tap (row 4) sees pixels (0,0), (0,2), (2,0), (2,2).
        assert_eq!(&cols[16..20], &[0., 2., 8., 10.]);
    }
}
