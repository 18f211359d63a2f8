//! Building blocks shared by the convolutional models, with Keras's defaults.
//!
//! The coursework's models were written in Keras; these helpers reproduce its choices in candle:
//! - weights: `glorot_uniform` by default, `he_normal` on request, biases zero (build the model
//!   from [`super::init::seeded`] for weights that a seed reproduces);
//! - convolutions: `'same'` or `'valid'` padding, biases on (Keras `use_bias=True`);
//! - batch norm: momentum 0.99 and epsilon 1e-3, running statistics stored in the `VarMap`;
//! - the L2 penalty λ·Σw² of Keras's `kernel_regularizer=l2(λ)`.
//!
//! Models ported from PyTorch (ResNet-D) use its choices instead: [`conv2d_no_bias`],
//! [`KernelInit::HeNormalFanOut`] and [`pytorch_batch_norm`] (momentum 0.1, epsilon 1e-5).
//!
//! Keras ends its classifiers with `Dense(classes, activation='softmax')`; here the last dense
//! layer returns logits and the softmax lives in the cross-entropy loss.

use candle_core::{Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Init, Linear, VarBuilder};

use crate::kernels;

use super::init::{glorot_uniform, he_normal};

/// Keras's `BatchNormalization` momentum: `moving = 0.99·moving + 0.01·batch`.
pub const KERAS_BATCH_NORM_MOMENTUM: f64 = 0.99;
/// Keras's `BatchNormalization` epsilon, added to the variance before the square root.
pub const KERAS_BATCH_NORM_EPSILON: f64 = 1e-3;
/// PyTorch's `BatchNorm2d` momentum, the weight of the *new* batch: `running = 0.9·running + 0.1·batch`.
pub const PYTORCH_BATCH_NORM_MOMENTUM: f64 = 0.1;
/// PyTorch's `BatchNorm2d` epsilon.
pub const PYTORCH_BATCH_NORM_EPSILON: f64 = 1e-5;

/// How a convolution pads its input (Keras's `padding=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Pad by `kernel / 2` on each side: with stride 1 the output keeps the input's size.
    Same,
    /// No padding: the output shrinks to `(input - kernel) / stride + 1`.
    Valid,
}

/// How a layer's kernel is initialised (Keras's `kernel_initializer=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KernelInit {
    /// Keras's default: uniform in ±√(6 / (fan_in + fan_out)).
    GlorotUniform,
    /// Keras's `he_normal`: a normal truncated at two standard deviations, rescaled so that its
    /// std is √(2 / fan_in) (truncated when drawn through [`super::init::seeded`]).
    HeNormal,
    /// He normal over the fan-out: N(0, 2 / fan_out), PyTorch's
    /// `kaiming_normal_(w, mode='fan_out', nonlinearity='relu')` (torchvision's and timm's ResNets).
    HeNormalFanOut,
}

impl KernelInit {
    /// The candle initialiser for a kernel with these fans.
    pub fn init(self, fan_in: usize, fan_out: usize) -> Init {
        match self {
            KernelInit::GlorotUniform => glorot_uniform(fan_in, fan_out),
            // fan_in is read from the kernel's shape, which gives the same number.
            KernelInit::HeNormal => he_normal(),
            KernelInit::HeNormalFanOut => Init::Randn { mean: 0.0, stdev: (2.0 / fan_out as f64).sqrt() },
        }
    }
}

/// A 2-D convolution with bias (NCHW), as Keras's `Conv2D(filters, kernel, strides, padding)`.
///
/// It holds the same `weight` / `bias` variables as `candle_nn::Conv2d`; its forward pass is
/// [`kernels::conv::conv2d`]: im2col + GEMM with a hand-written backward on the CPU, candle's
/// convolution elsewhere.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A convolution from its kernel (`out × in × k × k`), optional bias, stride and padding.
    pub fn new(weight: Tensor, bias: Option<Tensor>, stride: usize, padding: usize) -> Self {
        Conv2d { weight, bias, stride, padding }
    }

    /// The kernel (for the L2 penalty).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        kernels::conv::conv2d(x, &self.weight, self.bias.as_ref(), self.stride, self.padding)
    }
}

impl Conv2d {
    /// This convolution frozen for inference: detached copies of its kernel and bias.
    pub fn frozen(&self) -> Result<FrozenConv> {
        let bias = match &self.bias {
            Some(b) => b.detach(),
            None => Tensor::zeros(self.weight.dim(0)?, self.weight.dtype(), self.weight.device())?,
        };
        Ok(FrozenConv { weight: self.weight.detach(), bias, stride: self.stride, padding: self.padding })
    }

    /// This convolution followed by `bn` in evaluation mode, as one convolution for inference.
    ///
    /// Batch norm with running mean μ, variance σ², scale γ and shift β maps the convolution's
    /// output `y = W∗x + b` of channel o to `γ·(y − μ)/√(σ² + ε) + β`, which is the convolution
    /// with kernel `W·s` and bias `(b − μ)·s + β`, where `s = γ/√(σ² + ε)` per output channel.
    pub fn folded(&self, bn: &BatchNorm) -> Result<FrozenConv> {
        let frozen = self.frozen()?;
        let (scale, shift) = bn.scale_and_shift()?;
        let out = frozen.weight.dim(0)?;
        if scale.elem_count() != out {
            candle_core::bail!("cannot fold a batch norm over {} channels into a convolution with {out}", scale.elem_count())
        }
        let weight = frozen.weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
        let bias = ((frozen.bias * &scale)? + shift)?;
        Ok(FrozenConv { weight, bias, ..frozen })
    }
}

/// `linear` with detached weight and bias, for a model frozen for inference.
pub fn frozen_linear(linear: &Linear) -> Linear {
    Linear::new(linear.weight().detach(), linear.bias().map(Tensor::detach))
}

/// A convolution frozen for inference (see [`Conv2d::frozen`] and [`Conv2d::folded`]): its
/// forward pass records no autograd graph and can apply the ReLU, or a residual block's shortcut
/// add + ReLU, as it writes the output ([`kernels::conv::conv2d_inference`]).
#[derive(Debug, Clone)]
pub struct FrozenConv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl FrozenConv {
    /// `conv(x) + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, kernels::conv::Epilogue::Identity)
    }

    /// `max(conv(x) + bias, 0)`.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, kernels::conv::Epilogue::Relu)
    }

    /// `conv(x) + bias + shortcut`, a pre-activation residual unit's output.
    pub fn forward_add(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        self.apply(x, kernels::conv::Epilogue::Add(shortcut))
    }

    /// `max(conv(x) + bias + shortcut, 0)`, a residual block's output.
    pub fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        self.apply(x, kernels::conv::Epilogue::AddRelu(shortcut))
    }

    /// `max(conv(x) + bias, 0)` of each of `convs` on the same `x`, concatenated on channels (an
    /// inception module), each written straight into its channels of the result.
    pub fn forward_relu_concat(convs: &[&FrozenConv], x: &Tensor) -> Result<Tensor> {
        let parts: Vec<_> = convs.iter().map(|c| c.part()).collect();
        kernels::conv::conv2d_inference_concat(x, &parts, true)
    }

    /// `max(conv(x) + bias, 0)` beside `kernel × kernel` max pooling of `x` moved by `stride`,
    /// concatenated on channels (a downsample module), each written straight into the result.
    pub fn forward_relu_beside_max_pool(&self, x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
        kernels::conv::conv2d_inference_concat(x, &[self.part(), kernels::conv::Part::MaxPool(kernel, stride)], true)
    }

    fn part(&self) -> kernels::conv::Part<'_> {
        kernels::conv::Part::Conv(&self.weight, &self.bias, self.stride, self.padding)
    }

    fn apply(&self, x: &Tensor, epilogue: kernels::conv::Epilogue<&Tensor>) -> Result<Tensor> {
        kernels::conv::conv2d_inference(x, &self.weight, &self.bias, self.stride, self.padding, epilogue)
    }
}

/// A 2-D convolution with bias, as Keras's `Conv2D(filters, kernel, strides, padding)` builds it.
///
/// `'same'` pads `kernel / 2` on every side (the kernel must be odd). With stride 2 on an even
/// input TensorFlow pads only the bottom/right: the output has the same size, but its windows
/// sit one pixel up and left of TensorFlow's, so values differ slightly from Keras's there.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
    init: KernelInit,
    vb: VarBuilder,
) -> Result<Conv2d> {
    if padding == Padding::Same && kernel.is_multiple_of(2) {
        candle_core::bail!("'same' padding needs an odd kernel size, got {kernel}")
    }
    let shape = (out_channels, in_channels, kernel, kernel);
    let fan_in = in_channels * kernel * kernel;
    let fan_out = out_channels * kernel * kernel;
    let weight = vb.get_with_hints(shape, "weight", init.init(fan_in, fan_out))?;
    let bias = vb.get_with_hints(out_channels, "bias", Init::Const(0.0))?;
    let pad = match padding {
        Padding::Same => kernel / 2,
        Padding::Valid => 0,
    };
    Ok(Conv2d::new(weight, Some(bias), stride, pad))
}

/// A 2-D convolution without bias, as PyTorch's `Conv2d(.., bias=False)` that ResNets put
/// before a batch norm (whose β makes a bias redundant). Same variables as [`conv2d`] minus
/// `bias`; `'same'` padding is `kernel / 2` on every side, as PyTorch's `padding=kernel // 2`.
pub fn conv2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
    init: KernelInit,
    vb: VarBuilder,
) -> Result<Conv2d> {
    if padding == Padding::Same && kernel.is_multiple_of(2) {
        candle_core::bail!("'same' padding needs an odd kernel size, got {kernel}")
    }
    let shape = (out_channels, in_channels, kernel, kernel);
    let (fan_in, fan_out) = (in_channels * kernel * kernel, out_channels * kernel * kernel);
    let weight = vb.get_with_hints(shape, "weight", init.init(fan_in, fan_out))?;
    let pad = if padding == Padding::Same { kernel / 2 } else { 0 };
    Ok(Conv2d::new(weight, None, stride, pad))
}

/// A fully connected layer with bias (Keras `Dense` without its activation).
pub fn dense(inputs: usize, outputs: usize, init: KernelInit, vb: VarBuilder) -> Result<Linear> {
    // candle stores the weight as [outputs, inputs] (Keras: [inputs, outputs]).
    let weight = vb.get_with_hints((outputs, inputs), "weight", init.init(inputs, outputs))?;
    let bias = vb.get_with_hints(outputs, "bias", Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Batch normalisation over channels with Keras's defaults (momentum 0.99, epsilon 1e-3).
///
/// candle weighs the *new* batch statistic by its momentum
/// (`running·(1 − m) + batch·m`), the complement of Keras's convention, so m = 1 − 0.99 = 0.01.
/// `forward_t(x, true)` normalises with the batch statistics and updates the running mean and
/// variance in place (like candle and PyTorch, with the unbiased batch variance for the running
/// variance); `forward_t(x, false)` uses the running statistics. The running statistics are
/// `VarMap` variables (`running_mean`, `running_var`): they are saved with the weights, receive
/// no gradient, and are what Keras reports as non-trainable parameters.
///
/// Training on the CPU runs [`kernels::batch_norm`] (two passes forward, two backward);
/// evaluation and other devices use `candle_nn::BatchNorm` on the same variables.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
}

impl BatchNorm {
    /// `relu(self.forward_t(x, train))`; training on the CPU does both in the batch norm's own
    /// passes ([`kernels::batch_norm`] with ReLU), with no separate ReLU op in the graph.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train && kernels::applies_to(x) {
            self.forward_train_cpu(x, true)
        } else {
            kernels::activation::relu(&self.inner.forward_t(x, train)?)
        }
    }

    /// Training step on the CPU kernel: normalise with the batch statistics (then ReLU, with
    /// `relu`), then move the running averages towards them (as
    /// `candle_nn::BatchNorm::forward_train` does).
    fn forward_train_cpu(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let Some((weight, bias)) = self.inner.weight_and_bias() else {
            candle_core::bail!("batch norm without γ and β")
        };
        let (y, stats) = kernels::batch_norm::batch_norm_train(x, weight, bias, self.inner.eps(), relu)?;
        let m = self.inner.momentum();
        let channels = stats.mean.len();
        let unbiased = stats.count as f64 / (stats.count.max(2) - 1) as f64;
        let mean = Tensor::from_vec(stats.mean, channels, x.device())?;
        let var = Tensor::from_vec(stats.variance, channels, x.device())?;
        // candle keeps the running statistics as variables: these `Var`s share their storage.
        let (running_mean, running_var) = (self.inner.running_mean(), self.inner.running_var());
        Var::from_tensor(running_mean)?.set(&((running_mean * (1.0 - m))? + (mean * m)?)?)?;
        Var::from_tensor(running_var)?.set(&((running_var * (1.0 - m))? + (var * (m * unbiased))?)?)?;
        Ok(y)
    }
}

impl BatchNorm {
    /// The evaluation-mode batch norm as a per-channel affine map `x·scale + shift`:
    /// `scale = γ/√(σ² + ε)`, `shift = β − μ·scale` from the running statistics (detached).
    pub fn scale_and_shift(&self) -> Result<(Tensor, Tensor)> {
        let Some((gamma, beta)) = self.inner.weight_and_bias() else {
            candle_core::bail!("batch norm without γ and β")
        };
        let mean = self.inner.running_mean().detach();
        let inv_std = (self.inner.running_var().detach() + self.inner.eps())?.sqrt()?.recip()?;
        let scale = (gamma.detach() * inv_std)?;
        let shift = (beta.detach() - (&mean * &scale)?)?;
        Ok((scale, shift))
    }
}

impl BatchNorm {
    /// This batch norm in evaluation mode, frozen for inference.
    pub fn frozen(&self) -> Result<FrozenBatchNorm> {
        let (scale, shift) = self.scale_and_shift()?;
        let channels = scale.elem_count();
        Ok(FrozenBatchNorm { scale: scale.reshape((1, channels, 1, 1))?, shift: shift.reshape((1, channels, 1, 1))? })
    }
}

/// A batch norm frozen for inference: the per-channel affine map `x·scale + shift` of its
/// running statistics (for the batch norms that no convolution precedes, e.g. pre-activation).
#[derive(Debug, Clone)]
pub struct FrozenBatchNorm {
    scale: Tensor,
    shift: Tensor,
}

impl FrozenBatchNorm {
    /// `max(x·scale + shift, 0)` on `N × C × H × W` inputs.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if kernels::applies_to(x) {
            kernels::batch_norm::affine_relu(x, &self.scale, &self.shift)
        } else {
            x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?.relu()
        }
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train && kernels::applies_to(x) {
            self.forward_train_cpu(x, false)
        } else {
            self.inner.forward_t(x, train)
        }
    }
}

/// Batch normalisation over `channels` with Keras's defaults (see [`BatchNorm`]).
pub fn batch_norm(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm_with_momentum(channels, KERAS_BATCH_NORM_MOMENTUM, vb)
}

/// Batch normalisation with Keras's `momentum` (`moving = momentum·moving + (1 − momentum)·batch`)
/// and epsilon 1e-3. Keras's 0.99 needs a few hundred steps before the running statistics
/// reflect the weights; short runs (quick modes) use 0.9, PyTorch's default.
pub fn batch_norm_with_momentum(channels: usize, momentum: f64, vb: VarBuilder) -> Result<BatchNorm> {
    if !(0.0..1.0).contains(&momentum) {
        candle_core::bail!("batch-norm momentum must be in [0, 1), got {momentum}");
    }
    let config = BatchNormConfig { eps: KERAS_BATCH_NORM_EPSILON, remove_mean: true, affine: true, momentum: 1.0 - momentum };
    Ok(BatchNorm { inner: candle_nn::batch_norm(channels, config, vb)? })
}

/// Batch normalisation over `channels` with PyTorch's defaults (`BatchNorm2d`: momentum 0.1 as
/// the weight of the new batch, epsilon 1e-5); otherwise as [`batch_norm`].
pub fn pytorch_batch_norm(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    let config = BatchNormConfig {
        eps: PYTORCH_BATCH_NORM_EPSILON,
        remove_mean: true,
        affine: true,
        momentum: PYTORCH_BATCH_NORM_MOMENTUM,
    };
    Ok(BatchNorm { inner: candle_nn::batch_norm(channels, config, vb)? })
}

/// Keras's L2 kernel regulariser summed over layers: λ·Σ w² over the given kernels.
///
/// Returns `None` when λ = 0 or there is no kernel, so the training loop adds nothing.
pub fn l2_penalty(kernels: &[Tensor], lambda: f64) -> Result<Option<Tensor>> {
    if lambda == 0.0 || kernels.is_empty() {
        return Ok(None);
    }
    let kernels: Vec<&Tensor> = kernels.iter().collect();
    crate::optim::l2_penalty(&kernels, lambda).map(Some)
}

/// Convolution → batch norm → ReLU, the "conv module" of MiniGoogLeNet (Keras glorot init).
#[derive(Debug, Clone)]
pub struct ConvBnRelu {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBnRelu {
    /// Builds `Conv2D(out_channels, kernel, stride, padding)` → `BatchNormalization(momentum)`
    /// → ReLU.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        (kernel, stride, padding): (usize, usize, Padding),
        momentum: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let conv = conv2d(
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            KernelInit::GlorotUniform,
            vb.pp("conv"),
        )?;
        let bn = batch_norm_with_momentum(out_channels, momentum, vb.pp("bn"))?;
        Ok(Self { conv, bn })
    }

    /// The convolution kernel (for the L2 penalty).
    pub fn kernel(&self) -> &Tensor {
        self.conv.weight()
    }
}

impl ConvBnRelu {
    /// The module frozen for inference: one convolution with the batch norm folded in, to be
    /// run with [`FrozenConv::forward_relu`].
    pub fn frozen(&self) -> Result<FrozenConv> {
        self.conv.folded(&self.bn)
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_relu_t(&self.conv.forward(x)?, train)
    }
}

/// Max pooling over `kernel × kernel` windows moved by `stride` ('valid' padding), with a
/// backward pass for any kernel and stride: [`kernels::pool`] on the CPU, elsewhere
/// [`max_pool2d_by_views`].
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    if kernels::applies_to(x) {
        kernels::pool::max_pool2d(x, kernel, stride)
    } else {
        max_pool2d_by_views(x, kernel, stride)
    }
}

/// Max pooling from candle ops (the path CUDA takes): the element-wise maximum of the k² strided
/// views of the input, whose backward pass routes each gradient to the window's maximum
/// (split between tied maxima).
///
/// candle's own `max_pool2d_with_stride` is used only when no gradient is needed: it cannot
/// back-propagate when the kernel differs from the stride (MiniGoogLeNet's 3×3/2 pool), and in
/// candle 0.11 its backward pass multiplies the gradient by the share of the window that holds
/// the maximum (¼ for a single maximum in a 2×2 window) instead of dividing by the number of
/// maxima, so a network trained through it gets a quarter of each gradient per pooling layer.
pub fn max_pool2d_by_views(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    if kernel == stride && !x.track_op() {
        return x.max_pool2d_with_stride(kernel, stride);
    }
    let (_, _, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 || kernel > h || kernel > w {
        candle_core::bail!("max pool {kernel}×{kernel}/{stride} does not fit a {h}×{w} input");
    }
    let (out_h, out_w) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let mut result: Option<Tensor> = None;
    for dy in 0..kernel {
        let rows = strided(x, 2, dy, stride, out_h)?;
        for dx in 0..kernel {
            let view = strided(&rows, 3, dx, stride, out_w)?;
            result = Some(match result {
                None => view,
                Some(r) => r.maximum(&view)?,
            });
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("empty pooling window".into()))
}

/// Nearest-neighbour up-sampling by an integer `factor` (Keras `UpSampling2D(size=factor)`, whose
/// default interpolation is `'nearest'`): every pixel of `[N, C, H, W]` becomes a
/// `factor × factor` block of `[N, C, factor·H, factor·W]`.
///
/// On CPU `f32` tensors one pass of [`kernels::soft_mask`]; elsewhere a broadcast and a reshape,
/// whose gradient is candle's sum over each block.
pub fn upsample_nearest2d(x: &Tensor, factor: usize) -> Result<Tensor> {
    upsample_nearest2d_add(x, factor, None)
}

/// [`upsample_nearest2d`] plus `addend` (shaped like the output) where given, in one pass on CPU
/// `f32` tensors (a soft-mask level's up-sampled branch and its skip connection).
pub fn upsample_nearest2d_add(x: &Tensor, factor: usize, addend: Option<&Tensor>) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if factor == 0 {
        candle_core::bail!("up-sampling factor must be at least 1, got 0");
    }
    if kernels::applies_to(x) && addend.is_none_or(kernels::applies_to) {
        return kernels::soft_mask::upsample_nearest(x, factor, addend);
    }
    let up = x.reshape((n, c, h, 1, w, 1))?.broadcast_as((n, c, h, factor, w, factor))?.reshape((n, c, h * factor, w * factor))?;
    match addend {
        Some(a) => up + a,
        None => Ok(up),
    }
}

/// Elements `offset, offset + stride, …` (`count` of them) of dimension `dim`, by narrowing,
/// padding to a multiple of the stride, reshaping and keeping the first of every `stride`.
fn strided(x: &Tensor, dim: usize, offset: usize, stride: usize, count: usize) -> Result<Tensor> {
    let span = stride * (count - 1) + 1;
    let x = x.narrow(dim, offset, span)?.pad_with_zeros(dim, 0, stride - 1)?;
    let mut shape = x.dims().to_vec();
    shape[dim] = count;
    shape.insert(dim + 1, stride);
    x.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

#[cfg(test)]
mod upsample_tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn nearest_upsampling_copies_each_pixel_into_a_block_and_sums_the_gradient_back() {
        let dev = Device::Cpu;
        let x = Var::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &dev).unwrap();
        let y = upsample_nearest2d(&x, 2).unwrap();
        let expected = [[1f32, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]];
        assert_eq!(y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap(), expected);
        // d/dx Σ w·y: each input pixel collects the weights of its 2×2 block. With w = 0..15
        // row-major: top-left block 0+1+4+5 = 10, top-right 2+3+6+7 = 18, 8+9+12+13 = 42, 50.
        let w = Tensor::arange(0f32, 16.0, &dev).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let dx = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dx, [10.0, 18.0, 42.0, 50.0]);
        // Factor 3 on a 1×2 image with two channels: channels stay apart.
        let x = Tensor::new(&[[[[1f32, 2.0]], [[5.0, 6.0]]]], &dev).unwrap();
        let y = upsample_nearest2d(&x, 3).unwrap();
        assert_eq!(y.dims(), [1, 2, 3, 6]);
        assert_eq!(y.get(0).unwrap().get(1).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap(), [5.0, 5.0, 5.0, 6.0, 6.0, 6.0]);
        assert!(upsample_nearest2d(&x, 0).is_err());
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn max_pool_by_views_sends_the_whole_gradient_to_the_maximum() {
        // One 2×2 window with its maximum (4) at the bottom right: d(max)/dx is 1 there, 0
        // elsewhere. (candle 0.11's own max-pool backward gives 0.25 there.)
        let x = Var::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &Device::Cpu).unwrap();
        let y = max_pool2d_by_views(&x, 2, 2).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [4.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.0, 1.0]);
        // The CPU kernel agrees.
        let g = kernels::pool::max_pool2d(&x, 2, 2).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.0, 1.0]);
        // Without a gradient to track, candle's pooling gives the same values.
        let plain = max_pool2d_by_views(&x.as_tensor().detach(), 2, 2).unwrap();
        assert_eq!(plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [4.0]);
    }
}

#[cfg(test)]
mod batch_norm_tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn layer(varmap: &VarMap) -> BatchNorm {
        batch_norm(3, VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)).unwrap()
    }

    #[test]
    fn folding_batch_norm_into_the_convolution_gives_conv_then_evaluation_mode_batch_norm() {
        let dev = Device::Cpu;
        let mut varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let conv = conv2d(2, 3, 3, 2, Padding::Same, KernelInit::GlorotUniform, vb.pp("conv")).unwrap();
        let bn = batch_norm(3, vb.pp("bn")).unwrap();
        // Running statistics and affine parameters far from their defaults; a non-zero conv bias.
        for (name, values) in [
            ("bn.running_mean", [0.3f32, -1.2, 2.0]),
            ("bn.running_var", [0.25f32, 4.0, 0.01]),
            ("bn.weight", [1.5f32, -0.5, 2.0]),
            ("bn.bias", [0.2f32, 0.0, -1.0]),
            ("conv.bias", [0.1f32, -0.4, 0.7]),
        ] {
            varmap.set_one(name, Tensor::new(&values, &dev).unwrap()).unwrap();
        }
        let x = Tensor::arange(0f32, 2.0 * 2.0 * 7.0 * 6.0, &dev).unwrap().reshape((2, 2, 7, 6)).unwrap().cos().unwrap();
        let expected = bn.forward_t(&conv.forward(&x).unwrap(), false).unwrap();
        let folded = conv.folded(&bn).unwrap();
        let got = folded.forward(&x).unwrap();
        let diff = (&got - &expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "max difference {diff}");
        let relu = folded.forward_relu(&x).unwrap();
        let diff = (&relu - expected.relu().unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "with ReLU: max difference {diff}");
        // By hand for channel 2: s = 2/√(0.01 + 0.001), so kernel × s and bias (0.7 − 2)·s − 1.
        let s = 2.0 / (0.01f32 + 1e-3).sqrt();
        let (scale, shift) = bn.scale_and_shift().unwrap();
        assert!((scale.to_vec1::<f32>().unwrap()[2] - s).abs() < 1e-3);
        assert!((shift.to_vec1::<f32>().unwrap()[2] - (-1.0 - 2.0 * s)).abs() < 1e-3);
    }

    #[test]
    fn cpu_kernel_matches_candle_batch_norm_forward_backward_and_running_stats() {
        matches_candle_batch_norm(false);
    }

    #[test]
    fn fused_batch_norm_relu_matches_candle_batch_norm_then_relu() {
        matches_candle_batch_norm(true);
    }

    /// The CPU kernel (with ReLU fused when `relu`) against candle's batch norm (then candle's
    /// ReLU): outputs, gradients and running statistics after one training step.
    fn matches_candle_batch_norm(relu: bool) {
        let dev = Device::Cpu;
        let (mut fused_map, mut reference_map) = (VarMap::new(), VarMap::new());
        let (fused, reference) = (layer(&fused_map), layer(&reference_map));
        for map in [&mut fused_map, &mut reference_map] {
            map.set_one("weight", Tensor::new(&[0.5f32, -1.5, 2.0], &dev).unwrap()).unwrap();
            map.set_one("bias", Tensor::new(&[0.1f32, 0.0, -0.3], &dev).unwrap()).unwrap();
        }
        let values: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0).collect();
        let x = candle_core::Var::from_vec(values, (2, 3, 4, 5), &dev).unwrap();
        let weights = Tensor::arange(0f32, 120.0, &dev).unwrap().reshape((2, 3, 4, 5)).unwrap().sin().unwrap();

        let (y1, y2) = if relu {
            (fused.forward_relu_t(&x, true).unwrap(), reference.inner.forward_t(&x, true).unwrap().relu().unwrap())
        } else {
            (fused.forward_t(&x, true).unwrap(), reference.inner.forward_t(&x, true).unwrap())
        };
        let g1 = (&y1 * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
        };
        assert!(max_diff(&y1, &y2) < 1e-5);
        assert!(max_diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
        let ((w1, b1), (w2, b2)) = (fused.inner.weight_and_bias().unwrap(), reference.inner.weight_and_bias().unwrap());
        assert!(max_diff(g1.get(w1).unwrap(), g2.get(w2).unwrap()) < 1e-4);
        assert!(max_diff(g1.get(b1).unwrap(), g2.get(b2).unwrap()) < 1e-4);
        let (m1, m2) = (fused.inner.running_mean(), reference.inner.running_mean());
        assert!(max_diff(m1, m2) < 1e-6, "running mean {m1} vs {m2}");
        assert!(max_diff(fused.inner.running_var(), reference.inner.running_var()) < 1e-6);
        // The running statistics moved away from their initial values, in the VarMap.
        let stored = fused_map.data().lock().unwrap().get("running_mean").unwrap().as_tensor().clone();
        assert!(max_diff(&stored, m1) == 0.0 && stored.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    }
}
