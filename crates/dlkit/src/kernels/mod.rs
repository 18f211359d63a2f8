//! Hand-written CPU kernels for the hot spots of training, as candle custom ops.
//!
//! candle's CPU backend computes a convolution's gradients with a transposed convolution and a
//! convolution whose kernel is the whole image, and batch norm as a chain of a dozen broadcast
//! ops, each with its own backward. On the coursework's ResNets that made the backward pass
//! 5–20× slower than the forward. The kernels here keep candle's API (the ops are
//! [`candle_core::CustomOp2`] / [`candle_core::CustomOp3`] with their own `bwd`), so autograd,
//! optimizers and `VarMap`s work unchanged:
//! - [`conv`]: convolution as im2col + GEMM, forward and both backward passes;
//! - [`batch_norm`]: training-mode batch norm in two passes over the data, forward and backward,
//!   with the ReLU that follows it fused in where a model has one;
//! - [`linear`]: the dense layer `x·wᵀ + b`, forward and backward, each gradient written once in
//!   its weight's layout (candle's matmul + transpose leaves the kernel gradient transposed, and
//!   every later element-wise op on it strided);
//! - [`penalty`]: `Σ w²` for the L2 penalty, one pass forward and one backward;
//! - [`activation`]: ReLU and the residual add + ReLU with one-pass backward passes;
//! - [`pool`]: max pooling with overlapping windows and its backward pass;
//! - [`soft_mask`]: the attention network's nearest up-sampling (with its skip connection's
//!   add) and its gate `(1 + σ(m))·t`, one pass each way;
//! - [`winograd`]: 3×3 stride-1 convolution by Winograd's F(2×2, 3×3), which [`conv`] uses for
//!   the forward pass and both gradients of the layers where it pays.
//!
//! They run on CPU `f32` tensors ([`applies_to`]); the layers in `models::layers` check that and
//! fall back to candle's own ops on any other device or dtype, so the same model code runs on CUDA
//! (and on the CPU with `runtime::set_kernels(Kernels::Candle)`, to test that path).

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod linear;
pub mod penalty;
pub mod pool;
pub mod soft_mask;
pub mod winograd;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};

/// Whether the CPU kernels apply to `t`: an `f32` tensor on the CPU, with
/// [`crate::runtime::Kernels::Dlkit`] selected (with `Candle`, the layers take candle's ops, as
/// on CUDA).
pub fn applies_to(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && crate::runtime::kernels() == crate::runtime::Kernels::Dlkit
}

/// The `f32` values of a contiguous CPU storage, as the custom ops receive it.
pub(crate) fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op}: expected f32 values")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// Runs `f` on the `f32` values of a CPU tensor (made contiguous first if needed).
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(f32_slice(cpu, layout, op)?),
        _ => candle_core::bail!("{op}: the CPU kernel got a tensor on another device"),
    }
}

/// A layer's bias as a contiguous tensor, or zeros (one per output, `w`'s first dimension) for a
/// layer without one: the custom ops always take a bias.
pub(crate) fn bias_or_zeros(bias: Option<&Tensor>, w: &Tensor) -> Result<Tensor> {
    match bias {
        Some(b) => b.contiguous(),
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device()),
    }
}

/// A buffer of `len` floats for an output that its kernel writes in full before anything reads
/// it, so it is not zero-filled first (that fill was one more pass over every activation and
/// gradient of a step). Its contents are unspecified until written, like candle's own
/// `alloc_uninit`; debug builds (the tests) fill it with NaN, so that a kernel leaving any
/// element unwritten fails its comparisons.
#[allow(clippy::uninit_vec)]
pub(crate) fn output_buffer(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    if cfg!(debug_assertions) {
        v.resize(len, f32::NAN);
    } else {
        // SAFETY: the capacity is `len`; every bit pattern is an `f32`, and each caller writes
        // every element before reading it (the NaN fill of debug builds checks that in tests).
        unsafe { v.set_len(len) };
    }
    v
}

/// A custom op's gradient for `like` as a tensor of its shape, or `None` when `like` is not
/// tracked (no gradient asked for) or none was computed.
pub(crate) fn gradient_tensor(values: Option<Vec<f32>>, like: &Tensor) -> Result<Option<Tensor>> {
    values.filter(|_| like.track_op()).map(|v| Tensor::from_vec(v, like.shape(), like.device())).transpose()
}

/// A row-major or transposed view of a matrix inside a slice: element (r, c) is at
/// `r * row_stride + c * col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub values: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(values: &'a [f32], cols: usize) -> Self {
        MatRef { values, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(values: &'a [f32], cols: usize) -> Self {
        MatRef { values, row_stride: 1, col_stride: cols }
    }

    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
            assert!(last < self.values.len(), "matrix view out of bounds");
        }
    }
}

/// `dst (m × n, row-major) = a (m × k) · b (k × n)`, or `dst += a · b` when `accumulate`.
///
/// A safe wrapper around the `gemm` crate (the kernels candle's own matmul uses), single-threaded:
/// the callers parallelise over images.
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    check_product(m, n, k, dst.len(), a, b);
    // SAFETY: bounds checked; `dst` is borrowed uniquely, so it aliases neither input.
    unsafe { gemm_raw(m, n, k, Dst(dst.as_mut_ptr()), n, a, b, accumulate) }
}

/// [`matmul`] for one large product (a dense layer's), its output split into one block of
/// columns (or rows, for tall products) per thread of the current rayon pool, each block a
/// single-threaded product. The `gemm` crate's own threading split two threads worse (MLP
/// evaluation on a 2-core Intel Xeon: 18.6–19.5k samples/s with it, 25.9–26.9k with this split);
/// each element is still summed in the same order whatever the number of threads.
pub(crate) fn matmul_parallel(m: usize, n: usize, k: usize, dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    use rayon::prelude::*;
    check_product(m, n, k, dst.len(), a, b);
    let threads = rayon::current_num_threads().max(1);
    let (by_columns, extent) = if n >= m { (true, n) } else { (false, m) };
    // Blocks of whole 16-float vectors, so that every block but the last runs full-width kernels.
    let size = extent.div_ceil(threads).next_multiple_of(16);
    if threads == 1 || m * n * k < 1 << 20 || size >= extent {
        return matmul(m, n, k, dst, a, b, accumulate);
    }
    let base = Dst(dst.as_mut_ptr());
    (0..extent).step_by(size).collect::<Vec<_>>().into_par_iter().for_each(|start| {
        let len = size.min(extent - start);
        // SAFETY: bounds checked above for the whole product; each task writes its own block
        // of columns (or rows) of `dst`, which the caller borrows uniquely.
        unsafe {
            if by_columns {
                let b = MatRef { values: &b.values[start * b.col_stride..], ..b };
                gemm_raw(m, len, k, base.offset(start), n, a, b, accumulate)
            } else {
                let a = MatRef { values: &a.values[start * a.row_stride..], ..a };
                gemm_raw(len, n, k, base.offset(start * n), n, a, b, accumulate)
            }
        }
    });
}

/// The bounds every product checks before touching memory: `dst` holds `m × n` and the views
/// hold `m × k` and `k × n`.
fn check_product(m: usize, n: usize, k: usize, dst_len: usize, a: MatRef, b: MatRef) {
    assert!(dst_len >= m * n, "matmul destination too small");
    a.check(m, k);
    b.check(k, n);
}

/// A destination pointer that the tasks of [`matmul_parallel`] share, each writing its own block.
#[derive(Clone, Copy)]
struct Dst(*mut f32);

// SAFETY: tasks given copies of a `Dst` write disjoint parts of it (see matmul_parallel).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    /// The pointer `count` values further on.
    unsafe fn offset(self, count: usize) -> Dst {
        Dst(self.0.add(count))
    }
}

/// `dst (m × n, row stride ldc) = a · b` (or `+=`) on this thread, through the `gemm` crate.
///
/// # Safety
/// `dst` must be valid for writes of `m` rows of `n` values `ldc` apart and alias neither view;
/// the views must hold `m × k` and `k × n`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(m: usize, n: usize, k: usize, dst: Dst, ldc: usize, a: MatRef, b: MatRef, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| std::slice::from_raw_parts_mut(dst.offset(i * ldc).0, n).fill(0.0));
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        1,
        ldc as isize,
        accumulate,
        a.values.as_ptr(),
        a.col_stride as isize,
        a.row_stride as isize,
        b.values.as_ptr(),
        b.col_stride as isize,
        b.row_stride as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_hand_product_including_transposed_views() {
        // a = [[1,2,3],[4,5,6]], b = [[1,0],[0,1],[1,1]] → a·b = [[4,5],[10,11]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut dst = [0.0; 4];
        matmul(2, 2, 3, &mut dst, MatRef::rows(&a, 3), MatRef::rows(&b, 2), false);
        assert_eq!(dst, [4.0, 5.0, 10.0, 11.0]);
        // Accumulate, with bᵀ stored as [[1,0,1],[0,1,1]] and read transposed.
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        matmul(2, 2, 3, &mut dst, MatRef::rows(&a, 3), MatRef::transposed(&bt, 3), true);
        assert_eq!(dst, [8.0, 10.0, 20.0, 22.0]);
    }

    #[test]
    fn threads_split_a_product_without_changing_a_bit() {
        // Wide (split by columns) and tall (split by rows) products, each big enough to split,
        // against the single-threaded product: every element is summed in the same order.
        for &(m, n, k) in &[(37, 1001, 129), (700, 45, 300)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
            let (a, b) = (MatRef::rows(&a, k), MatRef::transposed(&w, k));
            let mut one = vec![0.5; m * n];
            matmul(m, n, k, &mut one, a, b, true);
            for threads in [2, 3, 7] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut many = vec![0.5; m * n];
                pool.install(|| matmul_parallel(m, n, k, &mut many, a, b, true));
                assert!(one == many, "{m}×{n}×{k}: {threads} threads changed the result");
            }
        }
    }
}
