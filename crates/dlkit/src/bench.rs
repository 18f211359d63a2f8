//! Benchmarks that print figures (not tests): training steps of the coursework models, the
//! optimizer update alone, augmentation and data loading, on any device, as samples/s, GFLOP/s
//! and, for the memory-bound optimizer updates, GB/s next to the machine's measured bandwidth.
//!
//! FLOPs come from the library's model summary: a forward pass costs 2 FLOPs per
//! multiply-accumulate; a training step is counted as 3 forward passes (forward, and a backward
//! that costs about twice the forward). The CPU's FP32 peak is estimated as
//! `cores × FLOPs per cycle × clock`, with 32 FLOPs per cycle for AVX2 + FMA (two 8-lane FMA
//! units × 2 FLOPs) and 64 with AVX-512.

use crate::augment::{Augment, Augmentation, FillMode, RandomAffine};
use crate::error::{Error, Result};
use crate::experiment::ModelChoice;
use crate::models::{AttentionResNetConfig, MiniGoogLeNetConfig, ResNetDConfig};
use crate::optim::{vars_in_name_order, OptimizerConfig, OptimizerState};
use crate::summary;
use crate::table::Table;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use rand::SeedableRng;
use std::time::Instant;

/// One measured workload.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Measurement {
    /// What was measured.
    pub workload: String,
    /// Samples per batch (0 where it does not apply).
    pub batch: usize,
    /// Median seconds per repetition.
    pub seconds: f64,
    /// Samples per second (or parameters per second for optimizer updates).
    pub rate: f64,
    /// Achieved GFLOP/s, where the FLOPs are known.
    pub gflops: Option<f64>,
    /// Memory traffic in GB/s, for memory-bound workloads (optimizer updates, the bandwidth probe).
    #[serde(default)]
    pub gbytes: Option<f64>,
    /// The process's resident-memory high-water mark (VmHWM) in MiB after the workload; it
    /// describes the workload alone only when it ran in a process of its own (`--isolate`).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// The resident memory (VmRSS) in MiB just before the workload built its model: what the
    /// process held before it (libraries, earlier workloads).
    #[serde(default)]
    pub base_rss_mib: Option<f64>,
    /// For multi-epoch workloads: the last epoch's CPU time over the first's (1 = no slowdown).
    #[serde(default)]
    pub last_over_first: Option<f64>,
    /// Median CPU seconds of a repetition (this process, all threads), where measured: on a
    /// machine shared with other work it moves less than the wall-clock time.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
}

impl Measurement {
    /// `items` processed in `seconds` (samples, parameters, images), with no FLOP or byte count.
    pub fn new(workload: impl Into<String>, batch: usize, seconds: f64, items: f64) -> Self {
        Measurement { workload: workload.into(), batch, seconds, rate: items / seconds, ..Default::default() }
    }

    /// With the memory traffic: `bytes` moved per repetition.
    pub fn with_bytes(self, bytes: f64) -> Self {
        Measurement { gbytes: Some(bytes / self.seconds / 1e9), ..self }
    }
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Untimed repetitions first.
    pub warmup: usize,
    /// Timed repetitions (the median is reported).
    pub repeats: usize,
}

impl BenchOptions {
    /// One untimed and five timed repetitions.
    pub fn standard() -> Self {
        BenchOptions { warmup: 1, repeats: 5 }
    }

    /// A single repetition of each workload: keeps the benchmarks compiling and running in CI.
    pub fn smoke() -> Self {
        BenchOptions { warmup: 0, repeats: 1 }
    }
}

/// Median wall-clock and CPU seconds of one repetition.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: Option<f64>,
}

fn median_seconds(options: BenchOptions, device: &Device, f: impl FnMut() -> Result<()>) -> Result<f64> {
    Ok(median_timing(options, device, f)?.wall)
}

/// Runs `f` `warmup` times untimed, then `repeats` times, and returns the median wall-clock time
/// and the median CPU time (this process, all threads) of a repetition.
fn median_timing(options: BenchOptions, device: &Device, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    for _ in 0..options.warmup {
        f()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(options.repeats.max(1));
    let mut cpu_times = Vec::with_capacity(options.repeats.max(1));
    for _ in 0..options.repeats.max(1) {
        let (t, cpu) = (Instant::now(), process_cpu_seconds());
        f()?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
        cpu_times.extend(cpu.zip(process_cpu_seconds()).map(|(a, b)| b - a));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpu = (cpu_times.len() == times.len()).then(|| median(&mut cpu_times));
    Ok(Timing { wall: median(&mut times), cpu })
}

/// One training-step workload: a coursework model at one batch size.
#[derive(Debug, Clone)]
pub struct StepWorkload {
    /// Display name (the PyTorch reference uses the same names).
    pub name: String,
    /// The model.
    pub model: ModelChoice,
    /// Input channels of the 32×32 images.
    pub channels: usize,
    /// Samples per step.
    pub batch: usize,
    /// Multiply-accumulates of one forward pass per sample, where the summary knows them.
    pub macs: Option<u64>,
}

/// The training-step workloads, in the order they are measured.
pub fn step_workloads() -> Result<Vec<StepWorkload>> {
    let macs = |s: summary::ModelSpec| -> Result<Option<u64>> { Ok(Some(s.summary()?.total_macs())) };
    let narrow = ModelChoice::MiniGoogLeNet(MiniGoogLeNetConfig { input_channels: 1, width_divisor: 4, ..Default::default() });
    let w = |name: &str, model: ModelChoice, channels, batch, macs| StepWorkload { name: name.into(), model, channels, batch, macs };
    let attention = |divisor| ModelChoice::AttentionResNet(AttentionResNetConfig::mini().narrow(divisor));
    Ok(vec![
        w("MLP", ModelChoice::from_name("mlp", 3)?, 3, 128, macs(summary::mlp(3072, &[1000, 1000], 10))?),
        w("ResNet-20", ModelChoice::from_name("resnet20", 3)?, 3, 64, macs(summary::resnet_v1(20)?)?),
        w("ResNet-20", ModelChoice::from_name("resnet20", 3)?, 3, 128, macs(summary::resnet_v1(20)?)?),
        w("ResNet-44", ModelChoice::from_name("resnet44", 3)?, 3, 64, macs(summary::resnet_v1(44)?)?),
        w("ResNet-44", ModelChoice::from_name("resnet44", 3)?, 3, 128, macs(summary::resnet_v1(44)?)?),
        w("MiniGoogLeNet", ModelChoice::from_name("minigooglenet", 1)?, 1, 64, macs(summary::minigooglenet(1))?),
        w("MiniGoogLeNet ÷4 (quick mode)", narrow, 1, 64, None),
        w("VGG-style CNN", ModelChoice::from_name("vgg-cnn", 3)?, 3, 64, macs(summary::vgg_cnn())?),
        w("ResNet-50-D-SE", ModelChoice::from_name("resnet50d-se", 3)?, 3, 32, macs(summary::resnet50d_se(64, 16)?)?),
        w(
            "ResNet-50-D-SE reduced (quick mode)",
            ModelChoice::ResNetD(ResNetDConfig::default().reduced()),
            3,
            64,
            macs(summary::resnet_d_se(&ResNetDConfig::default().reduced())?)?,
        ),
        w("Attention-56 mini", attention(1), 3, 64, macs(summary::attention56(&AttentionResNetConfig::mini())?)?),
        w(
            "Attention-56 mini ÷4 (quick mode)",
            attention(4),
            3,
            64,
            macs(summary::attention56(&AttentionResNetConfig::mini().narrow(4))?)?,
        ),
    ])
}

/// Which workloads [`measure_all`] runs.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only the training and evaluation workloads whose name contains this (any case).
    pub only: Option<String>,
    /// Only the training-step workload at this position of [`step_workloads`] (used to run
    /// each one in a process of its own, for its memory high-water mark).
    pub step_index: Option<usize>,
    /// The suites to run; empty means all of them.
    pub suites: Vec<Suite>,
}

/// A group of benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// One training step (forward, backward, Adam) of every coursework model.
    Steps,
    /// Evaluation throughput (the frozen inference forward pass).
    Evaluation,
    /// The optimizer updates alone.
    Updates,
    /// Augmentation of a batch.
    Augmentation,
    /// Loading CIFAR-10 from disk.
    Loading,
    /// The memory bandwidth probe.
    Bandwidth,
    /// Several epochs of the MLP with each optimizer: does an epoch get slower as training goes on?
    Drift,
    /// Whole quick-mode epochs of sections 1 and 4 (batches, augmentation, steps, evaluation).
    Epochs,
}

impl Suite {
    /// Every suite, in the order they run.
    pub const ALL: [Suite; 8] = [
        Suite::Steps,
        Suite::Evaluation,
        Suite::Updates,
        Suite::Augmentation,
        Suite::Loading,
        Suite::Bandwidth,
        Suite::Drift,
        Suite::Epochs,
    ];

    /// Parse a suite name: steps, eval, updates, augment, load, bandwidth, drift, epochs.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "steps" => Suite::Steps,
            "eval" | "evaluation" => Suite::Evaluation,
            "updates" => Suite::Updates,
            "augment" | "augmentation" => Suite::Augmentation,
            "load" | "loading" => Suite::Loading,
            "bandwidth" => Suite::Bandwidth,
            "drift" => Suite::Drift,
            "epochs" => Suite::Epochs,
            other => {
                return Err(Error::Config(format!(
                    "unknown benchmark suite `{other}`: use steps, eval, updates, augment, load, bandwidth, drift or epochs"
                )))
            }
        })
    }
}

impl Selection {
    fn runs(&self, suite: Suite) -> bool {
        let chosen = self.suites.is_empty() || self.suites.contains(&suite);
        // A name filter or a single step workload narrows the run to the model workloads.
        let narrowed = self.only.is_some() || self.step_index.is_some();
        chosen && (!narrowed || matches!(suite, Suite::Steps | Suite::Evaluation))
    }

    fn keeps(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| name.to_lowercase().contains(&o.to_lowercase()))
    }
}

/// A memory figure of this process from `/proc/self/status` in MiB (`VmHWM`: the resident-memory
/// high-water mark; `VmRSS`: resident now), where /proc has it.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Time one training step (forward, backward, Adam update) of every coursework model.
pub fn training_steps(device: &Device, options: BenchOptions, selection: &Selection) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for (i, w) in step_workloads()?.into_iter().enumerate() {
        if !selection.keeps(&w.name) || selection.step_index.is_some_and(|k| k != i) {
            continue;
        }
        let base_rss_mib = status_mib("VmRSS");
        let varmap = VarMap::new();
        let net = w.model.build(&varmap, 0, device)?;
        let mut adam = OptimizerConfig::from_name("adam", None)?.build(vars_in_name_order(&varmap))?;
        let x = Tensor::randn(0f32, 1.0, (w.batch, w.channels, 32, 32), device)?;
        let y = Tensor::from_vec((0..w.batch as u32).map(|i| i % 10).collect::<Vec<_>>(), w.batch, device)?;
        let timing = median_timing(options, device, || {
            let logits = net.forward_t(&x, true)?;
            let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            if let Some(p) = net.penalty()? {
                loss = (loss + p)?;
            }
            adam.backward_step(&loss)?;
            Ok(())
        })?;
        let m = Measurement::new(format!("train step: {}", w.name), w.batch, timing.wall, w.batch as f64);
        let m = Measurement { cpu_seconds: timing.cpu, ..m };
        eprintln!("  {} batch {}: {:.1} samples/s", w.name, w.batch, m.rate);
        let gflops = w.macs.map(|macs| 3.0 * 2.0 * macs as f64 * m.rate / 1e9);
        out.push(Measurement { gflops, peak_rss_mib: status_mib("VmHWM"), base_rss_mib, ..m });
    }
    Ok(out)
}

/// Samples per evaluation batch in [`evaluation`] (the training loop evaluates in batches of at
/// least 256).
pub const EVALUATION_BATCH: usize = 256;

/// Evaluation throughput of every coursework model: the frozen forward pass
/// ([`crate::models::Network::inference`], batch norm folded, no autograd graph) on batches of
/// [`EVALUATION_BATCH`], as `train::evaluate` runs it. The frozen model is built once per
/// repetition, as `evaluate` builds it once per evaluation.
pub fn evaluation(device: &Device, options: BenchOptions, selection: &Selection) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for w in step_workloads()? {
        if !selection.keeps(&w.name) || seen.contains(&w.name) {
            continue;
        }
        seen.push(w.name.clone());
        let varmap = VarMap::new();
        let net = w.model.build(&varmap, 0, device)?;
        let x = Tensor::randn(0f32, 1.0, (EVALUATION_BATCH, w.channels, 32, 32), device)?;
        let timing = median_timing(options, device, || {
            let frozen = net.inference()?;
            frozen.forward(&x)?;
            Ok(())
        })?;
        let m = Measurement::new(format!("evaluate: {}", w.name), EVALUATION_BATCH, timing.wall, EVALUATION_BATCH as f64);
        let m = Measurement { cpu_seconds: timing.cpu, ..m };
        eprintln!("  evaluate {}: {:.1} samples/s", w.name, m.rate);
        let gflops = w.macs.map(|macs| 2.0 * macs as f64 * m.rate / 1e9);
        out.push(Measurement { gflops, ..m });
    }
    Ok(out)
}

/// CIFAR-10 training images for the multi-epoch workloads: `n` images from the data root when it
/// has CIFAR-10 (real images drift into the subnormal range the way the coursework runs did),
/// else seeded random pixels.
fn cifar_or_random(n: usize, seed: u64) -> Result<(crate::data::Dataset, &'static str)> {
    match crate::data::cifar10_limited(Some(n.div_ceil(10)), Some(1)) {
        Ok(tt) => Ok((tt.train.limit(n, seed), "CIFAR-10")),
        Err(_) => {
            use rand::Rng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let images: Vec<u8> = (0..n * 3072).map(|_| rng.random()).collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            let classes = (0..10).map(|c| format!("class{c}")).collect();
            Ok((crate::data::Dataset::new(images, labels, (3, 32, 32), classes)?, "random pixels"))
        }
    }
}

/// CPU seconds this process has used so far (user + system, all threads).
pub fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes into the zeroed struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

/// Epochs of the section-1 MLP (3072-1000-1000-10, L2 0.01, batch 128) with each optimizer on
/// `images` training images, each epoch timed on its own: reported as the last epoch's time and
/// its ratio to the first's (`last_over_first`; goal ≤ 1.1). The ratio uses CPU time (all
/// threads), which other processes on the machine do not inflate the way they inflate wall time;
/// the wall-clock ratio is printed beside it. A ratio well above 1 means values drifted into the
/// subnormal range (see `runtime`): with the flush-to-zero mode off, a Nadam run on 10,000
/// CIFAR-10 images used 3× the CPU time of its first epoch by the sixth.
pub fn epoch_drift(device: &Device, epochs: usize, images: usize, optimizers: &[&str]) -> Result<Vec<Measurement>> {
    use crate::train::{Progress, Trainer};
    let (data, source) = cifar_or_random(images, 0)?;
    let train = crate::data::DeviceData::new(&data, device, crate::data::Normalization::UnitRange)?;
    let mut out = Vec::new();
    for &name in optimizers {
        let varmap = VarMap::new();
        let net = ModelChoice::from_name("mlp", 3)?.build(&varmap, 0, device)?;
        let mut opt = OptimizerConfig::from_name(name, None)?.build(vars_in_name_order(&varmap))?;
        // (wall, CPU) seconds of each epoch.
        let mut times = Vec::with_capacity(epochs);
        for epoch in 0..epochs.max(1) {
            let (start, cpu) = (Instant::now(), process_cpu_seconds());
            Trainer::new(&*net, &varmap, &mut opt).batch_size(128).seed(epoch as u64).progress(Progress::Quiet).fit(&train, None)?;
            device.synchronize()?;
            let cpu = cpu.zip(process_cpu_seconds()).map(|(a, b)| b - a);
            times.push((start.elapsed().as_secs_f64(), cpu));
        }
        let ((first_wall, first_cpu), (last_wall, last_cpu)) = (times[0], times[times.len() - 1]);
        let wall_ratio = last_wall / first_wall;
        let ratio = first_cpu.zip(last_cpu).map_or(wall_ratio, |(f, l)| l / f);
        let workload = format!("epochs: MLP + {name}, {epochs} epochs of {} {source} images", train.len());
        eprintln!(
            "  {workload}: first {first_wall:.2} s, last {last_wall:.2} s (wall ×{wall_ratio:.2}, CPU ×{ratio:.2})"
        );
        let m = Measurement::new(workload, 128, last_wall, train.len() as f64);
        out.push(Measurement { last_over_first: Some(ratio), ..m });
    }
    Ok(out)
}

/// Whole quick-mode epochs, as a notebook runs them: batches drawn from the in-memory dataset,
/// augmentation, training steps and the evaluation on held-out images after the epoch.
/// Section 1: the MLP with Adam on 10,000 images, batch 128, evaluated on 1,000. Section 4:
/// ResNet-20 with RMSProp on 1,000 images with shift + flip, batch 64, evaluated on 200.
/// `scale` divides the image counts (1 for the real workload; the smoke run uses more).
pub fn whole_epochs(device: &Device, options: BenchOptions, scale: usize) -> Result<Vec<Measurement>> {
    use crate::augment::ShiftFlip;
    use crate::train::{Progress, Trainer};
    let scale = scale.max(1);
    let sections: [(&str, &str, &str, usize, usize, usize, bool); 2] = [
        ("epoch: section 1, MLP + Adam", "mlp", "adam", 10_000, 1_000, 128, false),
        ("epoch: section 4, ResNet-20 + RMSProp, shift + flip", "resnet20", "rmsprop", 1_000, 200, 64, true),
    ];
    let mut out = Vec::new();
    for (name, model, optimizer, images, held_out, batch, augment) in sections {
        let (images, held_out) = ((images / scale).max(batch), (held_out / scale).max(1));
        let (data, source) = cifar_or_random(images + held_out, 1)?;
        let (train, validation) = data.split(held_out, 1)?;
        let norm = crate::data::Normalization::UnitRange;
        let train = crate::data::DeviceData::new(&train, device, norm.clone())?;
        let validation = crate::data::DeviceData::new(&validation, device, norm)?;
        let varmap = VarMap::new();
        let net = ModelChoice::from_name(model, 3)?.build(&varmap, 0, device)?;
        let mut opt = OptimizerConfig::from_name(optimizer, None)?.build(vars_in_name_order(&varmap))?;
        let mut epoch = 0;
        let timing = median_timing(options, device, || {
            let mut trainer = Trainer::new(&*net, &varmap, &mut opt).batch_size(batch).seed(epoch).progress(Progress::Quiet);
            if augment {
                trainer = trainer.augment(ShiftFlip::default());
            }
            trainer.fit(&train, Some(&validation))?;
            epoch += 1;
            Ok(())
        })?;
        let workload = format!("{name} ({} {source} images, {} evaluated)", train.len(), validation.len());
        eprintln!("  {workload}: {:.2} s", timing.wall);
        let m = Measurement::new(workload, batch, timing.wall, train.len() as f64);
        out.push(Measurement { cpu_seconds: timing.cpu, ..m });
    }
    Ok(out)
}

/// Time the update alone of each optimizer on the MLP's 4.1 M parameters (given gradients).
///
/// Bytes moved per parameter: read the weight, its gradient and each slot, write the weight and
/// each slot: `4·(3 + 2·slots)` for f32 (SGD 12, momentum/AdaGrad/RMSProp 20, Adam/Nadam/AdaDelta 28).
pub fn optimizer_updates(device: &Device, options: BenchOptions) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let varmap = VarMap::new();
    let mlp = ModelChoice::from_name("mlp", 3)?.build(&varmap, 0, device)?;
    let x = Tensor::randn(0f32, 1.0, (8, 3, 32, 32), device)?;
    let loss = mlp.forward_t(&x, true)?.sqr()?.sum_all()?;
    let grads = loss.backward()?;
    let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    for name in ["sgd", "momentum", "adagrad", "rmsprop", "nadam", "adadelta", "adam"] {
        let mut opt = OptimizerConfig::from_name(name, Some(1e-6))?.build(vars_in_name_order(&varmap))?;
        let seconds = median_seconds(options, device, || Ok(opt.step(&grads)?))?;
        let slot_values: usize =
            opt.state()?.iter().filter(|(_, t)| t.dtype() == DType::F32).map(|(_, t)| t.elem_count()).sum();
        let bytes_per_param = 4.0 * (3.0 + 2.0 * slot_values as f64 / params as f64);
        let workload = format!("update: {name} ({:.1} M params, {bytes_per_param:.0} B each)", params as f64 / 1e6);
        out.push(Measurement::new(workload, 0, seconds, params as f64).with_bytes(bytes_per_param * params as f64));
    }
    Ok(out)
}

/// The machine's memory bandwidth for the access pattern of an optimizer update: `a[i] += s·b[i]`
/// in place over two arrays of 64 MiB each (far beyond the caches), on all threads, counting
/// 12 bytes per element (read a and b, write a; no write-allocate traffic since a is read first).
pub fn memory_bandwidth(options: BenchOptions) -> Result<Measurement> {
    use rayon::prelude::*;
    let n = 16 << 20;
    let b = vec![1.0f32; n];
    let mut a = vec![0.0f32; n];
    let seconds = median_seconds(options, &Device::Cpu, || {
        a.par_chunks_mut(1 << 16).zip(b.par_chunks(1 << 16)).for_each(|(a, b)| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += 1e-3 * b);
        });
        Ok(())
    })?;
    std::hint::black_box(&a);
    Ok(Measurement::new("memory bandwidth (a += s·b in place, 2 × 64 MiB)", 0, seconds, n as f64).with_bytes(12.0 * n as f64))
}

/// Time loading CIFAR-10: the official binary format (a 10,000-record batch file written to a
/// temporary folder) and, where the data root has it, the JPEG image folder's test split.
pub fn data_loading(options: BenchOptions) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let dir = std::env::temp_dir().join(format!("dlkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = dir.join("test_batch.bin");
    let records = 10_000;
    let mut bytes = Vec::with_capacity(records * crate::data::cifar::RECORD_BYTES);
    for i in 0..records {
        bytes.push((i % 10) as u8);
        bytes.extend((0..crate::data::cifar::RECORD_BYTES - 1).map(|j| (i * 31 + j * 7) as u8));
    }
    crate::io::write_bytes_atomically(&file, &bytes)?;
    let seconds = median_seconds(options, &Device::Cpu, || crate::data::cifar::read_batch(&file).map(|_| ()));
    let _ = std::fs::remove_dir_all(&dir);
    let seconds = seconds?;
    out.push(Measurement::new("load: CIFAR-10 binary batch (10,000 images)", 0, seconds, records as f64));
    let folder = crate::data::data_root().join("cifar10-jpg").join("test");
    if folder.is_dir() {
        let mut images = 0;
        let seconds = median_seconds(options, &Device::Cpu, || {
            images = crate::data::folder::load_split(&folder, None)?.len();
            Ok(())
        })?;
        out.push(Measurement::new(format!("load: CIFAR-10 JPEG folder ({images} images)"), 0, seconds, images as f64));
    } else {
        eprintln!("  (no {}: JPEG decoding not measured)", folder.display());
    }
    Ok(out)
}

/// Time the coursework's augmentation on a batch of 64 CIFAR images: shift + flip, and
/// shift + flip + cutout with M = 32 copies; and Keras's random affine augmentation
/// (rotation 15°, shifts 0.1, zoom 0.2, flips; 'nearest' and 'constant' fill) on a batch of 128.
pub fn augmentation(device: &Device, options: BenchOptions) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let keras = RandomAffine {
        rotation_range: 15.0,
        width_shift_range: 0.1,
        height_shift_range: 0.1,
        zoom_range: RandomAffine::zoom(0.2),
        horizontal_flip: true,
        ..RandomAffine::default()
    };
    for (name, batch, aug) in [
        ("augment: shift + flip", 64, Augmentation { cutout: None, ..Augmentation::shift_flip_cutout(1)? }),
        ("augment: shift + flip + cutout M = 32", 64, Augmentation::shift_flip_cutout(32)?),
        ("augment: Keras random affine, nearest", 128, Augmentation::keras(keras)?),
        (
            "augment: Keras random affine, constant",
            128,
            Augmentation::keras(RandomAffine { fill_mode: FillMode::Constant(0.0), ..keras })?,
        ),
    ] {
        let x = Tensor::rand(0f32, 1.0, (batch, 3, 32, 32), device)?;
        let y = Tensor::zeros(batch, DType::U32, device)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let seconds = median_seconds(options, device, || aug.apply(&x, &y, &mut rng).map(|_| ()))?;
        out.push(Measurement::new(name, batch, seconds, batch as f64));
    }
    Ok(out)
}

/// Estimated FP32 peak in GFLOP/s of the cores in use (cores × FLOPs/cycle × GHz), if known.
pub fn cpu_peak_gflops() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let per_cycle = if flags.contains(" avx512f") { 64.0 } else if flags.contains(" fma") { 32.0 } else { 8.0 };
    // The cores the benchmarks use: rayon's threads, at most one per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rayon::current_num_threads()) as f64;
    Some(cores * per_cycle * mhz / 1e3)
}

/// The measurements as a table, with the share of `peak` GFLOP/s and of `bandwidth` GB/s where
/// known.
pub fn report(measurements: &[Measurement], peak: Option<f64>, bandwidth: Option<f64>) -> Table {
    let mut t = Table::new(["workload", "batch", "median ms", "samples/s", "GFLOP/s", "% of peak", "GB/s", "% of bandwidth", "peak RSS MiB"]);
    let share = |x: Option<f64>, of: Option<f64>| match (x, of) {
        (Some(x), Some(of)) if of > 0.0 => format!("{:.1}%", 100.0 * x / of),
        _ => "-".into(),
    };
    for m in measurements {
        let per_second = match m.batch {
            0 if m.workload.starts_with("update") => format!("{:.3e} params/s", m.rate),
            0 if m.workload.starts_with("load") => format!("{:.0} images/s", m.rate),
            0 => "-".into(),
            _ => format!("{:.1}", m.rate),
        };
        t.row([
            m.workload.clone(),
            if m.batch == 0 { "-".into() } else { m.batch.to_string() },
            format!("{:.2}", m.seconds * 1e3),
            per_second,
            m.gflops.map_or("-".into(), |g| format!("{g:.1}")),
            share(m.gflops, peak),
            m.gbytes.map_or("-".into(), |g| format!("{g:.1}")),
            share(m.gbytes, bandwidth),
            m.peak_rss_mib.map_or("-".into(), |r| format!("{r:.0}")),
        ]);
    }
    t
}

/// The cost of cutout with M copies next to the training step it feeds: augmentation time for a
/// batch of 64 with M = 32 over the time of a ResNet-44 step on the 64·32 = 2048 samples it
/// produces. The step time is the measured batch-64 step scaled by 32 (steps grow linearly with
/// the batch once it fills the machine), so the figure is an estimate.
pub fn cutout_share(measurements: &[Measurement]) -> Option<f64> {
    let augment = measurements.iter().find(|m| m.workload.contains("cutout M = 32"))?;
    let step = measurements.iter().find(|m| m.workload == "train step: ResNet-44" && m.batch == 64)?;
    Some(augment.seconds / (32.0 * step.seconds))
}

/// Run the selected benchmarks (see [`Selection`]).
pub fn measure_all(device: &Device, options: BenchOptions, selection: &Selection) -> Result<Vec<Measurement>> {
    if options.repeats == 0 {
        return Err(Error::Config("a benchmark needs at least one repetition".into()));
    }
    crate::runtime::tune_cpu();
    let smoke = options.repeats == 1 && options.warmup == 0;
    let mut all = Vec::new();
    if selection.runs(Suite::Steps) {
        all.extend(training_steps(device, options, selection)?);
    }
    if selection.runs(Suite::Evaluation) {
        all.extend(evaluation(device, options, selection)?);
    }
    if selection.runs(Suite::Updates) {
        all.extend(optimizer_updates(device, options)?);
    }
    if selection.runs(Suite::Augmentation) {
        all.extend(augmentation(device, options)?);
    }
    if selection.runs(Suite::Loading) {
        all.extend(data_loading(options)?);
    }
    if selection.runs(Suite::Bandwidth) && device.is_cpu() {
        all.push(memory_bandwidth(options)?);
    }
    if selection.runs(Suite::Drift) {
        all.extend(if smoke {
            epoch_drift(device, 2, 256, &["nadam"])?
        } else {
            epoch_drift(device, DRIFT_EPOCHS, DRIFT_IMAGES, &DRIFT_OPTIMIZERS)?
        });
    }
    if selection.runs(Suite::Epochs) {
        all.extend(whole_epochs(device, options, if smoke { 20 } else { 1 })?);
    }
    Ok(all)
}

/// Epochs of each drift run.
pub const DRIFT_EPOCHS: usize = 6;
/// Training images of each drift run (with 5,120 the Nadam run showed no slowdown in 6 epochs).
pub const DRIFT_IMAGES: usize = 10_000;
/// The optimizers of the drift runs (section 1's).
pub const DRIFT_OPTIMIZERS: [&str; 7] = ["sgd", "momentum", "adagrad", "rmsprop", "nadam", "adadelta", "adam"];

/// The measurements as a titled table plus the cutout-share line.
pub fn render(measurements: &[Measurement], device: &Device) -> String {
    let peak = if device.is_cpu() { cpu_peak_gflops() } else { None };
    let title = format!(
        "dlkit benchmarks on {} ({} threads; CPU FP32 peak estimate {})",
        crate::runs::device_name(device),
        rayon::current_num_threads(),
        peak.map_or("unknown".into(), |p| format!("{p:.0} GFLOP/s"))
    );
    let bandwidth =
        measurements.iter().find(|m| m.workload.starts_with("memory bandwidth")).and_then(|m| m.gbytes);
    let (multi_epoch, single): (Vec<Measurement>, Vec<Measurement>) =
        measurements.iter().cloned().partition(|m| m.last_over_first.is_some());
    let mut out = report(&single, peak, bandwidth).title(title).to_string();
    if !multi_epoch.is_empty() {
        let mut t = Table::new(["workload", "last epoch s", "last / first epoch, CPU time (goal ≤ 1.1)"]);
        for m in &multi_epoch {
            t.row([m.workload.clone(), format!("{:.2}", m.seconds), format!("{:.2}", m.last_over_first.unwrap_or(f64::NAN))]);
        }
        out += &t.title("epoch time as training goes on").to_string();
    }
    if let Some(share) = cutout_share(measurements) {
        out += &format!(
            "cutout M = 32 on a batch of 64: augmentation / ResNet-44 step on its 2048 samples = {:.4}% (step estimated as 32 × the batch-64 step)\n",
            100.0 * share
        );
    }
    out
}
