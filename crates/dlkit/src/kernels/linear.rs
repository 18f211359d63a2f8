//! The dense layer `y = x·wᵀ + b` on `[batch, inputs]` inputs, with candle's weight layout
//! `w: [outputs, inputs]`, as one custom op with its own backward:
//!
//! ```text
//! dx = dy · w          [batch, inputs]
//! dw = dyᵀ · x         [outputs, inputs]  (written in w's own layout)
//! db = Σ_rows dy       [outputs]
//! ```
//! candle computes `x.matmul(w.t())`, so its kernel gradient arrives as the transpose of a
//! `[inputs, outputs]` product, and adding the L2 penalty's gradient or updating the weight then
//! walks it with a stride. Here every product is one multithreaded GEMM into a contiguous buffer.

use super::{bias_or_zeros, f32_slice, gradient_tensor, matmul_parallel, output_buffer, with_f32, MatRef};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `y = x·wᵀ + b` for row-major `x` (`batch × inputs`) and `w` (`outputs × inputs`).
pub fn forward(batch: usize, inputs: usize, outputs: usize, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y: Vec<f32> = (0..batch).flat_map(|_| b.iter().copied()).collect();
    matmul_parallel(batch, outputs, inputs, &mut y, MatRef::rows(x, inputs), MatRef::transposed(w, inputs), true);
    y
}

/// The gradients of a dense layer; `None` for those not asked for.
pub struct Gradients {
    /// `dy · w`, `batch × inputs`.
    pub input: Option<Vec<f32>>,
    /// `dyᵀ · x`, `outputs × inputs`.
    pub kernel: Option<Vec<f32>>,
    /// Column sums of `dy`, `outputs`.
    pub bias: Option<Vec<f32>>,
}

/// The gradients for the upstream gradient `dy` (`batch × outputs`): the input's only when
/// `input` (a network's first layer skips that product, a quarter of the MLP's backward
/// work), the kernel's and the bias's only when `kernel`.
pub fn backward(batch: usize, (inputs, outputs): (usize, usize), x: &[f32], w: &[f32], dy: &[f32], input: bool, kernel: bool) -> Gradients {
    let dx = input.then(|| {
        let mut dx = output_buffer(batch * inputs);
        matmul_parallel(batch, inputs, outputs, &mut dx, MatRef::rows(dy, outputs), MatRef::rows(w, inputs), false);
        dx
    });
    let dw = kernel.then(|| {
        let mut dw = output_buffer(outputs * inputs);
        matmul_parallel(outputs, inputs, batch, &mut dw, MatRef::transposed(dy, outputs), MatRef::rows(x, inputs), false);
        dw
    });
    let db = kernel.then(|| {
        let mut db = vec![0.0; outputs];
        for row in dy.chunks_exact(outputs) {
            for (s, v) in db.iter_mut().zip(row) {
                *s += v;
            }
        }
        db
    });
    Gradients { input: dx, kernel: dw, bias: db }
}

/// The dense layer as a candle custom op on (input, weight, bias).
struct LinearOp;

/// `(batch, inputs, outputs)` of a 2-D input and a weight, checking that they agree.
fn dims(x: &Shape, w: &Shape) -> Result<(usize, usize, usize)> {
    let (batch, inputs) = x.dims2()?;
    let (outputs, w_inputs) = w.dims2()?;
    if inputs != w_inputs {
        candle_core::bail!("linear: input has {inputs} features, the weight expects {w_inputs}")
    }
    Ok((batch, inputs, outputs))
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "dlkit-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (batch, inputs, outputs) = dims(xl.shape(), wl.shape())?;
        let b = f32_slice(bs, bl, self.name())?;
        if b.len() != outputs {
            candle_core::bail!("linear: bias has {} values for {outputs} outputs", b.len())
        }
        let y = forward(batch, inputs, outputs, f32_slice(xs, xl, self.name())?, f32_slice(ws, wl, self.name())?, b);
        Ok((CpuStorage::F32(y), Shape::from((batch, outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (batch, inputs, outputs) = dims(x.shape(), w.shape())?;
        let (input, kernel) = (x.track_op(), w.track_op() || bias.track_op());
        let grads = with_f32(x, self.name(), |xv| {
            with_f32(w, self.name(), |wv| {
                with_f32(dy, self.name(), |dyv| Ok(backward(batch, (inputs, outputs), xv, wv, dyv, input, kernel)))
            })
        })?;
        Ok((gradient_tensor(grads.input, x)?, gradient_tensor(grads.kernel, w)?, gradient_tensor(grads.bias, bias)?))
    }
}

/// `x·wᵀ + b`, as `candle_nn::Linear` computes it: the kernel above for 2-D CPU `f32` inputs,
/// candle's `Linear` otherwise (other devices, more dimensions).
pub fn linear(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    use candle_core::Module;
    let w = layer.weight();
    if !(super::applies_to(x) && super::applies_to(w) && x.rank() == 2) {
        return layer.forward(x);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias_or_zeros(layer.bias(), w)?, LinearOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_gradients_match_a_hand_computed_layer() {
        // x = [[1, 2]], w = [[1, 0], [0, 1], [1, 1]], b = [0.5, 0, -1] → y = [1.5, 2, 2].
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![1f32, 2.], (1, 2), &dev).unwrap();
        let w = Var::from_vec(vec![1f32, 0., 0., 1., 1., 1.], (3, 2), &dev).unwrap();
        let b = Var::from_vec(vec![0.5f32, 0., -1.], 3, &dev).unwrap();
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let y = linear(&layer, x.as_tensor()).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[1.5, 2.0, 2.0]]);
        // Loss = y · [1, 2, 3]: dy = [1, 2, 3], dx = dy·w = [4, 5], dw = dyᵀx, db = dy.
        let loss = (y * Tensor::new(&[[1f32, 2., 3.]], &dev).unwrap()).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec2::<f32>().unwrap(), [[4.0, 5.0]]);
        assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>().unwrap(), [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]);
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>().unwrap(), [1.0, 2.0, 3.0]);
    }

    #[test]
    fn forward_and_gradients_match_candles_matmul_on_random_values() {
        let dev = Device::Cpu;
        let (batch, inputs, outputs) = (37, 129, 19); // sizes off every SIMD width
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (batch, inputs), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (outputs, inputs), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 1., outputs, &dev).unwrap()).unwrap();
        let target = Tensor::randn(0f32, 1., (batch, outputs), &dev).unwrap();
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let ours = linear(&layer, x.as_tensor()).unwrap();
        let reference = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap();
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{what}: max difference {diff}");
        };
        close(&ours, &reference, "forward");
        let g_ours = (ours * &target).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (reference * &target).unwrap().sum_all().unwrap().backward().unwrap();
        for (var, what) in [(&x, "dx"), (&w, "dw"), (&b, "db")] {
            close(g_ours.get(var).unwrap(), g_ref.get(var).unwrap(), what);
        }
        assert!(g_ours.get(&w).unwrap().is_contiguous(), "the kernel gradient is written in w's layout");
    }

    #[test]
    fn an_untracked_input_gets_no_gradient_and_the_weights_still_do() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.]], &dev).unwrap(); // data, not a variable
        let w = Var::from_vec(vec![1f32, 0., 0., 1., 1., 1.], (3, 2), &dev).unwrap();
        let b = Var::from_vec(vec![0f32; 3], 3, &dev).unwrap();
        let layer = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let y = linear(&layer, &x).unwrap();
        let grads = (y * Tensor::new(&[[1f32, 2., 3.]], &dev).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        assert_eq!(grads.get(&w).unwrap().to_vec2::<f32>().unwrap(), [[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]);
        assert_eq!(grads.get(&b).unwrap().to_vec1::<f32>().unwrap(), [1.0, 2.0, 3.0]);
    }
}
