//! Dataset loaders against small fixture files written here, plus the real datasets when
//! they are installed (skipped with a printed reason otherwise).

mod common;

use common::{cifar_record, gzip, idx_images, idx_labels};
use dlkit::data::{self, cifar, folder, idx, Dataset};
use dlkit::Error;
use std::path::{Path, PathBuf};

/// The error is a `BadFile` naming the file `name`; returns its message.
fn bad_file_named(err: Error, name: &str) -> String {
    let msg = err.to_string();
    assert!(matches!(err, Error::BadFile { ref path, .. } if path.ends_with(name)), "{msg}");
    msg
}

// ---------------------------------------------------------------- CIFAR-10 binary

/// A fixture `cifar-10-batches-bin/`: each training file holds two records, the test file
/// three. Record `r` (counted over all training files) has label `r % 10` and pixel byte
/// `j` equal to `(r * 7 + j) % 251`; test record `t` has label `9 - t` and pixels `(t + j) % 13`.
fn write_cifar_fixture(dir: &Path, meta: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..5 {
        let mut bytes = Vec::new();
        for k in 0..2 {
            let r = f * 2 + k;
            bytes.extend(cifar_record((r % 10) as u8, |j| ((r * 7 + j) % 251) as u8));
        }
        std::fs::write(dir.join(format!("data_batch_{}.bin", f + 1)), bytes).unwrap();
    }
    let mut test = Vec::new();
    for t in 0..3 {
        test.extend(cifar_record(9 - t as u8, |j| ((t + j) % 13) as u8));
    }
    std::fs::write(dir.join("test_batch.bin"), test).unwrap();
    if let Some(m) = meta {
        std::fs::write(dir.join("batches.meta.txt"), m).unwrap();
    }
}

#[test]
fn cifar_binary_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    write_cifar_fixture(&dir, None);
    let tt = cifar::load(&dir).unwrap();
    let (train, test) = (&tt.train, &tt.test);
    assert_eq!((train.len(), test.len()), (10, 3));
    assert_eq!((train.channels, train.height, train.width), (3, 32, 32));
    assert_eq!(train.labels, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(test.labels, vec![9, 8, 7]);
    assert_eq!(train.classes[0], "airplane");
    assert_eq!(train.classes[9], "truck");
    // Record 3 (second record of data_batch_2): channel c, row y, column x is file byte
    // 1 + 1024 c + 32 y + x, whose value is (3*7 + 1024 c + 32 y + x) % 251.
    for (c, y, x) in [(0, 0, 0), (0, 31, 31), (1, 5, 7), (2, 17, 3), (2, 31, 31)] {
        let expected = ((21 + 1024 * c + 32 * y + x) % 251) as u8;
        assert_eq!(train.image(3)[c * 1024 + y * 32 + x], expected, "pixel c{c} y{y} x{x}");
    }
    assert_eq!(test.image(2)[1024 + 1], ((2 + 1024 + 1) % 13) as u8);
}

#[test]
fn cifar_planes_are_red_green_blue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bin");
    write_cifar_fixture(&dir, None);
    // One red/green/blue pixel at row 2, column 5 of an otherwise black test image.
    let mut rec = vec![0u8; 3073];
    rec[0] = 4;
    let at = 2 * 32 + 5;
    rec[1 + at] = 200;
    rec[1 + 1024 + at] = 100;
    rec[1 + 2048 + at] = 50;
    std::fs::write(dir.join("test_batch.bin"), &rec).unwrap();
    let test = cifar::load(&dir).unwrap().test;
    let img = test.image(0);
    assert_eq!((img[69], img[1024 + 69], img[2048 + 69]), (200, 100, 50));
    assert_eq!(img.iter().map(|&v| v as u32).sum::<u32>(), 350);
    assert_eq!(test.labels, vec![4]);
}

#[test]
fn cifar_class_names_come_from_meta_file() {
    let tmp = tempfile::tempdir().unwrap();
    let meta = "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n";
    write_cifar_fixture(tmp.path(), Some(meta));
    let tt = cifar::load(tmp.path()).unwrap();
    let expected: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    assert_eq!(tt.train.classes, expected);
    assert_eq!(tt.test.classes, expected);
}

#[test]
fn cifar_truncated_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar_fixture(tmp.path(), None);
    let mut bytes = cifar_record(1, |_| 0);
    bytes.extend(cifar_record(2, |_| 0));
    bytes.extend(vec![3u8; 100]); // 2 * 3073 + 100 = 6246 bytes
    let path = tmp.path().join("data_batch_3.bin");
    std::fs::write(&path, bytes).unwrap();
    let err = cifar::load(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::BadFile { ref path, .. } if path.ends_with("data_batch_3.bin")));
    assert!(
        msg.contains("truncated: 6246 bytes is not a whole number of 3073-byte records"),
        "{msg}"
    );
    assert!(msg.contains("record 2"), "{msg}");
}

#[test]
fn cifar_label_out_of_range_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar_fixture(tmp.path(), None);
    let mut bytes = cifar_record(3, |_| 0);
    bytes.extend(cifar_record(10, |_| 0));
    std::fs::write(tmp.path().join("test_batch.bin"), bytes).unwrap();
    let err = cifar::load(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::BadFile { .. }), "{msg}");
    assert!(msg.contains("record 1") && msg.contains("label 10"), "{msg}");
}

#[test]
fn cifar_missing_folder_or_file_names_the_fetch_command() {
    let tmp = tempfile::tempdir().unwrap();
    let err = cifar::load(&tmp.path().join("nowhere")).unwrap_err();
    assert!(matches!(err, Error::DatasetMissing { .. }));
    assert!(err.to_string().contains("data/fetch.sh"), "{err}");

    write_cifar_fixture(tmp.path(), None);
    std::fs::remove_file(tmp.path().join("data_batch_4.bin")).unwrap();
    let err = cifar::load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, Error::DatasetMissing { ref path, .. } if path.ends_with("data_batch_4.bin"))
    );
    assert!(err.to_string().contains("data/fetch.sh"), "{err}");
}

#[test]
fn cifar_batch_over_the_size_limit_is_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data_batch_1.bin");
    // A sparse 4 GiB file: nothing is written to disk, but reading it would take 4 GiB.
    std::fs::File::create(&path).unwrap().set_len(4 << 30).unwrap();
    let msg = bad_file_named(cifar::read_batch(&path).unwrap_err(), "data_batch_1.bin");
    assert!(msg.contains("4294967296 bytes") && msg.contains("limit"), "{msg}");
}

#[test]
fn cifar_100_records_are_recognised() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("test_batch.bin");
    std::fs::write(&path, vec![1u8; 2 * 3074]).unwrap(); // CIFAR-100: coarse + fine label bytes
    let msg = bad_file_named(cifar::read_batch(&path).unwrap_err(), "test_batch.bin");
    assert!(msg.contains("CIFAR-100"), "{msg}");
}

// ---------------------------------------------------------------- IDX

/// Three 2x3 training images (pixel j of image i is 10 i + j) and two test images.
fn write_idx_fixture(dir: &Path, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let train_px: Vec<u8> = (0..3).flat_map(|i| (0..6).map(move |j| 10 * i + j)).collect();
    let test_px: Vec<u8> = (0..12).map(|j| 100 + j).collect();
    let files = [
        ("train-images-idx3-ubyte", idx_images(3, 2, 3, &train_px)),
        ("train-labels-idx1-ubyte", idx_labels(&[2, 0, 1])),
        ("t10k-images-idx3-ubyte", idx_images(2, 2, 3, &test_px)),
        ("t10k-labels-idx1-ubyte", idx_labels(&[1, 1])),
    ];
    for (name, bytes) in files {
        if gz {
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn check_idx_fixture(tt: &data::TrainTest) {
    let (train, test) = (&tt.train, &tt.test);
    assert_eq!((train.channels, train.height, train.width), (1, 2, 3));
    assert_eq!(train.labels, vec![2, 0, 1]);
    assert_eq!(train.image(1), &[10, 11, 12, 13, 14, 15]);
    assert_eq!(train.image(2)[5], 25);
    assert_eq!(test.labels, vec![1, 1]);
    assert_eq!(test.image(1), &[106, 107, 108, 109, 110, 111]);
    assert_eq!(train.classes, vec!["a", "b", "c"]);
}

#[test]
fn idx_raw_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_fixture(tmp.path(), false);
    check_idx_fixture(&idx::load(tmp.path(), &["a", "b", "c"]).unwrap());
    let (px, n, rows, cols) = idx::read_images(&tmp.path().join("t10k-images-idx3-ubyte")).unwrap();
    assert_eq!((n, rows, cols, px.len()), (2, 2, 3, 12));
    assert_eq!(
        idx::read_labels(&tmp.path().join("train-labels-idx1-ubyte")).unwrap(),
        vec![2, 0, 1]
    );
}

#[test]
fn idx_gzip_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_fixture(tmp.path(), true);
    check_idx_fixture(&idx::load(tmp.path(), &["a", "b", "c"]).unwrap());
}

#[test]
fn idx_gzip_is_detected_by_content_not_name() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("labels-without-suffix");
    std::fs::write(&path, gzip(&idx_labels(&[7, 8, 9]))).unwrap();
    assert_eq!(idx::read_labels(&path).unwrap(), vec![7, 8, 9]);
    let path = tmp.path().join("plain.gz");
    std::fs::write(&path, idx_labels(&[4])).unwrap();
    assert_eq!(idx::read_labels(&path).unwrap(), vec![4]);
}

#[test]
fn idx_wrong_magic_says_expected_and_found() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("labels");
    std::fs::write(&path, idx_labels(&[1, 2])).unwrap();
    let msg = idx::read_images(&path).unwrap_err().to_string();
    assert!(msg.contains("expected 0x00000803") && msg.contains("found 0x00000801"), "{msg}");
    std::fs::write(&path, [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]).unwrap();
    let msg = idx::read_labels(&path).unwrap_err().to_string();
    assert!(msg.contains("expected 0x00000801") && msg.contains("found 0x12345678"), "{msg}");
}

#[test]
fn idx_truncated_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("images.gz");
    // The header announces 3 images of 2x2 (12 bytes) but only 8 follow.
    std::fs::write(&path, gzip(&idx_images(3, 2, 2, &[0; 8]))).unwrap();
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, Error::BadFile { .. }));
    assert!(err.to_string().contains("truncated"), "{err}");
    // A header cut short.
    std::fs::write(&path, [0, 0, 8, 3, 0, 0]).unwrap();
    assert!(idx::read_images(&path).unwrap_err().to_string().contains("truncated"));
    // A gzip stream cut in the middle.
    let whole = gzip(&idx_labels(&[1; 1000]));
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    assert!(matches!(idx::read_labels(&path), Err(Error::BadFile { .. })));
}

#[test]
fn idx_count_mismatch_and_bad_label_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_fixture(tmp.path(), false);
    std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), idx_labels(&[0, 1, 2])).unwrap();
    let msg = idx::load(tmp.path(), &["a", "b", "c"]).unwrap_err().to_string();
    assert!(msg.contains("3 labels") && msg.contains("2 images"), "{msg}");

    std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), idx_labels(&[0, 3])).unwrap();
    let msg = idx::load(tmp.path(), &["a", "b", "c"]).unwrap_err().to_string();
    assert!(msg.contains("label 3") && msg.contains("record 1"), "{msg}");

    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let err = idx::load(tmp.path(), &["a", "b", "c"]).unwrap_err();
    assert!(matches!(err, Error::DatasetMissing { .. }), "{err}");
}

#[test]
fn idx_zero_images_or_zero_sides_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_fixture(tmp.path(), false);
    // The case: a header announcing 0 images of 0x0, reached through `load`.
    std::fs::write(tmp.path().join("train-images-idx3-ubyte"), idx_images(0, 0, 0, &[])).unwrap();
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte"), idx_labels(&[])).unwrap();
    let err = idx::load(tmp.path(), &["a", "b", "c"]).unwrap_err();
    let msg = bad_file_named(err, "train-images-idx3-ubyte");
    assert!(msg.contains("0 images"), "{msg}");

    let path = tmp.path().join("images");
    std::fs::write(&path, idx_images(3, 0, 28, &[])).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "images");
    assert!(msg.contains("0x28"), "{msg}");
    std::fs::write(&path, gzip(&idx_images(2, 28, 0, &[]))).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "images");
    assert!(msg.contains("28x0"), "{msg}");

    let path = tmp.path().join("labels");
    std::fs::write(&path, idx_labels(&[])).unwrap();
    let msg = bad_file_named(idx::read_labels(&path).unwrap_err(), "labels");
    assert!(msg.contains("0 labels"), "{msg}");
}

#[test]
fn idx_sizes_over_the_limit_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("images.gz");
    // 65535³ bytes (2.8e14) fits in 64 bits but not in any memory; 4294967295³ overflows u64.
    for side in [65_535u32, u32::MAX] {
        std::fs::write(&path, gzip(&idx_images(side, side, side, &[1, 2, 3]))).unwrap();
        let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "images.gz");
        assert!(msg.contains(&format!("{side} images of {side}x{side}")), "{msg}");
        assert!(msg.contains("limit"), "{msg}");
    }
    let path = tmp.path().join("labels");
    let mut labels = idx_labels(&[1, 2]);
    labels[4..8].copy_from_slice(&u32::MAX.to_be_bytes()); // 4 GiB of labels announced
    std::fs::write(&path, labels).unwrap();
    let msg = bad_file_named(idx::read_labels(&path).unwrap_err(), "labels");
    assert!(msg.contains("4294967295 labels") && msg.contains("limit"), "{msg}");
}

#[test]
fn idx_other_element_types_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("floats");
    // Magic 0x00000D03: 32-bit floats (type byte 0x0D) in 3 dimensions.
    let mut floats = idx_images(1, 1, 1, &[0, 0, 0, 0]);
    floats[2] = 0x0D;
    std::fs::write(&path, floats).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "floats");
    assert!(msg.contains("found 0x00000d03") && msg.contains("32-bit floats"), "{msg}");
    // Magic 0x00000802: unsigned bytes in 2 dimensions (a matrix, not images).
    let mut matrix = idx_images(1, 1, 1, &[0]);
    matrix[3] = 2;
    std::fs::write(&path, matrix).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "floats");
    assert!(msg.contains("2 dimensions"), "{msg}");
}

#[test]
fn idx_gzip_longer_than_announced_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("images.gz");
    // One 2x2 image announced, 4 bytes expected; the stream inflates to 16 MiB more.
    let header = idx_images(1, 2, 2, &[]);
    std::fs::write(&path, common::gzip_with_zeros(&header, 16 << 20)).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "images.gz");
    assert!(msg.contains("1 images of 2x2 (4 bytes)") && msg.contains("more than 4"), "{msg}");
    // Uncompressed, the exact length is known.
    let path = tmp.path().join("images");
    std::fs::write(&path, idx_images(1, 2, 2, &[7; 10])).unwrap();
    let msg = bad_file_named(idx::read_images(&path).unwrap_err(), "images");
    assert!(msg.contains("(4 bytes) but 10 bytes follow"), "{msg}");
}

// ---------------------------------------------------------------- image folders

/// Pixel (x, y) channel c of fixture image `seed`.
fn px(seed: u8, x: u32, y: u32, c: u32) -> u8 {
    seed.wrapping_mul(31).wrapping_add((x * 7 + y * 13 + c * 50) as u8)
}

fn write_png(path: &Path, seed: u8, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([px(seed, x, y, 0), px(seed, x, y, 1), px(seed, x, y, 2)])
    });
    img.save(path).unwrap();
}

/// train/{zebra,ant,moth}, test/{ant,zebra}; 4 wide, 3 high.
fn write_folder_fixture(root: &Path) {
    write_png(&root.join("train/zebra/1.png"), 1, 4, 3);
    write_png(&root.join("train/ant/b.png"), 2, 4, 3);
    write_png(&root.join("train/ant/a.png"), 3, 4, 3);
    write_png(&root.join("train/moth/x.PNG"), 4, 4, 3);
    std::fs::write(root.join("train/moth/notes.txt"), "not an image").unwrap();
    write_png(&root.join("test/zebra/0.png"), 5, 4, 3);
    write_png(&root.join("test/ant/0.png"), 6, 4, 3);
}

#[test]
fn folder_round_trip_sorted_classes_exact_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    let tt = folder::load(tmp.path()).unwrap();
    let (train, test) = (&tt.train, &tt.test);
    assert_eq!(train.classes, vec!["ant", "moth", "zebra"]);
    assert_eq!(test.classes, train.classes);
    assert_eq!((train.channels, train.height, train.width), (3, 3, 4));
    // ant/a, ant/b, moth/x, zebra/1
    assert_eq!(train.labels, vec![0, 0, 1, 2]);
    assert_eq!(test.labels, vec![0, 2]);
    let seeds = [3u8, 2, 4, 1];
    for (i, &seed) in seeds.iter().enumerate() {
        for c in 0..3u32 {
            for y in 0..3u32 {
                for x in 0..4u32 {
                    let at = (c * 12 + y * 4 + x) as usize;
                    assert_eq!(train.image(i)[at], px(seed, x, y, c), "image {i} c{c} y{y} x{x}");
                }
            }
        }
    }
    assert_eq!(test.image(1)[0], px(5, 0, 0, 0));
}

#[test]
fn folder_grayscale_becomes_three_equal_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train/only/g.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(2, 2, |x, y| image::Luma([(10 * x + 100 * y) as u8]))
        .save(&path)
        .unwrap();
    let ds = folder::load_split(&tmp.path().join("train"), None).unwrap();
    assert_eq!(ds.image(0), &[0, 10, 100, 110, 0, 10, 100, 110, 0, 10, 100, 110]);
}

#[test]
fn folder_limit_takes_the_first_files_of_each_class() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    let ds = folder::load_split_limited(&tmp.path().join("train"), None, Some(1)).unwrap();
    assert_eq!(ds.labels, vec![0, 1, 2]);
    assert_eq!(ds.image(0)[0], px(3, 0, 0, 0)); // ant/a.png, not ant/b.png
    let tt = folder::load_limited(tmp.path(), Some(1), Some(0)).unwrap_err();
    assert!(tt.to_string().contains("no .jpg"), "{tt}");
}

#[test]
fn folder_wrong_size_names_file_and_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    write_png(&tmp.path().join("train/moth/y.png"), 9, 5, 3);
    let err = folder::load(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::BadFile { ref path, .. } if path.ends_with("moth/y.png")),
        "{msg}"
    );
    assert!(msg.contains("5x3") && msg.contains("4x3"), "{msg}");
}

#[test]
fn folder_undecodable_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    std::fs::write(tmp.path().join("train/zebra/2.jpg"), b"definitely not a jpeg").unwrap();
    let err = folder::load(tmp.path()).unwrap_err();
    assert!(
        matches!(err, Error::BadFile { ref path, .. } if path.ends_with("zebra/2.jpg")),
        "{err}"
    );
}

#[test]
fn folder_missing_root_and_unknown_test_class() {
    let tmp = tempfile::tempdir().unwrap();
    let err = folder::load(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::DatasetMissing { .. }));
    assert!(err.to_string().contains("data/fetch.sh"), "{err}");

    write_folder_fixture(tmp.path());
    write_png(&tmp.path().join("test/spider/0.png"), 7, 4, 3);
    let msg = folder::load(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("spider"), "{msg}");
}

/// `root/train/<class>/<name>` holding `bytes`, beside a valid 4x3 `root/train/<class>/a.png`.
fn folder_with(root: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    write_png(&root.join("train/cls/a.png"), 1, 4, 3);
    let path = root.join("train/cls").join(name);
    std::fs::write(&path, bytes).unwrap();
    root.join("train")
}

#[test]
fn folder_huge_declared_png_is_refused_before_decoding() {
    // 9000x9000 grey is 81 MB (under image's default 512 MiB), 100000x100000 is 10 GB.
    for side in [9_000u32, 100_000] {
        let tmp = tempfile::tempdir().unwrap();
        let png = common::png_declaring(side, side, 0, &[0x78, 0x9c, 0x03, 0x00]);
        let split = folder_with(tmp.path(), "b.png", &png);
        let msg = bad_file_named(folder::load_split(&split, None).unwrap_err(), "b.png");
        assert!(msg.contains(&format!("{side}x{side}")) && msg.contains("limit"), "{msg}");
    }
}

#[test]
fn folder_huge_declared_jpeg_is_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let split = folder_with(tmp.path(), "b.jpg", &common::jpeg_declaring(60_000, 50_000));
    let msg = bad_file_named(folder::load_split(&split, None).unwrap_err(), "b.jpg");
    assert!(msg.contains("60000x50000") && msg.contains("limit"), "{msg}");
}

#[test]
fn folder_first_image_with_no_pixels_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train/cls/0.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, common::png_declaring(0, 5, 2, &[0x78, 0x9c, 0x03, 0x00])).unwrap();
    let err = folder::load_split(&tmp.path().join("train"), None).unwrap_err();
    bad_file_named(err, "0.png");
}

#[test]
fn folder_truncated_and_corrupt_images_are_named() {
    let whole = common::jpeg(16, 16);
    let mut png = Vec::new();
    image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageOutputFormat::Png)
        .unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("cut.jpg", whole[..whole.len() / 2].to_vec()),
        ("header-only.jpg", whole[..20].to_vec()),
        ("cut.png", png[..png.len() - 20].to_vec()),
        ("empty.png", Vec::new()),
    ];
    for (name, bytes) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let split = folder_with(tmp.path(), name, &bytes);
        let err = folder::load_split(&split, None).unwrap_err();
        let msg = bad_file_named(err, name);
        assert!(msg.contains("cannot decode"), "{name}: {msg}");
    }
}

#[test]
fn folder_empty_training_class_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    let empty = tmp.path().join("train/beetle");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("readme.txt"), "photos to come").unwrap();
    let msg = bad_file_named(folder::load(tmp.path()).unwrap_err(), "train/beetle");
    assert!(msg.contains("no .jpg/.jpeg/.png image") && msg.contains("1 other entries"), "{msg}");
    // An empty class folder in the test split is allowed (as a missing one is).
    std::fs::remove_dir_all(&empty).unwrap();
    std::fs::create_dir_all(tmp.path().join("test/moth")).unwrap();
    assert_eq!(folder::load(tmp.path()).unwrap().test.class_counts(), vec![1, 0, 1]);
}

#[test]
fn folder_class_missing_from_test_keeps_the_training_labels() {
    // The fixture's test split has no `moth` folder: allowed, and `zebra` keeps label 2.
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    let tt = folder::load(tmp.path()).unwrap();
    assert_eq!(tt.test.classes, vec!["ant", "moth", "zebra"]);
    assert_eq!(tt.test.class_counts(), vec![1, 0, 1]);
}

#[cfg(unix)]
#[test]
fn folder_dangling_image_link_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder_fixture(tmp.path());
    let link = tmp.path().join("train/ant/c.png");
    std::os::unix::fs::symlink(tmp.path().join("nowhere.png"), &link).unwrap();
    let err = folder::load(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Io { ref path, .. } if path.ends_with("ant/c.png")), "{msg}");
}

#[test]
fn folder_rgba_and_16_bit_images_become_8_bit_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("train/cls");
    std::fs::create_dir_all(&dir).unwrap();
    // RGBA: the alpha channel is dropped, colours are kept as stored (not blended).
    image::RgbaImage::from_pixel(1, 1, image::Rgba([200, 100, 50, 7]))
        .save(dir.join("a.png"))
        .unwrap();
    // 16-bit RGB: each value v becomes round(v / 257) (= round(255 v / 65535)):
    // 65535 → 255, 32896 → 128.0 → 128, 1000 → 3.89 → 4.
    let wide = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
        1,
        1,
        image::Rgb([65535, 32896, 1000]),
    );
    wide.save(dir.join("b.png")).unwrap();
    let ds = folder::load_split(&tmp.path().join("train"), None).unwrap();
    assert_eq!(ds.image(0), &[200, 100, 50]);
    assert_eq!(ds.image(1), &[255, 128, 4]);
}

#[test]
fn folder_too_large_for_memory_is_an_error_not_an_abort() {
    // One 4096x4096 image (48 MiB as RGB) linked under 20000 names: 983 GiB in all, more
    // than the memory of any machine this runs on. Hard links cost no disk space.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("train/cls");
    std::fs::create_dir_all(&dir).unwrap();
    image::GrayImage::new(4096, 4096).save(dir.join("00000.png")).unwrap();
    for i in 1..20_000 {
        std::fs::hard_link(dir.join("00000.png"), dir.join(format!("{i:05}.png"))).unwrap();
    }
    let err = folder::load_split(&tmp.path().join("train"), None).unwrap_err();
    let msg = bad_file_named(err, "train");
    assert!(msg.contains("20000 images of 4096x4096"), "{msg}");
}

// ---------------------------------------------------------------- resolvers

/// Every test touching DLKIT_DATA lives here, so no two threads race on the variable.
#[test]
fn resolvers_follow_dlkit_data() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("DLKIT_DATA", tmp.path());

    let err = data::cifar10().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::DatasetMissing { .. }));
    assert!(msg.contains("cifar-10-batches-bin") && msg.contains("cifar10-jpg"), "{msg}");
    assert!(msg.contains("data/fetch.sh"), "{msg}");

    // The image folder is used when there is no binary version (its classes must be CIFAR's).
    let jpg = tmp.path().join("cifar10-jpg");
    for (i, class) in data::CIFAR10_CLASSES.iter().enumerate() {
        for split in ["train", "test"] {
            write_png(&jpg.join(format!("{split}/{class}/0000.png")), i as u8, 32, 32);
            write_png(&jpg.join(format!("{split}/{class}/0001.png")), 50 + i as u8, 32, 32);
        }
    }
    let tt = data::cifar10_limited(Some(1), None).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (10, 20));
    assert_eq!(tt.train.image(3)[0], px(3, 0, 0, 0));

    // The binary version wins when both are there.
    write_cifar_fixture(&tmp.path().join("cifar-10-batches-bin"), None);
    let tt = data::cifar10().unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (10, 3));
    // Fixture training labels are 0..9 once each; test labels 9, 8, 7.
    let tt = data::cifar10_limited(Some(1), Some(1)).unwrap();
    assert_eq!(tt.train.labels, (0..10).collect::<Vec<u8>>());
    assert_eq!(tt.test.labels, vec![9, 8, 7]);

    // Fashion-MNIST from <data root>/fashion-mnist when the files are there.
    let fm = tmp.path().join("fashion-mnist");
    write_idx_fixture(&fm, true);
    let tt = data::fashion_mnist().unwrap();
    assert_eq!(tt.train.labels, vec![2, 0, 1]);
    assert_eq!(tt.train.classes[0], "T-shirt/top");

    std::env::set_var("DLKIT_DATA", tmp.path().join("empty"));
    match data::fashion_mnist() {
        Ok(tt) => assert_eq!(tt.train.len(), 60_000), // the system package is installed
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
            assert!(msg.contains("data/fetch.sh"), "{msg}");
        }
    }
    std::env::remove_var("DLKIT_DATA");
}

#[test]
fn first_per_class_keeps_stored_order() {
    let labels = vec![1, 0, 1, 1, 2, 0];
    let images: Vec<u8> = (0..6).collect();
    let ds =
        Dataset::new(images, labels, (1, 1, 1), vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let two = data::first_per_class(&ds, Some(2));
    assert_eq!(two.images, vec![0, 1, 2, 4, 5]);
    assert_eq!(two.labels, vec![1, 0, 1, 2, 0]);
    assert_eq!(data::first_per_class(&ds, None).len(), 6);
}

// ---------------------------------------------------------------- real data (when installed)

#[test]
fn real_fashion_mnist_loads() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.is_dir() {
        println!("skipped: {} is absent (apt-get install dataset-fashion-mnist)", dir.display());
        return;
    }
    let tt = data::fashion_mnist_from(dir).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (60_000, 10_000));
    assert_eq!((tt.train.channels, tt.train.height, tt.train.width), (1, 28, 28));
    assert_eq!(tt.train.class_counts(), vec![6_000; 10]);
    assert_eq!(tt.test.class_counts(), vec![1_000; 10]);
}

fn shared_cifar_jpg() -> Option<PathBuf> {
    let dir =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/cifar10-jpg"));
    let dir = if dir.is_dir() { dir } else { PathBuf::from("/work/shared/data/cifar10-jpg") };
    if dir.join("train").is_dir() {
        Some(dir)
    } else {
        println!("skipped: no CIFAR-10 image folder at {}", dir.display());
        None
    }
}

#[test]
fn real_cifar_jpg_first_images_load() {
    let Some(dir) = shared_cifar_jpg() else {
        return;
    };
    let tt = folder::load_limited(&dir, Some(3), Some(2)).unwrap();
    assert_eq!(tt.train.classes, data::CIFAR10_CLASSES);
    assert_eq!((tt.train.len(), tt.test.len()), (30, 20));
    assert_eq!((tt.train.channels, tt.train.height, tt.train.width), (3, 32, 32));
}

/// Times the full 60,000-image load: `cargo test -p dlkit --test data_loaders -- --ignored --nocapture`.
#[test]
#[ignore]
fn real_cifar_jpg_full_load_time() {
    let Some(dir) = shared_cifar_jpg() else {
        return;
    };
    let start = std::time::Instant::now();
    let tt = folder::load(&dir).unwrap();
    println!(
        "loaded {} + {} images from {} in {:.1} s on {} rayon threads",
        tt.train.len(),
        tt.test.len(),
        dir.display(),
        start.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    assert_eq!(tt.train.class_counts(), vec![5_000; 10]);
    assert_eq!(tt.test.class_counts(), vec![1_000; 10]);
}
