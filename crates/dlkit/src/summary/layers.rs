//! Layer specifications: what each layer is (kernel, stride, filters, ...), not its weights.
//!
//! A model is a [`ModelSpec`]: an input [`Shape`] and a [`Sequential`] list of named layers.
//! Branches are written with two combinators:
//! - [`Layer::Concat`]: several branches read the same input and their outputs are stacked
//!   along the channels (an inception module);
//! - [`Layer::Residual`]: a main path and a shortcut (empty = identity) whose outputs are
//!   added (a ResNet block);
//! - [`Layer::ChannelScale`]: a gate computes one weight per channel from the input, and the
//!   input's channels are multiplied by them (squeeze-and-excitation);
//! - [`Layer::Attention`]: a trunk and a soft mask whose outputs combine as `(1 + mask) · trunk`
//!   (the Residual Attention Network's attention module).
//!
//! Defaults follow Keras, except one: a [`Conv2d`] is `'same'`-padded unless told otherwise
//! (Keras defaults to `'valid'`), because almost every coursework convolution is `'same'`.

use std::fmt;

/// The shape of one sample's tensor: an image `[C, H, W]` or a vector of units `[N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Shape {
    /// A feature map: channels, height, width.
    Image {
        /// Number of channels (feature maps).
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// A flat vector of units (after `Flatten` or a `Dense` layer).
    Vector(usize),
}

impl Shape {
    /// An image shape `[channels, height, width]`.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        Shape::Image { channels, height, width }
    }

    /// A vector shape `[units]`.
    pub fn vector(units: usize) -> Self {
        Shape::Vector(units)
    }

    /// Number of values in one sample of this shape.
    pub fn elements(&self) -> u64 {
        match *self {
            Shape::Image { channels, height, width } => product(&[channels, height, width]),
            Shape::Vector(n) => n as u64,
        }
    }

    /// Channels of an image, units of a vector (the axis that `Concat` stacks).
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Image { channels, .. } => channels,
            Shape::Vector(n) => n,
        }
    }

    /// The sizes as a list: `[C, H, W]` or `[N]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Image { channels, height, width } => vec![channels, height, width],
            Shape::Vector(n) => vec![n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Image { channels, height, width } => write!(f, "[{channels}, {height}, {width}]"),
            Shape::Vector(n) => write!(f, "[{n}]"),
        }
    }
}

/// Product of sizes as `u64` (saturating, so absurd sizes cannot overflow).
pub(crate) fn product(sizes: &[usize]) -> u64 {
    sizes.iter().fold(1u64, |acc, &x| acc.saturating_mul(x as u64))
}

/// How a convolution or pooling window treats the border (Keras rules for the output size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Keras `'same'`: output = ceil(input / stride).
    Same,
    /// Keras `'valid'` (no padding): output = floor((input − kernel) / stride) + 1.
    Valid,
    /// `p` zeros on every side: output = floor((input + 2p − kernel) / stride) + 1.
    Explicit(usize),
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Padding::Same => write!(f, "same"),
            Padding::Valid => write!(f, "valid"),
            Padding::Explicit(p) => write!(f, "pad {p}"),
        }
    }
}

/// An element-wise non-linearity, either as its own layer or fused into `Conv2d`/`Dense`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// Normalised exponentials (the classifier's output).
    Softmax,
    /// 1 / (1 + e^−x), element-wise (a gate or an attention mask in (0, 1)).
    Sigmoid,
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Relu => write!(f, "ReLU"),
            Activation::Softmax => write!(f, "Softmax"),
            Activation::Sigmoid => write!(f, "Sigmoid"),
        }
    }
}

/// A 2-D convolution with a square kernel (Keras `Conv2D`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv2d {
    /// Number of output channels.
    pub filters: usize,
    /// Kernel side (3 means 3×3).
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Border rule.
    pub padding: Padding,
    /// Channel groups (AlexNet's two GPUs: 2); input and output channels split evenly.
    pub groups: usize,
    /// Whether each filter has a bias.
    pub bias: bool,
    /// Non-linearity applied to the output, if any (Keras `activation=`).
    pub activation: Option<Activation>,
}

impl Conv2d {
    /// `filters` kernels of `kernel`×`kernel`, stride 1, `'same'` padding, one group, with bias.
    pub fn new(filters: usize, kernel: usize) -> Self {
        Conv2d { filters, kernel, stride: 1, padding: Padding::Same, groups: 1, bias: true, activation: None }
    }

    /// Set the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Set the padding rule.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Use Keras `'valid'` padding (no padding).
    pub fn valid(self) -> Self {
        self.padding(Padding::Valid)
    }

    /// Split the channels into `groups` independent convolutions.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Drop the bias (as before a batch norm, or when counting weights alone).
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }

    /// Apply a ReLU to the output (Keras `activation='relu'`).
    pub fn relu(mut self) -> Self {
        self.activation = Some(Activation::Relu);
        self
    }
}

/// A fully connected layer on a vector (Keras `Dense`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dense {
    /// Number of output units.
    pub units: usize,
    /// Whether each unit has a bias.
    pub bias: bool,
    /// Non-linearity applied to the output, if any.
    pub activation: Option<Activation>,
}

impl Dense {
    /// `units` outputs with bias and no activation.
    pub fn new(units: usize) -> Self {
        Dense { units, bias: true, activation: None }
    }

    /// Drop the bias.
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }

    /// Apply a ReLU to the output.
    pub fn relu(mut self) -> Self {
        self.activation = Some(Activation::Relu);
        self
    }

    /// Apply a softmax to the output.
    pub fn softmax(mut self) -> Self {
        self.activation = Some(Activation::Softmax);
        self
    }

    /// Apply a sigmoid to the output.
    pub fn sigmoid(mut self) -> Self {
        self.activation = Some(Activation::Sigmoid);
        self
    }
}

/// A max or average pooling window (Keras `MaxPooling2D` / `AveragePooling2D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Window side.
    pub size: usize,
    /// Step between windows.
    pub stride: usize,
    /// Border rule.
    pub padding: Padding,
}

impl Pool {
    /// A `size`×`size` window with stride `size` and `'valid'` padding (the Keras defaults).
    pub fn new(size: usize) -> Self {
        Pool { size, stride: size, padding: Padding::Valid }
    }

    /// Set the stride (overlapping pools: stride < size).
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Set the padding rule.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Use Keras `'same'` padding.
    pub fn same(self) -> Self {
        self.padding(Padding::Same)
    }
}

/// One layer of a model, or a combinator of several.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A convolution.
    Conv2d(Conv2d),
    /// A fully connected layer.
    Dense(Dense),
    /// Batch normalisation: γ, β trained; moving mean and variance not trained.
    BatchNorm,
    /// Max pooling.
    MaxPool(Pool),
    /// Average pooling.
    AvgPool(Pool),
    /// Average over the whole feature map: `[C, H, W]` → `[C]`.
    GlobalAvgPool,
    /// `[C, H, W]` → `[C·H·W]` (a reshape: no new values are stored).
    Flatten,
    /// Nearest-neighbour up-sampling by this factor: `[C, H, W]` → `[C, f·H, f·W]`.
    UpSample(usize),
    /// Dropout with this drop probability.
    Dropout(f64),
    /// An element-wise non-linearity as its own layer.
    Activation(Activation),
    /// Layers one after another (a named block).
    Sequential(Sequential),
    /// Branches on the same input, outputs stacked along the channels (inception).
    Concat(Vec<(String, Sequential)>),
    /// `main(x) + shortcut(x)`; an empty shortcut is the identity (ResNet).
    Residual {
        /// The main path.
        main: Sequential,
        /// The shortcut (empty: identity; else e.g. a 1×1 projection).
        shortcut: Sequential,
    },
    /// `x · gate(x)` per channel: the gate maps the input to one weight per channel
    /// (`[C, H, W]` → `[C]`), e.g. squeeze-and-excitation's pool → dense → dense.
    ChannelScale(Sequential),
    /// `(1 + mask(x)) · trunk(x)`, element-wise (Residual Attention Network's attention module);
    /// the mask must end in a sigmoid for the usual meaning, and match the trunk's shape.
    Attention {
        /// The trunk branch.
        trunk: Sequential,
        /// The soft-mask branch.
        mask: Sequential,
    },
}

impl Layer {
    /// A ReLU layer.
    pub fn relu() -> Self {
        Layer::Activation(Activation::Relu)
    }

    /// Inception-style branches: each named branch sees the input; outputs are concatenated.
    pub fn concat<S: Into<String>>(branches: impl IntoIterator<Item = (S, Sequential)>) -> Self {
        Layer::Concat(branches.into_iter().map(|(n, b)| (n.into(), b)).collect())
    }

    /// A residual block: `main(x) + shortcut(x)` (pass an empty `Sequential` for identity).
    pub fn residual(main: Sequential, shortcut: Sequential) -> Self {
        Layer::Residual { main, shortcut }
    }

    /// Channels multiplied by weights the `gate` computes from the same input.
    pub fn channel_scale(gate: Sequential) -> Self {
        Layer::ChannelScale(gate)
    }

    /// Attention residual learning: `(1 + mask(x)) · trunk(x)`.
    pub fn attention(trunk: Sequential, mask: Sequential) -> Self {
        Layer::Attention { trunk, mask }
    }
}

impl From<Conv2d> for Layer {
    fn from(c: Conv2d) -> Self {
        Layer::Conv2d(c)
    }
}

impl From<Dense> for Layer {
    fn from(d: Dense) -> Self {
        Layer::Dense(d)
    }
}

impl From<Sequential> for Layer {
    fn from(s: Sequential) -> Self {
        Layer::Sequential(s)
    }
}

/// Named layers applied one after another.
///
/// Rows in a summary are named by their path: a layer `conv1` inside a block `block2`
/// inside `stage3` is `stage3.block2.conv1`; an empty name adds nothing to the path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sequential {
    /// The layers with their names, in order.
    pub layers: Vec<(String, Layer)>,
}

impl Sequential {
    /// An empty sequence (as a residual shortcut: the identity).
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Append a named layer.
    pub fn add(mut self, name: impl Into<String>, layer: impl Into<Layer>) -> Self {
        self.layers.push((name.into(), layer.into()));
        self
    }

    /// Whether there are no layers (an identity).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

/// A whole model: a name, the shape of one input sample and its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The model's name (shown as the table title).
    pub name: String,
    /// Shape of one input sample.
    pub input: Shape,
    /// The layers.
    pub body: Sequential,
}

impl ModelSpec {
    /// An empty model taking samples of shape `input`.
    pub fn new(name: impl Into<String>, input: Shape) -> Self {
        ModelSpec { name: name.into(), input, body: Sequential::new() }
    }

    /// Append a named layer.
    pub fn add(mut self, name: impl Into<String>, layer: impl Into<Layer>) -> Self {
        self.body = self.body.add(name, layer);
        self
    }

    /// Shape inference over the layers: the per-layer counts, without allocating weights.
    pub fn summary(&self) -> crate::Result<super::ModelSummary> {
        super::infer::summarize(self)
    }
}
