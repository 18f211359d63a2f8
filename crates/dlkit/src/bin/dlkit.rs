//! The `dlkit` command line: headless training, model summaries, benchmarks, data fetching.

use clap::{Parser, Subcommand};
use dlkit::experiment::{device_from_name, DatasetName, Experiment, ModelChoice, Prepared};
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
    },
    /// Download the datasets (needs internet; offline it says what to do instead).
    Fetch,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// cifar10 or fashion-mnist
    #[arg(long, default_value = "cifar10")]
    dataset: String,
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
    /// Use at most this many training images (and as many test images, up to the whole test set)
    #[arg(long)]
    limit: Option<usize>,
    /// Training images held out for validation (default 5000, or a tenth of --limit)
    #[arg(long)]
    validation: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// L2 factor on the kernels (Keras 'l2' = 0.01; the ResNet default is 1e-4)
    #[arg(long)]
    l2: Option<f64>,
    /// cpu, cuda or auto
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Where to write the run record and chart (default: runs/cli/)
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    dlkit::runtime::tune_cpu();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Summary { model } => dlkit::summary::by_name(&model).map(|s| println!("{s}")),
        Command::Bench { device, smoke, only, json } => bench(&device, smoke, only.as_deref(), json),
        Command::Fetch => fetch(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train(a: TrainArgs) -> dlkit::Result<()> {
    let device = device_from_name(&a.device)?;
    let dataset = DatasetName::from_name(&a.dataset)?;
    let channels = if dataset == DatasetName::FashionMnist { 1 } else { 3 };
    let mut model = ModelChoice::from_name(&a.model, channels)?;
    match (a.l2, &mut model) {
        (Some(l2), ModelChoice::Mlp(c)) => c.l2 = l2,
        (Some(l2), ModelChoice::ResNet(c)) => c.l2 = l2,
        (Some(l2), ModelChoice::VggCnn(c)) => c.l2 = l2,
        _ => {}
    }
    let optimizer = OptimizerConfig::from_name(&a.optimizer, a.lr)?;
    let validation = a.validation.unwrap_or(a.limit.map_or(5000, |n| (n / 10).max(1)));
    let test_limit = a.limit.map(|n| n.min(10_000));
    println!("loading {} ...", a.dataset);
    let data = Prepared::new(dataset, a.limit, test_limit, validation, a.seed, &device)?;
    println!(
        "{} training, {} validation, {} test images on {}",
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        dlkit::runs::device_name(&device)
    );
    let name = format!("{}-{}-{}", a.dataset, a.model, a.optimizer);
    let experiment = Experiment {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        keep_best: true,
        ..Experiment::new("cli", &name, model, optimizer)
    };
    let record = experiment.run(&data, Mode::Full)?;
    let out = a.out.unwrap_or_else(|| dlkit::runs::runs_root().join("cli"));
    let record_path = out.join(format!("{name}.json"));
    dlkit::runs::write_json(&record_path, &record)?;
    let chart_path = out.join(format!("{name}-loss.svg"));
    LineChart::new(format!("{name}: loss per epoch"))
        .x_label("epoch")
        .y_label("cross-entropy loss")
        .series("training", record.history.train_loss())
        .series("validation", record.history.val_loss())
        .save(&chart_path)?;
    let test = record.test.ok_or_else(|| dlkit::Error::Config("the run measured no test result".into()))?;
    println!("run record: {}", record_path.display());
    println!("loss chart: {}", chart_path.display());
    println!(
        "test accuracy {:.4}  test loss {:.4}  ({} epochs, {:.1}s training)",
        test.accuracy,
        test.loss,
        record.history.epochs.len(),
        record.history.total_seconds()
    );
    Ok(())
}

fn bench(device: &str, smoke: bool, only: Option<&str>, json: bool) -> dlkit::Result<()> {
    let device = device_from_name(device)?;
    let options = if smoke { dlkit::bench::BenchOptions::smoke() } else { dlkit::bench::BenchOptions::standard() };
    let measurements = dlkit::bench::measure_all(&device, options, only)?;
    if json {
        let text = serde_json::to_string_pretty(&measurements).map_err(|e| dlkit::Error::Config(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", dlkit::bench::render(&measurements, &device));
    }
    Ok(())
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
