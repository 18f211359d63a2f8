//! The Residual Attention Network for 32×32 images (Wang et al. 2017), as the section-06 report
//! ("Improved Residual Network for Image Classification", TF 2.0 / Keras) builds it:
//! AttentionResNet56-mini and the report's "paper" variant.
//!
//! ```text
//!                                    mini                      paper
//! conv 5×5, 32 ('same')              → BN → ReLU               (no BN, no ReLU)   32×32×32
//! max-pool 2                                                                      16×16×32
//! residual unit 32 → 128                                                          16×16×128
//! attention                          skip 1                    skip 2             16×16×128
//! residual unit 64 → 256, stride 2                                                 8×8×256
//! attention                          skip 1                    skip 1, twice       8×8×256
//! residual units 128 → 512 (stride 2), 128 → 512, 128 → 512                        4×4×512
//! [regularised: BN → ReLU] → average-pool 4 → flatten → [dropout] → dense (logits)   512 → classes
//! ```
//! "a → b" is a [`ResidualUnit`] with bottleneck width a and b output channels; the attention
//! modules are [`AttentionModule`]s. The dense kernel optionally carries Keras's L2 penalty.
//! Keras defaults throughout (glorot-uniform kernels, zero biases, batch-norm momentum 0.99 and
//! ε = 10⁻³); Keras's final softmax is left to the cross-entropy loss: the model returns logits.
//!
//! Where the description left a choice open (the report's text is not available), this follows
//! the report's public Keras code family and the paper: every residual unit's shortcut is a 1×1
//! projection ([`Shortcut::AlwaysProject`], the report's summary lists 256→256 1×1 convolutions
//! of 65,792 parameters at 4×4×256, inside the stage-2 mask); `skip` counts the mask's max-pools
//! (`skip − 1` skip connections); up-sampling is nearest-neighbour; the first of the three last
//! residual units has stride 2, so the 4×4 average pool is global (as in the paper's CIFAR
//! network); the paper variant's stem is the convolution alone.

mod module;
mod residual_unit;

pub use module::AttentionModule;
pub use residual_unit::{ResidualUnit, Shortcut};

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{
    batch_norm, conv2d, dense, frozen_linear, l2_penalty, max_pool2d, upsample_nearest2d, BatchNorm, Conv2d, FrozenBatchNorm,
    FrozenConv, KernelInit, Padding,
};
use super::{Dropout, Inference, Network};
use crate::kernels::linear::linear;
use module::FrozenModule;
use residual_unit::FrozenUnit;
use crate::Error;

/// Which of the report's two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttentionVariant {
    /// AttentionResNet56-mini: stem conv → BN → ReLU; one attention module per stage, skip 1.
    Mini,
    /// The report's "paper" variant: stem conv without BN; stage 1 attention with skip 2, two
    /// attention modules in stage 2.
    Paper,
}

/// One block of the network body, at full width (see [`AttentionResNetConfig::body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyBlock {
    /// A residual unit: bottleneck width, output channels, stride.
    Residual {
        /// Channels of the 1×1 and 3×3 convolutions inside.
        bottleneck: usize,
        /// Output channels.
        out: usize,
        /// Stride of the 3×3 convolution and of the projection.
        stride: usize,
    },
    /// An attention module with the report's `skip` (mask max-pools).
    Attention {
        /// Max-pools in the soft-mask branch; skip connections are `skip − 1`.
        skip: usize,
    },
}

/// Hyperparameters of [`AttentionResNet`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionResNetConfig {
    /// Mini or the report's paper variant.
    pub variant: AttentionVariant,
    /// Channels of the input images (3 for CIFAR-10).
    pub input_channels: usize,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// Every channel count is divided by this, a divisor of 32 (1 = the report's network; quick
    /// CPU runs train a narrower network of the same shape).
    pub width_divisor: usize,
    /// Regularised variant: batch norm → ReLU before the average pool.
    pub bn_relu_before_pool: bool,
    /// Regularised variant: dropout rate before the dense layer, in [0, 1) (0 for none).
    pub dropout: f32,
    /// Regularised variant: Keras `kernel_regularizer=l2(λ)` on the dense kernel (0 for none).
    pub l2: f64,
    /// Projection or identity shortcuts in the residual units (the report: always projected).
    #[serde(default)]
    pub shortcut: Shortcut,
    /// Seed of the dropout masks.
    pub seed: u64,
}

impl AttentionResNetConfig {
    /// AttentionResNet56-mini for CIFAR-10 (RGB, 10 classes, full width, not regularised).
    pub fn mini() -> Self {
        Self {
            variant: AttentionVariant::Mini,
            input_channels: 3,
            classes: 10,
            width_divisor: 1,
            bn_relu_before_pool: false,
            dropout: 0.0,
            l2: 0.0,
            shortcut: Shortcut::AlwaysProject,
            seed: 0,
        }
    }

    /// The report's paper variant for CIFAR-10 (RGB, 10 classes, full width, not regularised).
    pub fn paper() -> Self {
        Self { variant: AttentionVariant::Paper, ..Self::mini() }
    }

    /// The regularised variant: BN → ReLU before the pool, `dropout` before and L2 `l2` on the
    /// dense layer.
    pub fn regularised(self, dropout: f32, l2: f64) -> Self {
        Self { bn_relu_before_pool: true, dropout, l2, ..self }
    }

    /// The same network with every channel count divided by `divisor`.
    pub fn narrow(self, divisor: usize) -> Self {
        Self { width_divisor: divisor, ..self }
    }

    /// Whether the stem has batch norm and ReLU after its convolution (mini only).
    pub fn stem_batch_norm(&self) -> bool {
        self.variant == AttentionVariant::Mini
    }

    /// Channels of the stem convolution, at full width.
    pub const STEM_CHANNELS: usize = 32;

    /// The blocks after the stem, at full width (divide channels with [`Self::width`]).
    pub fn body(&self) -> Vec<BodyBlock> {
        let residual = |bottleneck, out, stride| BodyBlock::Residual { bottleneck, out, stride };
        let attention = |skip| BodyBlock::Attention { skip };
        let mut body = vec![residual(32, 128, 1)];
        match self.variant {
            AttentionVariant::Mini => body.extend([attention(1), residual(64, 256, 2), attention(1)]),
            AttentionVariant::Paper => {
                body.extend([attention(2), residual(64, 256, 2), attention(1), attention(1)])
            }
        }
        body.extend([residual(128, 512, 2), residual(128, 512, 1), residual(128, 512, 1)]);
        body
    }

    /// A full-width channel count divided by the width divisor.
    pub fn width(&self, channels: usize) -> usize {
        channels / self.width_divisor.max(1)
    }

    /// Channels of the last feature map (the dense layer's inputs).
    pub fn features(&self) -> usize {
        self.width(512)
    }

    /// An error naming the field unless every setting is in range.
    pub fn check(&self) -> crate::Result<()> {
        if self.input_channels == 0 || self.classes == 0 {
            return Err(Error::Config(format!(
                "AttentionResNet needs at least one input channel and one class, got input_channels = {} and classes = {}",
                self.input_channels, self.classes
            )));
        }
        if !matches!(self.width_divisor, 1 | 2 | 4 | 8 | 16 | 32) {
            return Err(Error::Config(format!(
                "AttentionResNet width_divisor must divide 32 (1, 2, 4, 8, 16 or 32), got {}",
                self.width_divisor
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("AttentionResNet dropout must be in [0, 1), got {}", self.dropout)));
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::Config(format!("AttentionResNet l2 must be a finite λ ≥ 0, got {}", self.l2)));
        }
        Ok(())
    }
}

impl Default for AttentionResNetConfig {
    /// AttentionResNet56-mini for CIFAR-10.
    fn default() -> Self {
        Self::mini()
    }
}

/// A built block of the body.
#[derive(Debug, Clone)]
enum Block {
    Residual(ResidualUnit),
    Attention(AttentionModule),
}

/// The Residual Attention Network for 32×32 images, returning logits `[N, classes]`.
#[derive(Debug)]
pub struct AttentionResNet {
    stem_conv: Conv2d,
    stem_bn: Option<BatchNorm>,
    body: Vec<Block>,
    head_bn: Option<BatchNorm>,
    dropout: Option<Dropout>,
    classifier: Linear,
    l2: f64,
}

impl AttentionResNet {
    /// Builds the network's variables under `vb` (names like `block1.mask.inner.down.conv2.weight`).
    pub fn new(vb: VarBuilder, config: AttentionResNetConfig) -> Result<Self> {
        config.check()?;
        let glorot = KernelInit::GlorotUniform;
        let stem_channels = config.width(AttentionResNetConfig::STEM_CHANNELS);
        let stem_conv = conv2d(config.input_channels, stem_channels, 5, 1, Padding::Same, glorot, vb.pp("stem.conv"))?;
        let stem_bn =
            if config.stem_batch_norm() { Some(batch_norm(stem_channels, vb.pp("stem.bn"))?) } else { None };
        let mut channels = stem_channels;
        let mut body = Vec::new();
        for (i, block) in config.body().into_iter().enumerate() {
            let vb = vb.pp(format!("block{i}"));
            body.push(match block {
                BodyBlock::Residual { bottleneck, out, stride } => {
                    let (bottleneck, out) = (config.width(bottleneck), config.width(out));
                    let unit = ResidualUnit::new(channels, bottleneck, out, stride, config.shortcut, vb)?;
                    channels = out;
                    Block::Residual(unit)
                }
                BodyBlock::Attention { skip } => {
                    Block::Attention(AttentionModule::new(channels, skip, config.shortcut, vb)?)
                }
            });
        }
        let head_bn = if config.bn_relu_before_pool { Some(batch_norm(channels, vb.pp("head.bn"))?) } else { None };
        let dropout = if config.dropout > 0.0 { Some(Dropout::new(config.dropout, config.seed)?) } else { None };
        let classifier = dense(channels, config.classes, glorot, vb.pp("classifier"))?;
        Ok(Self { stem_conv, stem_bn, body, head_bn, dropout, classifier, l2: config.l2 })
    }

    /// The forward pass in evaluation mode (batch norm running statistics, no dropout).
    ///
    /// candle implements `ModuleT` for every `Module`, so a model with a training mode cannot
    /// implement `Module` itself: this method stands in for it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }

    /// The soft masks M of the attention modules, in order, for a batch `x` in evaluation mode:
    /// each `[N, C, H, W]` in (0, 1), shaped like its module's trunk output.
    pub fn soft_masks(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut masks = Vec::new();
        self.features(x, false, Some(&mut masks))?;
        Ok(masks)
    }

    /// The soft mask of attention module `module` (from 0) for a batch `x`, averaged over its
    /// channels and enlarged (nearest) to the input's 32×32: `[N, 1, 32, 32]` in (0, 1), ready
    /// to show beside the images (bright = attended).
    pub fn mask_map(&self, x: &Tensor, module: usize) -> Result<Tensor> {
        let masks = self.soft_masks(x)?;
        let Some(mask) = masks.get(module) else {
            candle_core::bail!("the model has {} attention modules, asked for module {module}", masks.len())
        };
        let (_, _, h, _) = mask.dims4()?;
        let map = mask.mean_keepdim(1)?;
        upsample_nearest2d(&map, 32 / h.max(1))
    }

    /// Stem and body: the last feature map `[N, C, 4, 4]`, collecting the masks if asked.
    fn features(&self, x: &Tensor, train: bool, mut masks: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        check_input_size(x)?;
        let mut x = self.stem_conv.forward(x)?;
        if let Some(bn) = &self.stem_bn {
            x = bn.forward_relu_t(&x, train)?;
        }
        x = max_pool2d(&x, 2, 2)?;
        for block in &self.body {
            x = match block {
                Block::Residual(unit) => unit.forward_t(&x, train)?,
                Block::Attention(module) => match masks.as_deref_mut() {
                    Some(masks) => {
                        let (y, mask) = module.forward_with_mask(&x, train)?;
                        masks.push(mask);
                        y
                    }
                    None => module.forward_t(&x, train)?,
                },
            };
        }
        Ok(x)
    }
}

impl ModuleT for AttentionResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.features(x, train, None)?;
        if let Some(bn) = &self.head_bn {
            x = bn.forward_relu_t(&x, train)?;
        }
        let mut x = x.avg_pool2d(4)?.flatten_from(1)?;
        if let Some(dropout) = &self.dropout {
            x = dropout.forward_t(&x, train)?;
        }
        self.classifier.forward(&x)
    }
}

impl Network for AttentionResNet {
    /// λ·Σw² over the dense kernel (Keras `kernel_regularizer` on the last layer), if λ > 0.
    fn penalty(&self) -> Result<Option<Tensor>> {
        l2_penalty(&[self.classifier.weight().clone()], self.l2)
    }

    /// Batch norms folded into the convolutions before them (the pre-activation ones kept as
    /// per-channel affine maps), ReLUs and shortcut adds in the convolutions' epilogues.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let stem = match &self.stem_bn {
            Some(bn) => (self.stem_conv.folded(bn)?, true),
            None => (self.stem_conv.frozen()?, false),
        };
        let body = self
            .body
            .iter()
            .map(|block| match block {
                Block::Residual(unit) => Ok(FrozenBlock::Residual(unit.frozen()?)),
                Block::Attention(module) => Ok(FrozenBlock::Attention(Box::new(module.frozen()?))),
            })
            .collect::<Result<Vec<_>>>()?;
        let head_bn = self.head_bn.as_ref().map(BatchNorm::frozen).transpose()?;
        Ok(Box::new(FrozenAttentionResNet { stem, body, head_bn, classifier: frozen_linear(&self.classifier) }))
    }
}

/// An error unless `x` holds 32×32 images (the network's 4×4 average pool is global).
fn check_input_size(x: &Tensor) -> Result<()> {
    let (_, _, h, w) = x.dims4()?;
    if (h, w) != (32, 32) {
        candle_core::bail!("AttentionResNet takes 32×32 images (its 4×4 average pool is global), got {h}×{w}")
    }
    Ok(())
}

/// A block of the body frozen for inference.
enum FrozenBlock {
    Residual(FrozenUnit),
    Attention(Box<FrozenModule>),
}

/// An [`AttentionResNet`] frozen for inference (see [`Network::inference`]); dropout is the
/// identity.
struct FrozenAttentionResNet {
    /// The stem convolution, and whether a ReLU follows it (its batch norm folded in).
    stem: (FrozenConv, bool),
    body: Vec<FrozenBlock>,
    head_bn: Option<FrozenBatchNorm>,
    classifier: Linear,
}

impl Inference for FrozenAttentionResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_input_size(x)?;
        let (conv, then_relu) = &self.stem;
        let mut x = max_pool2d(&if *then_relu { conv.forward_relu(x)? } else { conv.forward(x)? }, 2, 2)?;
        for block in &self.body {
            x = match block {
                FrozenBlock::Residual(unit) => unit.forward(&x)?,
                FrozenBlock::Attention(module) => module.forward(&x)?,
            };
        }
        if let Some(bn) = &self.head_bn {
            x = bn.forward_relu(&x)?;
        }
        linear(&self.classifier, &x.avg_pool2d(4)?.flatten_from(1)?)
    }
}
