//! Process-wide settings that CPU training needs to run at full speed.
//!
//! Measured on ResNet-20 (batch 64, 2 cores), two defaults cost the training step about a third
//! of its time:
//! - glibc hands freed buffers above a moving threshold back to the OS (`munmap`, heap trim), so
//!   every tensor op of the next step page-faults its output in again. [`tune_cpu`] raises the
//!   mmap threshold to 32 MiB and the trim threshold to 2 GiB: freed memory stays in the process
//!   and is reused (the resident size then stays near the step's peak).
//! - candle's pool for element-wise ops spins 25,000 times before it sleeps, on the cores that
//!   the GEMM and convolution workers need next. [`tune_cpu`] lowers the spin limit to 1,000
//!   (`CANDLE_BARRIER_POOL_SPIN_LIMIT`) unless the environment already sets it.
//!
//! candle reads the spin limit once, when its pool starts (on the first large element-wise op),
//! so [`tune_cpu`] must come before any tensor work: the `dlkit` binary calls it first in
//! `main`, notebooks through `experiment::device_from_name` (their first dlkit call), and
//! `Trainer::fit` and the benchmarks call it again (a no-op by then; if the pool had already
//! started, only the allocator settings take effect). Calling it again does nothing.

use std::sync::Once;

/// The spin limit set for candle's element-wise thread pool.
pub const BARRIER_POOL_SPIN_LIMIT: &str = "1000";

/// Applies the settings above once per process (see the module documentation).
pub fn tune_cpu() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tune_allocator();
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            // SAFETY: `set_var` races with environment reads on other threads. It runs once,
            // from the thread that goes on to do the tensor work, and dlkit starts no thread
            // that reads the environment; candle's pool reads the variable on that same thread.
            unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", BARRIER_POOL_SPIN_LIMIT) };
        }
    });
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
