//! Augmentation geometry checked against plain loops over `Vec<f32>` written in the test.

use candle_core::{DType, Device, Tensor};
use dlkit::augment::{
    Augment, Augmentation, Cutout, CutoutParams, ShiftAndFlip, ShiftFlip, ShiftFlipParams,
};
use dlkit::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Pixel values 1, 2, 3, ... (never 0, so zero fill is always visible).
fn counting(b: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    (0..b * c * h * w).map(|i| (i + 1) as f32).collect()
}

fn tensor(v: &[f32], b: usize, c: usize, h: usize, w: usize) -> Result<Tensor> {
    Ok(Tensor::from_slice(v, (b, c, h, w), &Device::Cpu)?)
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// numpy's `np.clip` on integers.
fn clip(v: i64, lo: i64, hi: i64) -> i64 {
    v.max(lo).min(hi)
}

/// The cutout helper of the paper, written out: one mask per sample, 0 inside squares.
fn expected_cutout(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    size: usize,
    centres: &[Vec<(usize, usize)>],
    fill: f32,
) -> Vec<f32> {
    let mut out = x.to_vec();
    for s in 0..n {
        let mut mask = vec![true; h * w]; // true = keep
        for &(cy, cx) in &centres[s] {
            let half = (size / 2) as i64;
            let y1 = clip(cy as i64 - half, 0, h as i64) as usize;
            let y2 = clip(cy as i64 + half, 0, h as i64) as usize;
            let x1 = clip(cx as i64 - half, 0, w as i64) as usize;
            let x2 = clip(cx as i64 + half, 0, w as i64) as usize;
            for i in y1..y2 {
                for j in x1..x2 {
                    mask[i * w + j] = false;
                }
            }
        }
        for ch in 0..c {
            for p in 0..h * w {
                if !mask[p] {
                    out[((s * c) + ch) * h * w + p] = fill;
                }
            }
        }
    }
    out
}

/// Shift then flip, written out: out(i, j) = x(i − dy, j' − dx), j' mirrored when flipped.
fn expected_shift_flip(
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    params: &[ShiftAndFlip],
) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for n in 0..b {
        let p = params[n];
        for ch in 0..c {
            for i in 0..h {
                for j in 0..w {
                    let jj = if p.flip { w - 1 - j } else { j };
                    let si = i as i64 - p.dy;
                    let sj = jj as i64 - p.dx;
                    if si >= 0 && si < h as i64 && sj >= 0 && sj < w as i64 {
                        let src = ((n * c + ch) * h + si as usize) * w + sj as usize;
                        out[((n * c + ch) * h + i) * w + j] = x[src];
                    }
                }
            }
        }
    }
    out
}

fn params(holes: usize, size: usize, centres: Vec<(usize, usize)>) -> CutoutParams {
    CutoutParams { height: 8, width: 8, length: size, holes, centres }
}

#[test]
fn cutout_fills_exactly_the_clipped_squares() -> Result<()> {
    // B = 4 samples, C = 3, 8×8: interior, top-left corner, bottom border, right border.
    let dims = (4, 3, 8, 8);
    let x = counting(4, 3, 8, 8);
    let centres = vec![(3, 4), (0, 0), (7, 2), (5, 7)];
    let p = params(1, 6, centres.clone());
    let cutout = Cutout::new(6, 1, 1)?;
    let out = values(&cutout.mask_with(&p, &tensor(&x, 4, 3, 8, 8)?)?)?;
    let per_sample: Vec<Vec<(usize, usize)>> = centres.iter().map(|&c| vec![c]).collect();
    assert_eq!(out, expected_cutout(&x, dims, 6, &per_sample, 0.0));

    // Hand-counted covered pixels per channel: rows × columns of each clipped square.
    // (3,4): rows 0..6, cols 1..7 → 36; (0,0): rows 0..3, cols 0..3 → 9;
    // (7,2): rows 4..8, cols 0..5 → 20; (5,7): rows 2..8, cols 4..8 → 24.
    for (s, expected_count) in [36, 9, 20, 24].into_iter().enumerate() {
        for ch in 0..3 {
            let plane = &out[(s * 3 + ch) * 64..(s * 3 + ch + 1) * 64];
            let zeros = plane.iter().filter(|&&v| v == 0.0).count();
            assert_eq!(zeros, expected_count, "sample {s} channel {ch}");
        }
    }
    // Spot checks on the corner square (sample 1, channel 2): (2,2) covered, (3,0) and (0,3) kept.
    let start = (3 + 2) * 64;
    let corner = &out[start..start + 64];
    assert_eq!(corner[2 * 8 + 2], 0.0);
    assert_eq!(corner[3 * 8], x[start + 3 * 8]);
    assert_eq!(corner[3], x[start + 3]);
    Ok(())
}

#[test]
fn cutout_odd_size_several_holes_and_custom_fill() -> Result<()> {
    // Size 5 → half 2 → squares of side 4 (y1 = cy − 2, y2 = cy + 2), as the paper's code.
    let dims = (2, 1, 8, 8);
    let x = counting(2, 1, 8, 8);
    let centres = vec![(2, 2), (3, 3), (7, 7), (0, 6)];
    let p = params(2, 5, centres.clone());
    let cutout = Cutout::new(5, 2, 1)?.with_fill(-7.5)?;
    let out = values(&cutout.mask_with(&p, &tensor(&x, 2, 1, 8, 8)?)?)?;
    let per_sample = vec![vec![centres[0], centres[1]], vec![centres[2], centres[3]]];
    assert_eq!(out, expected_cutout(&x, dims, 5, &per_sample, -7.5));
    // Sample 0: rows 0..4 × cols 0..4 ∪ rows 1..5 × cols 1..5 = 16 + 16 − 9 = 23.
    // Sample 1: rows 5..8 × cols 5..8 (9) and rows 0..2 × cols 4..8 (8), disjoint = 17.
    let filled = |s: usize| out[s * 64..(s + 1) * 64].iter().filter(|&&v| v == -7.5).count();
    assert_eq!((filled(0), filled(1)), (23, 17));
    Ok(())
}

#[test]
fn cutout_copies_have_own_masks_and_repeated_labels() -> Result<()> {
    let (b, c, m) = (2, 3, 4);
    let x = counting(b, c, 8, 8);
    let xt = tensor(&x, b, c, 8, 8)?;
    let y = Tensor::new(&[7u32, 3], &Device::Cpu)?;
    let cutout = Cutout::new(4, 1, m)?;
    let (out, labels) = cutout.apply(&xt, &y, &mut StdRng::seed_from_u64(5))?;
    assert_eq!(out.dims(), &[b * m, c, 8, 8]);
    assert_eq!(labels.to_vec1::<u32>()?, vec![7, 3, 7, 3, 7, 3, 7, 3]);

    // The same seed draws the same centres: rebuild the expected copies by hand.
    let drawn = cutout.draw(b * m, 8, 8, &mut StdRng::seed_from_u64(5))?;
    assert_eq!(drawn.centres.len(), b * m);
    let mut copies = Vec::new();
    for _ in 0..m {
        copies.extend_from_slice(&x); // copy-major: copy k of image n is sample k·B + n
    }
    let per_sample: Vec<Vec<(usize, usize)>> = drawn.centres.iter().map(|&c| vec![c]).collect();
    let out = values(&out)?;
    assert_eq!(out, expected_cutout(&copies, (b * m, c, 8, 8), 4, &per_sample, 0.0));

    // The copies of each image differ from one another (their masks differ for this seed).
    let sample = |k: usize| &out[k * c * 64..(k + 1) * c * 64];
    for n in 0..b {
        for k1 in 0..m {
            for k2 in k1 + 1..m {
                assert_ne!(sample(k1 * b + n), sample(k2 * b + n), "image {n}, copies {k1} {k2}");
            }
        }
    }
    Ok(())
}

#[test]
fn cutout_centres_cover_the_whole_image() -> Result<()> {
    let p = Cutout::new(6, 1, 1)?.draw(2000, 8, 5, &mut StdRng::seed_from_u64(1))?;
    assert!(p.centres.iter().all(|&(cy, cx)| cy < 8 && cx < 5));
    for v in 0..8 {
        assert!(p.centres.iter().any(|&(cy, _)| cy == v), "row {v} never drawn");
    }
    for v in 0..5 {
        assert!(p.centres.iter().any(|&(_, cx)| cx == v), "column {v} never drawn");
    }
    Ok(())
}

#[test]
fn shift_moves_content_with_zero_fill() -> Result<()> {
    // 1×1×4×4 image 1..16, content moved one row down and two columns left.
    let x = counting(1, 1, 4, 4);
    let p = ShiftFlipParams { per_image: vec![ShiftAndFlip { dy: 1, dx: -2, flip: false }] };
    let out = values(&ShiftFlip::default().apply_with(&p, &tensor(&x, 1, 1, 4, 4)?)?)?;
    #[rustfmt::skip]
    let expected = vec![
        0.0, 0.0, 0.0, 0.0,
        3.0, 4.0, 0.0, 0.0,
        7.0, 8.0, 0.0, 0.0,
        11.0, 12.0, 0.0, 0.0,
    ];
    assert_eq!(out, expected);
    Ok(())
}

#[test]
fn flip_mirrors_left_right() -> Result<()> {
    let x = counting(1, 1, 2, 3);
    let p = ShiftFlipParams { per_image: vec![ShiftAndFlip { dy: 0, dx: 0, flip: true }] };
    let out = values(&ShiftFlip::default().apply_with(&p, &tensor(&x, 1, 1, 2, 3)?)?)?;
    assert_eq!(out, vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
    // Shift first, then flip: content moved right by 1 (0 1 2), then mirrored (2 1 0).
    let p = ShiftFlipParams { per_image: vec![ShiftAndFlip { dy: 0, dx: 1, flip: true }] };
    let out = values(&ShiftFlip::default().apply_with(&p, &tensor(&x, 1, 1, 2, 3)?)?)?;
    assert_eq!(out, vec![2.0, 1.0, 0.0, 5.0, 4.0, 0.0]);
    Ok(())
}

#[test]
fn shift_flip_matches_hand_loop_on_all_channels() -> Result<()> {
    let dims = (3, 3, 8, 8);
    let x = counting(3, 3, 8, 8);
    let per_image = vec![
        ShiftAndFlip { dy: 2, dx: -3, flip: false },
        ShiftAndFlip { dy: -4, dx: 4, flip: true },
        ShiftAndFlip { dy: 0, dx: -1, flip: true },
    ];
    let p = ShiftFlipParams { per_image: per_image.clone() };
    let out = values(&ShiftFlip::default().apply_with(&p, &tensor(&x, 3, 3, 8, 8)?)?)?;
    assert_eq!(out, expected_shift_flip(&x, dims, &per_image));
    // Zero-filled pixels per channel, counted by hand: (8·8 − 6·5), (8·8 − 4·4), (8·8 − 8·7).
    for (n, zeros) in [34, 48, 8].into_iter().enumerate() {
        for ch in 0..3 {
            let plane = &out[(n * 3 + ch) * 64..(n * 3 + ch + 1) * 64];
            assert_eq!(plane.iter().filter(|&&v| v == 0.0).count(), zeros, "image {n}");
        }
    }
    Ok(())
}

#[test]
fn shift_flip_draws_cover_the_range() -> Result<()> {
    let p = ShiftFlip::default().draw(4000, &mut StdRng::seed_from_u64(3))?;
    for v in -4..=4 {
        assert!(p.per_image.iter().any(|s| s.dy == v), "dy = {v} never drawn");
        assert!(p.per_image.iter().any(|s| s.dx == v), "dx = {v} never drawn");
    }
    assert!(p.per_image.iter().all(|s| s.dy.abs() <= 4 && s.dx.abs() <= 4));
    let flips = p.per_image.iter().filter(|s| s.flip).count() as f64 / 4000.0;
    assert!((0.45..0.55).contains(&flips), "flip rate {flips}");
    let never = ShiftFlip::new(0, 0.0)?.draw(100, &mut StdRng::seed_from_u64(3))?;
    assert!(never.per_image.iter().all(|s| *s == ShiftAndFlip { dy: 0, dx: 0, flip: false }));
    Ok(())
}

#[test]
fn pipeline_is_seeded() -> Result<()> {
    let xt = tensor(&counting(2, 3, 8, 8), 2, 3, 8, 8)?;
    let y = Tensor::new(&[1u32, 2], &Device::Cpu)?;
    let pipeline = Augmentation::shift_flip_cutout(3)?;
    assert_eq!(pipeline.copies(), 3);
    let run = |seed: u64| -> Result<(Vec<f32>, Vec<u32>)> {
        let (x, y) = pipeline.apply(&xt, &y, &mut StdRng::seed_from_u64(seed))?;
        assert_eq!(x.dims(), &[6, 3, 8, 8]);
        Ok((values(&x)?, y.to_vec1::<u32>()?))
    };
    let (a, la) = run(11)?;
    let (b, lb) = run(11)?;
    let (c, _) = run(12)?;
    assert_eq!(a, b);
    assert_eq!(la, vec![1, 2, 1, 2, 1, 2]);
    assert_eq!(la, lb);
    assert_ne!(a, c);
    // No augmentation: the batch passes through.
    let (same, _) = Augmentation::none().apply(&xt, &y, &mut StdRng::seed_from_u64(0))?;
    assert_eq!(values(&same)?, values(&xt)?);
    Ok(())
}

#[test]
fn bad_settings_and_shapes_are_errors() -> Result<()> {
    assert!(ShiftFlip::new(4, 1.5).is_err());
    assert!(ShiftFlip::new(4, f64::NAN).is_err());
    assert!(Cutout::new(6, 1, 0).is_err());
    assert!(Cutout::new(6, 1, 1)?.with_fill(f32::INFINITY).is_err());
    let xt = tensor(&counting(2, 1, 8, 8), 2, 1, 8, 8)?;
    let y = Tensor::new(&[1u32, 2, 3], &Device::Cpu)?;
    let rng = &mut StdRng::seed_from_u64(0);
    assert!(ShiftFlip::default().apply(&xt, &y, rng).is_err(), "3 labels for 2 images");
    let flat = Tensor::zeros((2, 64), DType::F32, &Device::Cpu)?;
    assert!(Cutout::default().mask_with(&params(1, 6, vec![(0, 0)]), &flat).is_err());
    let one = ShiftFlipParams { per_image: vec![ShiftAndFlip { dy: 0, dx: 0, flip: false }] };
    assert!(ShiftFlip::default().apply_with(&one, &xt).is_err(), "params for 1 of 2 images");
    assert!(Cutout::default().mask_with(&params(1, 6, vec![(0, 0)]), &xt).is_err());
    Ok(())
}

/// Milliseconds per call of `augmentation` on `x`, averaged over 10 calls after a warm-up.
fn time_ms(augmentation: &dyn Augment, x: &Tensor, y: &Tensor) -> Result<f64> {
    let rng = &mut StdRng::seed_from_u64(0);
    augmentation.apply(x, y, rng)?;
    let runs = 10;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        let (out, _) = augmentation.apply(x, y, rng)?;
        assert_eq!(out.dims()[1..], [3, 32, 32]);
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / runs as f64)
}

/// Timing of the coursework's heaviest setting (run with `--ignored --nocapture`).
#[test]
#[ignore = "timing, not a check; run by hand"]
fn time_shift_flip_and_cutout_32_copies() -> Result<()> {
    let x = Tensor::rand(0f32, 1f32, (64, 3, 32, 32), &Device::Cpu)?;
    let y = Tensor::zeros(64, DType::U32, &Device::Cpu)?;
    let shift_flip = ShiftFlip::default();
    let cutout = Cutout::new(6, 1, 32)?;
    let both = Augmentation::shift_flip_cutout(32)?;
    println!("64×3×32×32 on the CPU, ms per batch:");
    println!("  shift+flip            {:.1}", time_ms(&shift_flip, &x, &y)?);
    println!("  cutout ×32            {:.1}", time_ms(&cutout, &x, &y)?);
    println!("  shift+flip, cutout×32 {:.1}", time_ms(&both, &x, &y)?);
    Ok(())
}
