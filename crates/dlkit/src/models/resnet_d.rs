//! ResNet-50-D with squeeze-and-excitation, for 32×32 images (section 07).
//!
//! ResNet-50 (He et al. 2016) is four stages of bottleneck blocks, [3, 4, 6, 3] of them, with
//! bottleneck widths 64, 128, 256, 512 and outputs four times as wide. A block computes
//! `relu(shortcut(x) + SE(BN(conv1×1(relu(BN(conv3×3(relu(BN(conv1×1(x))))))))))`.
//! The "D" variant (He et al. 2019, "Bag of Tricks for Image Classification", figure 2) changes:
//! - the stem: three 3×3 convolutions (widths `stem_width/2`, `stem_width/2`, `stem_width`, each
//!   followed by BN and ReLU) instead of one 7×7; `stem_width` 64 is timm's `resnet50d`
//!   (32, 32, 64), 128 its `resnet50e` (64, 64, 128);
//! - a downsampling block strides its 3×3 convolution, not the first 1×1 (ResNet-B);
//! - a downsampling shortcut is a 2×2 average pool of stride 2, then a 1×1 convolution and BN
//!   (instead of a 1×1 convolution of stride 2, which reads a quarter of the pixels).
//!
//! Squeeze-and-excitation (Hu et al. 2018) rescales the channels of every block's residual
//! branch before the addition (timm's placement): global average pool → dense C→C/r → ReLU →
//! dense C/r→C → sigmoid → multiply each channel by its weight. C/r is rounded down (at least
//! 1); for the full widths with r = 4 or 16 it is exact, as in timm (which rounds to multiples
//! of 8). Global average pooling and dropout come before the dense classifier.
//!
//! **CIFAR adaptation** (the choice of this module): the ImageNet model shrinks 224 → 56 before
//! stage 1 (a stride-2 stem convolution and a stride-2 max pool). On 32×32 images every stem
//! convolution has stride 1 and there is no max pool, so the stages see 32×32, 16×16, 8×8 and
//! 4×4 (the common CIFAR ResNet-50 layout); stage 1 keeps stride 1 and only widens the shortcut.
//!
//! **PyTorch conventions**, followed because the reference model is a PyTorch one:
//! - convolutions have no bias (`bias=False`: the BN after each one has a β);
//! - batch norm with PyTorch's defaults: momentum 0.1 (weight of the new batch), epsilon 1e-5;
//! - initialisation as torchvision's and timm's ResNets: convolution kernels He-normal over
//!   the fan-out (`kaiming_normal_(mode='fan_out', nonlinearity='relu')`, the SE's dense
//!   layers too, which timm writes as 1×1 convolutions), BN γ = 1 and β = 0; the classifier and
//!   all dense biases keep PyTorch's `Linear` default, uniform in ±1/√fan_in. The last BN of a
//!   block starts at γ = 1 (torchvision's default; timm's `zero_init_last` would start it at 0).
//!
//! The model has no L2 penalty: PyTorch training decays weights in the optimizer
//! (`optim::SgdParams::weight_decay`). For quick CPU runs, `blocks_per_stage` and
//! `width_divisor` give a shallower, narrower model of the same family.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use super::layers::{conv2d_no_bias, frozen_linear, pytorch_batch_norm, BatchNorm, Conv2d, FrozenConv, KernelInit, Padding};
use super::{Dropout, Inference, Network};
use crate::kernels::activation::{add_relu, relu};
use crate::kernels::linear::linear;
use crate::Error;

/// Bottleneck widths of the four stages (the block outputs are 4× as wide).
pub const STAGE_WIDTHS: [usize; 4] = [64, 128, 256, 512];
/// Output channels of a bottleneck block per unit of bottleneck width.
pub const EXPANSION: usize = 4;

/// Hyperparameters of [`ResNetD`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetDConfig {
    /// Channels out of the stem (its first two convolutions have half): 64 (timm `resnet50d`)
    /// or 128 (`resnet50e`); an even number ≥ 2 after the width divisor.
    pub stem_width: usize,
    /// Squeeze-and-excitation reduction r (the bottleneck of the SE is C/r wide): 4 or 16.
    pub se_reduction: usize,
    /// Dropout rate before the classifier, in [0, 1).
    pub dropout: f64,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// Channels of the input images (3 for CIFAR-10).
    pub input_channels: usize,
    /// Bottleneck blocks per stage: ResNet-50's [3, 4, 6, 3]; fewer for quick runs.
    #[serde(default = "resnet50_blocks")]
    pub blocks_per_stage: [usize; 4],
    /// Every channel count (stem, stages) is divided by this (1 = the full model).
    #[serde(default = "one")]
    pub width_divisor: usize,
    /// Seed of the dropout masks.
    #[serde(default)]
    pub seed: u64,
}

fn resnet50_blocks() -> [usize; 4] {
    [3, 4, 6, 3]
}

fn one() -> usize {
    1
}

impl Default for ResNetDConfig {
    /// ResNet-50-D-SE for CIFAR-10: stem 64, r = 16, dropout 0.2, full depth and width.
    fn default() -> Self {
        ResNetDConfig {
            stem_width: 64,
            se_reduction: 16,
            dropout: 0.2,
            classes: 10,
            input_channels: 3,
            blocks_per_stage: resnet50_blocks(),
            width_divisor: 1,
            seed: 0,
        }
    }
}

impl ResNetDConfig {
    /// The quick-mode model of the same family: one block per stage, a quarter of the widths
    /// (stem_width / 4, bottlenecks 16-32-64-128, outputs up to 512), other settings unchanged.
    pub fn reduced(self) -> Self {
        ResNetDConfig { blocks_per_stage: [1, 1, 1, 1], width_divisor: 4, ..self }
    }

    /// Channels out of the stem after the width divisor.
    pub fn stem_channels(&self) -> usize {
        self.stem_width / self.width_divisor.max(1)
    }

    /// Bottleneck widths of the four stages after the width divisor (outputs are 4× these).
    pub fn stage_widths(&self) -> [usize; 4] {
        STAGE_WIDTHS.map(|w| (w / self.width_divisor.max(1)).max(1))
    }

    /// Width of the squeeze-and-excitation bottleneck for `channels` channels: ⌊C/r⌋, at least 1.
    pub fn se_channels(&self, channels: usize) -> usize {
        (channels / self.se_reduction.max(1)).max(1)
    }

    /// Check every field; an invalid one is an `Error::Config` naming it.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &str, range: &str, got: String| {
            Err(Error::Config(format!("ResNet-D {field} must be {range}, got {got}")))
        };
        if self.width_divisor == 0 {
            return bad("width_divisor", "at least 1", "0".into());
        }
        let stem = self.stem_channels();
        if stem < 2 || !stem.is_multiple_of(2) {
            return bad("stem_width / width_divisor", "an even number ≥ 2", stem.to_string());
        }
        if self.se_reduction == 0 {
            return bad("se_reduction", "at least 1 (4 or 16 in the reference)", "0".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", "in [0, 1)", self.dropout.to_string());
        }
        if self.classes == 0 || self.input_channels == 0 {
            return bad("classes and input_channels", "at least 1", format!("{} and {}", self.classes, self.input_channels));
        }
        if self.blocks_per_stage.contains(&0) {
            return bad("blocks_per_stage", "at least 1 per stage", format!("{:?}", self.blocks_per_stage));
        }
        Ok(())
    }
}

/// A PyTorch-initialised dense layer: weight from `weight_init`, bias uniform in ±1/√inputs
/// (the default of `nn.Linear` and of a convolution's bias).
fn pytorch_dense(inputs: usize, outputs: usize, weight_init: Init, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (inputs as f64).sqrt();
    let weight = vb.get_with_hints((outputs, inputs), "weight", weight_init)?;
    let bias = vb.get_with_hints(outputs, "bias", Init::Uniform { lo: -bound, up: bound })?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Convolution (no bias, He normal over fan-out) followed by PyTorch batch norm.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(inputs: usize, outputs: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let conv = conv2d_no_bias(inputs, outputs, kernel, stride, Padding::Same, KernelInit::HeNormalFanOut, vb.pp("conv"))?;
        Ok(ConvBn { conv, bn: pytorch_batch_norm(outputs, vb.pp("bn"))? })
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }
}

impl ConvBn {
    /// `relu(self.forward_t(x, train))`, the ReLU inside the batch norm's passes.
    fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_relu_t(&self.conv.forward(x)?, train)
    }

    /// The convolution with its batch norm folded in, for inference.
    fn folded(&self) -> Result<FrozenConv> {
        self.conv.folded(&self.bn)
    }
}

/// Squeeze-and-excitation: `x · sigmoid(W₂·relu(W₁·mean_hw(x) + b₁) + b₂)` per channel.
#[derive(Debug, Clone)]
struct SqueezeExcitation {
    reduce: Linear,
    expand: Linear,
}

impl SqueezeExcitation {
    fn new(channels: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        // timm's SE layers are 1×1 convolutions: He normal over the fan-out (= outputs).
        let he_fan_out = |outputs: usize| Init::Randn { mean: 0.0, stdev: (2.0 / outputs as f64).sqrt() };
        Ok(SqueezeExcitation {
            reduce: pytorch_dense(channels, hidden, he_fan_out(hidden), vb.pp("reduce"))?,
            expand: pytorch_dense(hidden, channels, he_fan_out(channels), vb.pp("expand"))?,
        })
    }

    /// This gate with detached weights, for inference.
    fn frozen(&self) -> Self {
        SqueezeExcitation { reduce: frozen_linear(&self.reduce), expand: frozen_linear(&self.expand) }
    }

    /// The channel weights in (0, 1), `[N, C]`.
    fn gate(&self, x: &Tensor) -> Result<Tensor> {
        let squeezed = x.mean((2, 3))?;
        let hidden = relu(&self.reduce.forward(&squeezed)?)?;
        candle_nn::ops::sigmoid(&self.expand.forward(&hidden)?)
    }
}

impl Module for SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        x.broadcast_mul(&self.gate(x)?.reshape((n, c, 1, 1))?)
    }
}

/// The shortcut of a block that changes the shape: [2×2 average pool /2] → 1×1 conv → BN.
#[derive(Debug, Clone)]
struct Shortcut {
    pool: bool,
    projection: ConvBn,
}

impl ModuleT for Shortcut {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.pool {
            self.projection.forward_t(&x.avg_pool2d(2)?, train)
        } else {
            self.projection.forward_t(x, train)
        }
    }
}

/// A bottleneck block with squeeze-and-excitation (see the module documentation).
#[derive(Debug, Clone)]
struct Bottleneck {
    reduce: ConvBn,
    conv3x3: ConvBn,
    expand: ConvBn,
    se: SqueezeExcitation,
    shortcut: Option<Shortcut>,
}

impl Bottleneck {
    fn new(inputs: usize, width: usize, stride: usize, config: &ResNetDConfig, vb: VarBuilder) -> Result<Self> {
        let outputs = EXPANSION * width;
        let shortcut = if stride != 1 || inputs != outputs {
            Some(Shortcut { pool: stride != 1, projection: ConvBn::new(inputs, outputs, 1, 1, vb.pp("shortcut"))? })
        } else {
            None
        };
        Ok(Bottleneck {
            reduce: ConvBn::new(inputs, width, 1, 1, vb.pp("reduce"))?,
            conv3x3: ConvBn::new(width, width, 3, stride, vb.pp("conv3x3"))?,
            expand: ConvBn::new(width, outputs, 1, 1, vb.pp("expand"))?,
            se: SqueezeExcitation::new(outputs, config.se_channels(outputs), vb.pp("se"))?,
            shortcut,
        })
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.reduce.forward_relu_t(x, train)?;
        let y = self.conv3x3.forward_relu_t(&y, train)?;
        let y = self.se.forward(&self.expand.forward_t(&y, train)?)?;
        match &self.shortcut {
            Some(shortcut) => add_relu(&shortcut.forward_t(x, train)?, &y),
            None => add_relu(x, &y),
        }
    }
}

/// ResNet-D with squeeze-and-excitation for 32×32 images, returning logits `[N, classes]`.
#[derive(Debug)]
pub struct ResNetD {
    stem: Vec<ConvBn>,
    blocks: Vec<Bottleneck>,
    dropout: Dropout,
    classifier: Linear,
}

impl ResNetD {
    /// Builds the network's variables under `vb` (names like `stage2.block0.conv3x3.conv.weight`).
    pub fn new(vb: VarBuilder, config: ResNetDConfig) -> Result<Self> {
        config.validate()?;
        let stem_out = config.stem_channels();
        let half = stem_out / 2;
        let stem = vec![
            ConvBn::new(config.input_channels, half, 3, 1, vb.pp("stem.conv1"))?,
            ConvBn::new(half, half, 3, 1, vb.pp("stem.conv2"))?,
            ConvBn::new(half, stem_out, 3, 1, vb.pp("stem.conv3"))?,
        ];
        let mut blocks = Vec::new();
        let mut channels = stem_out;
        for (stage, (&width, &count)) in config.stage_widths().iter().zip(&config.blocks_per_stage).enumerate() {
            for block in 0..count {
                // Stages 2-4 halve the image in their first block (stage 1 runs at 32×32).
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("stage{}.block{block}", stage + 1));
                blocks.push(Bottleneck::new(channels, width, stride, &config, vb)?);
                channels = EXPANSION * width;
            }
        }
        let bound = 1.0 / (channels as f64).sqrt();
        let classifier =
            pytorch_dense(channels, config.classes, Init::Uniform { lo: -bound, up: bound }, vb.pp("classifier"))?;
        Ok(ResNetD { stem, blocks, dropout: Dropout::new(config.dropout as f32, config.seed)?, classifier })
    }

    /// The forward pass in evaluation mode (no dropout, batch norm running statistics).
    ///
    /// candle implements `ModuleT` for every `Module`, so a model with a training mode cannot
    /// implement `Module` itself: this method stands in for it.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl ModuleT for ResNetD {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.stem {
            x = layer.forward_relu_t(&x, train)?;
        }
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        let pooled = x.mean((2, 3))?;
        self.classifier.forward(&self.dropout.forward_t(&pooled, train)?)
    }
}

/// No penalty term: PyTorch-style training decays the weights in the optimizer instead.
impl Network for ResNetD {
    /// Every batch norm folded into its convolution; the ReLUs applied as the convolutions
    /// write their outputs.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let stem = self.stem.iter().map(ConvBn::folded).collect::<Result<Vec<_>>>()?;
        let blocks = self.blocks.iter().map(FrozenBottleneck::new).collect::<Result<Vec<_>>>()?;
        Ok(Box::new(FrozenResNetD { stem, blocks, classifier: frozen_linear(&self.classifier) }))
    }
}

/// A [`Bottleneck`] frozen for inference.
struct FrozenBottleneck {
    reduce: FrozenConv,
    conv3x3: FrozenConv,
    expand: FrozenConv,
    se: SqueezeExcitation,
    /// Whether the shortcut average-pools before its projection, and the projection.
    shortcut: Option<(bool, FrozenConv)>,
}

impl FrozenBottleneck {
    fn new(block: &Bottleneck) -> Result<Self> {
        let shortcut = match &block.shortcut {
            Some(s) => Some((s.pool, s.projection.folded()?)),
            None => None,
        };
        Ok(FrozenBottleneck {
            reduce: block.reduce.folded()?,
            conv3x3: block.conv3x3.folded()?,
            expand: block.expand.folded()?,
            se: block.se.frozen(),
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv3x3.forward_relu(&self.reduce.forward_relu(x)?)?;
        let y = self.se.forward(&self.expand.forward(&y)?)?;
        match &self.shortcut {
            Some((true, projection)) => add_relu(&projection.forward(&x.avg_pool2d(2)?)?, &y),
            Some((false, projection)) => add_relu(&projection.forward(x)?, &y),
            None => add_relu(x, &y),
        }
    }
}

/// A [`ResNetD`] frozen for inference (see [`Network::inference`]); dropout is the identity.
struct FrozenResNetD {
    stem: Vec<FrozenConv>,
    blocks: Vec<FrozenBottleneck>,
    classifier: Linear,
}

impl Inference for FrozenResNetD {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for conv in &self.stem {
            x = conv.forward_relu(&x)?;
        }
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        linear(&self.classifier, &x.mean((2, 3))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn set(varmap: &VarMap, name: &str, values: &[f32], shape: &[usize]) {
        let t = Tensor::from_slice(values, shape, &Device::Cpu).unwrap();
        varmap.data().lock().unwrap()[name].set(&t).unwrap();
    }

    #[test]
    fn squeeze_excitation_scales_channels_by_the_hand_computed_gate() {
        let varmap = VarMap::new();
        let se = SqueezeExcitation::new(2, 1, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        set(&varmap, "reduce.weight", &[1.0, -1.0], &[1, 2]);
        set(&varmap, "reduce.bias", &[0.0], &[1]);
        set(&varmap, "expand.weight", &[2.0, -1.0], &[2, 1]);
        set(&varmap, "expand.bias", &[0.0, 1.0], &[2]);
        // Channel 0 averages 3 (values 2 and 4), channel 1 averages 1 (values 0 and 2).
        let x = Tensor::new(&[[[[2f32, 4.0]], [[0.0, 2.0]]]], &Device::Cpu).unwrap();
        // hidden = relu(1·3 − 1·1 + 0) = 2; logits = [2·2 + 0, −1·2 + 1] = [4, −1];
        // gate = [σ(4), σ(−1)] = [0.98201379, 0.26894142].
        let (g0, g1) = (0.982_013_8f32, 0.268_941_43f32);
        let y = se.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let expected = [2.0 * g0, 4.0 * g0, 0.0, 2.0 * g1];
        for (a, e) in y.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{y:?} vs {expected:?}");
        }
    }

    #[test]
    fn downsampling_shortcut_averages_2x2_windows_before_its_1x1_convolution() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let shortcut = Shortcut { pool: true, projection: ConvBn::new(1, 1, 1, 1, vb).unwrap() };
        set(&varmap, "conv.weight", &[2.0], &[1, 1, 1, 1]);
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let x = Tensor::from_vec(x, (1, 1, 4, 4), &Device::Cpu).unwrap();
        // Windows of [[0,1,2,3],[4,5,6,7],[8,…]]: means 2.5, 4.5, 10.5, 12.5; ×2 by the conv;
        // evaluation-mode BN with fresh statistics (mean 0, variance 1) divides by √(1 + 1e-5).
        // (A stride-2 1×1 convolution would have read 0, 2, 8, 10 instead.)
        let y = shortcut.forward_t(&x, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = 2.0 / (1.0f32 + 1e-5).sqrt();
        for (a, e) in y.iter().zip([2.5, 4.5, 10.5, 12.5]) {
            assert!((a - e * scale).abs() < 1e-5, "{y:?}");
        }
    }

    #[test]
    fn convolutions_have_no_bias_and_widths_follow_the_config() {
        let varmap = VarMap::new();
        let config = ResNetDConfig { stem_width: 128, se_reduction: 4, ..ResNetDConfig::default().reduced() };
        ResNetD::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), config).unwrap();
        let data = varmap.data().lock().unwrap();
        assert!(!data.keys().any(|k| k.contains(".conv.bias")), "a convolution has a bias");
        let dims = |name: &str| data.get(name).unwrap_or_else(|| panic!("no {name}")).dims().to_vec();
        // Stem 128 / 4 = 32: convolutions 3 → 16 → 16 → 32.
        assert_eq!(dims("stem.conv1.conv.weight"), [16, 3, 3, 3]);
        assert_eq!(dims("stem.conv3.conv.weight"), [32, 16, 3, 3]);
        // Stage 2 (width 128 / 4 = 32, output 128): stride-2 3×3, SE 128 → 128 / 4 = 32 → 128.
        assert_eq!(dims("stage2.block0.conv3x3.conv.weight"), [32, 32, 3, 3]);
        assert_eq!(dims("stage2.block0.se.reduce.weight"), [32, 128]);
        assert_eq!(dims("stage2.block0.shortcut.conv.weight"), [128, 64, 1, 1]);
        assert_eq!(dims("classifier.weight"), [10, 512]);
    }
}
