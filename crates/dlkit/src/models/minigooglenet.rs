//! MiniGoogLeNet for 32×32 images (Zhang et al. 2017, "Understanding deep learning requires
//! rethinking generalization"), as the coursework's Keras version builds it.
//!
//! ```text
//! conv module 96, 3×3                               32×32×96
//! inception(32, 32), inception(32, 48)              32×32×80
//! downsample(80)                                    15×15×160
//! inception(112, 48), (96, 64), (80, 80), (48, 96)  15×15×144
//! downsample(96)                                     7×7×240
//! inception(176, 160), inception(176, 160)           7×7×336
//! 7×7 average pool → dropout 0.5 → flatten → dense (logits)
//! ```
//! A conv module is conv → BN → ReLU ('same' padding); an inception module concatenates a 1×1
//! and a 3×3 conv module; a downsample module concatenates a 3×3 stride-2 'valid' conv module
//! and a 3×3 stride-2 max pool. Keras defaults throughout (glorot uniform, biases, no L2).
//! Keras's final softmax is left to the cross-entropy loss: the model returns logits.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{dense, ConvBnRelu, FrozenConv, KernelInit, Padding};
use super::{Dropout, Inference, Network};
use crate::Error;

/// Hyperparameters of [`MiniGoogLeNet`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiniGoogLeNetConfig {
    /// Channels of the input images: 1 (Fashion-MNIST resized to 32×32) or 3 (CIFAR-10).
    pub input_channels: usize,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// Every filter count is divided by this (1 = the coursework's network). Quick CPU runs use
    /// 4: a network of the same shape with 1/16 of the multiplications.
    #[serde(default = "one")]
    pub width_divisor: usize,
    /// Keras's batch-norm momentum (0.99; short runs use 0.9 so the running statistics settle).
    #[serde(default = "keras_momentum")]
    pub batch_norm_momentum: f64,
}

fn keras_momentum() -> f64 {
    super::layers::KERAS_BATCH_NORM_MOMENTUM
}

fn one() -> usize {
    1
}

impl Default for MiniGoogLeNetConfig {
    /// CIFAR-10: RGB input, 10 classes, dropout seed 0, full width.
    fn default() -> Self {
        Self { input_channels: 3, classes: 10, seed: 0, width_divisor: 1, batch_norm_momentum: keras_momentum() }
    }
}

/// A 1×1 and a 3×3 conv module side by side, their outputs concatenated on channels.
#[derive(Debug, Clone)]
struct Inception {
    branch1x1: ConvBnRelu,
    branch3x3: ConvBnRelu,
}

impl Inception {
    fn new(inputs: usize, (filters1x1, filters3x3): (usize, usize), momentum: f64, vb: VarBuilder) -> Result<Self> {
        let module = |filters, kernel, name| {
            ConvBnRelu::new(inputs, filters, (kernel, 1, Padding::Same), momentum, vb.pp(name))
        };
        Ok(Self {
            branch1x1: module(filters1x1, 1, "branch1x1")?,
            branch3x3: module(filters3x3, 3, "branch3x3")?,
        })
    }
}

impl ModuleT for Inception {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = self.branch1x1.forward_t(x, train)?;
        let b = self.branch3x3.forward_t(x, train)?;
        Tensor::cat(&[a, b], 1)
    }
}

/// A 3×3 stride-2 conv module beside a 3×3 stride-2 max pool, concatenated on channels.
#[derive(Debug, Clone)]
struct Downsample {
    conv: ConvBnRelu,
}

impl Downsample {
    fn new(in_channels: usize, filters: usize, momentum: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: ConvBnRelu::new(in_channels, filters, (3, 2, Padding::Valid), momentum, vb.pp("conv"))?,
        })
    }
}

impl ModuleT for Downsample {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = self.conv.forward_t(x, train)?;
        let b = super::layers::max_pool2d(x, 3, 2)?;
        Tensor::cat(&[a, b], 1)
    }
}

/// The layers after the stem, in order.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// An inception module with (1×1 filters, 3×3 filters).
    Inception(usize, usize),
    /// A downsample module with this many conv filters.
    Downsample(usize),
}

const BODY: [Stage; 10] = [
    Stage::Inception(32, 32),
    Stage::Inception(32, 48),
    Stage::Downsample(80),
    Stage::Inception(112, 48),
    Stage::Inception(96, 64),
    Stage::Inception(80, 80),
    Stage::Inception(48, 96),
    Stage::Downsample(96),
    Stage::Inception(176, 160),
    Stage::Inception(176, 160),
];

/// A built stage of the body.
#[derive(Debug, Clone)]
enum Block {
    Inception(Inception),
    Downsample(Downsample),
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Block::Inception(m) => m.forward_t(x, train),
            Block::Downsample(m) => m.forward_t(x, train),
        }
    }
}

/// MiniGoogLeNet for 32×32 images, returning logits `[N, classes]`.
#[derive(Debug)]
pub struct MiniGoogLeNet {
    stem: ConvBnRelu,
    body: Vec<Block>,
    dropout: Dropout,
    classifier: Linear,
}

impl MiniGoogLeNet {
    /// Builds the network's variables under `vb` (names like `body3.conv.conv.weight`).
    pub fn new(vb: VarBuilder, config: MiniGoogLeNetConfig) -> Result<Self> {
        if !matches!(config.input_channels, 1 | 3) || config.classes == 0 {
            return Err(Error::Config(format!(
                "MiniGoogLeNet takes 1 or 3 input channels and at least one class, got {} and {}",
                config.input_channels, config.classes
            ))
            .into());
        }
        if config.width_divisor == 0 {
            return Err(Error::Config("MiniGoogLeNet width divisor must be at least 1".into()).into());
        }
        let width = |filters: usize| (filters / config.width_divisor).max(1);
        let momentum = config.batch_norm_momentum;
        let stem = ConvBnRelu::new(config.input_channels, width(96), (3, 1, Padding::Same), momentum, vb.pp("stem"))?;
        let mut channels = width(96);
        let mut body = Vec::with_capacity(BODY.len());
        for (i, stage) in BODY.into_iter().enumerate() {
            let vb = vb.pp(format!("body{i}"));
            body.push(match stage {
                Stage::Inception(filters1x1, filters3x3) => {
                    let (filters1x1, filters3x3) = (width(filters1x1), width(filters3x3));
                    let module = Inception::new(channels, (filters1x1, filters3x3), momentum, vb)?;
                    channels = filters1x1 + filters3x3;
                    Block::Inception(module)
                }
                Stage::Downsample(filters) => {
                    let filters = width(filters);
                    let module = Downsample::new(channels, filters, momentum, vb)?;
                    channels += filters; // the max pool passes the input channels through
                    Block::Downsample(module)
                }
            });
        }
        let classifier =
            dense(channels, config.classes, KernelInit::GlorotUniform, vb.pp("classifier"))?;
        Ok(Self { stem, body, dropout: Dropout::new(0.5, config.seed)?, classifier })
    }

    /// The forward pass in evaluation mode (no dropout, batch norm running statistics).
    ///
    /// candle implements `ModuleT` for every `Module`, so a model with a training mode cannot
    /// implement `Module` itself: this method stands in for it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl ModuleT for MiniGoogLeNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for block in &self.body {
            x = block.forward_t(&x, train)?;
        }
        let x = x.avg_pool2d(7)?;
        let x = self.dropout.forward_t(&x, train)?.flatten_from(1)?;
        crate::kernels::linear::linear(&self.classifier, &x)
    }
}

/// MiniGoogLeNet has no weight penalty (the Keras model sets no regulariser).
impl Network for MiniGoogLeNet {
    /// Every conv module as one convolution with its batch norm folded in and the ReLU applied
    /// as the output is written; dropout is the identity.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let body = self
            .body
            .iter()
            .map(|block| {
                Ok(match block {
                    Block::Inception(m) => FrozenBlock::Inception(m.branch1x1.frozen()?, m.branch3x3.frozen()?),
                    Block::Downsample(m) => FrozenBlock::Downsample(m.conv.frozen()?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let classifier = super::layers::frozen_linear(&self.classifier);
        Ok(Box::new(FrozenMiniGoogLeNet { stem: self.stem.frozen()?, body, classifier }))
    }
}

/// A stage of the body frozen for inference.
enum FrozenBlock {
    /// The 1×1 and 3×3 branches.
    Inception(FrozenConv, FrozenConv),
    /// The strided convolution (beside a max pool).
    Downsample(FrozenConv),
}

/// A [`MiniGoogLeNet`] frozen for inference (see [`Network::inference`]).
struct FrozenMiniGoogLeNet {
    stem: FrozenConv,
    body: Vec<FrozenBlock>,
    classifier: Linear,
}

impl Inference for FrozenMiniGoogLeNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.stem.forward_relu(x)?;
        for block in &self.body {
            x = match block {
                FrozenBlock::Inception(a, b) => FrozenConv::forward_relu_concat(&[a, b], &x)?,
                FrozenBlock::Downsample(conv) => conv.forward_relu_beside_max_pool(&x, 3, 2)?,
            };
        }
        crate::kernels::linear::linear(&self.classifier, &x.avg_pool2d(7)?.flatten_from(1)?)
    }
}
