//! The coursework's VGG-style CNN for CIFAR-10.
//!
//! ```text
//! conv 64 → conv 64 → max pool 2      16×16×64
//! conv 128 → conv 128 → max pool 2     8×8×128
//! conv 256 → conv 256 → max pool 2     4×4×256
//! dropout → flatten → dense (logits)   4096 → classes
//! ```
//! Every convolution is 3×3 'same' with bias and ReLU, initialised as the section-05 report
//! does (`kernel_initializer='he_normal'`, zero biases; Keras's default glorot uniform is
//! selectable). There is no hidden dense layer: with one, the model would not have its
//! 1,186,378 parameters. Keras's final softmax is left to the cross-entropy loss: the model
//! returns logits. For quick runs on a CPU, `width_divisor` divides every filter count (a
//! model of the same shape with fewer multiplications).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::layers::{conv2d, dense, l2_penalty, Conv2d, FrozenConv, KernelInit, Padding};
use super::{Dropout, Inference, Network};
use crate::kernels::activation::relu;
use crate::Error;

/// Hyperparameters of [`VggCnn`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VggCnnConfig {
    /// Channels of the input images (3 for CIFAR-10).
    pub input_channels: usize,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// Dropout rate before the dense layer, in [0, 1).
    pub dropout: f32,
    /// L2 penalty λ on the convolution kernels (0 for none).
    pub l2: f64,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// How the kernels are initialised (the report: He normal).
    #[serde(default = "he_normal")]
    pub init: KernelInit,
    /// Every filter count is divided by this (1 = the report's model).
    #[serde(default = "one")]
    pub width_divisor: usize,
}

fn he_normal() -> KernelInit {
    KernelInit::HeNormal
}

fn one() -> usize {
    1
}

impl Default for VggCnnConfig {
    /// The report's CIFAR-10 model: RGB input, 10 classes, dropout 0.5, no L2 penalty, He normal
    /// initialisation, full width, dropout seed 0.
    fn default() -> Self {
        Self { input_channels: 3, classes: 10, dropout: 0.5, l2: 0.0, seed: 0, init: KernelInit::HeNormal, width_divisor: 1 }
    }
}

/// Filters of the three pairs of convolutions.
const FILTERS: [usize; 3] = [64, 128, 256];

/// The VGG-style CIFAR-10 CNN for 32×32 images, returning logits `[N, classes]`.
#[derive(Debug)]
pub struct VggCnn {
    /// Pairs of 3×3 convolutions, each pair followed by a 2×2 max pool.
    convs: Vec<(Conv2d, Conv2d)>,
    dropout: Dropout,
    classifier: Linear,
    l2: f64,
}

impl VggCnn {
    /// Builds the network's variables under `vb` (names like `block2.conv1.weight`).
    pub fn new(vb: VarBuilder, config: VggCnnConfig) -> Result<Self> {
        if config.input_channels == 0 || config.classes == 0 {
            return Err(Error::Config(format!(
                "VggCnn needs at least one input channel and one class, got {} and {}",
                config.input_channels, config.classes
            ))
            .into());
        }
        if config.width_divisor == 0 {
            return Err(Error::Config("VggCnn width divisor must be at least 1".into()).into());
        }
        if !(config.l2 >= 0.0 && config.l2.is_finite()) {
            return Err(
                Error::Config(format!("VggCnn L2 penalty must be ≥ 0, got {}", config.l2)).into()
            );
        }
        let conv3x3 = |inputs, filters, vb| conv2d(inputs, filters, 3, 1, Padding::Same, config.init, vb);
        let mut convs = Vec::with_capacity(FILTERS.len());
        let mut channels = config.input_channels;
        for (i, filters) in FILTERS.into_iter().map(|f| (f / config.width_divisor).max(1)).enumerate() {
            let vb = vb.pp(format!("block{}", i + 1));
            convs.push((
                conv3x3(channels, filters, vb.pp("conv1"))?,
                conv3x3(filters, filters, vb.pp("conv2"))?,
            ));
            channels = filters;
        }
        // Three 2×2 max pools take 32×32 down to 4×4.
        // The report sets he_normal on its convolutions; its dense layer keeps Keras's default.
        let classifier = dense(channels * 4 * 4, config.classes, KernelInit::GlorotUniform, vb.pp("classifier"))?;
        Ok(Self {
            convs,
            dropout: Dropout::new(config.dropout, config.seed)?,
            classifier,
            l2: config.l2,
        })
    }

    /// The forward pass in evaluation mode (no dropout).
    ///
    /// candle implements `ModuleT` for every `Module`, so a model with a training mode cannot
    /// implement `Module` itself: this method stands in for it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl ModuleT for VggCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv1, conv2) in &self.convs {
            x = super::layers::max_pool2d(&relu(&conv2.forward(&relu(&conv1.forward(&x)?)?)?)?, 2, 2)?;
        }
        let x = self.dropout.forward_t(&x, train)?.flatten_from(1)?;
        crate::kernels::linear::linear(&self.classifier, &x)
    }
}

impl Network for VggCnn {
    /// λ·Σw² over the six convolution kernels (not the biases or the dense layer).
    fn penalty(&self) -> Result<Option<Tensor>> {
        let kernels: Vec<Tensor> =
            self.convs.iter().flat_map(|(a, b)| [a.weight().clone(), b.weight().clone()]).collect();
        l2_penalty(&kernels, self.l2)
    }

    /// Each convolution applies its ReLU as it writes the output; dropout is the identity.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let convs = self.convs.iter().map(|(a, b)| Ok((a.frozen()?, b.frozen()?))).collect::<Result<Vec<_>>>()?;
        let classifier = super::layers::frozen_linear(&self.classifier);
        Ok(Box::new(FrozenVggCnn { convs, classifier }))
    }
}

/// A [`VggCnn`] frozen for inference (see [`Network::inference`]).
struct FrozenVggCnn {
    convs: Vec<(FrozenConv, FrozenConv)>,
    classifier: Linear,
}

impl Inference for FrozenVggCnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv1, conv2) in &self.convs {
            x = super::layers::max_pool2d(&conv2.forward_relu(&conv1.forward_relu(&x)?)?, 2, 2)?;
        }
        crate::kernels::linear::linear(&self.classifier, &x.flatten_from(1)?)
    }
}
