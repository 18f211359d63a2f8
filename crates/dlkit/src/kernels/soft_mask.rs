//! The Residual Attention Network's soft-mask ops, one pass each way:
//! - nearest-neighbour up-sampling by an integer factor `f`, optionally plus an addend of the
//!   output's shape (a mask level's skip connection): `y[i, j] = x[i / f, j / f] (+ a[i, j])`;
//!   backward, each input pixel collects the gradient of its `f × f` block;
//! - the attention gate `y = (1 + σ(m))·t` that combines the mask logits `m` with the trunk `t`;
//!   backward, `dm = dy·t·σ(m)·(1 − σ(m))` and `dt = dy·(1 + σ(m))`, with `σ(m)` recomputed.
//!
//! As candle ops the same work took a broadcast copy, an add, a sigmoid, an add of 1 and a
//! product, each with its own output buffer, and the up-sampling's gradient went through a
//! six-dimensional sum.

use super::{f32_slice, output_buffer, with_f32};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk of the element-wise gate.
const CHUNK: usize = 1 << 15;

/// `σ(m) = 1 / (1 + e^(−m))`, as candle's `sigmoid` computes it (same bits).
fn sigmoid(m: f32) -> f32 {
    ((-m).exp() + 1.0).recip()
}

/// Planes of a parallel task: enough that a task covers about [`CHUNK`] output values.
fn planes_per_task(plane_len: usize) -> usize {
    (CHUNK / plane_len.max(1)).max(1)
}

/// Up-samples the `h × w` planes of `src` by `f` into `dst` (planes of `f·h × f·w`), adding
/// `addend` (shaped like `dst`) where given.
fn upsample_into(dst: &mut [f32], src: &[f32], addend: Option<&[f32]>, (h, w): (usize, usize), f: usize) {
    let (plane, out_plane) = (h * w, h * w * f * f);
    let per_task = planes_per_task(out_plane);
    dst.par_chunks_mut(out_plane * per_task).enumerate().for_each(|(task, dst)| {
        let first = task * per_task;
        for (p, out) in dst.chunks_mut(out_plane).enumerate() {
            let x = &src[(first + p) * plane..][..plane];
            let add = addend.map(|a| &a[(first + p) * out_plane..][..out_plane]);
            for (row, out_row) in out.chunks_mut(w * f).enumerate() {
                let x = &x[(row / f) * w..][..w];
                match add {
                    Some(a) => {
                        let a = &a[row * w * f..][..w * f];
                        for (k, (o, &a)) in out_row.iter_mut().zip(a).enumerate() {
                            *o = x[k / f] + a;
                        }
                    }
                    None => out_row.iter_mut().enumerate().for_each(|(k, o)| *o = x[k / f]),
                }
            }
        }
    });
}

/// The gradient of [`upsample_into`] with respect to its source: each `h × w` pixel sums its
/// `f × f` block of `dy`.
fn block_sums(dy: &[f32], (h, w): (usize, usize), f: usize) -> Vec<f32> {
    let (plane, out_plane) = (h * w, h * w * f * f);
    let mut dx = vec![0f32; dy.len() / (f * f)];
    let per_task = planes_per_task(out_plane);
    dx.par_chunks_mut(plane * per_task).zip(dy.par_chunks(out_plane * per_task)).for_each(|(dx, dy)| {
        for (dx, dy) in dx.chunks_mut(plane).zip(dy.chunks(out_plane)) {
            for (row, dy_row) in dy.chunks(w * f).enumerate() {
                let dx = &mut dx[(row / f) * w..][..w];
                for (k, &g) in dy_row.iter().enumerate() {
                    dx[k / f] += g;
                }
            }
        }
    });
    dx
}

/// (planes, height, width) of a rank-4 input.
fn plane_dims(layout: &Layout, op: &str) -> Result<(usize, (usize, usize))> {
    match *layout.shape().dims() {
        [n, c, h, w] => Ok((n * c, (h, w))),
        ref d => candle_core::bail!("{op}: expected an N × C × H × W input, got {d:?}"),
    }
}

/// Nearest up-sampling, `y = up(x)`, or with an addend, `y = up(x) + a`.
struct Upsample {
    factor: usize,
}

impl Upsample {
    fn forward(&self, sx: &CpuStorage, lx: &Layout, addend: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(sx, lx, self.name())?;
        let (planes, (h, w)) = plane_dims(lx, self.name())?;
        let f = self.factor;
        let mut y = output_buffer(planes * h * w * f * f);
        upsample_into(&mut y, x, addend, (h, w), f);
        let (n, c) = (lx.dims()[0], lx.dims()[1]);
        Ok((CpuStorage::F32(y), Shape::from((n, c, h * f, w * f))))
    }

    fn backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let dx = with_f32(dy, self.name(), |dy| Ok(block_sums(dy, (h, w), self.factor)))?;
        Tensor::from_vec(dx, x.shape(), x.device())
    }

    fn name(&self) -> &'static str {
        "dlkit-upsample-nearest"
    }
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        Upsample::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(s, l, None)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        self.backward(x, dy).map(Some)
    }
}

impl CustomOp2 for Upsample {
    fn name(&self) -> &'static str {
        Upsample::name(self)
    }

    fn cpu_fwd(&self, sx: &CpuStorage, lx: &Layout, sa: &CpuStorage, la: &Layout) -> Result<(CpuStorage, Shape)> {
        let (planes, (h, w)) = plane_dims(lx, self.name())?;
        let f = self.factor;
        let (n, c) = (lx.dims()[0], lx.dims()[1]);
        if la.dims() != [n, c, h * f, w * f] || planes != n * c {
            candle_core::bail!("{}: addend {:?} is not the up-sampled shape of {:?}", self.name(), la.shape(), lx.shape())
        }
        self.forward(sx, lx, Some(f32_slice(sa, la, self.name())?))
    }

    fn bwd(&self, x: &Tensor, _a: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.backward(x, dy)?), Some(dy.clone())))
    }
}

/// The attention gate `(1 + σ(m))·t` on the mask logits `m` and the trunk `t`.
struct Gate;

impl CustomOp2 for Gate {
    fn name(&self) -> &'static str {
        "dlkit-attention-gate"
    }

    fn cpu_fwd(&self, sm: &CpuStorage, lm: &Layout, st: &CpuStorage, lt: &Layout) -> Result<(CpuStorage, Shape)> {
        if lm.shape() != lt.shape() {
            candle_core::bail!("attention gate: mask {:?} and trunk {:?} differ in shape", lm.shape(), lt.shape())
        }
        let (m, t) = (f32_slice(sm, lm, self.name())?, f32_slice(st, lt, self.name())?);
        let mut y = output_buffer(m.len());
        y.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(t.par_chunks(CHUNK))).for_each(|(y, (m, t))| {
            for ((y, &m), &t) in y.iter_mut().zip(m).zip(t) {
                *y = (sigmoid(m) + 1.0) * t;
            }
        });
        Ok((CpuStorage::F32(y), lm.shape().clone()))
    }

    fn bwd(&self, m: &Tensor, t: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dm, dt) = with_f32(m, self.name(), |m| {
            with_f32(t, self.name(), |t| {
                with_f32(dy, self.name(), |dy| {
                    let (mut dm, mut dt) = (output_buffer(m.len()), output_buffer(m.len()));
                    let outputs = dm.par_chunks_mut(CHUNK).zip(dt.par_chunks_mut(CHUNK));
                    let inputs = m.par_chunks(CHUNK).zip(t.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK));
                    outputs.zip(inputs).for_each(|((dm, dt), ((m, t), dy))| {
                        for ((((dm, dt), &m), &t), &dy) in dm.iter_mut().zip(dt).zip(m).zip(t).zip(dy) {
                            let s = sigmoid(m);
                            *dm = dy * t * s * (1.0 - s);
                            *dt = dy * (s + 1.0);
                        }
                    });
                    Ok((dm, dt))
                })
            })
        })?;
        Ok((Some(Tensor::from_vec(dm, m.shape(), m.device())?), Some(Tensor::from_vec(dt, t.shape(), t.device())?)))
    }
}

/// Nearest up-sampling of a CPU `f32` tensor `[N, C, H, W]` by `factor` ≥ 1, plus `addend`
/// (`[N, C, factor·H, factor·W]`) where given.
pub fn upsample_nearest(x: &Tensor, factor: usize, addend: Option<&Tensor>) -> Result<Tensor> {
    if factor == 0 {
        candle_core::bail!("up-sampling factor must be at least 1, got 0");
    }
    let op = Upsample { factor };
    match addend {
        Some(a) => x.contiguous()?.apply_op2(&a.contiguous()?, op),
        None => x.contiguous()?.apply_op1(op),
    }
}

/// The attention gate `(1 + σ(mask_logits))·trunk` on CPU `f32` tensors of one shape.
pub fn attention_gate(mask_logits: &Tensor, trunk: &Tensor) -> Result<Tensor> {
    mask_logits.contiguous()?.apply_op2(&trunk.contiguous()?, Gate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// A deterministic tensor of `shape` with values in about [−2, 2].
    fn values(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 4001) as f32 / 1000.0 - 2.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// candle's up-sampling: a broadcast of `[N, C, H, 1, W, 1]` to the blocks.
    fn candle_upsample(x: &Tensor, f: usize) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        x.reshape((n, c, h, 1, w, 1)).unwrap().broadcast_as((n, c, h, f, w, f)).unwrap().reshape((n, c, h * f, w * f)).unwrap()
    }

    #[test]
    fn upsampling_by_hand_values_and_block_gradients() {
        let dev = Device::Cpu;
        let x = Var::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &dev).unwrap();
        let a = Var::new(&[[[[0f32, 0.5, 0.0, 0.0], [0.0; 4], [0.0; 4], [0.0, 0.0, 0.0, -1.0]]]], &dev).unwrap();
        let y = upsample_nearest(&x, 2, Some(&a)).unwrap();
        let expected = [[1f32, 1.5, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 3.0]];
        assert_eq!(y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap(), expected);
        // Weights 0..15 row-major: the blocks collect 0+1+4+5 = 10, 2+3+6+7 = 18, 42 and 50;
        // the addend gets the weights themselves.
        let w = Tensor::arange(0f32, 16.0, &dev).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), [10.0, 18.0, 42.0, 50.0]);
        assert_eq!(g.get(&a).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), w.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(upsample_nearest(&x, 0, None).is_err());
        assert!(upsample_nearest(&x, 2, Some(&x)).is_err(), "an addend of the wrong shape is refused");
    }

    #[test]
    fn upsampling_matches_candles_broadcast_on_odd_shapes_and_many_planes() {
        assert_eq!([1, 2, 3].map(|f| planes_per_task(63 * f * f)), [520, 130, 57]);
        // 3 × 200 planes of 9 × 7, factors 1 to 3: 520, 130 and 57 planes per parallel task, so
        // 2 to 11 tasks, the last one short.
        for f in 1..=3 {
            let x = Var::from_tensor(&values(&[3, 200, 9, 7], 7)).unwrap();
            let a = Var::from_tensor(&values(&[3, 200, 9 * f, 7 * f], 11)).unwrap();
            let w = values(&[3, 200, 9 * f, 7 * f], 13);
            let ours = upsample_nearest(&x, f, Some(&a)).unwrap();
            let theirs = (candle_upsample(&x, f) + a.as_tensor()).unwrap();
            assert_eq!(max_diff(&ours, &theirs), 0.0, "factor {f}");
            let plain = upsample_nearest(&x, f, None).unwrap();
            assert_eq!(max_diff(&plain, &candle_upsample(&x, f)), 0.0, "factor {f}");
            let g_ours = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let g_theirs = (&theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(g_ours.get(&x).unwrap(), g_theirs.get(&x).unwrap()) < 1e-5, "factor {f}");
            assert_eq!(max_diff(g_ours.get(&a).unwrap(), g_theirs.get(&a).unwrap()), 0.0);
        }
    }

    #[test]
    fn gate_matches_candles_ops_in_value_and_gradients() {
        // (1 + σ(m))·t over 2 × CHUNK + 5 values: the parallel chunks and a ragged tail.
        let shape = [1, 1, 2, CHUNK + 3];
        let m = Var::from_tensor(&(values(&shape, 3) * 3.0).unwrap()).unwrap();
        let t = Var::from_tensor(&values(&shape, 5)).unwrap();
        let w = values(&shape, 9);
        let ours = attention_gate(&m, &t).unwrap();
        let theirs = ((candle_nn::ops::sigmoid(&m).unwrap() + 1.0).unwrap() * t.as_tensor()).unwrap();
        assert_eq!(max_diff(&ours, &theirs), 0.0, "same bits as candle's forward");
        let g_ours = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (&theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_diff(g_ours.get(&m).unwrap(), g_theirs.get(&m).unwrap()) < 1e-6);
        assert!(max_diff(g_ours.get(&t).unwrap(), g_theirs.get(&t).unwrap()) < 1e-6);
        // By hand at m = 0: σ = 1/2, y = 1.5·t, dm = t/4, dt = 1.5.
        let m = Var::new(&[0f32, 0.0], &Device::Cpu).unwrap();
        let t = Var::new(&[2f32, -4.0], &Device::Cpu).unwrap();
        let y = attention_gate(&m, &t).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [3.0, -6.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&m).unwrap().to_vec1::<f32>().unwrap(), [0.5, -1.0]);
        assert_eq!(g.get(&t).unwrap().to_vec1::<f32>().unwrap(), [1.5, 1.5]);
        assert!(attention_gate(&m, &values(&[3], 1)).is_err());
    }
}
