//! Models of the coursework, each built from a `VarBuilder` with a `forward_t(x, train)`.

use candle_core::Tensor;

/// A network the training loop can fit: a forward pass in training or evaluation mode
/// (dropout, batch norm) and an optional penalty added to the loss.
pub trait Network: candle_nn::ModuleT {
    /// The regularisation term added to the data loss (Keras `kernel_regularizer`), if any.
    fn penalty(&self) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
    }

    /// The model frozen for evaluation, built once per evaluation and run on every batch.
    ///
    /// The default is `forward_t(x, false)` with its output detached. Models override it with a
    /// forward pass that records no autograd graph and has each batch norm folded into the
    /// convolution before it (see `layers::Conv2d::folded`); the frozen copy holds the weights
    /// as they were when it was built.
    fn inference(&self) -> candle_core::Result<Box<dyn Inference + '_>> {
        Ok(Box::new(EvaluationMode(self)))
    }
}

/// A model's evaluation-mode forward pass (see [`Network::inference`]).
pub trait Inference {
    /// Logits for a batch of inputs.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor>;
}

/// The default [`Inference`]: the network's own `forward_t(x, false)`, detached.
struct EvaluationMode<'a, N: ?Sized>(&'a N);

impl<N: Network + ?Sized> Inference for EvaluationMode<'_, N> {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.0.forward_t(x, false)?.detach())
    }
}

pub mod attention;
pub mod dropout;
pub mod init;
pub mod layers;
pub mod minigooglenet;
pub mod mlp;
pub mod resnet;
pub mod resnet_d;
pub mod vgg_cnn;
pub mod weights;

pub use attention::{AttentionModule, AttentionResNet, AttentionResNetConfig, AttentionVariant, ResidualUnit, Shortcut};
pub use dropout::Dropout;
pub use minigooglenet::{MiniGoogLeNet, MiniGoogLeNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use resnet_d::{ResNetD, ResNetDConfig};
pub use vgg_cnn::{VggCnn, VggCnnConfig};
pub use weights::WeightSnapshot;
