//! Keras's `ImageDataGenerator` geometry ([`RandomAffine`]), pinned to Keras itself.
//!
//! Every expected array below was printed by `bench/keras_affine_reference.py`, which runs
//! Keras's own `apply_affine_transform` (keras-preprocessing 1.1.2 for
//! `KerasVersion::KerasPreprocessing`, tf-keras 2.21.0 for `KerasVersion::TfKeras`;
//! scipy 1.17.1, numpy 2.4.6) and the flips of `ImageDataGenerator.apply_transform` on the
//! 5×7 test image `IMAGE` (channel 0: `v(r, c) = (17·(7r + c) mod 35) + 1`, channel 1: `v²/10`),
//! channels first, rows of 7 values.

use candle_core::{DType, Device, Tensor};
use dlkit::augment::{
    AffineTransform, Augment, Augmentation, Cutout, FillMode, KerasVersion, RandomAffine,
    RandomAffineParams,
};
use dlkit::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[rustfmt::skip]
const IMAGE: [f32; 70] = [
    1.0, 18.0, 35.0, 17.0, 34.0, 16.0, 33.0,
    15.0, 32.0, 14.0, 31.0, 13.0, 30.0, 12.0,
    29.0, 11.0, 28.0, 10.0, 27.0, 9.0, 26.0,
    8.0, 25.0, 7.0, 24.0, 6.0, 23.0, 5.0,
    22.0, 4.0, 21.0, 3.0, 20.0, 2.0, 19.0,
    0.1, 32.4, 122.5, 28.9, 115.6, 25.6, 108.9,
    22.5, 102.4, 19.6, 96.1, 16.9, 90.0, 14.4,
    84.1, 12.1, 78.4, 10.0, 72.9, 8.1, 67.6,
    6.4, 62.5, 4.9, 57.6, 3.6, 52.9, 2.5,
    48.4, 1.6, 44.1, 0.9, 40.0, 0.4, 36.1,
];
#[rustfmt::skip]
const LEGACY_ROTATE_90_CONSTANT: [f32; 35] = [
    -1.0, -1.0, -1.0, 4.0, 25.0, 11.0, 32.0,
    -1.0, -1.0, -1.0, 21.0, 7.0, 28.0, 14.0,
    -1.0, -1.0, -1.0, 3.0, 24.0, 10.0, 31.0,
    -1.0, -1.0, -1.0, 20.0, 6.0, 27.0, 13.0,
    -1.0, -1.0, -1.0, 2.0, 23.0, 9.0, 30.0,
];
#[rustfmt::skip]
const LEGACY_ROTATE_30_NEAREST: [f32; 35] = [
    20.5596, 27.626932, 22.879072, 21.391615, 24.593267, 23.222431, 29.823086,
    11.751288, 16.441435, 16.793537, 23.427858, 25.373068, 19.196497, 22.061487,
    21.353828, 12.195462, 11.964447, 17.342323, 18.03109, 19.976297, 24.09773,
    12.353829, 10.832705, 16.176914, 13.433013, 6.0, 16.066988, 21.444864,
    4.6102724, 19.332705, 7.1769147, 13.777568, 11.468911, 13.41412, 7.8134665,
];
#[rustfmt::skip]
const LEGACY_SHIFT_NEAREST: [f32; 35] = [
    22.0, 21.875, 21.375, 20.875, 20.375, 19.875, 19.375,
    18.5, 18.375, 17.875, 17.375, 16.875, 16.375, 15.875,
    15.0, 14.875, 14.375, 13.875, 13.375, 12.875, 12.375,
    22.0, 17.5, 8.25, 16.5, 7.25, 15.5, 6.25,
    22.0, 17.5, 8.25, 16.5, 7.25, 15.5, 6.25,
];
#[rustfmt::skip]
const LEGACY_SHIFT_CONSTANT: [f32; 35] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    23.15, 24.4, 22.15, 23.4, 0.0, 0.0, 0.0,
    21.4, 19.15, 20.4, 18.15, 0.0, 0.0, 0.0,
    16.15, 17.4, 15.15, 16.4, 0.0, 0.0, 0.0,
    14.4, 12.15, 13.4, 11.15, 0.0, 0.0, 0.0,
];
#[rustfmt::skip]
const LEGACY_ZOOM_IN_NEAREST: [f32; 35] = [
    23.0, 24.0, 23.6, 24.6, 21.4, 23.8, 22.0,
    23.0, 21.2, 20.8, 21.8, 18.6, 21.0, 19.2,
    16.0, 19.8, 19.4, 14.8, 22.8, 14.0, 17.8,
    21.6, 14.2, 13.8, 20.4, 6.0, 19.6, 12.2,
    10.4, 14.2, 13.8, 9.2, 17.2, 8.4, 12.2,
];
#[rustfmt::skip]
const LEGACY_ZOOM_OUT_CONSTANT: [f32; 35] = [
    -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
    -1.0, 12.25, 24.75, 24.125, 23.5, 22.875, -1.0,
    -1.0, 23.1875, 20.375, 17.5625, 23.5, 16.3125, -1.0,
    -1.0, 12.25, 16.0, 19.75, 6.0, 18.5, -1.0,
    -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
];
#[rustfmt::skip]
const LEGACY_ZOOM_MIXED_NEAREST: [f32; 35] = [
    9.4, 13.65, 24.4, 24.65, 21.4, 23.4, 20.4,
    20.6, 21.35, 21.6, 21.85, 18.6, 20.6, 17.6,
    24.8, 22.05, 18.8, 15.55, 22.8, 14.3, 21.8,
    8.0, 12.25, 16.0, 19.75, 6.0, 18.5, 5.0,
    19.2, 16.45, 13.2, 9.95, 17.2, 8.7, 16.2,
];
#[rustfmt::skip]
const LEGACY_FLIP_AFTER_ROTATE: [f32; 35] = [
    -1.0, -1.0, 24.593267, 21.391615, 22.879072, -1.0, -1.0,
    22.061487, 19.196497, 25.373068, 23.427858, 16.793537, 16.441435, -1.0,
    24.09773, 19.976297, 18.03109, 17.342323, 11.964447, 12.195462, -1.0,
    21.444864, 16.066988, 6.0, 13.433013, 16.176914, -1.0, -1.0,
    -1.0, 13.41412, 11.468911, -1.0, -1.0, -1.0, -1.0,
];
#[rustfmt::skip]
const LEGACY_VERTICAL_FLIP_AFTER_SHIFT: [f32; 35] = [
    -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
    22.0, 4.0, 21.0, 3.0, 20.0, 2.0, 19.0,
    8.0, 25.0, 7.0, 24.0, 6.0, 23.0, 5.0,
    29.0, 11.0, 28.0, 10.0, 27.0, 9.0, 26.0,
    15.0, 32.0, 14.0, 31.0, 13.0, 30.0, 12.0,
];
#[rustfmt::skip]
const LEGACY_EVERYTHING_TWO_CHANNELS: [f32; 70] = [
    18.393297, 23.018248, 23.47425, 25.005339, 24.100632, 5.320922, 0.5,
    16.67038, 20.395502, 21.445456, 18.233898, 30.675106, 0.5, 0.5,
    17.894142, 17.219402, 14.8314905, 23.413437, 17.334988, 0.5, 0.5,
    12.6156645, 12.796597, 16.021713, 16.407808, 16.691423, 0.5, 0.5,
    0.5, 0.5, 16.058018, 10.402581, 15.824418, 0.5, 0.5,
    41.334267, 60.22651, 63.116295, 71.06778, 64.72511, 8.377522, 0.5,
    35.692406, 48.223362, 55.793644, 37.97307, 96.5814, 0.5, 0.5,
    36.869423, 40.40445, 27.215492, 60.994854, 37.75496, 0.5, 0.5,
    25.352169, 23.520742, 33.22752, 35.021492, 35.942932, 0.5, 0.5,
    0.5, 0.5, 32.153553, 18.98697, 30.498024, 0.5, 0.5,
];
#[rustfmt::skip]
const TF_KERAS_ROTATE_90_CONSTANT: [f32; 35] = [
    30.0, 9.0, 23.0, 2.0, -1.0, -1.0, -1.0,
    13.0, 27.0, 6.0, 20.0, -1.0, -1.0, -1.0,
    31.0, 10.0, 24.0, 3.0, -1.0, -1.0, -1.0,
    14.0, 28.0, 7.0, 21.0, -1.0, -1.0, -1.0,
    32.0, 11.0, 25.0, 4.0, -1.0, -1.0, -1.0,
];
#[rustfmt::skip]
const TF_KERAS_ROTATE_30_NEAREST: [f32; 35] = [
    31.055136, 23.588457, 24.093267, 20.025589, 20.647022, 24.626932, 17.5596,
    23.793537, 20.062523, 25.373068, 22.561832, 15.061487, 13.843359, 8.751288,
    26.329782, 21.342323, 18.53109, 16.976297, 10.732396, 10.097385, 18.389727,
    24.176914, 17.933012, 7.0, 13.566987, 15.444863, 9.234628, 9.889728,
    10.813466, 15.780146, 12.968911, 14.411543, 6.944864, 18.234629, 2.6461709,
];
#[rustfmt::skip]
const TF_KERAS_SHIFT_NEAREST: [f32; 35] = [
    26.5, 26.0, 25.5, 25.0, 24.5, 33.0, 33.0,
    25.625, 25.125, 24.625, 24.125, 23.625, 27.75, 27.75,
    22.125, 21.625, 21.125, 20.625, 20.125, 15.5, 15.5,
    18.625, 18.125, 17.625, 17.125, 16.625, 20.75, 20.75,
    15.125, 14.625, 14.125, 13.625, 13.125, 8.5, 8.5,
];
#[rustfmt::skip]
const TF_KERAS_SHIFT_CONSTANT: [f32; 35] = [
    0.0, 18.2, 19.45, 17.2, 18.45, 16.2, 17.45,
    0.0, 16.45, 14.2, 15.45, 13.2, 14.45, 12.2,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
];
#[rustfmt::skip]
const TF_KERAS_ZOOM_IN_NEAREST: [f32; 35] = [
    16.2, 25.6, 22.4, 24.8, 23.0, 22.6, 23.6,
    21.8, 22.8, 19.6, 22.0, 20.2, 19.8, 20.8,
    20.4, 15.8, 23.8, 15.0, 18.8, 18.4, 13.8,
    14.8, 21.4, 7.0, 20.6, 13.2, 12.8, 19.4,
    14.8, 10.2, 18.2, 9.4, 13.2, 12.8, 8.2,
];
#[rustfmt::skip]
const TF_KERAS_ZOOM_OUT_CONSTANT: [f32; 35] = [
    -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
    -1.0, 20.75, 24.5, 23.875, 23.25, 22.625, -1.0,
    -1.0, 18.5625, 24.5, 17.3125, 18.875, 20.4375, -1.0,
    -1.0, 20.75, 7.0, 19.5, 14.5, 9.5, -1.0,
    -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0,
];
#[rustfmt::skip]
const TF_KERAS_ZOOM_MIXED_NEAREST: [f32; 35] = [
    7.8, 21.4, 35.0, 20.6, 27.2, 26.8, 19.4,
    14.8, 24.9, 24.5, 24.1, 23.7, 23.3, 22.9,
    21.8, 17.9, 24.5, 17.1, 20.2, 19.8, 15.9,
    14.8, 21.4, 7.0, 20.6, 13.2, 12.8, 19.4,
    14.8, 7.4, 21.0, 6.6, 13.2, 12.8, 5.4,
];
#[rustfmt::skip]
const TF_KERAS_FLIP_AFTER_ROTATE: [f32; 35] = [
    -1.0, -1.0, 20.647022, 20.025589, 24.093267, -1.0, -1.0,
    -1.0, 13.843359, 15.061487, 22.561832, 25.373068, 20.062523, 23.793537,
    -1.0, 10.097385, 10.732396, 16.976297, 18.53109, 21.342323, 26.329782,
    -1.0, -1.0, 15.444863, 13.566987, 7.0, 17.933012, 24.176914,
    -1.0, -1.0, -1.0, -1.0, 12.968911, 15.780146, -1.0,
];
#[rustfmt::skip]
const TF_KERAS_VERTICAL_FLIP_AFTER_SHIFT: [f32; 35] = [
    4.0, 21.0, 3.0, 20.0, 2.0, 19.0, -1.0,
    25.0, 7.0, 24.0, 6.0, 23.0, 5.0, -1.0,
    11.0, 28.0, 10.0, 27.0, 9.0, 26.0, -1.0,
    32.0, 14.0, 31.0, 13.0, 30.0, 12.0, -1.0,
    18.0, 35.0, 17.0, 34.0, 16.0, 33.0, -1.0,
];
#[rustfmt::skip]
const TF_KERAS_EVERYTHING_TWO_CHANNELS: [f32; 70] = [
    0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
    0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.0886374,
    0.5, 0.5, 0.5, 22.178038, 24.722641, 28.267645, 19.627481,
    23.31378, 23.46718, 17.018635, 25.156647, 21.65972, 17.008873, 20.162212,
    18.909739, 15.927652, 26.115038, 15.629182, 15.757775, 16.719957, 16.435432,
    0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
    0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.1233864,
    0.5, 0.5, 0.5, 55.29605, 71.701805, 84.29686, 44.120705,
    62.16452, 61.95437, 34.753765, 71.916695, 52.522156, 36.124138, 48.9773,
    42.592674, 34.23661, 69.97063, 30.048607, 33.592026, 36.001266, 35.21553,
];

/// One transformation with Keras's defaults for everything not given.
fn t(theta: f64, tx: f64, ty: f64, zx: f64, zy: f64) -> AffineTransform {
    AffineTransform { theta, tx, ty, zx, zy, ..AffineTransform::IDENTITY }
}

/// A reference case: parameters, fill, channels, and the expected output per Keras code.
type Case = (&'static str, AffineTransform, FillMode, usize, &'static [f32], &'static [f32]);

/// The reference cases.
fn cases() -> Vec<Case> {
    let constant = FillMode::Constant(-1.0);
    let nearest = FillMode::Nearest;
    let flip_h = AffineTransform { flip_horizontal: true, ..t(30.0, 0.0, 0.0, 1.0, 1.0) };
    let flip_v = AffineTransform { flip_vertical: true, ..t(0.0, 1.0, 0.0, 1.0, 1.0) };
    let everything = AffineTransform {
        theta: -20.0,
        tx: 0.6,
        ty: -1.3,
        shear: 10.0,
        zx: 0.9,
        zy: 1.1,
        flip_horizontal: true,
        flip_vertical: false,
    };
    vec![
        (
            "rotate 90°, constant",
            t(90.0, 0.0, 0.0, 1.0, 1.0),
            constant,
            1,
            &LEGACY_ROTATE_90_CONSTANT[..],
            &TF_KERAS_ROTATE_90_CONSTANT[..],
        ),
        (
            "rotate 30°, nearest",
            t(30.0, 0.0, 0.0, 1.0, 1.0),
            nearest,
            1,
            &LEGACY_ROTATE_30_NEAREST[..],
            &TF_KERAS_ROTATE_30_NEAREST[..],
        ),
        (
            "shift (1.5, −0.75), nearest",
            t(0.0, 1.5, -0.75, 1.0, 1.0),
            nearest,
            1,
            &LEGACY_SHIFT_NEAREST[..],
            &TF_KERAS_SHIFT_NEAREST[..],
        ),
        (
            "shift (−0.4, 2.25), constant 0",
            t(0.0, -0.4, 2.25, 1.0, 1.0),
            FillMode::Constant(0.0),
            1,
            &LEGACY_SHIFT_CONSTANT[..],
            &TF_KERAS_SHIFT_CONSTANT[..],
        ),
        (
            "zoom 0.8, nearest",
            t(0.0, 0.0, 0.0, 0.8, 0.8),
            nearest,
            1,
            &LEGACY_ZOOM_IN_NEAREST[..],
            &TF_KERAS_ZOOM_IN_NEAREST[..],
        ),
        (
            "zoom 1.25, constant",
            t(0.0, 0.0, 0.0, 1.25, 1.25),
            constant,
            1,
            &LEGACY_ZOOM_OUT_CONSTANT[..],
            &TF_KERAS_ZOOM_OUT_CONSTANT[..],
        ),
        (
            "zoom (0.8, 1.25), nearest",
            t(0.0, 0.0, 0.0, 0.8, 1.25),
            nearest,
            1,
            &LEGACY_ZOOM_MIXED_NEAREST[..],
            &TF_KERAS_ZOOM_MIXED_NEAREST[..],
        ),
        (
            "rotate 30° then flip left–right",
            flip_h,
            constant,
            1,
            &LEGACY_FLIP_AFTER_ROTATE[..],
            &TF_KERAS_FLIP_AFTER_ROTATE[..],
        ),
        (
            "shift then flip top–bottom",
            flip_v,
            constant,
            1,
            &LEGACY_VERTICAL_FLIP_AFTER_SHIFT[..],
            &TF_KERAS_VERTICAL_FLIP_AFTER_SHIFT[..],
        ),
        (
            "all at once, two channels",
            everything,
            FillMode::Constant(0.5),
            2,
            &LEGACY_EVERYTHING_TWO_CHANNELS[..],
            &TF_KERAS_EVERYTHING_TWO_CHANNELS[..],
        ),
    ]
}

fn image(batch: usize, channels: usize) -> Result<Tensor> {
    let one = Tensor::from_slice(&IMAGE[..channels * 35], (1, channels, 5, 7), &Device::Cpu)?;
    Ok(one.repeat((batch, 1, 1, 1))?)
}

fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// f32 agreement with Keras's f64 arithmetic (rounded to f32): a wrong neighbour, weight or
/// fill decision is off by far more.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 2e-5 * w.abs().max(1.0),
            "{what}: value {k}: {g} vs Keras {w}\n{got:?}"
        );
    }
}

fn affine(fill_mode: FillMode, keras: KerasVersion) -> RandomAffine {
    RandomAffine { fill_mode, keras, ..RandomAffine::default() }
}

#[test]
fn geometry_matches_both_keras_codes() -> Result<()> {
    for (name, transform, fill, channels, legacy, tf_keras) in cases() {
        for (keras, want) in
            [(KerasVersion::KerasPreprocessing, legacy), (KerasVersion::TfKeras, tf_keras)]
        {
            let params = RandomAffineParams { per_image: vec![transform] };
            let out = affine(fill, keras).apply_with(&params, &image(1, channels)?)?;
            assert_eq!(out.dims(), &[1, channels, 5, 7]);
            assert_close(&values(&out)?, want, &format!("{name} ({keras:?})"));
        }
    }
    Ok(())
}

#[test]
fn each_image_of_a_batch_gets_its_own_transformation() -> Result<()> {
    // The single-channel cases with fill −1 in one batch, plus an untouched image.
    let chosen: Vec<_> =
        cases().into_iter().filter(|c| c.2 == FillMode::Constant(-1.0) && c.3 == 1).collect();
    assert_eq!(chosen.len(), 4);
    let mut per_image: Vec<AffineTransform> = chosen.iter().map(|c| c.1).collect();
    per_image.push(AffineTransform::IDENTITY);
    let x = image(per_image.len(), 1)?;
    let params = RandomAffineParams { per_image };
    let out = affine(FillMode::Constant(-1.0), KerasVersion::TfKeras).apply_with(&params, &x)?;
    let out = values(&out)?;
    for (k, case) in chosen.iter().enumerate() {
        assert_close(&out[k * 35..(k + 1) * 35], case.5, case.0);
    }
    // The identity image goes through the same interpolation and comes back bit for bit.
    assert_eq!(&out[4 * 35..], &IMAGE[..35]);
    Ok(())
}

#[test]
fn identity_returns_the_input_exactly() -> Result<()> {
    let x = Tensor::rand(-3f32, 3f32, (3, 2, 6, 9), &Device::Cpu)?;
    let params = RandomAffineParams { per_image: vec![AffineTransform::IDENTITY; 3] };
    for fill in [FillMode::Nearest, FillMode::Constant(7.0)] {
        for keras in [KerasVersion::TfKeras, KerasVersion::KerasPreprocessing] {
            let out = affine(fill, keras).apply_with(&params, &x)?;
            assert_eq!(values(&out)?, values(&x)?);
        }
    }
    // A generator with every range off draws identities (the flips are drawn, never applied).
    let drawn = RandomAffine::default().draw(50, 6, 9, &mut StdRng::seed_from_u64(1))?;
    assert!(drawn.per_image.iter().all(|p| *p == AffineTransform::IDENTITY));
    Ok(())
}

#[test]
fn matrix_is_keras_centred_rotation() {
    // 90° on 5×7, keras-preprocessing: centre (H/2 + 0.5, W/2 + 0.5) = (3, 4) on (row, col),
    // row' = 3 + cos·(i − 3) − sin·(j − 4) = 7 − j, col' = 4 + sin·(i − 3) + cos·(j − 4) = i + 1.
    let m = t(90.0, 0.0, 0.0, 1.0, 1.0).matrix(5, 7, KerasVersion::KerasPreprocessing);
    let want = [[0.0, -1.0, 7.0], [1.0, 0.0, 1.0]];
    // tf_keras: the matrix acts on (col, row) with centre (H/2 − 0.5, W/2 − 0.5) = (2, 3):
    // col' = 2 + cos·(j − 2) − sin·(i − 3) = 5 − i, row' = 3 + sin·(j − 2) + cos·(i − 3) = j + 1.
    let m2 = t(90.0, 0.0, 0.0, 1.0, 1.0).matrix(5, 7, KerasVersion::TfKeras);
    let want2 = [[0.0, 1.0, 1.0], [-1.0, 0.0, 5.0]];
    for (got, want) in [(m, want), (m2, want2)] {
        for r in 0..2 {
            for k in 0..3 {
                assert!((got[r][k] - want[r][k]).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn draws_are_seeded_and_respect_the_ranges() -> Result<()> {
    let generator = RandomAffine {
        rotation_range: 15.0,
        width_shift_range: 0.1,
        height_shift_range: 0.2,
        shear_range: 5.0,
        zoom_range: RandomAffine::zoom(0.2),
        horizontal_flip: true,
        ..RandomAffine::default()
    };
    let (n, h, w) = (4000, 20, 30);
    let a = generator.draw(n, h, w, &mut StdRng::seed_from_u64(9))?;
    assert_eq!(a, generator.draw(n, h, w, &mut StdRng::seed_from_u64(9))?);
    assert_ne!(a, generator.draw(n, h, w, &mut StdRng::seed_from_u64(10))?);
    let p = &a.per_image;
    let range = |f: fn(&AffineTransform) -> f64| {
        p.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    // Keras: theta in ±15°, tx in ±0.2·H = ±4 px, ty in ±0.1·W = ±3 px, shear in ±5°,
    // zx and zy in [0.8, 1.2]; each range filled to within 1 % at both ends.
    for (name, (lo, hi), bound) in [
        ("theta", range(|p| p.theta), 15.0),
        ("tx", range(|p| p.tx), 4.0),
        ("ty", range(|p| p.ty), 3.0),
        ("shear", range(|p| p.shear), 5.0),
    ] {
        assert!(lo >= -bound && hi < bound, "{name} in [{lo}, {hi}]");
        assert!(lo < -0.99 * bound && hi > 0.99 * bound, "{name} in [{lo}, {hi}]");
    }
    for (name, (lo, hi)) in [("zx", range(|p| p.zx)), ("zy", range(|p| p.zy))] {
        assert!(lo >= 0.8 && hi < 1.2 && lo < 0.81 && hi > 1.19, "{name} in [{lo}, {hi}]");
    }
    // zx and zy are drawn independently: they differ, and are uncorrelated.
    let mean = |f: fn(&AffineTransform) -> f64| p.iter().map(f).sum::<f64>() / n as f64;
    let (mx, my) = (mean(|p| p.zx), mean(|p| p.zy));
    let cov = p.iter().map(|p| (p.zx - mx) * (p.zy - my)).sum::<f64>() / n as f64;
    let var = p.iter().map(|p| (p.zx - mx).powi(2)).sum::<f64>() / n as f64;
    assert!((cov / var).abs() < 0.05, "corr(zx, zy) ≈ {}", cov / var);
    let flips = p.iter().filter(|p| p.flip_horizontal).count() as f64 / n as f64;
    assert!((0.47..0.53).contains(&flips), "flip rate {flips}");
    assert!(p.iter().all(|p| !p.flip_vertical));

    // A range of 1 or more is in pixels, not a fraction of the side.
    let pixels = RandomAffine { width_shift_range: 2.0, ..RandomAffine::default() };
    let q = pixels.draw(1000, h, w, &mut StdRng::seed_from_u64(3))?;
    assert!(q.per_image.iter().all(|p| p.ty.abs() <= 2.0 && p.tx == 0.0));
    assert!(q.per_image.iter().any(|p| p.ty.abs() > 1.9));
    Ok(())
}

#[test]
fn pipeline_runs_the_affine_step_before_cutout() -> Result<()> {
    let generator = RandomAffine {
        rotation_range: 20.0,
        width_shift_range: 0.1,
        height_shift_range: 0.1,
        horizontal_flip: true,
        ..RandomAffine::default()
    };
    let x = Tensor::rand(0f32, 1f32, (4, 3, 8, 8), &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu)?;
    let cutout = Cutout::new(4, 1, 2)?;
    let pipeline = Augmentation { cutout: Some(cutout), ..Augmentation::keras(generator)? };
    let (out, labels) = pipeline.apply(&x, &y, &mut StdRng::seed_from_u64(4))?;
    // By hand, in the pipeline's order and with the same generator state.
    let rng = &mut StdRng::seed_from_u64(4);
    let (moved, _) = generator.apply(&x, &y, rng)?;
    let (want, want_labels) = cutout.apply(&moved, &y, rng)?;
    assert_eq!(out.dims(), &[8, 3, 8, 8]);
    assert_eq!(values(&out)?, values(&want)?);
    assert_eq!(labels.to_vec1::<u32>()?, want_labels.to_vec1::<u32>()?);
    Ok(())
}

#[test]
fn records_written_before_random_affine_still_parse() {
    let old = r#"{"shift_flip":{"max_shift":4,"flip_probability":0.5},"cutout":null}"#;
    let parsed: Augmentation = serde_json::from_str(old).expect("old record parses");
    assert_eq!(parsed.random_affine, None);
    let generator = RandomAffine { fill_mode: FillMode::Constant(0.25), ..RandomAffine::default() };
    let json = serde_json::to_string(&Augmentation::keras(generator).unwrap()).unwrap();
    let back: Augmentation = serde_json::from_str(&json).unwrap();
    assert_eq!(back.random_affine, Some(generator));
}

#[test]
fn bad_settings_are_errors() -> Result<()> {
    let bad = [
        RandomAffine { rotation_range: -1.0, ..RandomAffine::default() },
        RandomAffine { width_shift_range: f64::NAN, ..RandomAffine::default() },
        RandomAffine { zoom_range: [0.0, 1.2], ..RandomAffine::default() },
        RandomAffine { zoom_range: [1.2, 0.8], ..RandomAffine::default() },
        RandomAffine { fill_mode: FillMode::Constant(f32::INFINITY), ..RandomAffine::default() },
    ];
    for generator in bad {
        assert!(generator.validate().is_err(), "{generator:?}");
        assert!(Augmentation::keras(generator).is_err());
    }
    let x = image(2, 1)?;
    let one = RandomAffineParams { per_image: vec![AffineTransform::IDENTITY] };
    assert!(RandomAffine::default().apply_with(&one, &x).is_err(), "params for 1 of 2 images");
    let flat = Tensor::zeros((2, 35), DType::F32, &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
    assert!(RandomAffine::default().apply(&flat, &y, &mut StdRng::seed_from_u64(0)).is_err());
    Ok(())
}

/// Many random cases against Keras: `bench/keras_affine_reference.py WHEEL --random N FILE`
/// writes them, `DLKIT_KERAS_CASES=FILE cargo test -p dlkit --test keras_augment -- --ignored`
/// checks them (run by hand: the file is large and needs Python to produce).
#[test]
#[ignore = "needs a case file written by bench/keras_affine_reference.py --random"]
fn matches_keras_on_random_cases() -> Result<()> {
    let path = std::env::var("DLKIT_KERAS_CASES").expect("set DLKIT_KERAS_CASES to the case file");
    let text = std::fs::read_to_string(&path).expect("case file readable");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("case file is JSON");
    let number = |v: &serde_json::Value, key: &str| v[key].as_f64().expect(key);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
    };
    let mut failures = 0;
    for (k, case) in cases.iter().enumerate() {
        let (h, w) = (number(case, "height") as usize, number(case, "width") as usize);
        // Parameters are decimal strings, parsed exactly (see the script).
        let p = &case["params"];
        let exact = |key: &str| -> f64 { p[key].as_str().expect(key).parse().expect(key) };
        let transform = AffineTransform {
            theta: exact("theta"),
            tx: exact("tx"),
            ty: exact("ty"),
            shear: exact("shear"),
            zx: exact("zx"),
            zy: exact("zy"),
            flip_horizontal: p["flip_horizontal"].as_bool().expect("flip"),
            flip_vertical: p["flip_vertical"].as_bool().expect("flip"),
        };
        let fill = match case["fill"].as_str() {
            Some("constant") => FillMode::Constant(number(case, "cval") as f32),
            _ => FillMode::Nearest,
        };
        let keras = match case["keras"].as_str() {
            Some("TfKeras") => KerasVersion::TfKeras,
            _ => KerasVersion::KerasPreprocessing,
        };
        let x = Tensor::from_vec(floats(&case["image"]), (1, 3, h, w), &Device::Cpu)?;
        let params = RandomAffineParams { per_image: vec![transform] };
        let got = values(&affine(fill, keras).apply_with(&params, &x)?)?;
        let want = floats(&case["expected"]);
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
        if worst > 1e-4 {
            failures += 1;
            eprintln!("case {k}: {keras:?} {h}×{w} {transform:?} {fill:?}: off by {worst}");
        }
    }
    println!("{} cases, {failures} differ from Keras", cases.len());
    assert_eq!(failures, 0);
    Ok(())
}

/// The augmentation workloads of `dlkit bench` on the CPU (run by hand, in release mode:
/// `cargo test --release -p dlkit --test keras_augment time_ -- --ignored --nocapture`).
#[test]
#[ignore = "timing, not a check; run by hand"]
fn time_augmentation_workloads() -> Result<()> {
    dlkit::runtime::tune_cpu();
    let options = dlkit::bench::BenchOptions { warmup: 3, repeats: 21 };
    for m in dlkit::bench::augmentation(&Device::Cpu, options)? {
        println!("{:<42} batch {:>3}: {:7.2} ms", m.workload, m.batch, m.seconds * 1e3);
    }
    Ok(())
}
