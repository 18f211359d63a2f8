//! A single-precision matrix product for x86-64 CPUs with AVX-512, blocked and packed the way
//! BLIS and OpenBLAS do it (Goto's algorithm):
//!
//! ```text
//! for each block of NC columns of B and C
//!   for each block of KC rows of B (the sum over k, in order)
//!     pack B[KC × NC] into column panels NR wide          (kept in L2)
//!     for each block of MC rows of A and C
//!       pack A[MC × KC] into row panels MR high           (kept in L1/L2)
//!       for each NR-wide panel of B, each MR-high panel of A:
//!         C[MR × NR] += A panel · B panel                 (the micro-kernel, in registers)
//! ```
//! The micro-kernel keeps an 8 × 32 tile of C in 16 of the 32 vector registers: per step of k
//! it loads two vectors of a B row, broadcasts 8 values of an A column and issues 16 fused
//! multiply-adds. Partial panels are zero-padded when packed, so the micro-kernel always runs
//! full; a partial tile of C goes through a small buffer.
//!
//! Every element of C is summed over k in the same order whatever the blocking of m and n, so
//! splitting the columns between threads ([`matmul_threads`]) gives the same bits as one thread.
//! The `gemm` crate (candle's) reached about half of this machine's peak on the coursework's
//! shapes; this layout is what oneDNN and MKL use to get near it.

#![allow(unsafe_code)]

use std::arch::x86_64::{__m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps};
use std::cell::RefCell;

use super::MatRef;

/// Rows of C per micro-tile (broadcast from the packed A panel): 8 divides every channel count
/// of the course's convolutions, where 12 left a third of a 16-row product idle.
const MR: usize = 8;
/// Columns of C per micro-tile (two 16-float vectors).
const NR: usize = 32;
/// Depth of one packed block (the sum over k is split into blocks of this many terms).
const KC: usize = 256;
/// Rows of A packed at a time.
const MC: usize = 96;
/// Columns of B packed at a time.
const NC: usize = 1024;
/// Up to this many rows of A, B is read in place rather than packed: packing copies B once for
/// every MR rows of A, too much on a convolution's short-and-wide products (16 output
/// channels × 1,024 pixels), while on taller products the packed panels' short stride pays.
const IN_PLACE_ROWS: usize = 2 * MR;

/// Whether this CPU runs the AVX-512 kernel (checked once, at run time).
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

thread_local! {
    /// Per-thread packing buffers, reused across calls (no allocation per product).
    static PACKS: RefCell<(Aligned, Aligned)> = RefCell::new((Aligned::default(), Aligned::default()));
}

/// A growable `f32` buffer whose usable part starts on a 64-byte boundary (one cache line), so
/// that the micro-kernel's vector loads never straddle two lines.
#[derive(Default)]
struct Aligned(Vec<f32>);

impl Aligned {
    fn get(&mut self, len: usize) -> &mut [f32] {
        if self.0.len() < len + 16 {
            self.0 = vec![0.0; len + 16];
        }
        let offset = self.0.as_ptr().align_offset(64).min(15);
        &mut self.0[offset..offset + len]
    }
}

/// `dst (m × n, row stride ldc) = a · b`, or `+= a · b` when `accumulate`, on this thread.
///
/// # Panics
/// If the CPU lacks AVX-512 (check [`available`]) or a view is out of bounds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], ldc: usize, a: MatRef, b: MatRef, accumulate: bool) {
    check(m, n, k, dst.len(), ldc, a, b);
    // SAFETY: the bounds were checked; `dst` is borrowed uniquely.
    unsafe { matmul_raw(m, n, k, Dst(dst.as_mut_ptr(), ldc), a, b, accumulate) }
}

/// The checks every entry point makes before touching memory.
fn check(m: usize, n: usize, k: usize, len: usize, ldc: usize, a: MatRef, b: MatRef) {
    assert!(available(), "sgemm: this CPU has no AVX-512");
    assert!(n <= ldc, "sgemm: row stride {ldc} below the width {n}");
    assert!(m == 0 || n == 0 || (m - 1) * ldc + n <= len, "sgemm: destination too small");
    a.check(m, k);
    b.check(k, n);
}

/// `dst (m × n, row-major) = a · b` (or `+=`), the columns split between the current rayon
/// pool's threads (rows instead, where there are more of them): each element's sum runs in
/// the same order as on one thread.
pub(crate) fn matmul_threads(m: usize, n: usize, k: usize, dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    use rayon::prelude::*;
    check(m, n, k, dst.len(), n, a, b);
    let threads = rayon::current_num_threads().max(1);
    let (split_columns, extent, step) = if n >= m { (true, n, NR) } else { (false, m, MR) };
    let size = extent.div_ceil(threads).div_ceil(step) * step;
    if threads == 1 || m * n * k < 1 << 20 || size >= extent {
        return matmul(m, n, k, dst, n, a, b, accumulate);
    }
    let base = Dst(dst.as_mut_ptr(), n);
    (0..extent).step_by(size).collect::<Vec<_>>().into_par_iter().for_each(|start| {
        let len = size.min(extent - start);
        // SAFETY: bounds checked above for the whole product; each task writes a disjoint
        // block of columns (or rows) of `dst`, which the caller borrows uniquely.
        unsafe {
            if split_columns {
                let b = MatRef { values: &b.values[start * b.col_stride..], ..b };
                matmul_raw(m, len, k, base.offset(0, start), a, b, accumulate)
            } else {
                let a = MatRef { values: &a.values[start * a.row_stride..], ..a };
                matmul_raw(len, n, k, base.offset(start, 0), a, b, accumulate)
            }
        }
    });
}

/// A pointer to a row-major block of C and its row stride.
#[derive(Clone, Copy)]
struct Dst(*mut f32, usize);

// SAFETY: tasks given copies of a `Dst` write disjoint parts of it (see matmul_threads).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

impl Dst {
    /// The block starting at row `i`, column `j`.
    unsafe fn offset(self, i: usize, j: usize) -> Dst {
        Dst(self.0.add(i * self.1 + j), self.1)
    }
}

/// [`matmul`] on a raw destination.
///
/// # Safety
/// `dst` must be valid for writes of `m` rows of `n` values at its row stride, and not aliased;
/// the views must be in bounds; the CPU must have AVX-512F.
unsafe fn matmul_raw(m: usize, n: usize, k: usize, dst: Dst, a: MatRef, b: MatRef, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| std::slice::from_raw_parts_mut(dst.offset(i, 0).0, n).fill(0.0));
        }
        return;
    }
    PACKS.with(|packs| {
        let (pack_a, pack_b) = &mut *packs.borrow_mut();
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let panels = b_panels(b, (pc, kc), (jc, nc), m <= IN_PLACE_ROWS, pack_b);
                let add = accumulate || pc > 0;
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    let packed_a = pack_a.get(mc.div_ceil(MR) * MR * kc);
                    pack_a_block(a, ic, mc, pc, kc, packed_a);
                    block(dst.offset(ic, jc), (mc, nc, kc), add, packed_a, &panels);
                }
            }
        }
    });
}

/// Where the micro-kernel reads the NR-wide column panels of a `kc × nc` block of B: panel `j`
/// starts at `start + j·panel_stride` and its rows are `row_stride` apart.
struct Panels {
    start: *const f32,
    panel_stride: usize,
    row_stride: usize,
    /// The last, partial panel (zero-padded to NR columns) when the others are read in place.
    last: Option<*const f32>,
}

/// The panels of `b[pc.., jc..]`: read in place when `in_place` and b's rows are contiguous,
/// packed otherwise.
fn b_panels(b: MatRef, (pc, kc): (usize, usize), (jc, nc): (usize, usize), in_place: bool, pack: &mut Aligned) -> Panels {
    if in_place && b.col_stride == 1 {
        let full = nc / NR * NR;
        let last = (full < nc).then(|| {
            let buffer = pack.get(NR * kc);
            pack_b_block(b, pc, kc, jc + full, nc - full, buffer);
            buffer.as_ptr()
        });
        let start = b.values[pc * b.row_stride + jc..].as_ptr();
        Panels { start, panel_stride: NR, row_stride: b.row_stride, last }
    } else {
        let buffer = pack.get(nc.div_ceil(NR) * NR * kc);
        pack_b_block(b, pc, kc, jc, nc, buffer);
        Panels { start: buffer.as_ptr(), panel_stride: NR * kc, row_stride: NR, last: None }
    }
}

/// Packs `a[ic.., pc..]` (`mc × kc`) into panels of MR rows: panel by panel, for each k the
/// MR values of that column; rows past `mc` are zero.
fn pack_a_block(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    for (panel, chunk) in out.chunks_exact_mut(MR * kc).enumerate() {
        let r0 = ic + panel * MR;
        let rows = MR.min(ic + mc - r0);
        if rows < MR {
            chunk.fill(0.0);
        }
        let at = |r: usize| (r0 + r) * a.row_stride + pc * a.col_stride;
        if a.row_stride == 1 && rows == MR {
            // Columns of A are contiguous: each step of k is one MR-long copy.
            for (p, column) in chunk.chunks_exact_mut(MR).enumerate() {
                let start = at(0) + p * a.col_stride;
                column.copy_from_slice(&a.values[start..start + MR]);
            }
        } else if a.col_stride == 1 {
            // Rows of A are contiguous: read each row once, writing every MR-th value.
            for r in 0..rows {
                let row = &a.values[at(r)..at(r) + kc];
                chunk.chunks_exact_mut(MR).zip(row).for_each(|(column, v)| column[r] = *v);
            }
        } else {
            for r in 0..rows {
                for (p, column) in chunk.chunks_exact_mut(MR).enumerate() {
                    column[r] = a.values[at(r) + p * a.col_stride];
                }
            }
        }
    }
}

/// Packs `b[pc.., jc..]` (`kc × nc`) into panels of NR columns: panel by panel, for each k the
/// NR values of that row; columns past `nc` are zero.
fn pack_b_block(b: MatRef, pc: usize, kc: usize, jc: usize, nc: usize, out: &mut [f32]) {
    for (panel, chunk) in out.chunks_exact_mut(NR * kc).enumerate() {
        let c0 = jc + panel * NR;
        let cols = NR.min(jc + nc - c0);
        if cols < NR {
            chunk.fill(0.0);
        }
        let at = |c: usize| pc * b.row_stride + (c0 + c) * b.col_stride;
        if b.col_stride == 1 && cols == NR {
            // Rows of B are contiguous: each step of k is one NR-long copy.
            for (p, row) in chunk.chunks_exact_mut(NR).enumerate() {
                let start = at(0) + p * b.row_stride;
                row.copy_from_slice(&b.values[start..start + NR]);
            }
        } else if b.row_stride == 1 {
            // Columns of B are contiguous (a transposed view): read each once, writing every
            // NR-th value.
            for c in 0..cols {
                let column = &b.values[at(c)..at(c) + kc];
                chunk.chunks_exact_mut(NR).zip(column).for_each(|(row, v)| row[c] = *v);
            }
        } else {
            for c in 0..cols {
                for (p, row) in chunk.chunks_exact_mut(NR).enumerate() {
                    row[c] = b.values[at(c) + p * b.row_stride];
                }
            }
        }
    }
}

/// All micro-tiles of one `mc × nc` block of C (depth `kc`), added to C when `add`.
///
/// # Safety
/// AVX-512F; `dst` valid for the block; the A panels hold `kc` steps of MR values and the B
/// panels `kc` rows of NR readable values.
#[target_feature(enable = "avx512f")]
unsafe fn block(dst: Dst, (mc, nc, kc): (usize, usize, usize), add: bool, packed_a: &[f32], b: &Panels) {
    for j in (0..nc).step_by(NR) {
        let cols = NR.min(nc - j);
        let (b_panel, b_stride) = match b.last {
            Some(last) if cols < NR => (last, NR),
            _ => (b.start.add(j / NR * b.panel_stride), b.row_stride),
        };
        for (ip, a_panel) in packed_a.chunks_exact(MR * kc).enumerate() {
            let i = ip * MR;
            let rows = MR.min(mc - i);
            let acc = micro_kernel(kc, a_panel.as_ptr(), b_panel, b_stride);
            let corner = dst.offset(i, j);
            if rows == MR && cols == NR {
                store_full(&acc, corner, add);
            } else {
                store_partial(&acc, corner, rows, cols, add);
            }
        }
    }
}

/// The 8 × 32 product of one A panel and one B panel (rows `ldb` apart), as 8 rows of two
/// vectors.
///
/// # Safety
/// AVX-512F; `a` holds `kc·MR` values and `b` `kc` rows of NR.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn micro_kernel(kc: usize, mut a: *const f32, mut b: *const f32, ldb: usize) -> [[__m512; 2]; MR] {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for _ in 0..kc {
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(16));
        for (r, row) in acc.iter_mut().enumerate() {
            let ar = _mm512_set1_ps(*a.add(r));
            row[0] = _mm512_fmadd_ps(ar, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ar, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(ldb);
    }
    acc
}

/// Writes (or adds) a full tile straight into C.
#[target_feature(enable = "avx512f")]
unsafe fn store_full(acc: &[[__m512; 2]; MR], dst: Dst, add: bool) {
    for (r, row) in acc.iter().enumerate() {
        let p = dst.offset(r, 0).0;
        let (mut v0, mut v1) = (row[0], row[1]);
        if add {
            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p));
            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.add(16)));
        }
        _mm512_storeu_ps(p, v0);
        _mm512_storeu_ps(p.add(16), v1);
    }
}

/// Writes (or adds) the `rows × cols` corner of a tile into C, through a buffer.
#[target_feature(enable = "avx512f")]
unsafe fn store_partial(acc: &[[__m512; 2]; MR], dst: Dst, rows: usize, cols: usize, add: bool) {
    let mut buf = [0f32; MR * NR];
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR), row[0]);
        _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR + 16), row[1]);
    }
    for r in 0..rows {
        let out = std::slice::from_raw_parts_mut(dst.offset(r, 0).0, cols);
        let values = &buf[r * NR..r * NR + cols];
        if add {
            out.iter_mut().zip(values).for_each(|(o, v)| *o += v);
        } else {
            out.copy_from_slice(values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// `a · b` in f64, element by element, from the views' strides.
    fn reference(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f64> {
        let at = |v: &MatRef, r: usize, c: usize| v.values[r * v.row_stride + c * v.col_stride] as f64;
        (0..m * n).map(|e| (0..k).map(|p| at(&a, e / n, p) * at(&b, p, e % n)).sum()).collect()
    }

    fn assert_close(got: &[f32], expected: &[f64], k: usize, what: &str) {
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            // Terms are in [-1, 1]: a k-term f32 sum is off by at most about k·2⁻²⁴ times the sum of their sizes (≤ k).
            assert!((*g as f64 - e).abs() <= 1e-7 * (k * k) as f64 + 1e-5, "{what}: element {i} is {g}, expected {e}");
        }
    }

    #[test]
    fn products_match_an_f64_reference_across_block_edges_views_and_accumulation() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 (the gemm crate's path is tested instead)");
            return;
        }
        // Sizes below, at and past one register tile (8 × 32) and one packed block (96 rows,
        // 256 deep, 1024 wide), and a depth of 0.
        for &(m, n, k) in &[(1, 1, 1), (8, 32, 7), (9, 33, 5), (16, 64, 3), (24, 40, 30), (25, 31, 2), (5, 70, 300), (97, 31, 257), (200, 1030, 9), (3, 4, 0)] {
            for (transpose_a, transpose_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let (av, bv) = (values(m * k, 1), values(k * n, 2));
                let a = if transpose_a { MatRef::transposed(&av, m) } else { MatRef::rows(&av, k) };
                let b = if transpose_b { MatRef::transposed(&bv, k) } else { MatRef::rows(&bv, n) };
                let what = format!("{m}×{n}×{k}, transposed a {transpose_a}, b {transpose_b}");
                let expected = reference(m, n, k, a, b);
                // Written into a wider matrix (row stride n + 3), whose extra columns stay put.
                let ldc = n + 3;
                let mut dst = vec![7.0f32; m * ldc];
                matmul(m, n, k, &mut dst, ldc, a, b, false);
                let got: Vec<f32> = dst.chunks(ldc).flat_map(|row| row[..n].to_vec()).collect();
                assert_close(&got, &expected, k, &what);
                assert!(dst.chunks(ldc).all(|row| row[n..] == [7.0; 3]), "{what}: wrote past the row");
                // Accumulating adds the product to what is there.
                let start = values(m * n, 3);
                let mut acc = start.clone();
                matmul(m, n, k, &mut acc, n, a, b, true);
                let plus: Vec<f64> = expected.iter().zip(&start).map(|(e, s)| e + *s as f64).collect();
                assert_close(&acc, &plus, k, &format!("{what}, accumulated"));
            }
        }
    }

    #[test]
    fn threads_split_the_output_without_changing_a_bit() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 (the gemm crate's path is tested instead)");
            return;
        }
        // Wide (columns split) and tall (rows split) products, big enough to be split.
        for &(m, n, k) in &[(40, 1000, 300), (700, 50, 300)] {
            let (av, bv) = (values(m * k, 4), values(k * n, 5));
            let (a, b) = (MatRef::rows(&av, k), MatRef::transposed(&bv, k));
            let mut one = vec![0.0; m * n];
            matmul(m, n, k, &mut one, n, a, b, false);
            for threads in [2, 3, 7] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut many = vec![0.0; m * n];
                pool.install(|| matmul_threads(m, n, k, &mut many, a, b, false));
                assert!(one == many, "{m}×{n}×{k}: {threads} threads changed the result");
            }
        }
    }
}
