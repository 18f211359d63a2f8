//! `Σ w²` of a weight tensor (the L2 penalty's sum) as one custom op: one read of the weights
//! forward, one scaled copy backward (`d/dw = 2·g·w`).
//!
//! candle's `w.sqr().sum_all()` writes `w²` out forward, and backward multiplies by the
//! broadcast upstream gradient and then by 2 in two more full passes, each into a fresh buffer.
//! On the section-1 MLP (4.1 M kernel weights, L2 0.01) those passes cost more than the
//! optimizer's update.

use super::{f32_slice, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Values per partial sum: the sum is split the same way whatever the number of threads, so
/// the result does not depend on it.
const CHUNK: usize = 1 << 14;

/// `Σ v²`, accumulated in `f64` over fixed chunks, the chunks added in order.
pub fn sum_of_squares_slice(values: &[f32]) -> f64 {
    let partials: Vec<f64> = values
        .par_chunks(CHUNK)
        .map(|chunk| chunk.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
        .collect();
    partials.iter().sum()
}

struct SumOfSquares;

impl CustomOp1 for SumOfSquares {
    fn name(&self) -> &'static str {
        "dlkit-sum-of-squares"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let sum = sum_of_squares_slice(f32_slice(storage, layout, self.name())?);
        Ok((CpuStorage::F32(vec![sum as f32]), Shape::from(())))
    }

    fn bwd(&self, w: &Tensor, _sum: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let scale = 2.0 * grad.to_scalar::<f32>()?;
        let dw: Vec<f32> = with_f32(w, self.name(), |v| Ok(v.par_iter().map(|&x| scale * x).collect()))?;
        Ok(Some(Tensor::from_vec(dw, w.shape(), w.device())?))
    }
}

/// `Σ w²` as a scalar tensor: the kernel above on CPU `f32` tensors, `w.sqr().sum_all()`
/// elsewhere.
pub fn sum_of_squares(w: &Tensor) -> Result<Tensor> {
    if super::applies_to(w) {
        w.contiguous()?.apply_op1(SumOfSquares)
    } else {
        w.sqr()?.sum_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn sum_and_gradient_match_hand_values() {
        let w = Var::from_vec(vec![1f32, -2., 3., 0.5], (2, 2), &Device::Cpu).unwrap();
        let s = sum_of_squares(w.as_tensor()).unwrap();
        assert_eq!(s.to_scalar::<f32>().unwrap(), 14.25);
        // loss = 3·Σw² → d/dw = 6w.
        let grads = s.affine(3.0, 0.0).unwrap().backward().unwrap();
        assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>().unwrap(), [[6.0, -12.0], [18.0, 3.0]]);
    }

    #[test]
    fn long_sums_do_not_depend_on_the_thread_count() {
        let values: Vec<f32> = (0..100_003).map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3).collect();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| sum_of_squares_slice(&values));
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(|| sum_of_squares_slice(&values));
        assert_eq!(one.to_bits(), three.to_bits());
        let exact: f64 = values.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((one - exact).abs() <= 1e-9 * exact, "{one} vs {exact}");
    }
}
