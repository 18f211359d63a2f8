//! One training experiment end to end — data, model, optimizer, training, test, run record —
//! described by a serialisable [`Experiment`], shared by the CLI and the notebooks.

use crate::data::{self, Dataset, DeviceData, Normalization, TrainTest};
use crate::error::{Error, Result};
use crate::models::{self, Network};
use crate::optim::OptimizerConfig;
use crate::runs::{Mode, RunRecord};
use crate::schedule::{self, CyclicBatchSize, CyclicLr, LrSchedule};
use crate::augment::{self, Augmentation};
use crate::train::{self, Monitor, Trainer};
use candle_core::{DType, Device};
use candle_nn::VarMap;

/// The datasets of the coursework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DatasetName {
    /// CIFAR-10 (32×32×3, 10 classes), from `$DLKIT_DATA`.
    Cifar10,
    /// Fashion-MNIST resized 28→32 (32×32×1, 10 classes).
    FashionMnist,
}

impl DatasetName {
    /// Parse `cifar10` or `fashion-mnist`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "cifar10" | "cifar-10" => Ok(DatasetName::Cifar10),
            "fashion-mnist" | "fashionmnist" | "fmnist" => Ok(DatasetName::FashionMnist),
            other => Err(Error::Config(format!("unknown dataset `{other}`: use cifar10 or fashion-mnist"))),
        }
    }

    /// Load it (optionally only the first `per_class` images of each class for quick runs).
    pub fn load(self, per_class_train: Option<usize>, per_class_test: Option<usize>) -> Result<TrainTest> {
        match self {
            DatasetName::Cifar10 => data::cifar10_limited(per_class_train, per_class_test),
            DatasetName::FashionMnist => {
                let full = data::fashion_mnist()?;
                let cut = |d: &Dataset, k: Option<usize>| match k {
                    Some(k) => d.limit(k * d.classes.len(), 0),
                    None => d.clone(),
                };
                let train = cut(&full.train, per_class_train).resize(32, 32);
                let test = cut(&full.test, per_class_test).resize(32, 32);
                Ok(TrainTest { train, test })
            }
        }
    }
}

/// Training, validation and test data on a device, ready for any number of experiments.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Training samples.
    pub train: DeviceData,
    /// Held-out validation samples (from the training set).
    pub validation: DeviceData,
    /// Test samples.
    pub test: DeviceData,
    /// Class names.
    pub classes: Vec<String>,
}

impl Prepared {
    /// Load `dataset`, keep at most `train_limit`/`test_limit` images, hold out `validation`
    /// training images (seeded), scale pixels to [0, 1] (the coursework's normalisation) and
    /// move everything to `device`.
    pub fn new(
        dataset: DatasetName,
        train_limit: Option<usize>,
        test_limit: Option<usize>,
        validation: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let per_class = |n: Option<usize>| n.map(|n| n.div_ceil(10));
        let tt = dataset.load(per_class(train_limit), per_class(test_limit))?;
        let train = match train_limit {
            Some(n) => tt.train.limit(n, seed),
            None => tt.train,
        };
        let test = match test_limit {
            Some(n) => tt.test.limit(n, seed),
            None => tt.test,
        };
        let (train, val) = train.split(validation, seed)?;
        let norm = Normalization::UnitRange;
        Ok(Prepared {
            train: DeviceData::new(&train, device, norm.clone())?,
            validation: DeviceData::new(&val, device, norm.clone())?,
            test: DeviceData::new(&test, device, norm)?,
            classes: train.classes.clone(),
        })
    }
}

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
}

/// The model names [`ModelChoice::from_name`] understands.
pub const MODEL_NAMES: &str =
    "mlp, mlp-dropout, vgg-cnn, resnet20, resnet32, resnet44, resnet56, resnet110, minigooglenet, attention56-mini, attention56-paper";

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

    /// Build the model's variables in `varmap` (seeded) on `device`.
    pub fn build(&self, varmap: &VarMap, seed: u64, device: &Device) -> Result<Box<dyn Network>> {
        let vb = models::init::seeded(varmap, seed, DType::F32, device);
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
        })
    }
}

/// A learning-rate policy, as data (so that run records say which one was used).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum LrPolicy {
    /// The optimizer's learning rate throughout.
    #[default]
    Constant,
    /// Epoch-wise steps ([`schedule::StepSchedule`]).
    Step(schedule::StepSchedule),
    /// Triangular cyclical learning rate.
    Triangular {
        /// Lower bound.
        base_lr: f64,
        /// Upper bound.
        max_lr: f64,
        /// Iterations per half cycle.
        step_size: usize,
    },
    /// Triangular cycles whose amplitude halves every cycle.
    Triangular2 {
        /// Lower bound.
        base_lr: f64,
        /// Upper bound of the first cycle.
        max_lr: f64,
        /// Iterations per half cycle.
        step_size: usize,
    },
    /// Triangular cycles whose amplitude decays as γ^iteration.
    ExpRange {
        /// Lower bound.
        base_lr: f64,
        /// Upper bound at iteration 0.
        max_lr: f64,
        /// Iterations per half cycle.
        step_size: usize,
        /// Decay per iteration.
        gamma: f64,
    },
}

impl LrPolicy {
    /// The schedule the trainer queries, or `None` for a constant rate.
    pub fn schedule(&self) -> Result<Option<Box<dyn LrSchedule>>> {
        Ok(match self {
            LrPolicy::Constant => None,
            LrPolicy::Step(s) => Some(Box::new(s.clone())),
            LrPolicy::Triangular { base_lr, max_lr, step_size } => {
                Some(Box::new(CyclicLr::triangular(*base_lr, *max_lr, *step_size)?))
            }
            LrPolicy::Triangular2 { base_lr, max_lr, step_size } => {
                Some(Box::new(CyclicLr::triangular2(*base_lr, *max_lr, *step_size)?))
            }
            LrPolicy::ExpRange { base_lr, max_lr, step_size, gamma } => {
                Some(Box::new(CyclicLr::exp_range(*base_lr, *max_lr, *step_size, *gamma)?))
            }
        })
    }
}

/// A training run described as data: what to train, how, and where its record goes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experiment {
    /// Coursework section (the run record's folder).
    pub section: String,
    /// Run name (the run record's file name).
    pub name: String,
    /// The model.
    pub model: ModelChoice,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size (the first epoch's, when `batch_sizes` is set).
    pub batch_size: usize,
    /// Seed of the weights, dropout masks, batch order and augmentation.
    pub seed: u64,
    /// Keep the best-validation weights and test with them.
    pub keep_best: bool,
    /// Learning-rate policy.
    #[serde(default)]
    pub lr_policy: LrPolicy,
    /// Cyclical batch size, if any.
    #[serde(default)]
    pub batch_sizes: Option<CyclicBatchSize>,
    /// Augmentation of the training batches, if any.
    #[serde(default)]
    pub augmentation: Option<Augmentation>,
    /// Record every step's learning rate and loss in the history.
    #[serde(default)]
    pub record_iterations: bool,
    /// Stop each epoch after this many batches (quick runs).
    #[serde(default)]
    pub max_batches: Option<usize>,
}

impl Experiment {
    /// An experiment with one epoch of batch 128, seed 0, constant learning rate, nothing else;
    /// set the other fields with struct-update syntax: `Experiment { epochs: 5, ..Experiment::new(..) }`.
    pub fn new(section: &str, name: &str, model: ModelChoice, optimizer: OptimizerConfig) -> Self {
        Experiment {
            section: section.into(),
            name: name.into(),
            model,
            optimizer,
            epochs: 1,
            batch_size: 128,
            seed: 0,
            keep_best: false,
            lr_policy: LrPolicy::Constant,
            batch_sizes: None,
            augmentation: None,
            record_iterations: false,
            max_batches: None,
        }
    }

    /// The saved run record of this experiment if there is one (and `DLKIT_RETRAIN` is unset),
    /// else train it on `data` and save the record.
    pub fn load_or_run(&self, data: &Prepared, mode: Mode) -> Result<RunRecord> {
        crate::runs::load_or_run(&self.section, mode, &self.name, || self.run(data, mode))
    }

    /// Train on `data`, test with the kept weights, and return the run record (not yet saved).
    pub fn run(&self, data: &Prepared, mode: Mode) -> Result<RunRecord> {
        let device = data.train.device();
        let varmap = VarMap::new();
        let model = self.model.build(&varmap, self.seed, device)?;
        let mut optimizer = self.optimizer.build(crate::optim::vars_in_name_order(&varmap))?;
        let mut trainer = Trainer::new(model.as_ref(), &varmap, &mut optimizer)
            .epochs(self.epochs)
            .batch_size(self.batch_size)
            .seed(self.seed)
            .label(&self.name)
            .record_iterations(self.record_iterations);
        if self.keep_best {
            trainer = trainer.keep_best(Monitor::ValAccuracy);
        }
        if let Some(schedule) = self.lr_policy.schedule()? {
            trainer = trainer.schedule(schedule);
        }
        if let Some(policy) = &self.batch_sizes {
            trainer = trainer.batch_sizes(policy.clone());
        }
        if let Some(augmentation) = &self.augmentation {
            trainer = trainer.augment(augment::seeded(augmentation.clone(), self.seed));
        }
        if let Some(n) = self.max_batches {
            trainer = trainer.max_batches(n);
        }
        let history = trainer.fit(&data.train, Some(&data.validation))?;
        let test = train::evaluate(model.as_ref(), &data.test, 500)?;
        let config = serde_json::to_value(self).map_err(|e| Error::Config(e.to_string()))?;
        Ok(RunRecord::new(&self.section, &self.name, mode, config, history, Some(test), device))
    }
}

/// `cpu`, `cuda` (GPU 0, an error without one) or `auto` (CUDA when available).
pub fn device_from_name(name: &str) -> Result<Device> {
    // The first dlkit call of every notebook: early enough for candle's thread pool to see the
    // CPU settings (see `runtime`).
    crate::runtime::tune_cpu();
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Ok(Device::new_cuda(0)?),
        "auto" => Ok(Device::cuda_if_available(0)?),
        other => Err(Error::Config(format!("unknown device `{other}`: use cpu, cuda or auto"))),
    }
}
