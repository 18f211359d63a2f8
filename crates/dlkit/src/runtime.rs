//! Process-wide settings that CPU training needs to run at full speed.
//!
//! [`tune_cpu`] applies them. The `dlkit` binary calls it first in `main`, notebooks through
//! `experiment::device_from_name` (their first dlkit call), and `Trainer::fit` and the
//! benchmarks call it again; calling it again is cheap (see below).
//!
//! **Allocator.** Measured on ResNet-20 (batch 64, 2 cores), glibc handed freed buffers above a
//! moving threshold back to the OS (`munmap`, heap trim), so every tensor op of the next step
//! page-faulted its output in again. [`tune_cpu`] raises the mmap threshold to 32 MiB and the
//! trim threshold to 2 GiB: freed memory stays in the process and is reused (the resident size
//! then stays near the step's peak).
//!
//! **candle's spin limit.** candle's pool for element-wise ops spins 25,000 times before it
//! sleeps, on the cores that the GEMM and convolution workers need next. [`tune_cpu`] lowers the
//! spin limit to 1,000 (`CANDLE_BARRIER_POOL_SPIN_LIMIT`) unless the environment already sets
//! it. candle reads it once, when that pool starts, so it only takes effect if [`tune_cpu`]
//! comes before any large element-wise op.
//!
//! **Subnormal floats.** x86 cores take a slow microcode path for floating-point operations
//! whose input or result is subnormal (|x| < 1.2e-38 in f32). As training goes on, some values
//! drift into that range: a 5-epoch CIFAR-10 MLP run with Nadam went from ~24 s to 600+ s per
//! epoch, nearly all of it in the GEMM micro-kernels. Measured on 10,000 CIFAR-10 images (Nadam,
//! L2 0.01): after 5 epochs 15,000 of the first layer's 3.07 M weights and 20,000 of their
//! gradients were subnormal, 110,000 and 126,000 after 8, and an epoch took 6× the CPU time of
//! the first; with the mode below it stayed flat. [`tune_cpu`] turns on flush-to-zero (subnormal results become 0) and
//! denormals-are-zero (subnormal inputs read as 0) — MXCSR bits 15 and 6 on x86/x86-64, FPCR.FZ
//! (bit 24, which does both) on AArch64 — as GPUs and PyTorch's CPU kernels with
//! `torch.set_flush_denormal(True)` do. The mode is per thread, and a thread starts with the mode
//! of the thread that created it. So [`tune_cpu`] sets it on the calling thread (on every call:
//! a notebook may run cells on different threads) and, once per process, on every worker of the
//! pools that do float work: rayon's global pool (the `gemm` crate, dlkit's kernels), candle's
//! private rayon pool (`Device::with_context`) and candle's barrier pool (element-wise ops). Each
//! pool is started if it was not running yet, so its workers are created by a thread that
//! already has the mode; pools that were already running (a notebook kernel that did tensor
//! work before its first dlkit call) are reached by running a task on each of their workers.
//!
//! The mode holds for the whole process: **a student's own code in the same process (e.g. a
//! notebook cell computing with `f32`/`f64` after a dlkit call) also flushes subnormals to
//! zero.** Values below 1.2e-38 (f32) or 2.2e-308 (f64) become 0; nothing else changes.
//! Set `DLKIT_KEEP_SUBNORMALS=1` before the first dlkit call to leave the mode alone (for
//! numerical experiments; training may then slow down by an order of magnitude).

use std::sync::Once;

/// The spin limit set for candle's element-wise thread pool.
pub const BARRIER_POOL_SPIN_LIMIT: &str = "1000";

/// Environment variable that, when set (to anything but `0`), keeps subnormal floats.
pub const KEEP_SUBNORMALS_ENV: &str = "DLKIT_KEEP_SUBNORMALS";

/// Applies the settings above: allocator and spin limit once per process, flush-to-zero on the
/// calling thread every call and on the thread pools once (see the module documentation).
pub fn tune_cpu() {
    static ONCE: Once = Once::new();
    let flush = flush_subnormals_wanted();
    if flush {
        flush_subnormals_on_this_thread();
    }
    ONCE.call_once(|| {
        tune_allocator();
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            // SAFETY: `set_var` races with environment reads on other threads. It runs once,
            // from the thread that goes on to do the tensor work, and dlkit starts no thread
            // that reads the environment; candle's pool reads the variable on this thread, below.
            unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", BARRIER_POOL_SPIN_LIMIT) };
        }
        if flush {
            flush_subnormals_in_pools();
        }
    });
}

/// Whether subnormals are to be flushed (unless `DLKIT_KEEP_SUBNORMALS` is set and not `0`).
fn flush_subnormals_wanted() -> bool {
    std::env::var_os(KEEP_SUBNORMALS_ENV).is_none_or(|v| v == "0")
}

/// Turns on flush-to-zero and denormals-are-zero for the calling thread only.
pub fn flush_subnormals_on_this_thread() {
    #[cfg(any(target_arch = "x86_64", all(target_arch = "x86", target_feature = "sse")))]
    {
        // MXCSR bit 15: flush-to-zero (results); bit 6: denormals-are-zero (inputs).
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write the calling thread's SSE control register
        // through a pointer to a local; only the two mode bits change.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // FPCR bit 24 (FZ): subnormal inputs and results are flushed to zero.
        const FZ: u64 = 1 << 24;
        // SAFETY: FPCR is the calling thread's floating-point control register, writable at EL0;
        // only the FZ bit changes.
        unsafe {
            let fpcr: u64;
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr | FZ, options(nomem, nostack, preserves_flags));
        }
    }
}

/// Whether the calling thread flushes subnormal results to zero (`false` on architectures where
/// dlkit does not set the mode).
pub fn flushes_subnormals() -> bool {
    let tiny = std::hint::black_box(1e-20f32);
    // 1e-40 is subnormal in f32: flushed to 0 in the mode, kept otherwise.
    std::hint::black_box(tiny * tiny) == 0.0
}

/// Runs [`flush_subnormals_on_this_thread`] on every worker of rayon's global pool, candle's
/// rayon pool and candle's barrier pool (starting each one that is not running yet).
fn flush_subnormals_in_pools() {
    // A broadcast runs once on every thread of the pool it is called in (the global pool here).
    rayon::broadcast(|_| flush_subnormals_on_this_thread());
    candle_core::utils::with_threadpool(|| rayon::broadcast(|_| flush_subnormals_on_this_thread()));
    // `execute` runs the task once on each barrier-pool worker and on the calling thread.
    candle_core::utils::barrier_pool().execute(|_| flush_subnormals_on_this_thread());
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// This machine in words, for records and reports: the CPU model and the threads training uses
/// (e.g. `Intel(R) Xeon(R) Processor, 2 threads`).
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{model}, {threads} threads")
}

/// Which implementation runs the layers, activations and optimizer updates on the CPU.
///
/// `Dlkit` (the default) uses the hand-written kernels of [`crate::kernels`] and the fused
/// optimizer update. `Candle` uses candle's own convolution, batch norm, pooling, activations,
/// dense layers and L2 sums and the optimizers' tensor-op path: the code that runs on CUDA, so
/// that path can be tested (and compared) on a machine without a GPU. Choose it with
/// [`set_kernels`], or with the environment variable `DLKIT_KERNELS=candle` (read on first
/// use). It applies to the layers' next forward pass and to optimizers built after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kernels {
    /// dlkit's CPU kernels (the default).
    Dlkit,
    /// candle's ops, as on CUDA.
    Candle,
}

/// The environment variable that picks the [`Kernels`] (`dlkit` or `candle`).
pub const KERNELS_ENV: &str = "DLKIT_KERNELS";

/// 0: not decided yet; 1: dlkit; 2: candle.
static KERNELS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl Kernels {
    /// Parse `dlkit` or `candle` (any case).
    pub fn from_name(name: &str) -> crate::Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "dlkit" => Ok(Kernels::Dlkit),
            "candle" => Ok(Kernels::Candle),
            other => Err(crate::Error::Config(format!("{KERNELS_ENV}: unknown kernels `{other}`: use dlkit or candle"))),
        }
    }
}

impl Kernels {
    /// The value stored in `KERNELS` for this choice (0 means not decided yet).
    fn code(self) -> u8 {
        match self {
            Kernels::Dlkit => 1,
            Kernels::Candle => 2,
        }
    }
}

/// Use `kernels` from now on (see [`Kernels`]).
pub fn set_kernels(kernels: Kernels) {
    KERNELS.store(kernels.code(), std::sync::atomic::Ordering::Relaxed);
}

/// The kernels in use: the last [`set_kernels`], else `DLKIT_KERNELS`, else `Dlkit`. An
/// unrecognised `DLKIT_KERNELS` is reported once on stderr and the default is used.
pub fn kernels() -> Kernels {
    match KERNELS.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Kernels::Dlkit,
        2 => Kernels::Candle,
        _ => {
            let chosen = match std::env::var(KERNELS_ENV) {
                Ok(name) => Kernels::from_name(&name).unwrap_or_else(|e| {
                    eprintln!("warning: {e}; using dlkit's kernels");
                    Kernels::Dlkit
                }),
                Err(_) => Kernels::Dlkit,
            };
            // Only the first reader decides; a concurrent `set_kernels` wins over the environment.
            let _ = KERNELS.compare_exchange(0, chosen.code(), std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed);
            kernels()
        }
    }
}
