//! The coursework's models as layer specifications (no weights): MLP, the VGG-style
//! CIFAR-10 CNN, ResNet v1 for CIFAR-10, MiniGoogLeNet, the Residual Attention Network
//! (AttentionResNet56-mini and the report's paper variant), ResNet-50-D with
//! squeeze-and-excitation, AlexNet and VGG-19.
//!
//! Classifier heads carry a softmax (it has no parameters and changes no count).

use super::layers::{Activation, Conv2d, Dense, Layer, ModelSpec, Padding, Pool, Sequential, Shape};
use super::ModelSummary;
use crate::models::attention::{AttentionResNetConfig, AttentionVariant, BodyBlock, Shortcut};
use crate::models::resnet_d::{ResNetDConfig, EXPANSION};
use crate::{Error, Result};

/// The names [`by_name`] knows (any `resnetN` with N = 6n + 2 works, not only these two).
pub const MODEL_NAMES: &[&str] = &[
    "mlp",
    "vgg-cnn",
    "minigooglenet",
    "resnet20",
    "resnet44",
    "attention56-mini",
    "attention56-paper",
    "resnet50d-se",
    "alexnet",
    "vgg19",
];

/// A multilayer perceptron: `input` → ReLU dense layers of `hidden` units → `classes`.
///
/// The coursework's CIFAR-10 MLP is `mlp(3072, &[1000, 1000], 10)`.
pub fn mlp(input: usize, hidden: &[usize], classes: usize) -> ModelSpec {
    let mut spec = ModelSpec::new("mlp", Shape::vector(input));
    for (i, &units) in hidden.iter().enumerate() {
        spec = spec.add(format!("dense{}", i + 1), Dense::new(units).relu());
    }
    spec.add("output", Dense::new(classes).softmax())
}

/// The coursework's VGG-style CIFAR-10 CNN (1,186,378 parameters).
///
/// Three blocks of two 3×3 `'same'` ReLU convolutions (64, 128, 256 filters), each followed
/// by a 2×2 max-pool with stride 2 and `'same'` padding (32 → 16 → 8 → 4), then flatten
/// (4·4·256 = 4096), dropout 0.5 and a dense softmax layer of 10 units — the section-05
/// report's layers, in its order.
pub fn vgg_cnn() -> ModelSpec {
    let mut spec = ModelSpec::new("vgg-cnn", Shape::image(3, 32, 32));
    for (block, filters) in [64, 128, 256].into_iter().enumerate() {
        let b = block + 1;
        spec = spec
            .add(format!("block{b}_conv1"), Conv2d::new(filters, 3).relu())
            .add(format!("block{b}_conv2"), Conv2d::new(filters, 3).relu())
            .add(format!("block{b}_pool"), Layer::MaxPool(Pool::new(2).stride(2).same()));
    }
    spec.add("flatten", Layer::Flatten).add("dropout", Layer::Dropout(0.5)).add("output", Dense::new(10).softmax())
}

/// Convolution → batch norm → ReLU (Keras `resnet_layer` and MiniGoogLeNet's `conv_module`).
fn conv_bn_relu(conv: Conv2d) -> Sequential {
    Sequential::new().add("conv", conv).add("bn", Layer::BatchNorm).add("relu", Layer::relu())
}

/// ResNet v1 for CIFAR-10 as in the Keras example `cifar10_resnet.py`; `depth` = 6n + 2.
///
/// Stem: 3×3 conv 16 → BN → ReLU. Three stages of n basic blocks with 16, 32, 64 filters;
/// a block is conv → BN → ReLU → conv → BN, plus the shortcut, then ReLU. The first block of
/// stages 2 and 3 has stride 2 and a 1×1 projection shortcut (with bias, no BN). Then an 8×8
/// average pool, flatten and a dense softmax layer of 10 units.
pub fn resnet_v1(depth: usize) -> Result<ModelSpec> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(Error::Config(format!("ResNet v1 depth must be 6n + 2 with n ≥ 1 (8, 14, 20, ...), got {depth}")));
    }
    let blocks = (depth - 2) / 6;
    let mut spec =
        ModelSpec::new(format!("resnet{depth}"), Shape::image(3, 32, 32)).add("stem", conv_bn_relu(Conv2d::new(16, 3)));
    for (stage, filters) in [16, 32, 64].into_iter().enumerate() {
        let mut stage_layers = Sequential::new();
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let main = Sequential::new()
                .add("conv1", Conv2d::new(filters, 3).stride(stride))
                .add("bn1", Layer::BatchNorm)
                .add("relu1", Layer::relu())
                .add("conv2", Conv2d::new(filters, 3))
                .add("bn2", Layer::BatchNorm);
            let shortcut = if stride > 1 {
                Sequential::new().add("projection", Conv2d::new(filters, 1).stride(stride))
            } else {
                Sequential::new()
            };
            let basic_block = Sequential::new().add("", Layer::residual(main, shortcut)).add("relu", Layer::relu());
            stage_layers = stage_layers.add(format!("block{}", block + 1), basic_block);
        }
        spec = spec.add(format!("stage{}", stage + 1), stage_layers);
    }
    Ok(spec
        .add("avgpool", Layer::AvgPool(Pool::new(8)))
        .add("flatten", Layer::Flatten)
        .add("output", Dense::new(10).softmax()))
}

/// MiniGoogLeNet's convolution module: conv → BN → ReLU.
fn conv_module(filters: usize, kernel: usize, stride: usize, padding: Padding) -> Sequential {
    conv_bn_relu(Conv2d::new(filters, kernel).stride(stride).padding(padding))
}

/// MiniGoogLeNet's inception module: a 1×1 and a 3×3 conv module side by side, concatenated.
fn mini_inception(n1x1: usize, n3x3: usize) -> Layer {
    Layer::concat([("1x1", conv_module(n1x1, 1, 1, Padding::Same)), ("3x3", conv_module(n3x3, 3, 1, Padding::Same))])
}

/// MiniGoogLeNet's downsample module: a 3×3 stride-2 `'valid'` conv module beside a 3×3
/// stride-2 max-pool, concatenated.
fn mini_downsample(filters: usize) -> Layer {
    Layer::concat([
        ("3x3", conv_module(filters, 3, 2, Padding::Valid)),
        ("pool", Sequential::new().add("max", Layer::MaxPool(Pool::new(3).stride(2)))),
    ])
}

/// MiniGoogLeNet on 32×32 images with `channels` channels and 10 classes
/// (Fashion-MNIST padded to 32×32: `minigooglenet(1)`; CIFAR-10: `minigooglenet(3)`).
///
/// Spatial sizes: 32 → (downsample) 15 → (downsample) 7 → (7×7 average pool) 1.
pub fn minigooglenet(channels: usize) -> ModelSpec {
    ModelSpec::new("minigooglenet", Shape::image(channels, 32, 32))
        .add("stem", conv_module(96, 3, 1, Padding::Same))
        .add("inception1", mini_inception(32, 32))
        .add("inception2", mini_inception(32, 48))
        .add("downsample1", mini_downsample(80))
        .add("inception3", mini_inception(112, 48))
        .add("inception4", mini_inception(96, 64))
        .add("inception5", mini_inception(80, 80))
        .add("inception6", mini_inception(48, 96))
        .add("downsample2", mini_downsample(96))
        .add("inception7", mini_inception(176, 160))
        .add("inception8", mini_inception(176, 160))
        .add("avgpool", Layer::AvgPool(Pool::new(7)))
        .add("dropout", Layer::Dropout(0.5))
        .add("flatten", Layer::Flatten)
        .add("output", Dense::new(10).softmax())
}

/// Convolution without bias → batch norm (the PyTorch ResNet layer).
fn conv_bn(filters: usize, kernel: usize, stride: usize) -> Sequential {
    Sequential::new().add("conv", Conv2d::new(filters, kernel).stride(stride).no_bias()).add("bn", Layer::BatchNorm)
}

/// ResNet-D with squeeze-and-excitation for 32×32 images, as [`crate::models::ResNetD`]
/// builds it from `config` (see `models::resnet_d` for the architecture and its CIFAR
/// adaptation); the names match the model's variables.
pub fn resnet_d_se(config: &ResNetDConfig) -> Result<ModelSpec> {
    config.validate()?;
    let stem_out = config.stem_channels();
    let name = format!("resnet-d-se (stem {}, r = {})", config.stem_width, config.se_reduction);
    let mut spec = ModelSpec::new(name, Shape::image(config.input_channels, 32, 32)).add(
        "stem",
        Sequential::new()
            .add("conv1", conv_bn(stem_out / 2, 3, 1))
            .add("relu1", Layer::relu())
            .add("conv2", conv_bn(stem_out / 2, 3, 1))
            .add("relu2", Layer::relu())
            .add("conv3", conv_bn(stem_out, 3, 1))
            .add("relu3", Layer::relu()),
    );
    let mut channels = stem_out;
    for (stage, (&width, &count)) in config.stage_widths().iter().zip(&config.blocks_per_stage).enumerate() {
        let outputs = EXPANSION * width;
        let mut stage_layers = Sequential::new();
        for block in 0..count {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let gate = Sequential::new()
                .add("pool", Layer::GlobalAvgPool)
                .add("reduce", Dense::new(config.se_channels(outputs)).relu())
                .add("expand", Dense::new(outputs).sigmoid());
            let main = Sequential::new()
                .add("reduce", conv_bn(width, 1, 1))
                .add("relu1", Layer::relu())
                .add("conv3x3", conv_bn(width, 3, stride))
                .add("relu2", Layer::relu())
                .add("expand", conv_bn(outputs, 1, 1))
                .add("se", Layer::channel_scale(gate));
            let mut shortcut = Sequential::new();
            if stride != 1 {
                shortcut = shortcut.add("shortcut.pool", Layer::AvgPool(Pool::new(2)));
            }
            if stride != 1 || channels != outputs {
                shortcut = shortcut.add("shortcut", conv_bn(outputs, 1, 1));
            }
            let bottleneck = Sequential::new().add("", Layer::residual(main, shortcut)).add("relu", Layer::relu());
            stage_layers = stage_layers.add(format!("block{block}"), bottleneck);
            channels = outputs;
        }
        spec = spec.add(format!("stage{}", stage + 1), stage_layers);
    }
    Ok(spec
        .add("avgpool", Layer::GlobalAvgPool)
        .add("dropout", Layer::Dropout(config.dropout))
        .add("classifier", Dense::new(config.classes).softmax()))
}

/// ResNet-50-D-SE for CIFAR-10 (10 classes, 32×32×3) with the given stem width (64 or 128)
/// and squeeze-and-excitation reduction r (4 or 16).
pub fn resnet50d_se(stem_width: usize, reduction: usize) -> Result<ModelSpec> {
    let config = ResNetDConfig { stem_width, se_reduction: reduction, ..ResNetDConfig::default() };
    let mut spec = resnet_d_se(&config)?;
    spec.name = format!("resnet50d-se (stem {stem_width}, r = {reduction})");
    Ok(spec)
}

/// The pre-activation bottleneck residual unit from `inputs` channels: BN → ReLU → conv 1×1
/// (`bottleneck`) → BN → ReLU → conv 3×3/`stride` (`bottleneck`) → BN → ReLU → conv 1×1
/// (`out`), plus the input or its 1×1 projection (stride `stride`), as `shortcut` decides.
fn attention_residual_unit(inputs: usize, bottleneck: usize, out: usize, stride: usize, shortcut: Shortcut) -> Layer {
    let main = Sequential::new()
        .add("bn1", Layer::BatchNorm)
        .add("relu1", Layer::relu())
        .add("conv1", Conv2d::new(bottleneck, 1))
        .add("bn2", Layer::BatchNorm)
        .add("relu2", Layer::relu())
        .add("conv2", Conv2d::new(bottleneck, 3).stride(stride))
        .add("bn3", Layer::BatchNorm)
        .add("relu3", Layer::relu())
        .add("conv3", Conv2d::new(out, 1));
    let projection = if shortcut.projects(inputs, out, stride) {
        Sequential::new().add("projection", Conv2d::new(out, 1).stride(stride))
    } else {
        Sequential::new()
    };
    Layer::residual(main, projection)
}

/// One level of the soft-mask branch on `channels` channels, `depth` max-pools deep: max-pool
/// 2 ('same') → unit → [next level] → unit → up-sample ×2; below the outermost level, plus a
/// skip connection (a unit) from the level's input.
fn attention_mask_level(channels: usize, depth: usize, outermost: bool, shortcut: Shortcut) -> Layer {
    let unit = || attention_residual_unit(channels, channels / 4, channels, 1, shortcut);
    let mut main = Sequential::new().add("pool", Layer::MaxPool(Pool::new(2).same())).add("down", unit());
    if depth > 1 {
        main = main.add("inner", attention_mask_level(channels, depth - 1, false, shortcut));
    }
    main = main.add("up", unit()).add("upsample", Layer::UpSample(2));
    if outermost {
        Layer::Sequential(main)
    } else {
        Layer::residual(main, Sequential::new().add("skip", unit()))
    }
}

/// The attention module on `channels` channels with the report's `skip` (mask max-pools):
/// a unit; then a trunk of two units beside the soft mask (levels, conv 1×1, conv 1×1,
/// sigmoid), combined as (1 + mask) · trunk; then a unit.
fn attention_module(channels: usize, skip: usize, shortcut: Shortcut) -> Sequential {
    let unit = || attention_residual_unit(channels, channels / 4, channels, 1, shortcut);
    let trunk = Sequential::new().add("trunk1", unit()).add("trunk2", unit());
    let mask = Sequential::new().add(
        "mask",
        Sequential::new()
            .add("", attention_mask_level(channels, skip, true, shortcut))
            .add("conv1", Conv2d::new(channels, 1))
            .add("conv2", Conv2d::new(channels, 1))
            .add("sigmoid", Layer::Activation(Activation::Sigmoid)),
    );
    Sequential::new().add("pre", unit()).add("", Layer::attention(trunk, mask)).add("post", unit())
}

/// The Residual Attention Network of the section-06 report for a configuration (variant,
/// regularisation, width): see [`crate::models::attention`] for the layers and the choices made.
///
/// Rows are named like the model's variables (`block1.mask.inner.down.conv2`).
pub fn attention56(config: &AttentionResNetConfig) -> Result<ModelSpec> {
    config.check()?;
    let mut name = match config.variant {
        AttentionVariant::Mini => "attention56-mini".to_string(),
        AttentionVariant::Paper => "attention56-paper".to_string(),
    };
    if config.bn_relu_before_pool || config.dropout > 0.0 || config.l2 > 0.0 {
        name += "-regularised";
    }
    if config.width_divisor > 1 {
        name += &format!(" (channels ÷{})", config.width_divisor);
    }
    let stem_channels = config.width(AttentionResNetConfig::STEM_CHANNELS);
    let mut stem = Sequential::new().add("conv", Conv2d::new(stem_channels, 5));
    if config.stem_batch_norm() {
        stem = stem.add("bn", Layer::BatchNorm).add("relu", Layer::relu());
    }
    let mut spec = ModelSpec::new(name, Shape::image(config.input_channels, 32, 32))
        .add("stem", stem)
        .add("pool", Layer::MaxPool(Pool::new(2)));
    let mut channels = stem_channels;
    for (i, block) in config.body().into_iter().enumerate() {
        let layer: Layer = match block {
            BodyBlock::Residual { bottleneck, out, stride } => {
                let (bottleneck, out) = (config.width(bottleneck), config.width(out));
                let unit = attention_residual_unit(channels, bottleneck, out, stride, config.shortcut);
                channels = out;
                unit
            }
            BodyBlock::Attention { skip } => attention_module(channels, skip, config.shortcut).into(),
        };
        spec = spec.add(format!("block{i}"), layer);
    }
    if config.bn_relu_before_pool {
        spec = spec.add("head", Sequential::new().add("bn", Layer::BatchNorm).add("relu", Layer::relu()));
    }
    spec = spec.add("avgpool", Layer::AvgPool(Pool::new(4).stride(1))).add("flatten", Layer::Flatten);
    if config.dropout > 0.0 {
        spec = spec.add("dropout", Layer::Dropout(config.dropout as f64));
    }
    Ok(spec.add("classifier", Dense::new(config.classes).softmax()))
}

/// AttentionResNet56-mini on CIFAR-10 (not regularised, full width).
pub fn attention56_mini() -> Result<ModelSpec> {
    attention56(&AttentionResNetConfig::mini())
}

/// The report's paper variant of the Residual Attention Network on CIFAR-10 (not regularised,
/// full width).
pub fn attention56_paper() -> Result<ModelSpec> {
    attention56(&AttentionResNetConfig::paper())
}

/// AlexNet in its original two-GPU layout (60,965,224 parameters).
///
/// conv2, conv4 and conv5 only see the half of their input on their own GPU, which is a
/// convolution in 2 groups. The input is 224×224×3 with 2 pixels of padding in conv1, so the
/// sizes are the classic 55 → 27 → 13 → 13 → 13 → 6 (the same as a 227×227 input without
/// padding); pools are 3×3 stride 2 (overlapping). Local response normalisation has no
/// parameters and is left out; dropout follows fc6 and fc7.
pub fn alexnet() -> ModelSpec {
    let pool = || Layer::MaxPool(Pool::new(3).stride(2));
    ModelSpec::new("alexnet", Shape::image(3, 224, 224))
        .add("conv1", Conv2d::new(96, 11).stride(4).padding(Padding::Explicit(2)).relu())
        .add("pool1", pool())
        .add("conv2", Conv2d::new(256, 5).groups(2).relu())
        .add("pool2", pool())
        .add("conv3", Conv2d::new(384, 3).relu())
        .add("conv4", Conv2d::new(384, 3).groups(2).relu())
        .add("conv5", Conv2d::new(256, 3).groups(2).relu())
        .add("pool5", pool())
        .add("flatten", Layer::Flatten)
        .add("fc6", Dense::new(4096).relu())
        .add("dropout6", Layer::Dropout(0.5))
        .add("fc7", Dense::new(4096).relu())
        .add("dropout7", Layer::Dropout(0.5))
        .add("fc8", Dense::new(1000).softmax())
}

/// VGG-19 on 224×224×3 (Keras `VGG19` names): 16 3×3 `'same'` ReLU convolutions in five
/// blocks (64, 128, 256, 512, 512 filters; 2, 2, 4, 4, 4 convolutions), each block ending in
/// a 2×2 max-pool, then fc1 4096, fc2 4096 and a 1000-way softmax.
pub fn vgg19() -> ModelSpec {
    vgg19_spec(true)
}

/// VGG-19 with no bias in any layer: its weights alone (143,652,544 of the 143,667,240
/// parameters; the other 14,696 are the biases).
pub fn vgg19_without_biases() -> ModelSpec {
    vgg19_spec(false)
}

fn vgg19_spec(bias: bool) -> ModelSpec {
    let conv = |filters| if bias { Conv2d::new(filters, 3).relu() } else { Conv2d::new(filters, 3).relu().no_bias() };
    let dense = |units| if bias { Dense::new(units) } else { Dense::new(units).no_bias() };
    let mut spec = ModelSpec::new(if bias { "vgg19" } else { "vgg19 (no biases)" }, Shape::image(3, 224, 224));
    for (block, (filters, convs)) in [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)].into_iter().enumerate() {
        let b = block + 1;
        for c in 1..=convs {
            spec = spec.add(format!("block{b}_conv{c}"), conv(filters));
        }
        spec = spec.add(format!("block{b}_pool"), Layer::MaxPool(Pool::new(2)));
    }
    spec.add("flatten", Layer::Flatten)
        .add("fc1", dense(4096).relu())
        .add("fc2", dense(4096).relu())
        .add("predictions", dense(1000).softmax())
}

/// The summary of a coursework model by name: `mlp`, `vgg-cnn`, `minigooglenet`
/// (Fashion-MNIST, 32×32×1), `resnetN` (N = 6n + 2, e.g. `resnet20`), `resnet50d-se`
/// (stem 64, r = 16; [`resnet50d_se`] for the others), `alexnet`, `vgg19`.
/// (Fashion-MNIST, 32×32×1), `resnetN` (N = 6n + 2, e.g. `resnet20`), `attention56-mini`,
/// `attention56-paper`, `alexnet`, `vgg19`.
pub fn by_name(name: &str) -> Result<ModelSummary> {
    let key = name.trim().to_ascii_lowercase();
    let spec = match key.as_str() {
        "mlp" => mlp(3072, &[1000, 1000], 10),
        "vgg-cnn" => vgg_cnn(),
        "minigooglenet" => minigooglenet(1),
        "attention56-mini" => attention56_mini()?,
        "attention56-paper" => attention56_paper()?,
        "alexnet" => alexnet(),
        "vgg19" => vgg19(),
        "resnet50d-se" => resnet50d_se(64, 16)?,
        _ => match key.strip_prefix("resnet").and_then(|d| d.parse::<usize>().ok()) {
            Some(depth) => resnet_v1(depth)?,
            None => {
                return Err(Error::Config(format!(
                    "unknown model '{name}'; valid names: {} (any resnetN with N = 6n + 2)",
                    MODEL_NAMES.join(", ")
                )))
            }
        },
    };
    spec.summary()
}
