//! Memory stays flat while training (issue #16, item 8): 20 epochs of an MLP and of a small
//! ResNet through `Trainer`, with a callback reading after each epoch
//! - the process's resident set size (VmRSS in /proc/self/status), what a student sees grow;
//! - the bytes allocated and not yet freed, counted by this binary's global allocator.
//!
//! The resident size alone cannot show the absence of a leak: `runtime::tune_cpu` keeps freed
//! memory in the process for reuse, so the resident size stays at the high-water mark and a
//! leak can fill freed-but-resident pages unseen (the control below measures this). The live
//! byte count sees every allocation that is never freed, on any thread.
//!
//! Alone in its test binary, so no other test moves the process's figures. Prints them:
//! `cargo test -p dlkit --test memory -- --nocapture`.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use dlkit::augment::{Augmentation, ShiftFlip};
use dlkit::callbacks::{BatchLogs, Callback, Context};
use dlkit::data::{Dataset, DeviceData, Normalization};
use dlkit::history::EpochRecord;
use dlkit::models::{init, Mlp, MlpConfig, Network, ResNet, ResNetConfig};
use dlkit::optim::{vars_in_name_order, OptimizerConfig};
use dlkit::train::{Progress, Trainer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts the bytes allocated and not yet freed, on all threads.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's resident set size in bytes (Linux), `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory figures after one epoch.
#[derive(Debug, Clone, Copy)]
struct Sample {
    resident: u64,
    live: isize,
}

/// Records the figures after each epoch.
struct MemoryPerEpoch(Rc<RefCell<Vec<Sample>>>);

impl Callback for MemoryPerEpoch {
    fn name(&self) -> &str {
        "memory_per_epoch"
    }

    fn on_epoch_end(&mut self, _record: &mut EpochRecord, _ctx: &mut Context) -> dlkit::Result<()> {
        let resident = resident_bytes().unwrap_or(0);
        self.0.borrow_mut().push(Sample { resident, live: LIVE.load(Ordering::Relaxed) });
        Ok(())
    }
}

/// Allocates and fills `bytes` after every step and never frees them: a leak on purpose.
struct LeakEachStep(usize);

impl Callback for LeakEachStep {
    fn name(&self) -> &str {
        "leak_each_step"
    }

    fn on_batch_end(&mut self, _batch: &BatchLogs, _ctx: &mut Context) -> dlkit::Result<()> {
        std::mem::forget(vec![1u8; self.0]); // written, so resident
        Ok(())
    }
}

/// `n` seeded random 3×32×32 images, labels cycling over ten classes.
fn synthetic(n: usize, seed: u64) -> DeviceData {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let images = (0..n * 3072)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    let classes = (0..10).map(|c| format!("class{c}")).collect();
    let data = Dataset::new(images, labels, (3, 32, 32), classes).unwrap();
    DeviceData::new(&data, &Device::Cpu, Normalization::UnitRange).unwrap()
}

const EPOCHS: usize = 20;
const STEPS: usize = 8;
const MIB: f64 = 1024.0 * 1024.0;

/// Train `model` for 20 epochs of 8 steps of `batch` images; the figures after each epoch.
fn train(
    name: &str,
    model: &dyn Network,
    varmap: &VarMap,
    optimizer: &str,
    batch: usize,
    augment: bool,
    leak: Option<usize>,
) -> Vec<Sample> {
    let (train, val) = (synthetic(STEPS * batch, 1), synthetic(4 * batch, 2));
    let mut opt = OptimizerConfig::from_name(optimizer, None)
        .unwrap()
        .build(vars_in_name_order(varmap))
        .unwrap();
    let samples = Rc::new(RefCell::new(Vec::new()));
    let mut trainer = Trainer::new(model, varmap, &mut opt)
        .epochs(EPOCHS)
        .batch_size(batch)
        .progress(Progress::Quiet)
        .callback(MemoryPerEpoch(samples.clone()));
    if augment {
        let shift_flip = Augmentation { shift_flip: Some(ShiftFlip::default()), ..Augmentation::none() };
        trainer = trainer.augment(shift_flip);
    }
    if let Some(bytes) = leak {
        trainer = trainer.callback(LeakEachStep(bytes));
    }
    let start = std::time::Instant::now();
    trainer.fit(&train, Some(&val)).unwrap();
    let samples = samples.borrow().clone();
    let list = |f: &dyn Fn(&Sample) -> f64| {
        samples.iter().map(|s| format!("{:.1}", f(s) / MIB)).collect::<Vec<_>>().join(" ")
    };
    println!("{name} ({:.1} s)", start.elapsed().as_secs_f64());
    println!("  resident after each epoch (MiB): {}", list(&|s| s.resident as f64));
    println!("  live heap after each epoch (MiB): {}", list(&|s| s.live as f64));
    samples
}

/// Growth from the end of epoch 5 to the end of epoch 20 in MiB: (resident, live heap).
fn growth(name: &str, samples: &[Sample]) -> (f64, f64) {
    let (a, b) = (samples[4], samples[EPOCHS - 1]);
    let resident = (b.resident as f64 - a.resident as f64) / MIB;
    let live = (b.live - a.live) as f64 / MIB;
    println!("  {name}: growth from epoch 5 to epoch 20: resident {resident:+.2} MiB, live heap {live:+.3} MiB");
    (resident, live)
}

/// Bound on the resident set's growth from epoch 5 to 20. Generous: the first epochs settle
/// the allocator's arenas and candle's buffers, later ones may still move a few MiB. A leak
/// that reaches fresh pages shows: 15 epochs of 8 steps leave 120 copies of what leaks each
/// step, 16 MiB for 137 KiB a step. For scale, a batch of MLP inputs is 32 × 3072 × 4 bytes =
/// 384 KiB; of ResNet-8 inputs, 16 × 3072 × 4 = 192 KiB.
const RESIDENT_BOUND_MIB: f64 = 16.0;

/// Bound on the live heap's growth from epoch 5 to 20. The loop keeps a record per epoch
/// (a few hundred bytes) and nothing else should outlive an epoch; 1 MiB over 120 steps is
/// exceeded by a leak of 8.6 KiB a step or more.
const LIVE_BOUND_MIB: f64 = 1.0;

#[test]
fn memory_stays_flat_over_20_epochs() {
    if resident_bytes().is_none() {
        println!("skipped: /proc/self/status has no VmRSS (not Linux)");
        return;
    }
    let device = Device::Cpu;

    // The control, first, while the process has little freed memory to hide a leak in: a
    // small MLP whose callback leaks 160 KiB a step (18.75 MiB over epochs 6 to 20).
    let vm = VarMap::new();
    let small = MlpConfig { inputs: 3072, hidden: vec![32], ..MlpConfig::cifar10() };
    let small = Mlp::new(init::seeded(&vm, 5, DType::F32, &device), &small).unwrap();
    let samples = train(
        "control: MLP 3072-32-10, SGD, leaking 160 KiB a step",
        &small,
        &vm,
        "sgd",
        32,
        false,
        Some(160 << 10),
    );
    let (_, leak_live) = growth("control", &samples);

    // An MLP with dropout (masks drawn each step) and Adam (slot variables), batch 32.
    let vm = VarMap::new();
    let cfg = MlpConfig {
        inputs: 3072,
        hidden: vec![256, 256],
        seed: 3,
        ..MlpConfig::cifar10().with_dropout()
    };
    let mlp = Mlp::new(init::seeded(&vm, 3, DType::F32, &device), &cfg).unwrap();
    let samples = train(
        "MLP 3072-256-256-10 with dropout, Adam, batch 32",
        &mlp,
        &vm,
        "adam",
        32,
        false,
        None,
    );
    let (mlp_resident, mlp_live) = growth("MLP", &samples);

    // ResNet-8 (batch norm statistics, L2 penalty), shift + flip, SGD with momentum, batch 16.
    let vm = VarMap::new();
    let resnet =
        ResNet::new(init::seeded(&vm, 4, DType::F32, &device), ResNetConfig::cifar10(8)).unwrap();
    let samples = train(
        "ResNet-8, shift+flip, SGD momentum, batch 16",
        &resnet,
        &vm,
        "momentum",
        16,
        true,
        None,
    );
    let (resnet_resident, resnet_live) = growth("ResNet-8", &samples);

    assert!(leak_live > LIVE_BOUND_MIB, "the control's leak went unseen: {leak_live:.2} MiB");
    assert!(mlp_resident < RESIDENT_BOUND_MIB, "MLP: resident set grew {mlp_resident:.1} MiB");
    assert!(mlp_live < LIVE_BOUND_MIB, "MLP: live heap grew {mlp_live:.2} MiB");
    assert!(
        resnet_resident < RESIDENT_BOUND_MIB,
        "ResNet-8: resident set grew {resnet_resident:.1} MiB"
    );
    assert!(resnet_live < LIVE_BOUND_MIB, "ResNet-8: live heap grew {resnet_live:.2} MiB");
}
