//! dlkit: the support library behind the Rust deep-learning coursework notebooks.
//!
//! The data flows one way (see `shared/DESIGN.md`):
//! files → [`data`] → batches → [`augment`] → [`models`] → loss → [`optim`]
//! (driven by [`schedule`]) → [`train`] (with [`callbacks`]) → [`history`] → [`runs`] on disk
//! → [`plot`] / [`table`]. [`experiment`] ties one run together as data; [`io`] does every
//! file write; [`summary`] counts parameters and activations from layer specifications.
//! [`tensorboard`] writes a run's scalars as event files that `tensorboard --logdir` reads.

pub mod augment;
pub mod bench;
pub mod callbacks;
pub mod conclusions;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod experiment;
pub mod grid;
pub mod history;
pub mod io;
pub mod kernels;
pub mod models;
pub mod optim;
pub mod plot;
pub mod report;
pub mod runs;
pub mod runtime;
pub mod schedule;
pub mod serde_float;
pub mod summary;
pub mod table;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};

/// The repository's root folder (two levels above this crate's manifest), where `data/` and
/// `runs/` live by default.
pub fn repository_root() -> std::path::PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).unwrap_or(crate_dir).to_path_buf()
}

/// Everything a notebook needs, in one `use dlkit::prelude::*;`.
pub mod prelude {
    pub use crate::augment::{self, Augmentation};
    pub use crate::callbacks::{self, CsvLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLrOnPlateau};
    pub use crate::conclusions::{self, expect_range, Comparison};
    pub use crate::data::{self, Dataset, DeviceData, Normalization, TrainTest};
    pub use crate::error::Error;
    pub use crate::experiment::{
        device_from_name, plan, DataSpec, DatasetName, Experiment, LrPolicy, ModelChoice, Prepared, RunOutputs, RunRecord,
        RunSet, Scaling, Split,
    };
    pub use crate::grid::ImageGrid;
    pub use crate::history::{History, Metrics, Monitor};
    pub use crate::models;
    pub use crate::optim;
    pub use crate::plot::{BarChart, LineChart};
    pub use crate::report::Headline;
    pub use crate::runs::{self, Mode};
    pub use crate::schedule;
    pub use crate::table::Table;
    pub use crate::train::{self, Trainer};
    pub use candle_core::{DType, Device, Tensor};
    pub use candle_nn::{Module, ModuleT, Optimizer, VarBuilder, VarMap};
}
