//! ResNet v1 for CIFAR-10, as the Keras `cifar10_resnet` example builds it (`resnet_v1`).
//!
//! ```text
//! 3×3 conv 16 → BN → ReLU                                   32×32×16
//! stage 1: n basic blocks, 16 filters                       32×32×16
//! stage 2: n basic blocks, 32 filters (first one stride 2)  16×16×32
//! stage 3: n basic blocks, 64 filters (first one stride 2)   8×8×64
//! 8×8 average pool → flatten → dense (logits)
//! ```
//! with depth = 6n + 2 (20, 32, 44, 56, 110). A basic block computes
//! `relu(shortcut(x) + BN(conv(relu(BN(conv(x))))))`; the shortcut is the identity, or a 1×1
//! convolution of stride 2 (no BN) where the block halves the image and doubles the filters.
//!
//! As in Keras, every convolution has a bias, He-normal initialisation and an L2 penalty
//! (`kernel_regularizer=l2(1e-4)`); the dense layer is He-normal without penalty. Keras's
//! final softmax is left to the cross-entropy loss: the model returns logits.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{batch_norm_with_momentum, conv2d, dense, l2_penalty, BatchNorm, Conv2d, FrozenConv, KernelInit, Padding};
use super::{Inference, Network};
use crate::kernels::activation::add_relu;
use crate::Error;

/// Hyperparameters of [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    /// Number of weight layers, 6n + 2: 20, 32, 44, 56, 110, ...
    pub depth: usize,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// L2 penalty λ on the convolution kernels (0 for none).
    pub l2: f64,
    /// Channels of the input images (3 for CIFAR-10).
    pub input_channels: usize,
    /// Keras's batch-norm momentum (0.99; short runs use 0.9 so the running statistics settle).
    #[serde(default = "keras_momentum")]
    pub batch_norm_momentum: f64,
}

fn keras_momentum() -> f64 {
    super::layers::KERAS_BATCH_NORM_MOMENTUM
}

impl ResNetConfig {
    /// The Keras example's CIFAR-10 setting for a given depth: 10 classes, λ = 1e-4, RGB input.
    pub fn cifar10(depth: usize) -> Self {
        Self { depth, classes: 10, l2: 1e-4, input_channels: 3, batch_norm_momentum: keras_momentum() }
    }

    /// Basic blocks per stage, n = (depth − 2) / 6; an error unless depth = 6n + 2 with n ≥ 1.
    pub fn blocks_per_stage(&self) -> crate::Result<usize> {
        if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) {
            return Err(Error::Config(format!(
                "ResNet depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {}",
                self.depth
            )));
        }
        Ok((self.depth - 2) / 6)
    }

    fn check(&self) -> crate::Result<usize> {
        if self.classes == 0 || self.input_channels == 0 {
            return Err(Error::Config(format!(
                "ResNet needs at least one class and one input channel, got {} and {}",
                self.classes, self.input_channels
            )));
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::Config(format!("ResNet L2 penalty must be ≥ 0, got {}", self.l2)));
        }
        self.blocks_per_stage()
    }
}

impl Default for ResNetConfig {
    /// ResNet-20 for CIFAR-10.
    fn default() -> Self {
        Self::cifar10(20)
    }
}

/// Two 3×3 convolutions with batch norm, added to a shortcut of the input.
#[derive(Debug, Clone)]
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// 1×1 strided convolution where the block changes the shape; identity otherwise.
    projection: Option<Conv2d>,
}

impl BasicBlock {
    fn new(in_channels: usize, (filters, stride): (usize, usize), momentum: f64, vb: VarBuilder) -> Result<Self> {
        let conv3x3 = |inputs, stride, vb| {
            conv2d(inputs, filters, 3, stride, Padding::Same, KernelInit::HeNormal, vb)
        };
        let projection = if stride != 1 || in_channels != filters {
            let vb = vb.pp("projection");
            Some(conv2d(in_channels, filters, 1, stride, Padding::Same, KernelInit::HeNormal, vb)?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv3x3(in_channels, stride, vb.pp("conv1"))?,
            bn1: batch_norm_with_momentum(filters, momentum, vb.pp("bn1"))?,
            conv2: conv3x3(filters, 1, vb.pp("conv2"))?,
            bn2: batch_norm_with_momentum(filters, momentum, vb.pp("bn2"))?,
            projection,
        })
    }

    fn kernels(&self) -> impl Iterator<Item = &Tensor> {
        [Some(&self.conv1), Some(&self.conv2), self.projection.as_ref()]
            .into_iter()
            .flatten()
            .map(|conv| conv.weight())
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let shortcut = match &self.projection {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        add_relu(&shortcut, &y)
    }
}

/// ResNet v1 for 32×32 images (He et al. 2016, section 4.2), returning logits `[N, classes]`.
#[derive(Debug, Clone)]
pub struct ResNet {
    stem_conv: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
    classifier: Linear,
    l2: f64,
}

impl ResNet {
    /// Builds the network's variables under `vb` (names like `stage2.block0.conv1.weight`).
    pub fn new(vb: VarBuilder, config: ResNetConfig) -> Result<Self> {
        let blocks_per_stage = config.check()?;
        let he = KernelInit::HeNormal;
        let stem_conv =
            conv2d(config.input_channels, 16, 3, 1, Padding::Same, he, vb.pp("stem.conv"))?;
        let stem_bn = batch_norm_with_momentum(16, config.batch_norm_momentum, vb.pp("stem.bn"))?;
        let mut blocks = Vec::with_capacity(3 * blocks_per_stage);
        let mut channels = 16;
        for (stage, filters) in [16, 32, 64].into_iter().enumerate() {
            for block in 0..blocks_per_stage {
                // The first block of stages 2 and 3 halves the image size.
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("stage{}.block{block}", stage + 1));
                blocks.push(BasicBlock::new(channels, (filters, stride), config.batch_norm_momentum, vb)?);
                channels = filters;
            }
        }
        let classifier = dense(channels, config.classes, he, vb.pp("classifier"))?;
        Ok(Self { stem_conv, stem_bn, blocks, classifier, l2: config.l2 })
    }

    /// The forward pass in evaluation mode (batch norm uses its running statistics).
    ///
    /// candle implements `ModuleT` for every `Module`, so a model with a training mode cannot
    /// implement `Module` itself: this method stands in for it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.stem_bn.forward_relu_t(&self.stem_conv.forward(x)?, train)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        let x = x.avg_pool2d(8)?.flatten_from(1)?;
        crate::kernels::linear::linear(&self.classifier, &x)
    }
}

impl Network for ResNet {
    /// λ·Σw² over all convolution kernels (not the biases, batch norm or dense layer).
    fn penalty(&self) -> Result<Option<Tensor>> {
        let mut kernels = vec![self.stem_conv.weight().clone()];
        kernels.extend(self.blocks.iter().flat_map(|b| b.kernels()).cloned());
        l2_penalty(&kernels, self.l2)
    }

    /// Every batch norm folded into its convolution; each block is two convolutions, the second
    /// adding the shortcut and applying the ReLU as it writes its output.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(FrozenBlock {
                    conv1: b.conv1.folded(&b.bn1)?,
                    conv2: b.conv2.folded(&b.bn2)?,
                    projection: b.projection.as_ref().map(Conv2d::frozen).transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let classifier = super::layers::frozen_linear(&self.classifier);
        Ok(Box::new(FrozenResNet { stem: self.stem_conv.folded(&self.stem_bn)?, blocks, classifier }))
    }
}

/// A [`BasicBlock`] frozen for inference.
struct FrozenBlock {
    conv1: FrozenConv,
    conv2: FrozenConv,
    projection: Option<FrozenConv>,
}

/// A [`ResNet`] frozen for inference (see [`Network::inference`]).
struct FrozenResNet {
    stem: FrozenConv,
    blocks: Vec<FrozenBlock>,
    classifier: Linear,
}

impl Inference for FrozenResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward_relu(x)?;
        for block in &self.blocks {
            let y = block.conv1.forward_relu(&x)?;
            let shortcut = match &block.projection {
                Some(conv) => conv.forward(&x)?,
                None => x,
            };
            x = block.conv2.forward_add_relu(&y, &shortcut)?;
        }
        crate::kernels::linear::linear(&self.classifier, &x.avg_pool2d(8)?.flatten_from(1)?)
    }
}
