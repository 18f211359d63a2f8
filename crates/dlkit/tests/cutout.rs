//! Cutout's multi-hole geometry, pinned to masks drawn by hand from the reference
//! implementation's rule (uoguelph-mlrg/Cutout `util/cutout.py`, for each hole):
//! `y1 = clip(y − length // 2, 0, h)`, `y2 = clip(y + length // 2, 0, h)` (same for x),
//! `mask[y1:y2, x1:x2] = 0`.

use candle_core::{DType, Device, Tensor};
use dlkit::augment::{Cutout, CutoutParams, Square};

/// The masked pixels of each sample of `params` on 8×8 images of `channels` ones, as rows of
/// `#` (cut, every channel 0) and `.` (kept, every channel 1).
fn masks(cutout: &Cutout, params: &CutoutParams, channels: usize) -> Vec<Vec<String>> {
    let n = params.samples();
    let x = Tensor::ones((n, channels, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let out = cutout.mask_with(params, &x).unwrap();
    (0..n)
        .map(|s| {
            let planes: Vec<Vec<Vec<f32>>> = out.get(s).unwrap().to_vec3().unwrap();
            (0..8)
                .map(|r| {
                    (0..8)
                        .map(|c| {
                            let all: Vec<f32> = planes.iter().map(|p| p[r][c]).collect();
                            assert!(all.iter().all(|&v| v == all[0]), "channels differ at ({r}, {c})");
                            if all[0] == 0.0 { '#' } else { '.' }
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn params(length: usize, holes: usize, centres: Vec<(usize, usize)>) -> CutoutParams {
    CutoutParams { height: 8, width: 8, length, holes, centres }
}

#[test]
fn overlapping_holes_cut_their_union() {
    // length 4 (half 2): (2, 2) covers rows 0..4, columns 0..4; (3, 4) rows 1..5, columns 2..6.
    let p = params(4, 2, vec![(2, 2), (3, 4)]);
    assert_eq!(p.square(0, 1), Some(Square { top: 1, bottom: 5, left: 2, right: 6 }));
    let expected = ["####....", "######..", "######..", "######..", "..####..", "........", "........", "........"];
    assert_eq!(masks(&Cutout::new(4, 2, 1).unwrap(), &p, 3), vec![expected.map(String::from).to_vec()]);
}

#[test]
fn holes_at_the_border_are_clipped() {
    // length 6 (half 3): (0, 7) → rows clip(−3)=0 .. 3, columns 4 .. clip(10)=8;
    // (7, 0) → rows 4 .. 8, columns 0 .. 3. Each is 3×4 or 4×3 instead of 6×6.
    let p = params(6, 2, vec![(0, 7), (7, 0)]);
    assert_eq!(p.square(0, 0), Some(Square { top: 0, bottom: 3, left: 4, right: 8 }));
    let expected = ["....####", "....####", "....####", "........", "###.....", "###.....", "###.....", "###....."];
    assert_eq!(masks(&Cutout::new(6, 2, 1).unwrap(), &p, 1), vec![expected.map(String::from).to_vec()]);
}

#[test]
fn odd_lengths_cover_one_pixel_less_and_length_one_covers_nothing() {
    // length 5 (half 2): (4, 4) → rows and columns 2..6, a 4×4 square; (0, 0) → 0..2.
    // Second sample, length 1 (half 0): y1 = y2 = y, an empty square, as in the reference.
    let five = params(5, 2, vec![(4, 4), (0, 0)]);
    let expected = ["##......", "##......", "..####..", "..####..", "..####..", "..####..", "........", "........"];
    assert_eq!(masks(&Cutout::new(5, 2, 1).unwrap(), &five, 2), vec![expected.map(String::from).to_vec()]);
    let one = params(1, 2, vec![(3, 3), (0, 7)]);
    assert_eq!(one.square(0, 0), Some(Square { top: 3, bottom: 3, left: 3, right: 3 }));
    assert_eq!(masks(&Cutout::new(1, 2, 1).unwrap(), &one, 1), vec![vec![".".repeat(8); 8]]);
}

#[test]
fn each_sample_gets_its_own_holes() {
    // Two samples, two holes of length 2 (half 1): sample 0 at (1, 1), (6, 6); sample 1 at
    // (1, 6), (6, 1) — sample-major order of the centres.
    let p = params(2, 2, vec![(1, 1), (6, 6), (1, 6), (6, 1)]);
    let got = masks(&Cutout::new(2, 2, 1).unwrap(), &p, 1);
    let sample0 = ["##......", "##......", "........", "........", "........", ".....##.", ".....##.", "........"];
    let sample1 = [".....##.", ".....##.", "........", "........", "........", "##......", "##......", "........"];
    assert_eq!(got, vec![sample0.map(String::from).to_vec(), sample1.map(String::from).to_vec()]);
}

#[test]
fn records_with_the_old_field_name_still_parse() {
    let old: Cutout = serde_json::from_str(r#"{"size":16,"holes":2,"copies":4,"fill":0.0}"#).unwrap();
    assert_eq!(old, Cutout::new(16, 2, 4).unwrap());
    let json = serde_json::to_string(&old).unwrap();
    assert!(json.contains("\"length\":16"), "{json}");
}
