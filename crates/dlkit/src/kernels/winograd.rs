//! 3×3 stride-1 convolution by Winograd's minimal filtering, F(2×2, 3×3).
//!
//! The output is cut into 2×2 tiles; each reads a 4×4 tile `d` of the (zero-padded) input. With
//! the kernel `g` (3×3) transformed once to `U = G g Gᵀ` and each input tile to `V = Bᵀ d B`
//! (both 4×4), a tile's output is `Y = Aᵀ [Σ_c U ⊙ V] A`, where
//!
//! ```text
//!      ⎡1  0 −1  0⎤        ⎡ 1    0    0 ⎤        ⎡1  1  1  0⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢1/2  1/2  1/2⎥   Aᵀ = ⎣0  1 −1 −1⎦
//!      ⎢0 −1  1  0⎥        ⎢1/2 −1/2  1/2⎥
//!      ⎣0  1  0 −1⎦        ⎣ 0    0    1 ⎦
//! ```
//!
//! The sum over input channels, for each of the 16 positions ξ of the 4×4 transform, is one
//! matrix product `M_ξ (O × tiles) = U_ξ (O × C) · V_ξ (C × tiles)`: 16 products with `C` terms
//! each per 2×2 outputs, against the 36 of a direct (im2col) product, so 2.25× fewer
//! multiplications, at the price of the two transforms (additions only). The error is a few
//! ulps of the terms' size (the transforms add at most four terms, with factors 1 and 1/2).
//!
//! Layout: the padded input is split into four parity sub-planes (even/odd rows × even/odd
//! columns), and tiles are numbered row by row with one junk tile at the end of each row, so
//! each of a tile's 16 inputs is a shifted contiguous run and every transform step is one long
//! vectorisable loop over all tiles of a channel; the junk tiles' outputs are dropped.
//!
//! The same routine gives a stride-1 convolution's input gradient: `dx` is `dy` convolved with
//! the kernel rotated by 180° and its two channel axes swapped, padded by `2 − p`
//! ([`Kernel::for_input_gradient`]).

use super::{matmul, MatRef};

/// Positions of the 4×4 transform.
const XI: usize = 16;

/// A 3×3 kernel bank transformed to `U = G g Gᵀ`, stored as 16 matrices `U_ξ` (`outputs × inputs`).
#[derive(Debug, Clone)]
pub struct Kernel {
    u: Vec<f32>,
    outputs: usize,
    inputs: usize,
}

impl Kernel {
    /// Transforms `w` (`O × C × 3 × 3`).
    pub fn new(w: &[f32], outputs: usize, inputs: usize) -> Self {
        assert_eq!(w.len(), outputs * inputs * 9, "winograd: kernel must be O × C × 3 × 3");
        Self::from_taps(outputs, inputs, |o, c| std::array::from_fn(|t| w[(o * inputs + c) * 9 + t]))
    }

    /// The kernel of the input gradient of a convolution with `w` (`O × C × 3 × 3`): for each
    /// (input channel c, output channel o), `w[o][c]` rotated by 180°, so `C` outputs from `O`
    /// inputs.
    pub fn for_input_gradient(w: &[f32], outputs: usize, inputs: usize) -> Self {
        assert_eq!(w.len(), outputs * inputs * 9, "winograd: kernel must be O × C × 3 × 3");
        Self::from_taps(inputs, outputs, |c, o| std::array::from_fn(|t| w[(o * inputs + c) * 9 + 8 - t]))
    }

    /// Transforms the 3×3 taps `taps(o, c)` (row-major) of every (output, input) pair.
    fn from_taps(outputs: usize, inputs: usize, taps: impl Fn(usize, usize) -> [f32; 9]) -> Self {
        let mut u = vec![0f32; XI * outputs * inputs];
        for o in 0..outputs {
            for c in 0..inputs {
                let t = transform_kernel(&taps(o, c));
                for (xi, v) in t.iter().enumerate() {
                    u[(xi * outputs + o) * inputs + c] = *v;
                }
            }
        }
        Kernel { u, outputs, inputs }
    }
}

/// `G g Gᵀ` for one 3×3 kernel `g` (row-major), as a row-major 4×4.
fn transform_kernel(g: &[f32; 9]) -> [f32; 16] {
    // G applied to a column (g0, g1, g2) of three values.
    let col = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    // Rows of G g (4 × 3), then (G g) Gᵀ row by row.
    let mut gg = [[0f32; 3]; 4];
    for j in 0..3 {
        let c = col(g[j], g[3 + j], g[6 + j]);
        (0..4).for_each(|i| gg[i][j] = c[i]);
    }
    let mut out = [0f32; 16];
    for i in 0..4 {
        out[i * 4..i * 4 + 4].copy_from_slice(&col(gg[i][0], gg[i][1], gg[i][2]));
    }
    out
}

/// The shape of one image's convolution: `channels × height × width` in, zero padding `padding`
/// on every side (at most 2), output `(height + 2p − 2) × (width + 2p − 2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Plane {
    /// Output height.
    pub fn out_h(&self) -> usize {
        self.height + 2 * self.padding - 2
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        self.width + 2 * self.padding - 2
    }

    fn tiles_h(&self) -> usize {
        self.out_h().div_ceil(2)
    }

    fn tiles_w(&self) -> usize {
        self.out_w().div_ceil(2)
    }

    /// Tiles per row as laid out: one more than [`Plane::tiles_w`], a junk tile whose output is
    /// dropped, so that a tile row's neighbour in the padded input is always `+ row` away and
    /// every transform step is one long run over all tiles.
    fn row(&self) -> usize {
        self.tiles_w() + 1
    }

    /// Tiles as laid out (junk tiles included).
    fn tiles(&self) -> usize {
        self.tiles_h() * self.row()
    }

    /// Length of one parity sub-plane of the padded input: `tiles_h + 1` rows of
    /// [`Plane::row`], plus one value the last shifted run reads.
    fn quarter(&self) -> usize {
        (self.tiles_h() + 1) * self.row() + 1
    }
}

/// Per-worker buffers for [`convolve`].
#[derive(Default)]
pub struct Scratch {
    quarters: Vec<f32>,
    split_for: Option<(Plane, usize)>,
    v: Vec<f32>,
    m: Vec<f32>,
    rows: Vec<f32>,
}

thread_local! {
    /// Each worker thread's buffers, kept between calls: a model's layers reuse them instead of
    /// allocating (and the kernel zero-filling) fresh pages for every batch.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's [`Scratch`].
pub fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

/// One image: `y (O × Ho × Wo) = conv(image (C × H × W), kernel) + bias`, overwriting `y`.
pub fn convolve(plane: Plane, kernel: &Kernel, image: &[f32], bias: &[f32], y: &mut [f32], s: &mut Scratch) {
    let (o, c, t) = (kernel.outputs, kernel.inputs, plane.tiles());
    assert!(plane.padding <= 2 && plane.out_h() > 0 && plane.out_w() > 0, "winograd: unsupported padding");
    assert_eq!(image.len(), c * plane.height * plane.width, "winograd: image size");
    assert_eq!(y.len(), o * plane.out_h() * plane.out_w(), "winograd: output size");
    assert_eq!(bias.len(), o, "winograd: one bias per output channel");
    transform_image(plane, image, c, s);
    s.m.resize(XI * o * t, 0.0);
    for ((m, u), v) in s.m.chunks_mut(o * t).zip(kernel.u.chunks(o * c)).zip(s.v.chunks(c * t)) {
        matmul(o, t, c, m, MatRef::rows(u, c), MatRef::rows(v, t), false);
    }
    transform_output(plane, o, &s.m, bias, y, &mut s.rows);
}

/// `V = Bᵀ d B` of every tile of `image` (`channels × H × W`) into `s.v` (`v[ξ][c][tile]`).
fn transform_image(plane: Plane, image: &[f32], channels: usize, s: &mut Scratch) {
    s.v.resize(XI * channels * plane.tiles(), 0.0);
    split_parities(plane, image, channels, s);
    transform_input(plane, channels, &s.quarters, &mut s.v, &mut s.rows);
}

/// Splits the zero-padded image into four parity sub-planes per channel: `quarters[c][a][b]` holds
/// the padded pixels at (row `2k + a`, column `2l + b`) at `k · row + l`. The input value `d[i][j]`
/// of tile `n = ty · row + tx` is then `quarters[c][i % 2][j % 2][n + (i / 2) · row + j / 2]`:
/// each of the 16 tile positions is a shifted contiguous run.
fn split_parities(plane: Plane, image: &[f32], channels: usize, s: &mut Scratch) {
    let (h, w, p, row, q) = (plane.height, plane.width, plane.padding, plane.row(), plane.quarter());
    // The padding positions are never written, so they stay zero while the plane is the same.
    if s.split_for != Some((plane, channels)) {
        s.quarters.clear();
        s.quarters.resize(channels * 4 * q, 0.0);
        s.split_for = Some((plane, channels));
    }
    for (dst, src) in s.quarters.chunks_mut(4 * q).zip(image.chunks(h * w)) {
        for (y, pixels) in src.chunks(w).enumerate() {
            let (a, k) = ((y + p) % 2, (y + p) / 2);
            let (even, odd) = dst[2 * a * q..(2 * a + 2) * q].split_at_mut(q);
            // Pixel x is at padded column x + p: pixel 2m in parity p % 2 at l = m + p / 2, pixel
            // 2m + 1 in the other parity at l = m + ⌈p / 2⌉.
            let (first, second) = if p % 2 == 0 { (even, odd) } else { (odd, even) };
            deinterleave(pixels, &mut first[k * row + p / 2..], &mut second[k * row + p.div_ceil(2)..]);
        }
    }
}

/// Copies `pixels[2m]` to `even[m]` and `pixels[2m + 1]` to `odd[m]`.
fn deinterleave(pixels: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let pairs = pixels.chunks_exact(2);
    if let [last] = pairs.remainder() {
        even[pixels.len() / 2] = *last;
    }
    for (pair, (e, o)) in pairs.zip(even.iter_mut().zip(odd.iter_mut())) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `V = Bᵀ d B` for every 4×4 tile of every channel: `v[ξ][c][tile]`, each step one run over all
/// tiles of a channel: first `Bᵀ d` (rows), then `· B` (columns).
fn transform_input(plane: Plane, channels: usize, quarters: &[f32], v: &mut [f32], rows: &mut Vec<f32>) {
    let (row, q, t) = (plane.row(), plane.quarter(), plane.tiles());
    let stride = channels * t;
    // Bᵀ d for column parity b: four runs of t + 1 (the column step reads one further).
    let n = t + 1;
    rows.resize(8 * n, 0.0);
    for (c, quarters) in quarters.chunks(4 * q).enumerate() {
        for (b, r) in rows.chunks_mut(4 * n).enumerate() {
            // Rows 0 and 2 of a tile are parity 0 (2 one row of tiles further on), 1 and 3 parity 1.
            let (even, odd) = (&quarters[b * q..][..n + row], &quarters[(2 + b) * q..][..n + row]);
            let (d0, d1, d2, d3) = (&even[..n], &odd[..n], &even[row..row + n], &odd[row..row + n]);
            let (r0, rest) = r.split_at_mut(n);
            let (r1, rest) = rest.split_at_mut(n);
            let (r2, r3) = rest.split_at_mut(n);
            combine(r0, d0, d2, |a, b| a - b);
            combine(r1, d1, d2, |a, b| a + b);
            combine(r2, d2, d1, |a, b| a - b);
            combine(r3, d1, d3, |a, b| a - b);
        }
        // Columns: 0 and 2 are parity 0 (2 one tile further on), 1 and 3 parity 1.
        let (even, odd) = rows.split_at(4 * n);
        for i in 0..4 {
            let (e, o) = (&even[i * n..][..n], &odd[i * n..][..n]);
            let (c0, c1, c2, c3) = (&e[..t], &o[..t], &e[1..], &o[1..]);
            let at = |j: usize| (i * 4 + j) * stride + c * t;
            combine(&mut v[at(0)..][..t], c0, c2, |a, b| a - b);
            combine(&mut v[at(1)..][..t], c1, c2, |a, b| a + b);
            combine(&mut v[at(2)..][..t], c2, c1, |a, b| a - b);
            combine(&mut v[at(3)..][..t], c1, c3, |a, b| a - b);
        }
    }
}

/// `dst[x] = f(a[x], b[x])` over equal-length runs (a loop the compiler vectorises).
#[inline(always)]
fn combine(dst: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (d, (a, b)) in dst.iter_mut().zip(a.iter().zip(b)) {
        *d = f(*a, *b);
    }
}

/// `Y = Aᵀ M A` + bias for every tile of every output channel, cropped to `Ho × Wo`: `Aᵀ M` and
/// `· A` as runs over all tiles, then the four outputs of each tile written to their pixels.
fn transform_output(plane: Plane, outputs: usize, m: &[f32], bias: &[f32], y: &mut [f32], rows: &mut Vec<f32>) {
    let (ho, wo, row, t) = (plane.out_h(), plane.out_w(), plane.row(), plane.tiles());
    let stride = outputs * t;
    rows.resize(8 * t, 0.0);
    for (o, (out, &bias)) in y.chunks_mut(ho * wo).zip(bias).enumerate() {
        let mm: [&[f32]; XI] = std::array::from_fn(|xi| &m[xi * stride + o * t..][..t]);
        let (s, yy) = rows.split_at_mut(4 * t);
        for i in 0..2 {
            // Row i of Aᵀ M: rows 0 + 1 + 2 of M (i = 0) or 1 − 2 − 3 (i = 1), column by column.
            let (lead, sign) = if i == 0 { (0, 1.0) } else { (4, -1.0) };
            for (j, col) in s.chunks_mut(t).enumerate() {
                let (p, q, r) = (mm[lead + j], mm[lead + 4 + j], mm[lead + 8 + j]);
                for (d, (p, (q, r))) in col.iter_mut().zip(p.iter().zip(q.iter().zip(r))) {
                    *d = p + sign * (q + r);
                }
            }
            // Its columns 0 + 1 + 2 (output column 0) and 1 − 2 − 3 (output column 1), plus bias.
            let (c0, c1, c2, c3) = (&s[..t], &s[t..2 * t], &s[2 * t..3 * t], &s[3 * t..]);
            let (left, right) = yy.split_at_mut(t);
            for x in 0..t {
                left[x] = c0[x] + c1[x] + c2[x] + bias;
                right[x] = c1[x] - c2[x] - c3[x] + bias;
            }
            // Tile n = ty · row + tx → pixels (2ty + i, 2tx) and (2ty + i, 2tx + 1).
            for (ty, out_row) in out.chunks_mut(wo).skip(i).step_by(2).enumerate() {
                let (l, r) = (&left[ty * row..][..row - 1], &right[ty * row..][..row - 1]);
                let mut pairs = out_row.chunks_exact_mut(2);
                for (pair, (l, r)) in (&mut pairs).zip(l.iter().zip(r)) {
                    pair[0] = *l;
                    pair[1] = *r;
                }
                if let [last] = pairs.into_remainder() {
                    *last = l[wo / 2];
                }
            }
        }
    }
}

/// A kernel gradient being summed in the transformed domain: `dU_ξ = Σ_images Σ_tiles
/// (A dY Aᵀ)_ξ · (Bᵀ d B)_ξ` for every (output, input) pair, 16 matrices `O × C`.
///
/// The forward pass is `Y = Aᵀ [U ⊙ V] A` with `U = G g Gᵀ`, so `∂L/∂U = (A dY Aᵀ) ⊙ V` per tile
/// and `∂L/∂g = Gᵀ (Σ ∂L/∂U) G`: one matrix product per ξ with the tiles as the summed axis
/// (long, so the GEMM runs at full speed), then one 4×4 → 3×3 transform per kernel at the end.
#[derive(Debug, Clone)]
pub struct KernelGradient {
    du: Vec<f32>,
    outputs: usize,
    inputs: usize,
}

impl KernelGradient {
    /// A zero sum for `outputs × inputs` kernels.
    pub fn new(outputs: usize, inputs: usize) -> Self {
        KernelGradient { du: vec![0.0; XI * outputs * inputs], outputs, inputs }
    }

    /// Adds one image's term: `image` (`C × H × W`) and its output gradient `dy` (`O × Ho × Wo`).
    pub fn add(&mut self, plane: Plane, image: &[f32], dy: &[f32], s: &mut Scratch) {
        let (o, c, t) = (self.outputs, self.inputs, plane.tiles());
        assert_eq!(image.len(), c * plane.height * plane.width, "winograd: image size");
        assert_eq!(dy.len(), o * plane.out_h() * plane.out_w(), "winograd: output gradient size");
        transform_image(plane, image, c, s);
        s.m.resize(XI * o * t, 0.0);
        transform_output_gradient(plane, o, dy, &mut s.m, &mut s.rows);
        for ((du, m), v) in self.du.chunks_mut(o * c).zip(s.m.chunks(o * t)).zip(s.v.chunks(c * t)) {
            matmul(o, c, t, du, MatRef::rows(m, t), MatRef::transposed(v, t), true);
        }
    }

    /// Adds another partial sum (same sizes) into this one.
    pub fn merge(&mut self, other: &KernelGradient) {
        self.du.iter_mut().zip(&other.du).for_each(|(a, b)| *a += b);
    }

    /// The kernel gradient `Gᵀ dU G` (`O × C × 3 × 3`).
    pub fn finish(&self) -> Vec<f32> {
        let (o, c) = (self.outputs, self.inputs);
        let mut dw = vec![0f32; o * c * 9];
        for (k, dw) in dw.chunks_mut(9).enumerate() {
            let du: [f32; XI] = std::array::from_fn(|xi| self.du[xi * o * c + k]);
            dw.copy_from_slice(&untransform_kernel(&du));
        }
        dw
    }
}

/// `Gᵀ u G` for one 4×4 `u` (row-major), as a row-major 3×3: the adjoint of [`transform_kernel`].
fn untransform_kernel(u: &[f32; XI]) -> [f32; 9] {
    // Gᵀ applied to a column (u0, u1, u2, u3).
    let col = |a: f32, b: f32, c: f32, d: f32| [a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d];
    let mut half = [[0f32; 4]; 3];
    for j in 0..4 {
        let c = col(u[j], u[4 + j], u[8 + j], u[12 + j]);
        (0..3).for_each(|i| half[i][j] = c[i]);
    }
    let mut out = [0f32; 9];
    for i in 0..3 {
        out[i * 3..i * 3 + 3].copy_from_slice(&col(half[i][0], half[i][1], half[i][2], half[i][3]));
    }
    out
}

/// `A dY Aᵀ` for every 2×2 tile of an output gradient (`O × Ho × Wo`): `m[ξ][o][tile]`, zero
/// for the junk tiles and the pixels past the edge. With `A = (Aᵀ)ᵀ`, a tile's rows become
/// `(z₀, z₀ + z₁, z₀ − z₁, −z₁)`, and then its columns the same.
fn transform_output_gradient(plane: Plane, outputs: usize, dy: &[f32], m: &mut [f32], rows: &mut Vec<f32>) {
    let (ho, wo, row, t) = (plane.out_h(), plane.out_w(), plane.row(), plane.tiles());
    let stride = outputs * t;
    rows.resize(12 * t, 0.0);
    for (o, grad) in dy.chunks(ho * wo).enumerate() {
        // The tiles' four pixels as runs: z[i][j][n] = dy[2ty + i][2tx + j].
        let (z, a) = rows.split_at_mut(4 * t);
        z.fill(0.0);
        for (y, pixels) in grad.chunks(wo).enumerate() {
            let (i, ty) = (y % 2, y / 2);
            let (left, right) = z[2 * i * t..(2 * i + 2) * t].split_at_mut(t);
            deinterleave(pixels, &mut left[ty * row..], &mut right[ty * row..]);
        }
        // Rows: a[r][j] from z[0][j] and z[1][j].
        for j in 0..2 {
            let (z0, z1) = (&z[j * t..][..t], &z[(2 + j) * t..][..t]);
            let at = |r: usize| (r * 2 + j) * t;
            combine(&mut a[at(0)..][..t], z0, z0, |a, _| a);
            combine(&mut a[at(1)..][..t], z0, z1, |a, b| a + b);
            combine(&mut a[at(2)..][..t], z0, z1, |a, b| a - b);
            combine(&mut a[at(3)..][..t], z1, z1, |a, _| -a);
        }
        // Columns: m[r·4 + k] from a[r][0] and a[r][1].
        for r in 0..4 {
            let (a0, a1) = (&a[(r * 2) * t..][..t], &a[(r * 2 + 1) * t..][..t]);
            let at = |k: usize| (r * 4 + k) * stride + o * t;
            combine(&mut m[at(0)..][..t], a0, a0, |a, _| a);
            combine(&mut m[at(1)..][..t], a0, a1, |a, b| a + b);
            combine(&mut m[at(2)..][..t], a0, a1, |a, b| a - b);
            combine(&mut m[at(3)..][..t], a1, a1, |a, _| -a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct 3×3 convolution of one image, from the definition, in f64.
    fn direct(plane: Plane, w: &[f32], o: usize, c: usize, image: &[f32], bias: &[f32]) -> Vec<f64> {
        let (h, wd, p) = (plane.height as isize, plane.width as isize, plane.padding as isize);
        let (ho, wo) = (plane.out_h(), plane.out_w());
        let mut y = vec![0f64; o * ho * wo];
        for oc in 0..o {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut sum = bias[oc] as f64;
                    for ic in 0..c {
                        for ki in 0..3 {
                            for kj in 0..3 {
                                let (iy, ix) = (oy as isize + ki as isize - p, ox as isize + kj as isize - p);
                                if (0..h).contains(&iy) && (0..wd).contains(&ix) {
                                    let pixel = image[(ic * plane.height + iy as usize) * plane.width + ix as usize];
                                    sum += w[((oc * c + ic) * 3 + ki) * 3 + kj] as f64 * pixel as f64;
                                }
                            }
                        }
                    }
                    y[(oc * ho + oy) * wo + ox] = sum;
                }
            }
        }
        y
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn kernel_transform_of_one_tap_by_hand() {
        // g with a single 1 at the centre: G g Gᵀ = (G e₁)(G e₁)ᵀ with G e₁ = (0, ½, −½, 0).
        let mut g = [0f32; 9];
        g[4] = 1.0;
        let u = transform_kernel(&g);
        let col = [0.0, 0.5, -0.5, 0.0];
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(u[i * 4 + j], col[i] * col[j], "({i}, {j})");
            }
        }
    }

    #[test]
    fn matches_the_direct_convolution_for_odd_and_even_sizes_and_every_padding() {
        // One scratch for every case, each case twice: buffers reused across planes and images.
        let mut scratch = Scratch::default();
        let cases = [(3, 4, 6, 6, 1), (2, 5, 7, 5, 1), (4, 3, 5, 8, 0), (1, 2, 3, 3, 2), (3, 3, 1, 1, 1), (5, 2, 9, 4, 2), (4, 3, 5, 8, 2)];
        for &(c, o, h, w, p) in cases.iter().chain(&cases) {
            let plane = Plane { height: h, width: w, padding: p };
            let (kernel_w, image, bias) = (values(o * c * 9, 1), values(c * h * w, 2), values(o, 3));
            let kernel = Kernel::new(&kernel_w, o, c);
            let mut y = vec![f32::NAN; o * plane.out_h() * plane.out_w()];
            convolve(plane, &kernel, &image, &bias, &mut y, &mut scratch);
            let expected = direct(plane, &kernel_w, o, c, &image, &bias);
            for (i, (a, b)) in y.iter().zip(&expected).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-5 * (c as f64 * 9.0), "c{c} o{o} {h}×{w} p{p} [{i}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn kernel_gradient_matches_the_direct_sum_over_pixels() {
        // dW[o][c][ki][kj] = Σ_images Σ_(oy, ox) dy[o][oy][ox] · x[c][oy + ki − p][ox + kj − p].
        for &(c, o, h, w, p) in &[(3, 4, 6, 6, 1), (2, 3, 7, 5, 1), (2, 2, 6, 7, 0), (1, 2, 3, 4, 2)] {
            let plane = Plane { height: h, width: w, padding: p };
            let (ho, wo) = (plane.out_h(), plane.out_w());
            let mut sum = KernelGradient::new(o, c);
            let mut expected = vec![0f64; o * c * 9];
            let mut scratch = Scratch::default();
            for image in 0..2 {
                let (x, dy) = (values(c * h * w, 7 + image), values(o * ho * wo, 9 + image));
                sum.add(plane, &x, &dy, &mut scratch);
                for (k, e) in expected.iter_mut().enumerate() {
                    let (oc, ic, ki, kj) = (k / (c * 9), k / 9 % c, k / 3 % 3, k % 3);
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let (iy, ix) = ((oy + ki) as isize - p as isize, (ox + kj) as isize - p as isize);
                            if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                let pixel = x[(ic * h + iy as usize) * w + ix as usize] as f64;
                                *e += dy[(oc * ho + oy) * wo + ox] as f64 * pixel;
                            }
                        }
                    }
                }
            }
            for (k, (a, b)) in sum.finish().iter().zip(&expected).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0), "c{c} o{o} {h}×{w} p{p} [{k}]: {a} vs {b}");
            }
        }
    }

    #[test]
    fn untransform_is_the_adjoint_of_the_kernel_transform() {
        // ⟨G g Gᵀ, u⟩ = ⟨g, Gᵀ u G⟩.
        let (g, u) = (values(9, 1), values(16, 2));
        let t = transform_kernel(&g.clone().try_into().unwrap());
        let back = untransform_kernel(&u.clone().try_into().unwrap());
        let lhs: f32 = t.iter().zip(&u).map(|(a, b)| a * b).sum();
        let rhs: f32 = g.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
    }

    #[test]
    fn input_gradient_kernel_is_the_adjoint_of_the_convolution() {
        // ⟨conv(x, w), dy⟩ = ⟨x, conv(dy, rot180(w)ᵀ, padding 2 − p)⟩ for every x and dy.
        for &(c, o, h, w, p) in &[(3, 4, 6, 6, 1), (2, 3, 7, 5, 1), (2, 2, 6, 7, 0)] {
            let forward = Plane { height: h, width: w, padding: p };
            let (ho, wo) = (forward.out_h(), forward.out_w());
            let backward = Plane { height: ho, width: wo, padding: 2 - p };
            assert_eq!((backward.out_h(), backward.out_w()), (h, w));
            let (kw, x, dy) = (values(o * c * 9, 4), values(c * h * w, 5), values(o * ho * wo, 6));
            let mut y = vec![0f32; o * ho * wo];
            convolve(forward, &Kernel::new(&kw, o, c), &x, &vec![0.0; o], &mut y, &mut Scratch::default());
            let mut dx = vec![0f32; c * h * w];
            convolve(backward, &Kernel::for_input_gradient(&kw, o, c), &dy, &vec![0.0; c], &mut dx, &mut Scratch::default());
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "c{c} o{o} {h}×{w} p{p}: {lhs} vs {rhs}");
        }
    }
}
