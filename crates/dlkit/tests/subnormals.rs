//! `runtime::tune_cpu` flushes subnormal floats to zero on every thread that does float work.
//!
//! One test in its own binary: the mode is process-wide, so the "before" half must run before
//! anything else in the process calls `tune_cpu`.

use std::hint::black_box;
use std::sync::Mutex;

/// 1e-20 · 1e-20 = 1e-40, below f32's smallest normal number (1.18e-38): a subnormal result,
/// which flush-to-zero turns into 0.
fn subnormal_product() -> f32 {
    black_box(1e-20f32) * black_box(1e-20f32)
}

/// A subnormal input (1e-40, built from its bits so no arithmetic flushes it) times 1e30 is 1e-10
/// when it is read as it is, and 0 when denormals-are-zero reads it as 0.
fn subnormal_input_times_large() -> f32 {
    let tiny = f32::from_bits(black_box(0x0001_16C2)); // ≈ 1.0e-40
    tiny * black_box(1e30f32)
}

#[test]
fn after_tune_cpu_subnormals_are_flushed_on_every_thread_that_does_float_work() {
    // Before: the main thread and a fresh pool keep subnormals (so the checks below can fail).
    assert!(subnormal_product() > 0.0, "subnormals already flushed before tune_cpu");
    assert!((subnormal_input_times_large() - 1e-10).abs() < 1e-12);
    let before: Vec<f32> = rayon::broadcast(|_| subnormal_product());
    assert!(before.iter().all(|&p| p > 0.0), "global pool already flushes: {before:?}");

    dlkit::runtime::tune_cpu();

    assert!(dlkit::runtime::flushes_subnormals());
    assert_eq!(subnormal_product(), 0.0, "main thread");
    assert_eq!(subnormal_input_times_large(), 0.0, "main thread, subnormal input");
    // rayon's global pool, which existed before tune_cpu (the broadcast above started it).
    let global: Vec<(f32, f32)> = rayon::broadcast(|_| (subnormal_product(), subnormal_input_times_large()));
    assert_eq!(global.len(), rayon::current_num_threads());
    assert!(global.iter().all(|&(a, b)| a == 0.0 && b == 0.0), "rayon global pool: {global:?}");
    // candle's private rayon pool.
    let candle: Vec<(f32, f32)> = candle_core::utils::with_threadpool(|| {
        rayon::broadcast(|_| (subnormal_product(), subnormal_input_times_large()))
    });
    assert!(candle.iter().all(|&(a, b)| a == 0.0 && b == 0.0), "candle's rayon pool: {candle:?}");
    // candle's barrier pool: each worker and the caller run the task once.
    let barrier = Mutex::new(Vec::new());
    candle_core::utils::barrier_pool()
        .execute(|tid| barrier.lock().unwrap().push((tid, subnormal_product(), subnormal_input_times_large())));
    let barrier = barrier.into_inner().unwrap();
    assert_eq!(barrier.len(), candle_core::utils::barrier_pool().n_workers() + 1);
    assert!(barrier.iter().all(|&(_, a, b)| a == 0.0 && b == 0.0), "candle's barrier pool: {barrier:?}");
    // A thread started after tune_cpu by a thread that has the mode inherits it.
    assert_eq!(std::thread::spawn(subnormal_product).join().unwrap(), 0.0, "spawned thread");

    // End to end: candle's element-wise multiply (large enough to use its barrier pool) and
    // matmul (gemm on rayon's global pool) of values whose products are subnormal give zeros.
    let dev = candle_core::Device::Cpu;
    let a = candle_core::Tensor::full(1e-20f32, 1 << 18, &dev).unwrap();
    let product = (&a * &a).unwrap().to_vec1::<f32>().unwrap();
    assert!(product.iter().all(|&p| p == 0.0), "element-wise product kept a subnormal");
    let m = candle_core::Tensor::full(1e-20f32, (256, 256), &dev).unwrap();
    let mm = m.matmul(&m).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Each entry sums 256 products of 1e-40: 2.56e-38 without the mode, 0 with it.
    assert!(mm.iter().all(|&p| p == 0.0), "matmul kept subnormal products: {}", mm[0]);
}
