//! `Dataset` splits and resizing, and seeded mini-batches from `DeviceData`, checked against
//! hand-worked figures.

use candle_core::{Device, Tensor};
use dlkit::data::{Dataset, DeviceData, Normalization};
use dlkit::Error;

fn classes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class {i}")).collect()
}

/// `n` single-pixel images; image `i` has pixel value `i` and label `i % 10`.
fn numbered(n: usize) -> Dataset {
    let images: Vec<u8> = (0..n as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(images, labels, (1, 1, 1), classes(10)).unwrap()
}

/// The sample ids (pixel × 255, undoing the unit-range scaling) of one batch.
fn ids(x: &Tensor) -> Vec<u32> {
    x.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| (v * 255.0).round() as u32)
        .collect()
}

#[test]
fn every_sample_once_per_epoch_last_batch_smaller() {
    let data = DeviceData::new(&numbered(10), &Device::Cpu, Normalization::UnitRange).unwrap();
    let batches = data.batches(4, 7, 0).unwrap();
    assert_eq!(batches.num_batches(), 3); // 4 + 4 + 2
    let order = batches.order().to_vec();
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    for b in batches {
        let (x, y) = b.unwrap();
        assert_eq!(x.dims()[1..], [1, 1, 1]);
        let got = ids(&x);
        let labels = y.to_vec1::<u32>().unwrap();
        assert_eq!(labels, got.iter().map(|i| i % 10).collect::<Vec<_>>());
        sizes.push(got.len());
        seen.extend(got);
    }
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(seen, order, "batches follow the epoch's order");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<u32>>());
}

#[test]
fn order_depends_only_on_seed_and_epoch() {
    let data = DeviceData::new(&numbered(40), &Device::Cpu, Normalization::UnitRange).unwrap();
    let order = |seed, epoch| data.batches(8, seed, epoch).unwrap().order().to_vec();
    assert_eq!(order(3, 1), order(3, 1));
    assert_ne!(order(3, 1), order(3, 2));
    assert_ne!(order(3, 1), order(4, 1));
    assert_ne!(order(3, 0), (0..40).collect::<Vec<u32>>(), "the epoch is shuffled");
}

#[test]
fn batch_size_can_change_mid_epoch() {
    let data = DeviceData::new(&numbered(10), &Device::Cpu, Normalization::UnitRange).unwrap();
    let mut batches = data.batches(2, 1, 0).unwrap();
    let first = ids(&batches.next().unwrap().unwrap().0);
    batches.set_batch_size(5);
    let rest: Vec<Vec<u32>> = batches.map(|b| ids(&b.unwrap().0)).collect();
    assert_eq!(first.len(), 2);
    assert_eq!(rest.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 3]);
    let mut all: Vec<u32> = first.into_iter().chain(rest.into_iter().flatten()).collect();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<u32>>());
    assert!(matches!(data.batches(0, 1, 0), Err(Error::Config(_))));
}

#[test]
fn unit_range_divides_by_255() {
    let ds = Dataset::new(vec![0, 51, 255, 102], vec![0], (1, 2, 2), classes(1)).unwrap();
    let data = DeviceData::new(&ds, &Device::Cpu, Normalization::UnitRange).unwrap();
    let (x, y) = data.range(0, 1).unwrap();
    let got = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (g, e) in got.iter().zip([0.0, 0.2, 1.0, 0.4]) {
        assert!((g - e).abs() < 1e-6, "{got:?}");
    }
    assert_eq!(y.to_vec1::<u32>().unwrap(), vec![0]);
}

#[test]
fn featurewise_statistics_fitted_by_hand() {
    // Two images of 3 channels × 1 × 2 pixels, scaled to [0, 1]:
    //   channel 0: 0, 1 | 0, 1          mean 0.5, variance 0.25 → std 0.5
    //   channel 1: .2, .2 | .4, .4      mean 0.3, variance 0.01 → std 0.1
    //   channel 2: 0, 0 | 0, .8         mean 0.2, E[x²] = 0.16, variance 0.12
    let images = vec![0, 255, 51, 51, 0, 0, /* image 1 */ 0, 255, 102, 102, 0, 204];
    let ds = Dataset::new(images, vec![0, 1], (3, 1, 2), classes(2)).unwrap();
    let norm = Normalization::fitted_to(&ds);
    let Normalization::Featurewise { mean, std } = &norm else { panic!("expected Featurewise") };
    let want_std = [0.5, 0.1, 0.12f64.sqrt()];
    for (c, (m, want)) in mean.iter().zip([0.5, 0.3, 0.2]).enumerate() {
        assert!((*m as f64 - want).abs() < 1e-7, "mean {c}: {m}");
        assert!((std[c] as f64 - want_std[c]).abs() < 1e-7, "std {c}: {}", std[c]);
    }
    let data = DeviceData::new(&ds, &Device::Cpu, norm).unwrap();
    let (x, _) = data.range(1, 1).unwrap();
    let got = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // (p − mean) / (std + 1e-6) for image 1: channel 0: ∓1; channel 1: (.4 − .3)/.1 = 1;
    // channel 2: −.2/√.12 = −1/√3 and (.8 − .2)/√.12 = √3 (each times std/(std + 1e-6)).
    let s3 = 3f64.sqrt();
    let want = [-1.0, 1.0, 1.0, 1.0, -1.0 / s3, s3];
    let stds = [0.5, 0.5, 0.1, 0.1, 0.12f64.sqrt(), 0.12f64.sqrt()];
    for ((g, w), s) in got.iter().zip(want).zip(stds) {
        let w = w * s / (s + 1e-6);
        assert!((*g as f64 - w).abs() < 2e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn featurewise_matches_keras_and_the_test_split_uses_the_training_statistics() {
    // Keras: ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
    // rescale=1/255).fit(x) on these two 2×2 RGB images, then .standardize(test image), as
    // printed by bench/keras_affine_reference.py (keras-preprocessing 1.1.2): mean
    // [0.4, 0.17647059, 0.75], std [0.37416577, 0.08985443, 0.4330127], test image
    // (255, 0, 128) → [1.6035631, −1.9639391, −0.5728206].
    // By hand, channel 0: 0, .2, .4, 1 twice: mean .4, E[x²] = .3, std √.14;
    // channel 1: 10, 20, …, 80: mean 45/255, std √525/255; channel 2: six 1s, two 0s:
    // mean .75, std √(.75·.25).
    #[rustfmt::skip]
    let images = vec![
        /* image 0, NCHW */ 0, 51, 102, 255, /* */ 10, 20, 30, 40, /* */ 255, 0, 255, 0,
        /* image 1 */       0, 51, 102, 255, /* */ 50, 60, 70, 80, /* */ 255, 255, 255, 255,
    ];
    let train = Dataset::new(images, vec![0, 1], (3, 2, 2), classes(2)).unwrap();
    let norm = Normalization::fitted_to(&train);
    let Normalization::Featurewise { mean, std } = &norm else { panic!("expected Featurewise") };
    let want_mean = [0.4, 45.0 / 255.0, 0.75];
    let want_std = [0.14f64.sqrt(), 525f64.sqrt() / 255.0, 0.1875f64.sqrt()];
    for c in 0..3 {
        assert!((mean[c] as f64 - want_mean[c]).abs() < 1e-7, "mean {c}: {}", mean[c]);
        assert!((std[c] as f64 - want_std[c]).abs() < 1e-7, "std {c}: {}", std[c]);
    }
    // A one-pixel test split: its own statistics would be degenerate (std 0); the training
    // statistics standardise it.
    let test = Dataset::new(vec![255, 0, 128], vec![0], (3, 1, 1), classes(2)).unwrap();
    let data = DeviceData::new(&test, &Device::Cpu, norm).unwrap();
    let (x, _) = data.range(0, 1).unwrap();
    let got = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let pixels = [1.0, 0.0, 128.0 / 255.0];
    for c in 0..3 {
        let by_hand = (pixels[c] - want_mean[c]) / (want_std[c] + 1e-6);
        assert!((got[c] as f64 - by_hand).abs() < 1e-5, "{got:?}");
    }
    let keras = [1.603_563_1f32, -1.963_939_1, -0.572_820_6];
    for c in 0..3 {
        assert!((got[c] - keras[c]).abs() < 1e-5, "{got:?} vs Keras {keras:?}");
    }
}

#[test]
fn mean_std_must_match_channels() {
    let ds = numbered(4);
    let bad = Normalization::MeanStd { mean: vec![0.5, 0.5], std: vec![0.2, 0.2] };
    assert!(matches!(DeviceData::new(&ds, &Device::Cpu, bad), Err(Error::Config(_))));
    let zero = Normalization::MeanStd { mean: vec![0.5], std: vec![0.0] };
    assert!(matches!(DeviceData::new(&ds, &Device::Cpu, zero), Err(Error::Config(_))));
    // Keras divides by std + 1e-6, so a constant channel (std 0) is allowed featurewise.
    let constant = Normalization::Featurewise { mean: vec![0.5], std: vec![0.0] };
    assert!(DeviceData::new(&ds, &Device::Cpu, constant).is_ok());
    let negative = Normalization::Featurewise { mean: vec![0.5], std: vec![-0.1] };
    assert!(matches!(DeviceData::new(&ds, &Device::Cpu, negative), Err(Error::Config(_))));
}

#[test]
fn split_is_disjoint_and_complete() {
    let ds = numbered(20);
    let (train, val) = ds.split(5, 11).unwrap();
    assert_eq!((train.len(), val.len()), (15, 5));
    let mut all: Vec<u8> = train.images.iter().chain(&val.images).copied().collect();
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<u8>>());
    for (img, label) in val.images.iter().zip(&val.labels) {
        assert_eq!(*label, img % 10, "labels travel with their images");
    }
    let (_, again) = ds.split(5, 11).unwrap();
    assert_eq!(again.images, val.images, "seeded");
    assert!(matches!(ds.split(20, 0), Err(Error::Config(_))));
}

#[test]
fn new_rejects_bad_labels_and_sizes() {
    let err = Dataset::new(vec![0; 4], vec![0, 3], (1, 1, 2), classes(3)).unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert!(err.to_string().contains("label 3"), "{err}");
    assert!(Dataset::new(vec![0; 5], vec![0, 1], (1, 1, 2), classes(3)).is_err());
    assert!(Dataset::new(vec![0; 4], vec![0, 2], (1, 1, 2), classes(3)).is_ok());
}

#[test]
fn resize_keeps_a_constant_image_constant() {
    let mut images = vec![77u8; 28 * 28];
    images.extend(vec![200u8; 28 * 28]);
    let ds = Dataset::new(images, vec![1, 0], (1, 28, 28), classes(2)).unwrap();
    let big = ds.resize(32, 32);
    assert_eq!((big.len(), big.channels, big.height, big.width), (2, 1, 32, 32));
    assert!(big.image(0).iter().all(|&v| v == 77));
    assert!(big.image(1).iter().all(|&v| v == 200));
    assert_eq!(big.labels, vec![1, 0]);

    // Three channels keep their own values.
    let rgb: Vec<u8> = [10u8, 20, 30].iter().flat_map(|&v| vec![v; 4 * 4]).collect();
    let ds = Dataset::new(rgb, vec![0], (3, 4, 4), classes(1)).unwrap();
    let out = ds.resize(6, 5);
    assert_eq!((out.height, out.width, out.images.len()), (6, 5, 90));
    assert!(out.images[..30].iter().all(|&v| v == 10));
    assert!(out.images[60..].iter().all(|&v| v == 30));
}
