//! The pre-activation bottleneck residual unit of the Residual Attention Network (Wang et al.
//! 2017, after He et al. 2016, "Identity Mappings in Deep Residual Networks"):
//!
//! ```text
//! x ─ BN ─ ReLU ─ conv 1×1 (b) ─ BN ─ ReLU ─ conv 3×3/s (b) ─ BN ─ ReLU ─ conv 1×1 (out) ─ + ─▶
//! └──────────────────── shortcut: 1×1 conv/s (out), or the identity ─────────────────────┘
//! ```
//! `b` is the bottleneck width. Convolutions have biases and Keras's glorot-uniform kernels; the
//! 3×3 one is 'same'-padded. The shortcut convolves the raw input `x` (not its pre-activation),
//! as the report's Keras code and `qubvel/residual_attention_network` do.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::layers::{batch_norm, conv2d, BatchNorm, Conv2d, FrozenBatchNorm, FrozenConv, KernelInit, Padding};

/// Whether a residual unit adds its input as it is or a 1×1 projection of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Shortcut {
    /// A 1×1 convolution on every unit's shortcut, also where the unit keeps the shape: what the
    /// report's Keras code builds (its `residual_unit` always projects; `qubvel`'s projects
    /// whenever the bottleneck width differs from the output width, i.e. always in this network).
    #[default]
    AlwaysProject,
    /// The identity where the unit keeps channels and size, a 1×1 projection (stride s) where
    /// it changes them: the paper's residual unit.
    IdentityWhereShapeKept,
}

impl Shortcut {
    /// Whether a unit from `in_channels` to `out_channels` with this stride gets a projection.
    pub fn projects(self, in_channels: usize, out_channels: usize, stride: usize) -> bool {
        match self {
            Shortcut::AlwaysProject => true,
            Shortcut::IdentityWhereShapeKept => in_channels != out_channels || stride != 1,
        }
    }
}

/// A pre-activation bottleneck residual unit (see the module documentation).
#[derive(Debug, Clone)]
pub struct ResidualUnit {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    bn3: BatchNorm,
    conv3: Conv2d,
    /// The 1×1 projection of the shortcut; `None` for the identity.
    projection: Option<Conv2d>,
}

impl ResidualUnit {
    /// A unit from `in_channels` to `out_channels` through a bottleneck of `bottleneck` channels,
    /// its 3×3 convolution (and the projection) moving by `stride`.
    pub fn new(
        in_channels: usize,
        bottleneck: usize,
        out_channels: usize,
        stride: usize,
        shortcut: Shortcut,
        vb: VarBuilder,
    ) -> Result<Self> {
        if in_channels == 0 || bottleneck == 0 || out_channels == 0 || stride == 0 {
            candle_core::bail!(
                "residual unit needs channels and stride ≥ 1, got {in_channels} → {bottleneck} → {out_channels}, stride {stride}"
            )
        }
        let glorot = KernelInit::GlorotUniform;
        let projection = if shortcut.projects(in_channels, out_channels, stride) {
            Some(conv2d(in_channels, out_channels, 1, stride, Padding::Same, glorot, vb.pp("projection"))?)
        } else {
            None
        };
        Ok(Self {
            bn1: batch_norm(in_channels, vb.pp("bn1"))?,
            conv1: conv2d(in_channels, bottleneck, 1, 1, Padding::Same, glorot, vb.pp("conv1"))?,
            bn2: batch_norm(bottleneck, vb.pp("bn2"))?,
            conv2: conv2d(bottleneck, bottleneck, 3, stride, Padding::Same, glorot, vb.pp("conv2"))?,
            bn3: batch_norm(bottleneck, vb.pp("bn3"))?,
            conv3: conv2d(bottleneck, out_channels, 1, 1, Padding::Same, glorot, vb.pp("conv3"))?,
            projection,
        })
    }

    /// A unit that keeps `channels` and the image size, with the usual bottleneck of
    /// `channels / 4` (Keras code: `residual_unit(x)` with no channel arguments).
    pub fn keeping(channels: usize, shortcut: Shortcut, vb: VarBuilder) -> Result<Self> {
        if channels < 4 || !channels.is_multiple_of(4) {
            candle_core::bail!("a shape-keeping residual unit needs a multiple of 4 channels (bottleneck = channels / 4), got {channels}")
        }
        Self::new(channels, channels / 4, channels, 1, shortcut, vb)
    }

    /// Whether the shortcut is a 1×1 projection (rather than the identity).
    pub fn has_projection(&self) -> bool {
        self.projection.is_some()
    }

    /// This unit frozen for inference (see [`FrozenUnit`]).
    pub(crate) fn frozen(&self) -> Result<FrozenUnit> {
        Ok(FrozenUnit {
            bn1: self.bn1.frozen()?,
            conv1: self.conv1.folded(&self.bn2)?,
            conv2: self.conv2.folded(&self.bn3)?,
            conv3: self.conv3.frozen()?,
            projection: self.projection.as_ref().map(Conv2d::frozen).transpose()?,
        })
    }
}

/// A [`ResidualUnit`] frozen for inference: `bn2` and `bn3` folded into the convolutions before
/// them, whose epilogues apply the ReLUs; the last convolution adds the shortcut as it writes.
#[derive(Debug, Clone)]
pub(crate) struct FrozenUnit {
    bn1: FrozenBatchNorm,
    conv1: FrozenConv,
    conv2: FrozenConv,
    conv3: FrozenConv,
    projection: Option<FrozenConv>,
}

impl FrozenUnit {
    /// The unit's output, as [`ResidualUnit::forward_t`] in evaluation mode.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv2.forward_relu(&self.conv1.forward_relu(&self.bn1.forward_relu(x)?)?)?;
        match &self.projection {
            Some(projection) => self.conv3.forward_add(&y, &projection.forward(x)?),
            None => self.conv3.forward_add(&y, x),
        }
    }
}

impl ModuleT for ResidualUnit {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.conv1.forward(&self.bn1.forward_relu_t(x, train)?)?;
        let y = self.conv2.forward(&self.bn2.forward_relu_t(&y, train)?)?;
        let y = self.conv3.forward(&self.bn3.forward_relu_t(&y, train)?)?;
        match &self.projection {
            Some(projection) => y + projection.forward(x)?,
            None => y + x,
        }
    }
}
