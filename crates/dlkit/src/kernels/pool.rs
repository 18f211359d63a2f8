//! Max pooling on the CPU ('valid' windows, any kernel and stride), with its backward pass.
//!
//! The backward pass routes each output gradient to the first position of its window that
//! holds the maximum (as PyTorch does), found again from the input instead of storing indices.
//! (candle's `maximum`, used by the fallback on other devices, splits it between tied maxima.)

use super::{f32_slice, output_buffer, with_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The sizes of one pooling: input planes of `height × width`, square windows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
}

impl Pool {
    /// `kernel × kernel` windows moved by `stride` over `height × width` planes; fails unless
    /// a window fits.
    pub(crate) fn new(height: usize, width: usize, kernel: usize, stride: usize) -> Result<Self> {
        if kernel == 0 || stride == 0 || kernel > height || kernel > width {
            candle_core::bail!("max pool {kernel}×{kernel}/{stride} does not fit a {height}×{width} input");
        }
        Ok(Pool { height, width, kernel, stride })
    }

    /// Output height: `(H − k) / s + 1`.
    pub(crate) fn out_h(&self) -> usize {
        (self.height - self.kernel) / self.stride + 1
    }

    /// Output width: `(W − k) / s + 1`.
    pub(crate) fn out_w(&self) -> usize {
        (self.width - self.kernel) / self.stride + 1
    }

    /// Pools `x` (`B × channels × H × W`) into the channels `start / (Ho·Wo)`… of `out`, whose
    /// images are `image_stride` values apart (`(image_stride, start)`).
    pub(crate) fn forward_into(&self, x: &[f32], channels: usize, out: &mut [f32], (image_stride, start): (usize, usize)) {
        let (plane, out_plane) = (self.height * self.width, self.out_h() * self.out_w());
        let block = channels * out_plane;
        assert!(start + block <= image_stride && x.len() / (channels * plane) * image_stride == out.len(), "max pool: output block out of bounds");
        out.par_chunks_mut(image_stride).zip(x.par_chunks(channels * plane)).for_each(|(y, x)| {
            let planes = y[start..start + block].par_chunks_mut(out_plane).zip(x.par_chunks(plane));
            planes.for_each(|(y, x)| self.for_each_max(x, |o, _, v| y[o] = v));
        });
    }

    /// Calls `f(output index, input index of the window's first maximum, maximum)` for every
    /// output pixel of one plane.
    fn for_each_max(&self, plane: &[f32], mut f: impl FnMut(usize, usize, f32)) {
        for oy in 0..self.out_h() {
            for ox in 0..self.out_w() {
                let (mut best, mut at) = (f32::NEG_INFINITY, oy * self.stride * self.width + ox * self.stride);
                for ky in 0..self.kernel {
                    let row = (oy * self.stride + ky) * self.width + ox * self.stride;
                    for (kx, &v) in plane[row..row + self.kernel].iter().enumerate() {
                        // `!(v <= best)` also takes a NaN, and a NaN once taken is kept, so a
                        // NaN anywhere in the window comes out (as in candle and PyTorch).
                        if !(v <= best) && !best.is_nan() {
                            best = v;
                            at = row + kx;
                        }
                    }
                }
                f(oy * self.out_w() + ox, at, best);
            }
        }
    }
}

struct MaxPool(Pool);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "dlkit-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, _, _) = l.shape().dims4()?;
        let p = self.0;
        let x = f32_slice(s, l, self.name())?;
        let image = c * p.out_h() * p.out_w();
        let mut y = output_buffer(b * image);
        p.forward_into(x, c, &mut y, (image, 0));
        Ok((CpuStorage::F32(y), Shape::from((b, c, p.out_h(), p.out_w()))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let p = self.0;
        let out_plane = p.out_h() * p.out_w();
        let dx = with_f32(x, self.name(), |x| {
            with_f32(dy, self.name(), |dy| {
                let mut dx = vec![0f32; x.len()];
                dx.par_chunks_mut(p.height * p.width).zip(x.par_chunks(p.height * p.width).zip(dy.par_chunks(out_plane))).for_each(
                    |(dx, (x, dy))| p.for_each_max(x, |o, at, _| dx[at] += dy[o]),
                );
                Ok(dx)
            })
        })?;
        Tensor::from_vec(dx, x.shape(), x.device()).map(Some)
    }
}

/// Max pooling of `x` (`B × C × H × W`) over `kernel × kernel` windows moved by `stride`
/// ('valid': windows stay inside the image). CPU `f32` tensors only: `models::layers::max_pool2d`
/// picks this or a fallback for other devices.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> Result<Tensor> {
    let (_, _, height, width) = x.dims4()?;
    x.contiguous()?.apply_op1(MaxPool(Pool::new(height, width, kernel, stride)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn overlapping_windows_by_hand() {
        // One 1×1×4×4 plane, 3×3 windows with stride 1 → 2×2 outputs.
        #[rustfmt::skip]
        let values: [f32; 16] = [
            1., 2., 3., 0.,
            4., 9., 5., 1.,
            0., 6., 7., 8.,
            2., 3., 1., 10.,
        ];
        let x = Var::from_slice(&values, (1, 1, 4, 4), &Device::Cpu).unwrap();
        let y = max_pool2d(&x, 3, 1).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [9., 9., 9., 10.]);
        let w = Tensor::new(&[1f32, 10., 100., 1000.], &Device::Cpu).unwrap().reshape((1, 1, 2, 2)).unwrap();
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        // The 9 wins three windows (1 + 10 + 100); the 10 wins the last one.
        let mut expected = [0f32; 16];
        expected[5] = 111.0;
        expected[15] = 1000.0;
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), expected);
    }

    #[test]
    fn a_nan_anywhere_in_the_window_comes_out() {
        let x = Tensor::new(&[[[[f32::NAN, 1.0], [2.0, 3.0]]]], &Device::Cpu).unwrap();
        let y = max_pool2d(&x, 2, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(y[0].is_nan(), "got {y:?}");
    }
}
