//! Models of the coursework, each built from a `VarBuilder` with a `forward_t(x, train)`.

use candle_core::Tensor;

/// A network the training loop can fit: a forward pass in training or evaluation mode
/// (dropout, batch norm) and an optional penalty added to the loss.
pub trait Network: candle_nn::ModuleT {
    /// The regularisation term added to the data loss (Keras `kernel_regularizer`), if any.
    fn penalty(&self) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
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
