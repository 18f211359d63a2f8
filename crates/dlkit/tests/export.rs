//! `dlkit export` writes exactly the split a `train` run with the same flags uses, as `.npy`
//! files in Keras's channels-last layout. (One test: it sets `DLKIT_DATA` for this process.)

mod common;

use dlkit::data::cifar::{TEST_FILE, TRAIN_FILES};
use dlkit::experiment::{DataSpec, DatasetName};
use std::path::Path;

/// A CIFAR-10 binary folder whose every image is different: pixel j of image i is (7i + j) mod 251.
fn write_cifar(root: &Path) {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let mut image = 0usize;
    let mut file = |name: &str, n: usize| {
        let mut bytes = Vec::new();
        for _ in 0..n {
            let i = image;
            bytes.extend(common::cifar_record((i % 10) as u8, |j| ((7 * i + j) % 251) as u8));
            image += 1;
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for name in TRAIN_FILES {
        file(name, 60);
    }
    file(TEST_FILE, 50);
}

/// The header dictionary and the body of a `.npy` file.
fn read_npy(path: &Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    (String::from_utf8(bytes[10..10 + len].to_vec()).unwrap(), bytes[10 + len..].to_vec())
}

#[test]
fn export_writes_the_train_runs_split_channels_last() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path());
    let out = dir.path().join("export");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_dlkit"))
        .args(["export", "--dataset", "cifar10", "--limit", "200", "--validation", "30", "--seed", "5", "--out"])
        .arg(&out)
        .env("DLKIT_DATA", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe { std::env::set_var("DLKIT_DATA", dir.path()) };
    let splits = DataSpec::new(DatasetName::Cifar10, Some(200), Some(200), 30, 5).splits().unwrap();
    for (name, d, n) in [("train", &splits.train, 170), ("validation", &splits.validation, 30), ("test", &splits.test, 50)] {
        assert_eq!(d.len(), n, "{name}");
        let (header, images) = read_npy(&out.join(format!("{name}_images.npy")));
        assert!(header.contains(&format!("'shape': ({n}, 32, 32, 3)")), "{name}: {header}");
        let (header, labels) = read_npy(&out.join(format!("{name}_labels.npy")));
        assert!(header.contains(&format!("'shape': ({n},)")), "{name}: {header}");
        assert_eq!(labels, d.labels, "{name} labels");
        // Pixel (row y, column x, channel c) of image i sits at CHW offset c·1024 + 32y + x.
        for (i, y, x, c) in [(0, 0, 0, 0), (1, 5, 7, 2), (n - 1, 31, 31, 1), (n / 2, 12, 30, 1)] {
            assert_eq!(images[((i * 32 + y) * 32 + x) * 3 + c], d.image(i)[c * 1024 + 32 * y + x], "{name} image {i}");
        }
    }

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_dlkit"))
        .args(["export", "--limit", "100", "--validation", "100", "--out"])
        .arg(&out)
        .env("DLKIT_DATA", dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("validation (100)"), "{}", String::from_utf8_lossy(&bad.stderr));
}
