//! ReLU, and the residual block's "add, then ReLU", with one-pass backward passes.
//!
//! candle differentiates `relu` with four full-size passes (`x ≥ 0` as bytes, a zero tensor,
//! a conversion to floats, a multiplication); here the backward pass is one: `dx = dy` where the
//! output is positive, else 0 (the subgradient at 0 is 0, as in PyTorch). `add_relu(a, b)`
//! computes `max(a + b, 0)` in one pass and hands the same gradient to both inputs.

use super::{f32_slice, output_buffer, with_f32};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 15;

/// `dy` where `y > 0`, else 0.
fn masked_gradient(y: &Tensor, dy: &Tensor, op: &str) -> Result<Tensor> {
    let dx = with_f32(y, op, |y| {
        with_f32(dy, op, |dy| {
            let mut dx = output_buffer(y.len());
            dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (y, dy))| {
                for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                    *dx = if y > 0.0 { dy } else { 0.0 };
                }
            });
            Ok(dx)
        })
    })?;
    Tensor::from_vec(dx, y.shape(), y.device())
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "dlkit-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let mut y = output_buffer(x.len());
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(0.0));
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        masked_gradient(y, dy, self.name()).map(Some)
    }
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "dlkit-add-relu"
    }

    fn cpu_fwd(&self, sa: &CpuStorage, la: &Layout, sb: &CpuStorage, lb: &Layout) -> Result<(CpuStorage, Shape)> {
        if la.shape() != lb.shape() {
            candle_core::bail!("add_relu: shapes {:?} and {:?} differ", la.shape(), lb.shape())
        }
        let (a, b) = (f32_slice(sa, la, self.name())?, f32_slice(sb, lb, self.name())?);
        let mut y = output_buffer(a.len());
        y.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(y, (a, b))| {
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = (a + b).max(0.0);
            }
        });
        Ok((CpuStorage::F32(y), la.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, _b: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = masked_gradient(y, dy, self.name())?;
        Ok((Some(dx.clone()), Some(dx)))
    }
}

/// `max(x, 0)`; the one-pass kernel on CPU `f32` tensors, candle's `relu` elsewhere.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if super::applies_to(x) {
        x.contiguous()?.apply_op1(Relu)
    } else {
        x.relu()
    }
}

/// `max(a + b, 0)` for two tensors of the same shape (a residual block's output).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if super::applies_to(a) && super::applies_to(b) && a.shape() == b.shape() {
        a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
    } else {
        (a + b)?.relu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn relu_and_add_relu_values_and_gradients_by_hand() {
        let dev = Device::Cpu;
        let a = Var::new(&[-2f32, -0.5, 0.0, 0.5, 3.0], &dev).unwrap();
        let b = Var::new(&[1f32, 1.0, 1.0, -1.0, -1.0], &dev).unwrap();
        let w = Tensor::new(&[1f32, 2.0, 3.0, 4.0, 5.0], &dev).unwrap();

        let y = relu(&a).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.0, 0.5, 3.0]);
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&a).unwrap().to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.0, 4.0, 5.0]);

        // a + b = [-1, 0.5, 1, -0.5, 2]
        let y = add_relu(&a, &b).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 0.5, 1.0, 0.0, 2.0]);
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&a).unwrap().to_vec1::<f32>().unwrap(), [0.0, 2.0, 3.0, 0.0, 5.0]);
        assert_eq!(g.get(&b).unwrap().to_vec1::<f32>().unwrap(), [0.0, 2.0, 3.0, 0.0, 5.0]);
    }
}
