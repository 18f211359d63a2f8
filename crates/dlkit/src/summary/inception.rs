//! The inception-module calculator: output shape and multiplications of a naive module
//! (1×1, 3×3 and 5×5 convolutions and a 3×3 max-pool side by side, all `'same'`) and of
//! the dimension-reduced one (1×1 convolutions before the 3×3 and 5×5, and after the pool).
//!
//! Both are built as a [`ModelSpec`] and counted by the ordinary shape inference, so the
//! multiplications are the convolutions' multiply-accumulates.

use super::layers::{Conv2d, Layer, ModelSpec, Pool, Sequential, Shape};
use super::ModelSummary;
use crate::Result;

/// What an inception module costs on one input.
#[derive(Debug, Clone, PartialEq)]
pub struct InceptionCost {
    /// Output shape as (height, width, channels), like the input.
    pub output: (usize, usize, usize),
    /// Multiplications for one sample (the convolutions' multiply-accumulates).
    pub multiplies: u64,
    /// The per-layer summary (one row per convolution, pool and the concat).
    pub summary: ModelSummary,
}

/// The module as a model: `input` is (height, width, channels); `reductions` is
/// `Some((3×3 reduce, 5×5 reduce, pool projection))` for the dimension-reduced module.
pub fn inception_spec(
    input: (usize, usize, usize),
    n1x1: usize,
    n3x3: usize,
    n5x5: usize,
    reductions: Option<(usize, usize, usize)>,
) -> ModelSpec {
    let (height, width, channels) = input;
    let reduce = |filters: usize| Sequential::new().add("reduce", Conv2d::new(filters, 1));
    let (branch3, branch5, pool) = match reductions {
        Some((r3, r5, pool_proj)) => (
            reduce(r3),
            reduce(r5),
            Sequential::new()
                .add("max", Layer::MaxPool(Pool::new(3).stride(1).same()))
                .add("proj", Conv2d::new(pool_proj, 1)),
        ),
        None => (
            Sequential::new(),
            Sequential::new(),
            Sequential::new().add("max", Layer::MaxPool(Pool::new(3).stride(1).same())),
        ),
    };
    let name = if reductions.is_some() { "inception (reduced)" } else { "inception (naive)" };
    ModelSpec::new(name, Shape::image(channels, height, width)).add(
        "",
        Layer::concat([
            ("1x1", Sequential::new().add("conv", Conv2d::new(n1x1, 1))),
            ("3x3", branch3.add("conv", Conv2d::new(n3x3, 3))),
            ("5x5", branch5.add("conv", Conv2d::new(n5x5, 5))),
            ("pool", pool),
        ]),
    )
}

/// Output shape and multiplications of an inception module (see [`inception_spec`]).
pub fn inception_cost(
    input: (usize, usize, usize),
    n1x1: usize,
    n3x3: usize,
    n5x5: usize,
    reductions: Option<(usize, usize, usize)>,
) -> Result<InceptionCost> {
    let summary = inception_spec(input, n1x1, n3x3, n5x5, reductions).summary()?;
    let output = match summary.output {
        Shape::Image { channels, height, width } => (height, width, channels),
        Shape::Vector(n) => (1, 1, n),
    };
    Ok(InceptionCost { output, multiplies: summary.total_macs(), summary })
}
