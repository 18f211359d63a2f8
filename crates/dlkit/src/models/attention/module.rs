//! The attention module of the Residual Attention Network (Wang et al. 2017), as the report's
//! Keras code builds it (`attention_unit(x, skip)`, after `qubvel`'s `attention_block`):
//!
//! ```text
//! x ─ pre (residual unit) ─┬─ trunk: 2 residual units ────────────────────────── T ─┐
//!                          └─ soft mask: max-pool 2 ─ residual unit ─ [inner] ─      ├─ (1 + M)·T ─ post (residual unit) ─▶
//!                             residual unit ─ up-sample 2 ─ conv 1×1 ─ conv 1×1 ─ sigmoid ─ M ─┘
//! [inner], repeated skip − 1 times, nested: a skip connection (residual unit) beside
//!          max-pool 2 ─ residual unit ─ [inner] ─ residual unit ─ up-sample 2, the two added.
//! ```
//! Every residual unit keeps the channels (bottleneck = channels / 4). `skip` is the report's
//! parameter: the mask goes down `skip` times by 2×2 max-pools and back up by nearest-neighbour
//! up-sampling (Keras `UpSampling2D()`'s default), with `skip − 1` skip connections in between
//! (the report's code loops `range(skip - 1)`, like `qubvel`'s `encoder_depth`). The two 1×1
//! convolutions have biases and no batch norm or activation between them.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use super::residual_unit::{FrozenUnit, ResidualUnit, Shortcut};
use crate::kernels;
use crate::models::layers::{conv2d, max_pool2d, upsample_nearest2d_add, Conv2d, FrozenConv, KernelInit, Padding};

/// One level of the soft-mask branch: max-pool, a residual unit, the next level (if any), a
/// residual unit, up-sampling; below the outermost level, plus a skip connection.
#[derive(Debug, Clone)]
struct MaskLevel {
    /// The residual unit on the skip connection (none on the outermost level).
    skip: Option<ResidualUnit>,
    /// The residual unit after the max-pool.
    down: ResidualUnit,
    /// The next level down, at half the size.
    inner: Option<Box<MaskLevel>>,
    /// The residual unit before the up-sampling.
    up: ResidualUnit,
}

impl MaskLevel {
    /// `depth` levels (max-pools) from here down; the outermost level has no skip connection.
    fn new(channels: usize, depth: usize, outermost: bool, shortcut: Shortcut, vb: VarBuilder) -> Result<Self> {
        let skip = if outermost { None } else { Some(ResidualUnit::keeping(channels, shortcut, vb.pp("skip"))?) };
        let inner = if depth > 1 {
            Some(Box::new(MaskLevel::new(channels, depth - 1, false, shortcut, vb.pp("inner"))?))
        } else {
            None
        };
        Ok(Self {
            skip,
            down: ResidualUnit::keeping(channels, shortcut, vb.pp("down"))?,
            inner,
            up: ResidualUnit::keeping(channels, shortcut, vb.pp("up"))?,
        })
    }
}

impl ModuleT for MaskLevel {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut m = self.down.forward_t(&max_pool2d(x, 2, 2)?, train)?;
        if let Some(inner) = &self.inner {
            m = inner.forward_t(&m, train)?;
        }
        let skip = self.skip.as_ref().map(|skip| skip.forward_t(x, train)).transpose()?;
        upsample_nearest2d_add(&self.up.forward_t(&m, train)?, 2, skip.as_ref())
    }
}

impl MaskLevel {
    fn frozen(&self) -> Result<FrozenMaskLevel> {
        Ok(FrozenMaskLevel {
            skip: self.skip.as_ref().map(ResidualUnit::frozen).transpose()?,
            down: self.down.frozen()?,
            inner: self.inner.as_ref().map(|level| level.frozen().map(Box::new)).transpose()?,
            up: self.up.frozen()?,
        })
    }
}

/// A [`MaskLevel`] frozen for inference.
#[derive(Debug, Clone)]
struct FrozenMaskLevel {
    skip: Option<FrozenUnit>,
    down: FrozenUnit,
    inner: Option<Box<FrozenMaskLevel>>,
    up: FrozenUnit,
}

impl FrozenMaskLevel {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut m = self.down.forward(&max_pool2d(x, 2, 2)?)?;
        if let Some(inner) = &self.inner {
            m = inner.forward(&m)?;
        }
        let skip = self.skip.as_ref().map(|skip| skip.forward(x)).transpose()?;
        upsample_nearest2d_add(&self.up.forward(&m)?, 2, skip.as_ref())
    }
}

/// An attention module with the report's `skip` (see the module documentation).
#[derive(Debug, Clone)]
pub struct AttentionModule {
    pre: ResidualUnit,
    trunk: [ResidualUnit; 2],
    mask: MaskLevel,
    mask_conv1: Conv2d,
    mask_conv2: Conv2d,
    post: ResidualUnit,
    skip: usize,
}

impl AttentionModule {
    /// A module on `channels` channels (a multiple of 4) whose soft mask goes `skip` ≥ 1 times
    /// down and up, with `skip − 1` skip connections.
    pub fn new(channels: usize, skip: usize, shortcut: Shortcut, vb: VarBuilder) -> Result<Self> {
        if skip == 0 {
            candle_core::bail!("attention module `skip` must be at least 1 (the mask branch max-pools `skip` times), got 0")
        }
        let unit = |name: &str| ResidualUnit::keeping(channels, shortcut, vb.pp(name));
        let glorot = KernelInit::GlorotUniform;
        Ok(Self {
            pre: unit("pre")?,
            trunk: [unit("trunk1")?, unit("trunk2")?],
            mask: MaskLevel::new(channels, skip, true, shortcut, vb.pp("mask"))?,
            mask_conv1: conv2d(channels, channels, 1, 1, Padding::Same, glorot, vb.pp("mask.conv1"))?,
            mask_conv2: conv2d(channels, channels, 1, 1, Padding::Same, glorot, vb.pp("mask.conv2"))?,
            post: unit("post")?,
            skip,
        })
    }

    /// The report's `skip`: max-pools in the soft-mask branch (skip connections: `skip − 1`).
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// The module's output and its soft mask M ∈ (0, 1), the mask shaped like the trunk's output.
    pub fn forward_with_mask(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        let (logits, trunk) = self.mask_logits_and_trunk(x, train)?;
        Ok((self.post.forward_t(&gate(&logits, &trunk)?, train)?, candle_nn::ops::sigmoid(&logits)?))
    }

    /// The soft mask's logits (before the sigmoid) and the trunk's output, for an input whose
    /// size was checked.
    fn mask_logits_and_trunk(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let x = self.pre.forward_t(x, train)?;
        let trunk = self.trunk[1].forward_t(&self.trunk[0].forward_t(&x, train)?, train)?;
        let logits = self.mask_conv2.forward(&self.mask_conv1.forward(&self.mask.forward_t(&x, train)?)?)?;
        Ok((logits, trunk))
    }

    /// Checks that the mask's `skip` halvings divide the input's size.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let (_, _, h, w) = x.dims4()?;
        let scale = 1usize << self.skip;
        if !h.is_multiple_of(scale) || !w.is_multiple_of(scale) {
            candle_core::bail!(
                "attention module with skip {} halves its input {} times: {h}×{w} is not a multiple of {scale}",
                self.skip,
                self.skip
            )
        }
        Ok(())
    }
}

/// The attention gate `(1 + σ(logits))·trunk`: one pass of [`kernels::soft_mask`] on CPU `f32`
/// tensors, candle's ops elsewhere.
fn gate(logits: &Tensor, trunk: &Tensor) -> Result<Tensor> {
    if kernels::applies_to(logits) && kernels::applies_to(trunk) {
        kernels::soft_mask::attention_gate(logits, trunk)
    } else {
        (candle_nn::ops::sigmoid(logits)? + 1.0)? * trunk
    }
}

impl AttentionModule {
    /// This module frozen for inference: every residual unit frozen (see
    /// [`ResidualUnit::frozen`]), no autograd graph.
    pub(crate) fn frozen(&self) -> Result<FrozenModule> {
        Ok(FrozenModule {
            pre: self.pre.frozen()?,
            trunk: [self.trunk[0].frozen()?, self.trunk[1].frozen()?],
            mask: self.mask.frozen()?,
            mask_conv1: self.mask_conv1.frozen()?,
            mask_conv2: self.mask_conv2.frozen()?,
            post: self.post.frozen()?,
        })
    }
}

/// An [`AttentionModule`] frozen for inference (its input size was checked by the model).
#[derive(Debug, Clone)]
pub(crate) struct FrozenModule {
    pre: FrozenUnit,
    trunk: [FrozenUnit; 2],
    mask: FrozenMaskLevel,
    mask_conv1: FrozenConv,
    mask_conv2: FrozenConv,
    post: FrozenUnit,
}

impl FrozenModule {
    /// The module's output, as [`AttentionModule::forward_t`] in evaluation mode.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.pre.forward(x)?;
        let trunk = self.trunk[1].forward(&self.trunk[0].forward(&x)?)?;
        let logits = self.mask_conv2.forward(&self.mask_conv1.forward(&self.mask.forward(&x)?)?)?;
        self.post.forward(&gate(&logits, &trunk)?)
    }
}

impl ModuleT for AttentionModule {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(x)?;
        let (logits, trunk) = self.mask_logits_and_trunk(x, train)?;
        self.post.forward_t(&gate(&logits, &trunk)?, train)
    }
}
