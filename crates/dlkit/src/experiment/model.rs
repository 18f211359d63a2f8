//! Which model an experiment trains, chosen by name or configured field by field.

use crate::error::{Error, Result};
use crate::models::{self, Network};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

/// Which model to train.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ModelChoice {
    /// The coursework MLP.
    Mlp(models::MlpConfig),
    /// The VGG-style CIFAR-10 CNN.
    VggCnn(models::VggCnnConfig),
    /// ResNet v1 for CIFAR (depth 6n+2).
    ResNet(models::ResNetConfig),
    /// MiniGoogLeNet (Fashion-MNIST or CIFAR-10).
    MiniGoogLeNet(models::MiniGoogLeNetConfig),
    /// The Residual Attention Network of section 06 (AttentionResNet56-mini or the paper variant).
    AttentionResNet(models::AttentionResNetConfig),
    /// ResNet-50-D with squeeze-and-excitation (section 07).
    ResNetD(models::ResNetDConfig),
}

/// The model names [`ModelChoice::from_name`] understands.
pub const MODEL_NAMES: &str =
    "mlp, mlp-dropout, vgg-cnn, resnet20, resnet32, resnet44, resnet56, resnet110, minigooglenet, attention56-mini, attention56-paper, resnet50d-se";

impl ModelChoice {
    /// Parse a model name for `channels`-channel 32×32 input (1 for Fashion-MNIST, 3 for CIFAR-10).
    pub fn from_name(name: &str, channels: usize) -> Result<Self> {
        let mlp = models::MlpConfig { inputs: channels * 32 * 32, ..models::MlpConfig::cifar10() };
        Ok(match name {
            "mlp" => ModelChoice::Mlp(mlp),
            "mlp-dropout" => ModelChoice::Mlp(mlp.with_dropout()),
            "vgg-cnn" => ModelChoice::VggCnn(models::VggCnnConfig { input_channels: channels, ..Default::default() }),
            "minigooglenet" => ModelChoice::MiniGoogLeNet(models::MiniGoogLeNetConfig {
                input_channels: channels,
                ..Default::default()
            }),
            "attention56-mini" => ModelChoice::AttentionResNet(models::AttentionResNetConfig {
                input_channels: channels,
                ..models::AttentionResNetConfig::mini()
            }),
            "attention56-paper" => ModelChoice::AttentionResNet(models::AttentionResNetConfig {
                input_channels: channels,
                ..models::AttentionResNetConfig::paper()
            }),
            "resnet50d-se" => ModelChoice::ResNetD(models::ResNetDConfig { input_channels: channels, ..Default::default() }),
            other => match other.strip_prefix("resnet").and_then(|d| d.parse::<usize>().ok()) {
                Some(depth) => {
                    let config = models::ResNetConfig { input_channels: channels, ..models::ResNetConfig::cifar10(depth) };
                    config.blocks_per_stage()?;
                    ModelChoice::ResNet(config)
                }
                None => return Err(Error::Config(format!("unknown model `{other}`: use one of {MODEL_NAMES}"))),
            },
        })
    }

    /// Whether images of `shape` (channels, height, width) fit the model: `Err` says what it
    /// expects instead.
    pub fn accepts(&self, (c, h, w): (usize, usize, usize)) -> std::result::Result<(), String> {
        let convolutional = |channels: usize| {
            if (c, h, w) == (channels, 32, 32) {
                Ok(())
            } else {
                Err(format!("{channels}×32×32 images"))
            }
        };
        match self {
            ModelChoice::Mlp(m) if c * h * w == m.inputs => Ok(()),
            ModelChoice::Mlp(m) => Err(format!("images of {} values (e.g. {}×32×32)", m.inputs, m.inputs / 1024)),
            ModelChoice::VggCnn(m) => convolutional(m.input_channels),
            ModelChoice::ResNet(m) => convolutional(m.input_channels),
            ModelChoice::MiniGoogLeNet(m) => convolutional(m.input_channels),
            ModelChoice::AttentionResNet(m) => convolutional(m.input_channels),
            ModelChoice::ResNetD(m) => convolutional(m.input_channels),
        }
    }

    /// Build the model's variables in `varmap` (seeded) on `device`.
    pub fn build(&self, varmap: &VarMap, seed: u64, device: &Device) -> Result<Box<dyn Network>> {
        self.build_from(models::init::seeded(varmap, seed, DType::F32, device), seed)
    }

    /// Check every hyperparameter without training: the model is built with zero weights on the
    /// CPU and its penalty computed, so any setting its constructor refuses is reported.
    pub fn validate(&self) -> Result<()> {
        let model = self.build_from(VarBuilder::zeros(DType::F32, &Device::Cpu), 0)?;
        model.penalty()?;
        Ok(())
    }

    /// Build the model from `vb`; `seed` seeds its dropout masks.
    fn build_from(&self, vb: VarBuilder, seed: u64) -> Result<Box<dyn Network>> {
        Ok(match self {
            ModelChoice::Mlp(c) => Box::new(models::Mlp::new(vb, &models::MlpConfig { seed, ..c.clone() })?),
            ModelChoice::VggCnn(c) => Box::new(models::VggCnn::new(vb, models::VggCnnConfig { seed, ..*c })?),
            ModelChoice::ResNet(c) => Box::new(models::ResNet::new(vb, *c)?),
            ModelChoice::MiniGoogLeNet(c) => {
                Box::new(models::MiniGoogLeNet::new(vb, models::MiniGoogLeNetConfig { seed, ..*c })?)
            }
            ModelChoice::AttentionResNet(c) => {
                Box::new(models::AttentionResNet::new(vb, models::AttentionResNetConfig { seed, ..*c })?)
            }
            ModelChoice::ResNetD(c) => Box::new(models::ResNetD::new(vb, models::ResNetDConfig { seed, ..*c })?),
        })
    }
}
