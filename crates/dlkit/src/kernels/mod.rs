//! Hand-written CPU kernels for the hot spots of training, as candle custom ops.
//!
//! candle's CPU backend computes a convolution's gradients with a transposed convolution and a
//! convolution whose kernel is the whole image, and batch norm as a chain of a dozen broadcast
//! ops, each with its own backward. On the coursework's ResNets that made the backward pass
//! 5–20× slower than the forward. The kernels here keep candle's API (the ops are
//! [`candle_core::CustomOp2`] / [`candle_core::CustomOp3`] with their own `bwd`), so autograd,
//! optimizers and `VarMap`s work unchanged:
//! - [`conv`]: convolution as im2col + GEMM, forward and both backward passes;
//! - [`batch_norm`]: training-mode batch norm in two passes over the data, forward and backward;
//! - [`linear`]: the dense layer `x·wᵀ + b`, forward and backward, each gradient written once in
//!   its weight's layout (candle's matmul + transpose leaves the kernel gradient transposed, and
//!   every later element-wise op on it strided);
//! - [`penalty`]: `Σ w²` for the L2 penalty, one pass forward and one backward;
//! - [`activation`]: ReLU and the residual add + ReLU with one-pass backward passes;
//! - [`pool`]: max pooling with overlapping windows and its backward pass;
//! - `sgemm`: the dense layers' matrix products on x86-64 CPUs with AVX-512 (packed, blocked,
//!   an 8 × 32 register tile); other CPUs, and the convolutions' per-image products, use the
//!   `gemm` crate.
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
#[cfg(target_arch = "x86_64")]
pub(crate) mod sgemm;

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
/// the callers parallelise over images. (On the convolutions' per-image products [`sgemm`] was
/// faster alone but slower inside a training step: it packs the im2col matrix, which `gemm`
/// reads in place.)
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    gemm_f32(m, n, k, dst, a, b, accumulate, gemm::Parallelism::None)
}

/// [`matmul`] spread over the current rayon pool's threads, for one large product such as a
/// dense layer's: [`sgemm`] where the CPU has AVX-512, the `gemm` crate elsewhere. Both split the output into blocks, not the sum over `k`, so
/// each element is summed in the same order whatever the number of threads.
pub(crate) fn matmul_parallel(m: usize, n: usize, k: usize, dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    if sgemm::available() {
        return sgemm::matmul_threads(m, n, k, dst, a, b, accumulate);
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    gemm_f32(m, n, k, dst, a, b, accumulate, parallelism)
}

#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert!(dst.len() >= m * n, "matmul destination too small");
    a.check(m, k);
    b.check(k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the bounds of all three matrices were checked above; dst does not alias a or b
    // (it is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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
            parallelism,
        )
    }
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
    fn the_gemm_crate_and_sgemm_agree_on_a_threaded_dense_product() {
        // matmul_parallel takes sgemm on AVX-512 CPUs and the gemm crate elsewhere: both run
        // here (gemm_f32 directly), so the path other CPUs take is tested on this one too.
        let (m, n, k) = (37, 301, 129);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let mut threaded = vec![0.5; m * n];
        pool.install(|| matmul_parallel(m, n, k, &mut threaded, MatRef::rows(&a, k), MatRef::transposed(&w, k), true));
        let mut crate_path = vec![0.5; m * n];
        gemm_f32(m, n, k, &mut crate_path, MatRef::rows(&a, k), MatRef::transposed(&w, k), true, gemm::Parallelism::Rayon(3));
        for (x, y) in threaded.iter().zip(&crate_path) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
