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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
}

impl Measurement {
    /// `items` processed in `seconds` (samples, parameters, images), with no FLOP or byte count.
    pub fn new(workload: impl Into<String>, batch: usize, seconds: f64, items: f64) -> Self {
        Measurement { workload: workload.into(), batch, seconds, rate: items / seconds, gflops: None, gbytes: None }
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

fn median_seconds(options: BenchOptions, device: &Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..options.warmup {
        f()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(options.repeats.max(1));
    for _ in 0..options.repeats.max(1) {
        let t = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The training-step workloads: (name, model, input channels, batch, MACs per sample).
fn training_workloads() -> Result<Vec<(String, ModelChoice, usize, usize, Option<u64>)>> {
    let macs = |s: summary::ModelSpec| -> Result<Option<u64>> { Ok(Some(s.summary()?.total_macs())) };
    let narrow = ModelChoice::MiniGoogLeNet(MiniGoogLeNetConfig { input_channels: 1, width_divisor: 4, ..Default::default() });
    let attention = |divisor| ModelChoice::AttentionResNet(AttentionResNetConfig::mini().narrow(divisor));
    Ok(vec![
        ("MLP".into(), ModelChoice::from_name("mlp", 3)?, 3, 128, macs(summary::mlp(3072, &[1000, 1000], 10))?),
        ("ResNet-20".into(), ModelChoice::from_name("resnet20", 3)?, 3, 64, macs(summary::resnet_v1(20)?)?),
        ("ResNet-20".into(), ModelChoice::from_name("resnet20", 3)?, 3, 128, macs(summary::resnet_v1(20)?)?),
        ("ResNet-44".into(), ModelChoice::from_name("resnet44", 3)?, 3, 64, macs(summary::resnet_v1(44)?)?),
        ("ResNet-44".into(), ModelChoice::from_name("resnet44", 3)?, 3, 128, macs(summary::resnet_v1(44)?)?),
        ("MiniGoogLeNet".into(), ModelChoice::from_name("minigooglenet", 1)?, 1, 64, macs(summary::minigooglenet(1))?),
        ("MiniGoogLeNet ÷4 (quick mode)".into(), narrow, 1, 64, None),
        ("VGG-style CNN".into(), ModelChoice::from_name("vgg-cnn", 3)?, 3, 64, macs(summary::vgg_cnn())?),
        ("ResNet-50-D-SE".into(), ModelChoice::from_name("resnet50d-se", 3)?, 3, 32, macs(summary::resnet50d_se(64, 16)?)?),
        (
            "ResNet-50-D-SE reduced (quick mode)".into(),
            ModelChoice::ResNetD(ResNetDConfig::default().reduced()),
            3,
            64,
            macs(summary::resnet_d_se(&ResNetDConfig::default().reduced())?)?,
        ),
        ("Attention-56 mini".into(), attention(1), 3, 64, macs(summary::attention56(&AttentionResNetConfig::mini())?)?),
        (
            "Attention-56 mini ÷4 (quick mode)".into(),
            attention(4),
            3,
            64,
            macs(summary::attention56(&AttentionResNetConfig::mini().narrow(4))?)?,
        ),
    ])
}

/// Time one training step (forward, backward, Adam update) of every coursework model.
pub fn training_steps(device: &Device, options: BenchOptions, only: Option<&str>) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for (name, model, channels, batch, macs) in training_workloads()? {
        if only.is_some_and(|o| !name.to_lowercase().contains(&o.to_lowercase())) {
            continue;
        }
        let varmap = VarMap::new();
        let net = model.build(&varmap, 0, device)?;
        let mut adam = OptimizerConfig::from_name("adam", None)?.build(vars_in_name_order(&varmap))?;
        let x = Tensor::randn(0f32, 1.0, (batch, channels, 32, 32), device)?;
        let y = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(), batch, device)?;
        let seconds = median_seconds(options, device, || {
            let logits = net.forward_t(&x, true)?;
            let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            if let Some(p) = net.penalty()? {
                loss = (loss + p)?;
            }
            adam.backward_step(&loss)?;
            Ok(())
        })?;
        let m = Measurement::new(format!("train step: {name}"), batch, seconds, batch as f64);
        eprintln!("  {name} batch {batch}: {:.1} samples/s", m.rate);
        out.push(Measurement { gflops: macs.map(|macs| 3.0 * 2.0 * macs as f64 * m.rate / 1e9), ..m });
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

/// Estimated FP32 peak of this machine's CPU in GFLOP/s (cores × FLOPs/cycle × GHz), if known.
pub fn cpu_peak_gflops() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info.lines().find(|l| l.starts_with("cpu MHz"))?.split(':').nth(1)?.trim().parse().ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let per_cycle = if flags.contains(" avx512f") { 64.0 } else if flags.contains(" fma") { 32.0 } else { 8.0 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some(cores * per_cycle * mhz / 1e3)
}

/// The measurements as a table, with the share of `peak` GFLOP/s and of `bandwidth` GB/s where
/// known.
pub fn report(measurements: &[Measurement], peak: Option<f64>, bandwidth: Option<f64>) -> Table {
    let mut t = Table::new(["workload", "batch", "median ms", "samples/s", "GFLOP/s", "% of peak", "GB/s", "% of bandwidth"]);
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

/// Run every benchmark (or only the training workloads whose name contains `only`).
pub fn measure_all(device: &Device, options: BenchOptions, only: Option<&str>) -> Result<Vec<Measurement>> {
    if options.repeats == 0 {
        return Err(Error::Config("a benchmark needs at least one repetition".into()));
    }
    crate::runtime::tune_cpu();
    let mut all = training_steps(device, options, only)?;
    if only.is_none() {
        all.extend(optimizer_updates(device, options)?);
        all.extend(augmentation(device, options)?);
        all.extend(data_loading(options)?);
        if device.is_cpu() {
            all.push(memory_bandwidth(options)?);
        }
    }
    Ok(all)
}

/// The measurements as a titled table plus the cutout-share line.
pub fn render(measurements: &[Measurement], device: &Device) -> String {
    let peak = if device.is_cpu() { cpu_peak_gflops() } else { None };
    let title = format!(
        "dlkit benchmarks on {} ({} threads; CPU FP32 peak estimate {})",
        crate::runs::device_name(device),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        peak.map_or("unknown".into(), |p| format!("{p:.0} GFLOP/s"))
    );
    let bandwidth =
        measurements.iter().find(|m| m.workload.starts_with("memory bandwidth")).and_then(|m| m.gbytes);
    let mut out = report(measurements, peak, bandwidth).title(title).to_string();
    if let Some(share) = cutout_share(measurements) {
        out += &format!(
            "cutout M = 32 on a batch of 64: augmentation / ResNet-44 step on its 2048 samples = {:.4}% (step estimated as 32 × the batch-64 step)\n",
            100.0 * share
        );
    }
    out
}
