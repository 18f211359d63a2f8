//! The `dlkit` command line: headless training, model summaries, benchmarks, data fetching and
//! export.

use clap::{Parser, Subcommand};
use dlkit::augment::{Augmentation, RandomAffine, ShiftFlip};
use dlkit::callbacks::{EarlyStopping, ReduceLrOnPlateau};
use dlkit::experiment::{device_from_name, DataSpec, DatasetName, Experiment, ModelChoice, RunOutputs};
use dlkit::history::Monitor;
use dlkit::optim::OptimizerConfig;
use dlkit::plot::LineChart;
use dlkit::runs::Mode;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dlkit", version, about = "Deep-learning coursework tools: train, summarise, benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model and write its run record and loss chart.
    Train(TrainArgs),
    /// Print a model's layer table (parameters, activations) like Keras `model.summary()`.
    Summary {
        /// mlp, vgg-cnn, minigooglenet, resnet20, resnet44, alexnet, vgg19 (any resnet6n+2)
        model: String,
    },
    /// Time training steps, optimizer updates and augmentation (samples/s, GFLOP/s).
    Bench {
        /// cpu, cuda or auto
        #[arg(long, default_value = "cpu")]
        device: String,
        /// One repetition of each workload (CI keeps the benchmarks running with this)
        #[arg(long)]
        smoke: bool,
        /// Only the training workloads whose name contains this (e.g. resnet-20)
        #[arg(long)]
        only: Option<String>,
        /// Print the measurements as JSON (bench/compare.py reads this)
        #[arg(long)]
        json: bool,
        /// Worker threads (rayon and candle pools); default: one per core
        #[arg(long)]
        threads: Option<usize>,
        /// Only these suites, comma-separated: steps, eval, updates, augment, load, bandwidth, drift, epochs
        #[arg(long, value_delimiter = ',')]
        suite: Vec<String>,
        /// Run each training-step workload in a process of its own, so its peak resident memory is its own
        #[arg(long)]
        isolate: bool,
        /// Only the training-step workload at this position (what --isolate runs in each child)
        #[arg(long, hide = true)]
        step_index: Option<usize>,
    },
    /// Download the datasets (needs internet; offline it says what to do instead).
    Fetch,
    /// Write the training, validation and test images a `train` run with the same flags uses,
    /// as NumPy files (N×H×W×C uint8 images, uint8 labels), for Keras or PyTorch to train on.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// As `train --data-seed` (or `--seed` where that is not given)
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Folder for train/validation/test _images.npy and _labels.npy
        #[arg(long)]
        out: PathBuf,
    },
}

/// Which images a run uses (`train` and `export` share these flags).
#[derive(clap::Args)]
struct DataArgs {
    /// cifar10 or fashion-mnist
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Use at most this many training images (and as many test images, up to the whole test set)
    #[arg(long)]
    limit: Option<usize>,
    /// Training images held out for validation (default 5000, or a tenth of --limit)
    #[arg(long)]
    validation: Option<usize>,
}

impl DataArgs {
    /// The data these flags and `seed` describe (nothing is loaded yet).
    fn spec(&self, seed: u64) -> dlkit::Result<DataSpec> {
        if self.limit == Some(0) {
            return Err(dlkit::Error::Config("--limit must be at least 1".into()));
        }
        if self.validation == Some(0) {
            return Err(dlkit::Error::Config("--validation must be at least 1 (a validation set is needed)".into()));
        }
        let validation = self.validation.unwrap_or(self.limit.map_or(5000, |n| (n / 10).max(1)));
        let test_limit = self.limit.map(|n| n.min(10_000));
        Ok(DataSpec::new(DatasetName::from_name(&self.dataset)?, self.limit, test_limit, validation, seed))
    }
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// mlp, mlp-dropout, vgg-cnn, resnet20 (any resnet6n+2), minigooglenet
    #[arg(long, default_value = "mlp")]
    model: String,
    /// sgd, momentum, sgd-nesterov, adagrad, rmsprop, nadam, adadelta, adam
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate (default: the optimizer's Keras default)
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the data subset and hold-out alone (default: --seed), so that several model
    /// seeds can train on one split
    #[arg(long)]
    data_seed: Option<u64>,
    /// L2 factor on the kernels (Keras 'l2' = 0.01; the ResNet default is 1e-4)
    #[arg(long)]
    l2: Option<f64>,
    /// Augment training batches: none, shift-flip (±4 px whole-pixel shifts and flips), or
    /// keras-shift-flip (Keras ImageDataGenerator width/height shift 0.125 and horizontal flip,
    /// the section-05 report's)
    #[arg(long, default_value = "none")]
    augment: String,
    /// Stop after this many epochs without improvement of --monitor (Keras EarlyStopping)
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Multiply the learning rate by 0.1 after this many epochs without improvement of --monitor
    #[arg(long)]
    reduce_lr: Option<usize>,
    /// The figure early stopping, LR reduction and the kept weights watch: val_loss or val_accuracy
    #[arg(long, default_value = "val_loss")]
    monitor: String,
    /// Also save the best weights to <out>/<run>/<name>-EP{epoch:02d}-ACC{val_accuracy:.4f}.safetensors
    #[arg(long)]
    checkpoint: bool,
    /// Write TensorBoard event files to <out>/<run>/tensorboard/ (view: tensorboard --logdir <out>)
    #[arg(long)]
    tensorboard: bool,
    /// Also save the final weights to <out>/<run>/weights.safetensors
    #[arg(long)]
    save_weights: bool,
    /// cpu, cuda or auto
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Where to write the run record, chart, logs and resumable state (default: runs/cli/)
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Bench { threads: Some(n), .. } = &cli.command {
        if *n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::FAILURE;
        }
        // Before any pool starts: rayon's and candle's pools size themselves from these.
        // SAFETY: no other thread runs yet.
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        }
    }
    dlkit::runtime::tune_cpu();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Summary { model } => dlkit::summary::by_name(&model).map(|s| println!("{s}")),
        Command::Bench { device, smoke, only, json, threads: _, suite, isolate, step_index } => {
            bench(&device, smoke, only, json, &suite, isolate, step_index)
        }
        Command::Fetch => fetch(),
        Command::Export { data, seed, out } => export(&data, seed, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message());
            ExitCode::FAILURE
        }
    }
}

fn train(a: TrainArgs) -> dlkit::Result<()> {
    let (experiment, spec) = train_experiment(&a)?;
    experiment.check_settings()?;
    spec.check()?;
    let out = a.out.clone().unwrap_or_else(|| dlkit::runs::runs_root().join("cli"));
    let name = experiment.name.clone();
    let outputs = RunOutputs {
        folder: out.join(&name),
        tensorboard: a.tensorboard,
        checkpoint: a.checkpoint.then(|| format!("{name}-EP{{epoch:02d}}-ACC{{val_accuracy:.4f}}.safetensors")),
        save_weights: a.save_weights,
    };
    check_writable(&outputs.folder)?;
    let device = device_from_name(&a.device)?;
    println!("loading {} ...", a.data.dataset);
    let data = spec.prepare(&device)?;
    println!("{} on {}", data.describe(), dlkit::runs::device_name(&device));
    let record = experiment.run_with(&data, Mode::Full, &outputs)?;
    let record_path = out.join(format!("{name}.json"));
    dlkit::io::write_json(&record_path, &record)?;
    let chart_path = out.join(format!("{name}-loss.svg"));
    LineChart::new(format!("{name}: loss per epoch"))
        .x_label("epoch")
        .y_label("cross-entropy loss")
        .series("training", record.history.train_loss())
        .series("validation", record.history.val_loss())
        .save(&chart_path)?;
    println!("run record: {}", record_path.display());
    println!("loss chart: {}", chart_path.display());
    let test = record.test.ok_or_else(|| dlkit::Error::Config("the run measured no test result".into()))?;
    println!(
        "test accuracy {:.4}  test loss {:.4}  ({} epochs, {:.1}s training)",
        test.accuracy,
        test.loss,
        record.history.epochs.len(),
        record.history.total_seconds()
    );
    Ok(())
}

/// The experiment and data the flags describe (nothing is loaded yet).
fn train_experiment(a: &TrainArgs) -> dlkit::Result<(Experiment, DataSpec)> {
    let dataset = DatasetName::from_name(&a.data.dataset)?;
    let mut model = ModelChoice::from_name(&a.model, dataset.channels())?;
    match (a.l2, &mut model) {
        (Some(l2), ModelChoice::Mlp(c)) => c.l2 = l2,
        (Some(l2), ModelChoice::ResNet(c)) => c.l2 = l2,
        (Some(l2), ModelChoice::VggCnn(c)) => c.l2 = l2,
        (Some(_), _) => return Err(dlkit::Error::Config(format!("--l2: the model `{}` has no L2 setting", a.model))),
        _ => {}
    }
    let optimizer = OptimizerConfig::from_name(&a.optimizer, a.lr)?;
    let data = a.data.spec(a.data_seed.unwrap_or(a.seed))?;
    let monitor = Monitor::from_name(&a.monitor)?;
    let augmentation = match a.augment.as_str() {
        "none" => None,
        "shift-flip" => Some(Augmentation { shift_flip: Some(ShiftFlip::default()), ..Augmentation::none() }),
        "keras-shift-flip" => Some(Augmentation::keras(RandomAffine {
            width_shift_range: 0.125,
            height_shift_range: 0.125,
            horizontal_flip: true,
            ..RandomAffine::default()
        })?),
        other => return Err(dlkit::Error::Config(format!("--augment `{other}`: use none, shift-flip or keras-shift-flip"))),
    };
    let name = format!("{}-{}-{}", a.data.dataset, a.model, a.optimizer);
    let experiment = Experiment {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        keep_best: Some(monitor.clone()),
        augmentation,
        early_stopping: a.early_stopping.map(|p| EarlyStopping::new(monitor.clone(), p)),
        reduce_lr: a.reduce_lr.map(|p| ReduceLrOnPlateau::new(monitor.clone(), 0.1, p)),
        ..Experiment::new("cli", &name, model, optimizer)
    };
    Ok((experiment, data))
}

/// `dlkit export`: the split as NumPy files under `out`.
fn export(data: &DataArgs, seed: u64, out: &std::path::Path) -> dlkit::Result<()> {
    let spec = data.spec(seed)?;
    spec.check()?;
    check_writable(out)?;
    println!("loading {} ...", data.dataset);
    let splits = spec.splits()?;
    for (name, d) in [("train", &splits.train), ("validation", &splits.validation), ("test", &splits.test)] {
        dlkit::data::npy::save_dataset(d, out, name)?;
        println!("{name}: {} images → {}", d.len(), out.join(format!("{name}_images.npy")).display());
    }
    Ok(())
}

/// Fail early, naming the folder, when the outputs cannot be written there.
fn check_writable(folder: &std::path::Path) -> dlkit::Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| dlkit::Error::io(folder, e))?;
    let probe = folder.join(".dlkit-write-check");
    std::fs::write(&probe, b"").map_err(|e| dlkit::Error::io(folder, e))?;
    std::fs::remove_file(&probe).map_err(|e| dlkit::Error::io(&probe, e))
}

fn bench(
    device_name: &str,
    smoke: bool,
    only: Option<String>,
    json: bool,
    suites: &[String],
    isolate: bool,
    step_index: Option<usize>,
) -> dlkit::Result<()> {
    use dlkit::bench::{BenchOptions, Selection, Suite};
    let device = device_from_name(device_name)?;
    let options = if smoke { BenchOptions::smoke() } else { BenchOptions::standard() };
    let suites = suites.iter().map(|s| Suite::from_name(s)).collect::<dlkit::Result<Vec<_>>>()?;
    let mut selection = Selection { only, step_index, suites };
    let mut measurements = Vec::new();
    let mut in_process = true;
    let wants_steps = selection.suites.is_empty() || selection.suites.contains(&Suite::Steps);
    if isolate && wants_steps && selection.step_index.is_none() {
        measurements.extend(isolated_steps(device_name, smoke, &selection)?);
        let asked = std::mem::take(&mut selection.suites);
        selection.suites =
            Suite::ALL.into_iter().filter(|s| *s != Suite::Steps && (asked.is_empty() || asked.contains(s))).collect();
        in_process = !selection.suites.is_empty();
    }
    if in_process {
        measurements.extend(dlkit::bench::measure_all(&device, options, &selection)?);
    }
    if json {
        let text = serde_json::to_string_pretty(&measurements).map_err(|e| dlkit::Error::Config(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", dlkit::bench::render(&measurements, &device));
    }
    Ok(())
}

/// Each training-step workload in a child process of this binary (`--step-index`), so that the
/// peak resident memory each one reports is its own.
fn isolated_steps(device: &str, smoke: bool, selection: &dlkit::bench::Selection) -> dlkit::Result<Vec<dlkit::bench::Measurement>> {
    let exe = std::env::current_exe().map_err(|e| dlkit::Error::Config(format!("cannot find this program to re-run it: {e}")))?;
    let mut out = Vec::new();
    for (i, w) in dlkit::bench::step_workloads()?.iter().enumerate() {
        if selection.only.as_ref().is_some_and(|o| !w.name.to_lowercase().contains(&o.to_lowercase())) {
            continue;
        }
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "--json", "--suite", "steps", "--device", device, "--step-index", &i.to_string()]);
        if smoke {
            cmd.arg("--smoke");
        }
        let result = cmd.stderr(std::process::Stdio::inherit()).output().map_err(|e| dlkit::Error::io(&exe, e))?;
        if !result.status.success() {
            return Err(dlkit::Error::Config(format!("the benchmark of {} batch {} failed ({})", w.name, w.batch, result.status)));
        }
        let parsed: Vec<dlkit::bench::Measurement> = serde_json::from_slice(&result.stdout)
            .map_err(|e| dlkit::Error::Config(format!("unreadable benchmark output for {}: {e}", w.name)))?;
        out.extend(parsed);
    }
    Ok(out)
}

fn fetch() -> dlkit::Result<()> {
    let script = dlkit::repository_root().join("data/fetch.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|e| dlkit::Error::io(&script, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(dlkit::Error::Config(format!("{} failed ({status})", script.display())))
    }
}
