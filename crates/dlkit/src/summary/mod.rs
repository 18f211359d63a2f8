//! Model summaries: parameters, activations and multiply-accumulates per layer, computed
//! from layer specifications by shape inference, without allocating any weights (like
//! Keras's `model.summary()`).
//!
//! ```
//! use dlkit::summary::{self, Conv2d, Dense, Layer, ModelSpec, Pool, Shape};
//! let spec = ModelSpec::new("tiny", Shape::image(3, 32, 32))
//!     .add("conv", Conv2d::new(8, 3).relu())
//!     .add("pool", Layer::MaxPool(Pool::new(2)))
//!     .add("flatten", Layer::Flatten)
//!     .add("fc", Dense::new(10));
//! let s = spec.summary().unwrap();
//! assert_eq!(s.total_params(), (3 * 3 * 3 * 8 + 8) + (8 * 16 * 16 * 10 + 10));
//! assert_eq!(summary::receptive_field(&[(3, 1), (3, 1)]), 5);
//! ```
//!
//! - [`layers`]: the layer specifications and combinators ([`ModelSpec`], [`Layer`], ...);
//! - shape inference and the counting conventions (see `infer.rs`);
//! - [`specs`]: the coursework's models and [`by_name`];
//! - [`receptive_field`] and [`inception_cost`]: the design calculators.

mod inception;
mod infer;
pub mod layers;
mod receptive;
pub mod specs;

pub use inception::{inception_cost, inception_spec, InceptionCost};
pub use layers::{Activation, Conv2d, Dense, Layer, ModelSpec, Padding, Pool, Sequential, Shape};
pub use receptive::receptive_field;
pub use specs::{
    alexnet, attention56, attention56_mini, attention56_paper, by_name, minigooglenet, mlp, resnet50d_se, resnet_d_se,
    resnet_v1, vgg19, vgg19_without_biases, vgg_cnn, MODEL_NAMES,
};

use crate::table::Table;
use std::fmt;

/// One layer's line in a summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Path of the layer in the model (`stage2.block1.conv1`).
    pub name: String,
    /// What the layer is (`Conv2d 3×3/1 same + ReLU`).
    pub kind: String,
    /// Shape of one sample's output.
    pub output: Shape,
    /// Parameters updated by the optimizer.
    pub trainable: u64,
    /// Parameters kept but not trained (batch norm's moving mean and variance).
    pub non_trainable: u64,
    /// Values the layer writes for one sample (0 for a reshape such as `Flatten`).
    pub activations: u64,
    /// Multiply-accumulates for one sample (convolutions and dense layers only).
    pub macs: u64,
}

impl Row {
    /// Trainable plus non-trainable parameters.
    pub fn params(&self) -> u64 {
        self.trainable + self.non_trainable
    }
}

/// A model's per-layer counts; the first row is the input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    /// The model's name.
    pub name: String,
    /// Shape of one input sample.
    pub input: Shape,
    /// Shape of one output sample.
    pub output: Shape,
    /// One row per layer, in order (branches one after another, then their merge).
    pub rows: Vec<Row>,
}

impl ModelSummary {
    /// All parameters (compare with the number of values in a trained model's `VarMap`).
    pub fn total_params(&self) -> u64 {
        self.trainable_params() + self.non_trainable_params()
    }

    /// Parameters updated by the optimizer.
    pub fn trainable_params(&self) -> u64 {
        self.rows.iter().map(|r| r.trainable).sum()
    }

    /// Parameters kept but not trained (batch norm statistics).
    pub fn non_trainable_params(&self) -> u64 {
        self.rows.iter().map(|r| r.non_trainable).sum()
    }

    /// Values written in one sample's forward pass, the input included.
    pub fn total_activations(&self) -> u64 {
        self.rows.iter().map(|r| r.activations).sum()
    }

    /// Multiply-accumulates for one sample's forward pass (about half its FLOPs).
    pub fn total_macs(&self) -> u64 {
        self.rows.iter().map(|r| r.macs).sum()
    }

    /// Parameters (trainable and not) per top-level block, in order: the rows grouped by the
    /// first part of their path (`stage2.block1.conv1` → `stage2`).
    pub fn params_by_block(&self) -> Vec<(String, u64)> {
        let mut blocks: Vec<(String, u64)> = Vec::new();
        for r in &self.rows {
            let block = r.name.split('.').next().unwrap_or(&r.name).to_string();
            match blocks.last_mut() {
                Some((name, total)) if *name == block => *total += r.params(),
                _ => blocks.push((block, r.params())),
            }
        }
        blocks.retain(|(_, p)| *p > 0);
        blocks
    }

    /// The row with this name (path), if any.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The summary as a table: one line per layer and a totals line, with thousands separators.
    pub fn to_table(&self) -> Table {
        let header = ["layer", "type", "output [C, H, W]", "trainable", "non-trainable", "activations", "MACs"];
        let mut table = Table::new(header).title(format!("{} (input {})", self.name, self.input));
        for r in &self.rows {
            table.row([
                r.name.clone(),
                r.kind.clone(),
                r.output.to_string(),
                thousands(r.trainable),
                thousands(r.non_trainable),
                thousands(r.activations),
                thousands(r.macs),
            ]);
        }
        table.row([
            "total".to_string(),
            String::new(),
            self.output.to_string(),
            thousands(self.trainable_params()),
            thousands(self.non_trainable_params()),
            thousands(self.total_activations()),
            thousands(self.total_macs()),
        ]);
        table
    }

    /// Show the table inline in evcxr (called by the kernel when a cell ends with a summary).
    pub fn evcxr_display(&self) {
        self.to_table().evcxr_display();
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_table())?;
        writeln!(f, "Total params: {}", thousands(self.total_params()))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable_params()))?;
        writeln!(f, "Non-trainable params: {}", thousands(self.non_trainable_params()))
    }
}

/// A count with thousands separators: `1186378` → `1,186,378`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Print the summary of a coursework model by name (the `dlkit summary <model>` command).
pub fn print_summary(name: &str) -> crate::Result<()> {
    print!("{}", by_name(name)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1186378), "1,186,378");
        assert_eq!(thousands(60965224), "60,965,224");
    }
}
