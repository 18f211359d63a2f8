//! Shape inference: walk a [`ModelSpec`] and count, for each layer, its output shape,
//! parameters, activations and multiply-accumulates (MACs).
//!
//! Conventions (Keras's, where Keras has one):
//! - a convolution has `k·k·(C_in/groups)·filters` weights plus `filters` biases;
//!   its MACs are `H_out·W_out·filters·k·k·(C_in/groups)`;
//! - a dense layer has `in·units` weights plus `units` biases, and `in·units` MACs;
//! - batch norm keeps 4 numbers per channel: γ, β (trained) and the moving mean and
//!   variance (not trained);
//! - only convolutions and dense layers count MACs (bias adds, batch norm, pooling and
//!   activations are a few operations per value, ignored as in the usual FLOP counts);
//! - activations are the values a layer writes for one sample: its output size, except for
//!   `Flatten`, which only reshapes its input and writes nothing new.

use super::layers::{product, Activation, Conv2d, Dense, Layer, ModelSpec, Padding, Pool, Sequential, Shape};
use super::{ModelSummary, Row};
use crate::{Error, Result};

/// Run shape inference over a whole model; the first row is the input.
pub(crate) fn summarize(spec: &ModelSpec) -> Result<ModelSummary> {
    if spec.input.dims().contains(&0) {
        return Err(Error::Config(format!("model '{}': input shape {} has a zero size", spec.name, spec.input)));
    }
    let mut rows = vec![Row {
        name: "input".into(),
        kind: "Input".into(),
        output: spec.input,
        trainable: 0,
        non_trainable: 0,
        activations: spec.input.elements(),
        macs: 0,
    }];
    let output = sequential(&spec.body, spec.input, "", &mut rows)?;
    Ok(ModelSummary { name: spec.name.clone(), input: spec.input, output, rows })
}

/// `prefix.name`, or whichever of the two is not empty.
fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

/// Rows for the layers of a sequence; returns the output shape.
fn sequential(seq: &Sequential, input: Shape, prefix: &str, rows: &mut Vec<Row>) -> Result<Shape> {
    let mut shape = input;
    for (name, layer) in &seq.layers {
        shape = layer_rows(&join(prefix, name), layer, shape, rows)?;
    }
    Ok(shape)
}

/// Rows for one layer (several for a combinator); returns the output shape.
fn layer_rows(path: &str, layer: &Layer, input: Shape, rows: &mut Vec<Row>) -> Result<Shape> {
    let merge_row = |name: &str, kind: &str, output: Shape| Row {
        name: join(path, name),
        kind: kind.into(),
        output,
        trainable: 0,
        non_trainable: 0,
        activations: output.elements(),
        macs: 0,
    };
    match layer {
        Layer::Sequential(seq) => sequential(seq, input, path, rows),
        Layer::Concat(branches) => {
            let mut outputs = Vec::with_capacity(branches.len());
            for (name, branch) in branches {
                outputs.push(sequential(branch, input, &join(path, name), rows)?);
            }
            let output = concat_shape(&outputs).map_err(|m| layer_error(path, "Concat", &m))?;
            rows.push(merge_row("concat", "Concat", output));
            Ok(output)
        }
        Layer::Residual { main, shortcut } => {
            let a = sequential(main, input, path, rows)?;
            let b = sequential(shortcut, input, path, rows)?;
            if a != b {
                let m = format!("main path gives {a} but shortcut gives {b}; they must match to be added");
                return Err(layer_error(path, "Add", &m));
            }
            rows.push(merge_row("add", "Add", a));
            Ok(a)
        }
        Layer::ChannelScale(gate) => {
            let weights = sequential(gate, input, path, rows)?;
            if weights != Shape::Vector(input.channels()) || !matches!(input, Shape::Image { .. }) {
                let m = format!("the gate gives {weights} for an input {input}; it must give one weight per channel");
                return Err(layer_error(path, "Scale", &m));
            }
            rows.push(merge_row("scale", "Scale", input));
            Ok(input)
        }
        Layer::Attention { trunk, mask } => {
            let t = sequential(trunk, input, path, rows)?;
            let m = sequential(mask, input, path, rows)?;
            if t != m {
                let m = format!("trunk gives {t} but mask gives {m}; they must match to be multiplied");
                return Err(layer_error(path, "Attention", &m));
            }
            rows.push(merge_row("attention", "(1 + mask) · trunk", t));
            Ok(t)
        }
        leaf => {
            let row = leaf_row(path, leaf, input)?;
            let output = row.output;
            rows.push(row);
            Ok(output)
        }
    }
}

fn layer_error(path: &str, kind: &str, message: &str) -> Error {
    Error::Config(format!("layer '{path}' ({kind}): {message}"))
}

/// The row of a single (non-combinator) layer.
fn leaf_row(path: &str, layer: &Layer, input: Shape) -> Result<Row> {
    let kind = describe(layer);
    let counts = leaf_counts(layer, input).map_err(|m| layer_error(path, &kind, &m))?;
    let activations = if matches!(layer, Layer::Flatten) { 0 } else { counts.output.elements() };
    Ok(Row {
        name: path.to_string(),
        kind,
        output: counts.output,
        trainable: counts.trainable,
        non_trainable: counts.non_trainable,
        activations,
        macs: counts.macs,
    })
}

/// What a single layer computes.
struct Counts {
    output: Shape,
    trainable: u64,
    non_trainable: u64,
    macs: u64,
}

impl Counts {
    fn free(output: Shape) -> Self {
        Counts { output, trainable: 0, non_trainable: 0, macs: 0 }
    }
}

fn leaf_counts(layer: &Layer, input: Shape) -> std::result::Result<Counts, String> {
    match layer {
        Layer::Conv2d(conv) => conv_counts(conv, input),
        Layer::Dense(dense) => dense_counts(dense, input),
        Layer::BatchNorm => {
            let c = input.channels() as u64;
            Ok(Counts { output: input, trainable: 2 * c, non_trainable: 2 * c, macs: 0 })
        }
        Layer::MaxPool(pool) | Layer::AvgPool(pool) => pool_output(pool, input).map(Counts::free),
        Layer::GlobalAvgPool => match input {
            Shape::Image { channels, .. } => Ok(Counts::free(Shape::Vector(channels))),
            Shape::Vector(_) => Err(format!("needs an image input [C, H, W], got {input}")),
        },
        Layer::Flatten => Ok(Counts::free(Shape::Vector(input.elements() as usize))),
        Layer::UpSample(factor) => match input {
            _ if *factor == 0 => Err("up-sampling factor must be at least 1".to_string()),
            Shape::Image { channels, height, width } => {
                Ok(Counts::free(Shape::image(channels, height * factor, width * factor)))
            }
            Shape::Vector(_) => Err(format!("needs an image input [C, H, W], got {input}")),
        },
        Layer::Dropout(p) if !(0.0..1.0).contains(p) => Err(format!("drop probability {p} is not in [0, 1)")),
        Layer::Dropout(_) | Layer::Activation(_) => Ok(Counts::free(input)),
        Layer::Sequential(_) | Layer::Concat(_) | Layer::Residual { .. } | Layer::ChannelScale(_) | Layer::Attention { .. } => {
            Err("a combinator is not a single layer".to_string())
        }
    }
}

fn conv_counts(conv: &Conv2d, input: Shape) -> std::result::Result<Counts, String> {
    let Shape::Image { channels, height, width } = input else {
        return Err(format!("needs an image input [C, H, W], got {input}"));
    };
    if conv.filters == 0 || conv.kernel == 0 || conv.stride == 0 || conv.groups == 0 {
        return Err("filters, kernel, stride and groups must all be at least 1".to_string());
    }
    if !channels.is_multiple_of(conv.groups) || !conv.filters.is_multiple_of(conv.groups) {
        return Err(format!(
            "{} groups must divide both the {channels} input channels and the {} filters",
            conv.groups, conv.filters
        ));
    }
    let out_h = output_size(height, conv.kernel, conv.stride, conv.padding)?;
    let out_w = output_size(width, conv.kernel, conv.stride, conv.padding)?;
    let fan_in = product(&[conv.kernel, conv.kernel, channels / conv.groups]);
    let weights = fan_in.saturating_mul(conv.filters as u64);
    let biases = if conv.bias { conv.filters as u64 } else { 0 };
    Ok(Counts {
        output: Shape::image(conv.filters, out_h, out_w),
        trainable: weights + biases,
        non_trainable: 0,
        macs: product(&[out_h, out_w, conv.filters]).saturating_mul(fan_in),
    })
}

fn dense_counts(dense: &Dense, input: Shape) -> std::result::Result<Counts, String> {
    let Shape::Vector(inputs) = input else {
        return Err(format!("needs a vector input, got {input}: add a Flatten (or GlobalAvgPool) first"));
    };
    if dense.units == 0 {
        return Err("units must be at least 1".to_string());
    }
    let weights = product(&[inputs, dense.units]);
    let biases = if dense.bias { dense.units as u64 } else { 0 };
    Ok(Counts { output: Shape::Vector(dense.units), trainable: weights + biases, non_trainable: 0, macs: weights })
}

fn pool_output(pool: &Pool, input: Shape) -> std::result::Result<Shape, String> {
    let Shape::Image { channels, height, width } = input else {
        return Err(format!("needs an image input [C, H, W], got {input}"));
    };
    if pool.size == 0 || pool.stride == 0 {
        return Err("window size and stride must be at least 1".to_string());
    }
    let out_h = output_size(height, pool.size, pool.stride, pool.padding)?;
    let out_w = output_size(width, pool.size, pool.stride, pool.padding)?;
    Ok(Shape::image(channels, out_h, out_w))
}

/// Output side of a window of `kernel` moved by `stride` over `input` values (Keras rules).
pub(crate) fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> std::result::Result<usize, String> {
    if stride == 0 {
        return Err("stride must be at least 1".to_string());
    }
    let padded = match padding {
        Padding::Same => return Ok(input.div_ceil(stride)),
        Padding::Valid => input,
        Padding::Explicit(p) => input.saturating_add(p.saturating_mul(2)),
    };
    if kernel > padded {
        return Err(format!("a {kernel}×{kernel} window does not fit in {input} values with {padding} padding"));
    }
    Ok((padded - kernel) / stride + 1)
}

/// Shape of branch outputs stacked along the channels (images must agree on H and W).
fn concat_shape(outputs: &[Shape]) -> std::result::Result<Shape, String> {
    let Some(first) = outputs.first() else {
        return Err("needs at least one branch".to_string());
    };
    let mut total = 0usize;
    for out in outputs {
        match (first, out) {
            (Shape::Image { height: h0, width: w0, .. }, Shape::Image { height, width, .. })
                if h0 == height && w0 == width => {}
            (Shape::Vector(_), Shape::Vector(_)) => {}
            _ => {
                let all: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
                return Err(format!("branch outputs {} cannot be stacked along the channels", all.join(", ")));
            }
        }
        total = total.saturating_add(out.channels());
    }
    Ok(match *first {
        Shape::Image { height, width, .. } => Shape::image(total, height, width),
        Shape::Vector(_) => Shape::Vector(total),
    })
}

/// The "type" column: e.g. `Conv2d 3×3/1 same + ReLU`, `MaxPool 2×2/2`.
fn describe(layer: &Layer) -> String {
    let with_activation = |s: String, a: Option<Activation>| match a {
        Some(a) => format!("{s} + {a}"),
        None => s,
    };
    match layer {
        Layer::Conv2d(c) => {
            let mut s = format!("Conv2d {k}×{k}/{} {}", c.stride, c.padding, k = c.kernel);
            if c.groups > 1 {
                s += &format!(", {} groups", c.groups);
            }
            if !c.bias {
                s += ", no bias";
            }
            with_activation(s, c.activation)
        }
        Layer::Dense(d) => with_activation(if d.bias { "Dense".into() } else { "Dense, no bias".into() }, d.activation),
        Layer::BatchNorm => "BatchNorm".into(),
        Layer::MaxPool(p) => describe_pool("MaxPool", p),
        Layer::AvgPool(p) => describe_pool("AvgPool", p),
        Layer::GlobalAvgPool => "GlobalAvgPool".into(),
        Layer::Flatten => "Flatten".into(),
        Layer::UpSample(f) => format!("UpSample ×{f} nearest"),
        Layer::Dropout(p) => format!("Dropout {p}"),
        Layer::Activation(a) => a.to_string(),
        Layer::Sequential(_) => "Sequential".into(),
        Layer::Concat(_) => "Concat".into(),
        Layer::Residual { .. } => "Residual".into(),
        Layer::ChannelScale(_) => "ChannelScale".into(),
        Layer::Attention { .. } => "Attention".into(),
    }
}

fn describe_pool(name: &str, p: &Pool) -> String {
    let s = format!("{name} {k}×{k}/{}", p.stride, k = p.size);
    if p.padding == Padding::Valid {
        s
    } else {
        format!("{s} {}", p.padding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_output_sizes() {
        // 'same': ceil(32 / 2) = 16; 'valid': (32 - 3) / 2 + 1 = 15; AlexNet conv1: (224 + 4 - 11) / 4 + 1 = 55.
        assert_eq!(output_size(32, 3, 2, Padding::Same), Ok(16));
        assert_eq!(output_size(33, 3, 2, Padding::Same), Ok(17));
        assert_eq!(output_size(32, 3, 2, Padding::Valid), Ok(15));
        assert_eq!(output_size(224, 11, 4, Padding::Explicit(2)), Ok(55));
        assert!(output_size(2, 3, 1, Padding::Valid).is_err());
    }

    #[test]
    fn upsampling_and_attention_merge() {
        use crate::summary::layers::{Activation, Conv2d, Pool};
        let mask = Sequential::new()
            .add("pool", Layer::MaxPool(Pool::new(2)))
            .add("up", Layer::UpSample(2))
            .add("conv", Conv2d::new(4, 1))
            .add("sigmoid", Layer::Activation(Activation::Sigmoid));
        let trunk = Sequential::new().add("conv", Conv2d::new(4, 3));
        let spec = ModelSpec::new("gate", Shape::image(4, 6, 6)).add("att", Layer::attention(trunk, mask));
        let s = spec.summary().unwrap();
        // 6×6 → pool 3×3 → up-sample 6×6; both branches [4, 6, 6], merged in one row.
        assert_eq!(s.row("att.up").unwrap().output, Shape::image(4, 6, 6));
        assert_eq!(s.row("att.sigmoid").unwrap().kind, "Sigmoid");
        let merge = s.row("att.attention").unwrap();
        assert_eq!((merge.output, merge.trainable, merge.activations), (Shape::image(4, 6, 6), 0, 4 * 36));
        // Trunk conv 3×3 4→4: 148; mask conv 1×1 4→4: 20.
        assert_eq!(s.total_params(), 4 * 9 * 4 + 4 + 4 * 4 + 4);
        // Branches that disagree, a zero factor or a vector input are errors naming the layer.
        let bad = ModelSpec::new("bad", Shape::image(4, 6, 6)).add(
            "att",
            Layer::attention(Sequential::new(), Sequential::new().add("up", Layer::UpSample(2))),
        );
        let err = bad.summary().unwrap_err().to_string();
        assert!(err.contains("'att'") && err.contains("[4, 6, 6]") && err.contains("[4, 12, 12]"), "{err}");
        assert!(ModelSpec::new("z", Shape::image(1, 2, 2)).add("up", Layer::UpSample(0)).summary().is_err());
        assert!(ModelSpec::new("v", Shape::vector(3)).add("up", Layer::UpSample(2)).summary().is_err());
    }

    #[test]
    fn row_paths_join_non_empty_names() {
        assert_eq!(join("", "conv"), "conv");
        assert_eq!(join("stage2", ""), "stage2");
        assert_eq!(join("stage2", "block1"), "stage2.block1");
    }
}
