//! One training experiment end to end — data, model, optimizer, callbacks, training, test, run
//! record — described by a serialisable [`Experiment`], shared by the CLI and the notebooks.
//! The experiment and its [`DataSpec`] are the configuration a saved run is keyed by.

mod data;
mod model;
mod plan;
mod record;
mod run_set;

pub use data::{DataSpec, DatasetName, Prepared, Scaling, Split, Splits};
pub use model::{ModelChoice, MODEL_NAMES};
pub use plan::{plan, Plan, PlanRow};
pub use record::RunRecord;
pub use run_set::RunSet;

use crate::augment::Augmentation;
use crate::callbacks::{
    Callback, CsvLogger, EarlyStopping, ModelCheckpoint, ReduceLrOnPlateau, ScheduleCallback, TensorBoard, WeightAverage,
};
use std::path::PathBuf;
use crate::error::{Error, Result};
use crate::history::Monitor;
use crate::optim::OptimizerConfig;
use crate::runs::Mode;
use crate::schedule::{self, CyclicBatchSize, CyclicLr, LrSchedule};
use crate::train::{OnDivergence, Trainer};
use candle_core::Device;
use candle_nn::VarMap;

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
    /// Cosine annealing (PyTorch `CosineAnnealingLR`).
    Cosine(schedule::CosineAnnealing),
    /// Cosine annealing with warm restarts (SGDR, PyTorch `CosineAnnealingWarmRestarts`).
    WarmRestarts(schedule::CosineWarmRestarts),
    /// Multiplied by γ at each milestone (PyTorch `MultiStepLR`).
    MultiStep(schedule::MultiStep),
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
            LrPolicy::Step(s) => {
                s.validate()?;
                Some(Box::new(s.clone()))
            }
            LrPolicy::Cosine(s) => {
                s.validate()?;
                Some(Box::new(*s))
            }
            LrPolicy::WarmRestarts(s) => {
                s.validate()?;
                Some(Box::new(*s))
            }
            LrPolicy::MultiStep(s) => {
                s.validate()?;
                Some(Box::new(s.clone()))
            }
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

/// A training run described as data: what to train, how, and where its record goes. Every
/// field changes the result, so all of them key the saved run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// Keep the weights of the best epoch by this figure and test with them (Keras
    /// `ModelCheckpoint(save_best_only=True)`, whose default monitor is `val_loss`).
    pub keep_best: Option<Monitor>,
    /// Learning-rate policy.
    pub lr_policy: LrPolicy,
    /// Cyclical batch size, if any.
    pub batch_sizes: Option<CyclicBatchSize>,
    /// Gradient accumulation: compute each step over chunks of at most this many samples.
    pub micro_batch: Option<usize>,
    /// Augmentation of the training batches, if any.
    pub augmentation: Option<Augmentation>,
    /// Early stopping, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Learning-rate reduction on a plateau, if any.
    pub reduce_lr: Option<ReduceLrOnPlateau>,
    /// An exponential moving average of the weights, evaluated beside the raw weights every
    /// epoch and used for the test, if any.
    pub ema: Option<crate::optim::EmaConfig>,
    /// Record every step's learning rate and loss in the history.
    pub record_iterations: bool,
    /// Stop each epoch after this many batches (quick runs).
    pub max_batches: Option<usize>,
    /// Treat a diverging loss as a result to record (learning-rate sweeps), not an error.
    pub divergence_is_a_result: bool,
}

/// Where a run writes its logs (`log.csv`, TensorBoard event files), its checkpoints and the
/// state it resumes from.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutputs {
    /// The run's folder.
    pub folder: PathBuf,
    /// Write TensorBoard event files under `folder/tensorboard/`.
    pub tensorboard: bool,
    /// Save the best weights (by `keep_best`, else `val_loss`) to files named by this pattern
    /// in `folder` (see [`ModelCheckpoint`]), e.g. `best-EP{epoch:02d}-ACC{val_accuracy:.4f}.safetensors`.
    pub checkpoint: Option<String>,
    /// Also save the final weights (those the test used) to `folder/weights.safetensors`, to
    /// look inside the trained model later (e.g. its attention masks).
    pub save_weights: bool,
}

impl RunOutputs {
    /// Where [`RunOutputs::save_weights`] puts the final weights.
    pub fn weights_file(&self) -> PathBuf {
        self.folder.join("weights.safetensors")
    }

    /// The checkpoint files in the run's folder (`*.safetensors`), by name.
    pub fn checkpoint_files(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        if self.folder.is_dir() {
            for entry in std::fs::read_dir(&self.folder).map_err(|e| Error::io(&self.folder, e))? {
                let name = entry.map_err(|e| Error::io(&self.folder, e))?.file_name().to_string_lossy().into_owned();
                if name.ends_with(".safetensors") {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// `runs/<section>/<mode>/<name>/`, with TensorBoard logs and no checkpoint files.
    pub fn for_run(section: &str, mode: Mode, name: &str) -> Self {
        RunOutputs { folder: crate::runs::run_folder(section, mode, name), tensorboard: true, checkpoint: None, save_weights: false }
    }
}

/// What a saved run is keyed by: the experiment, its data, the mode.
#[derive(serde::Serialize)]
struct RunKey<'a> {
    experiment: &'a Experiment,
    data: &'a DataSpec,
    mode: Mode,
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
            keep_best: None,
            lr_policy: LrPolicy::Constant,
            batch_sizes: None,
            micro_batch: None,
            augmentation: None,
            early_stopping: None,
            reduce_lr: None,
            ema: None,
            record_iterations: false,
            max_batches: None,
            divergence_is_a_result: false,
        }
    }

    /// Check every setting that does not depend on the data, before any is loaded; the error
    /// names the field.
    pub fn check_settings(&self) -> Result<()> {
        let who = format!("experiment `{}`", self.name);
        let counts = [("epochs", Some(self.epochs)), ("batch_size", Some(self.batch_size)), ("micro_batch", self.micro_batch), ("max_batches", self.max_batches)];
        if let Some((field, _)) = counts.iter().find(|(_, v)| *v == Some(0)) {
            return Err(Error::Config(format!("{who}: {field} must be at least 1")));
        }
        self.optimizer.validate()?;
        self.model.validate()?;
        self.lr_policy.schedule()?;
        if let Some(a) = &self.augmentation {
            a.validate()?;
        }
        Ok(())
    }

    /// Check every setting, and against `data`, before any training; the error names the field.
    pub fn check(&self, data: &Prepared) -> Result<()> {
        self.check_settings()?;
        let who = format!("experiment `{}`", self.name);
        if self.batch_size > data.train.len() && self.micro_batch.is_none() && self.batch_sizes.is_none() {
            return Err(Error::Config(format!(
                "{who}: batch_size {} exceeds the {} training images (every epoch would be one smaller batch)",
                self.batch_size,
                data.train.len()
            )));
        }
        if let Some(policy) = &self.batch_sizes {
            if policy.max > data.train.len() {
                return Err(Error::Config(format!(
                    "{who}: the cyclical batch size reaches {}, more than the {} training images",
                    policy.max,
                    data.train.len()
                )));
            }
        }
        self.model.accepts(data.image_shape).map_err(|expected| {
            let (c, h, w) = data.image_shape;
            Error::Config(format!("{who}: the images from {} are {c}×{h}×{w}; the model expects {expected}", data.source))
        })
    }

    /// The saved run record of this experiment on `data` if one was made with exactly this
    /// configuration (and `DLKIT_RETRAIN` is unset), else train it and save the record.
    pub fn load_or_run(&self, data: &Prepared, mode: Mode) -> Result<RunRecord> {
        let key = RunKey { experiment: self, data: &data.spec, mode };
        crate::runs::load_or_compute(&self.section, mode, &self.name, &key, || self.run(data, mode))
    }

    /// [`Experiment::load_or_run`] with its logs, checkpoint files and resumable state in `outputs`.
    pub fn load_or_run_with(&self, data: &Prepared, mode: Mode, outputs: &RunOutputs) -> Result<RunRecord> {
        let key = RunKey { experiment: self, data: &data.spec, mode };
        crate::runs::load_or_compute(&self.section, mode, &self.name, &key, || self.run_with(data, mode, outputs))
    }

    /// Whether [`Experiment::load_or_run`] would load a saved record instead of training.
    pub fn is_saved(&self, data: &Prepared, mode: Mode) -> bool {
        let key = RunKey { experiment: self, data: &data.spec, mode };
        crate::runs::is_saved(&self.section, mode, &self.name, &key)
    }

    /// Train on `data`, test with the kept weights, and return the run record (not yet saved).
    /// Logs go to `runs/<section>/<mode>/<name>/` (see [`RunOutputs::for_run`]); an
    /// interrupted run resumes from its last epoch there.
    pub fn run(&self, data: &Prepared, mode: Mode) -> Result<RunRecord> {
        self.run_with(data, mode, &RunOutputs::for_run(&self.section, mode, &self.name))
    }

    /// [`Experiment::run`] with its logs, checkpoints and resumable state in `outputs`.
    pub fn run_with(&self, data: &Prepared, mode: Mode, outputs: &RunOutputs) -> Result<RunRecord> {
        self.check(data)?;
        let device = data.train.device();
        let folder = &outputs.folder;
        let varmap = VarMap::new();
        let model = self.model.build(&varmap, self.seed, device)?;
        let mut optimizer = self.optimizer.build(crate::optim::vars_in_name_order(&varmap))?;
        let key = serde_json::to_string(&RunKey { experiment: self, data: &data.spec, mode })
            .map_err(|e| Error::Config(e.to_string()))?;
        let backup = folder.join(format!("backup-{:016x}", crate::models::init::fnv1a(&key)));
        let mut trainer = self.trainer(model.as_ref(), &varmap, &mut optimizer).backup(backup);
        for callback in self.callbacks(&varmap, outputs)? {
            trainer = trainer.boxed_callback(callback);
        }
        let history = trainer.fit(&data.train, Some(&data.validation))?;
        if outputs.save_weights {
            crate::io::save_varmap(&varmap, &outputs.weights_file())?;
        }
        let test = match history.diverged {
            Some(_) => None,
            None => Some(crate::evaluate::evaluate(model.as_ref(), &data.test, 500)?),
        };
        Ok(RunRecord::new(self.clone(), data.spec.clone(), mode, history, test, device))
    }

    /// A trainer with this experiment's settings (callbacks aside).
    fn trainer<'a>(&self, model: &'a dyn crate::models::Network, varmap: &'a VarMap, optimizer: &'a mut dyn crate::optim::TrainOptimizer) -> Trainer<'a> {
        let mut trainer = Trainer::new(model, varmap, optimizer)
            .epochs(self.epochs)
            .batch_size(self.batch_size)
            .seed(self.seed)
            .label(&self.name)
            .record_iterations(self.record_iterations);
        if let Some(policy) = &self.batch_sizes {
            trainer = trainer.batch_sizes(policy.clone());
        }
        if let Some(augmentation) = &self.augmentation {
            trainer = trainer.augment(augmentation.clone());
        }
        if let Some(n) = self.micro_batch {
            trainer = trainer.micro_batch(n);
        }
        if let Some(n) = self.max_batches {
            trainer = trainer.max_batches(n);
        }
        if self.divergence_is_a_result {
            trainer = trainer.on_divergence(OnDivergence::Record);
        }
        trainer
    }

    /// The callbacks, in the order they run at the end of each epoch: learning-rate policy,
    /// weight average (it adds figures the others may watch), early stopping, plateau, kept
    /// weights, checkpoint files, then the logs (which see every figure).
    fn callbacks(&self, varmap: &VarMap, outputs: &RunOutputs) -> Result<Vec<Box<dyn Callback + 'static>>> {
        let mut callbacks: Vec<Box<dyn Callback>> = Vec::new();
        if let Some(schedule) = self.lr_policy.schedule()? {
            callbacks.push(Box::new(ScheduleCallback::new(schedule)));
        }
        if let Some(config) = self.ema {
            callbacks.push(Box::new(WeightAverage::new(varmap, config)?));
        }
        if let Some(stopping) = &self.early_stopping {
            callbacks.push(Box::new(stopping.clone()));
        }
        if let Some(plateau) = &self.reduce_lr {
            callbacks.push(Box::new(plateau.clone()));
        }
        if let Some(monitor) = &self.keep_best {
            callbacks.push(Box::new(ModelCheckpoint::keep_best(monitor.clone())));
        }
        if let Some(pattern) = &outputs.checkpoint {
            let monitor = self.keep_best.clone().unwrap_or(Monitor::ValLoss);
            callbacks.push(Box::new(ModelCheckpoint::best_only(outputs.folder.join(pattern), monitor)));
        }
        callbacks.push(Box::new(CsvLogger::new(outputs.folder.join("log.csv"))));
        if outputs.tensorboard {
            callbacks.push(Box::new(TensorBoard::new(outputs.folder.join("tensorboard"))));
        }
        Ok(callbacks)
    }

    /// The learning-rate range test for this experiment's model, optimizer, batch size and seed:
    /// a freshly built model trained on `data.train` while `finder` raises the rate.
    pub fn find_lr(&self, finder: &schedule::LrFinder, data: &Prepared) -> Result<schedule::FinderResult> {
        self.check(data)?;
        let varmap = VarMap::new();
        let model = self.model.build(&varmap, self.seed, data.train.device())?;
        let mut optimizer = self.optimizer.build(crate::optim::vars_in_name_order(&varmap))?;
        finder.run(model.as_ref(), &varmap, &mut optimizer, &data.train, self.batch_size, self.seed)
    }

    /// Training steps the run makes (epochs × batches per epoch).
    pub fn steps(&self, training_images: usize) -> usize {
        (0..self.epochs)
            .map(|epoch| {
                let batch = self.batch_sizes.as_ref().map_or(self.batch_size, |p| p.batch_size(epoch)).max(1);
                let n = training_images.div_ceil(batch);
                self.max_batches.map_or(n, |m| m.min(n))
            })
            .sum()
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
