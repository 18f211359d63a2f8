//! CIFAR-10 in the official binary layout (`cifar-10-batches-bin/`).
//!
//! Each batch file is a run of 3073-byte records: one label byte, then 3072 pixel bytes
//! (1024 red, 1024 green, 1024 blue, each a row-major 32×32 plane). That is already the
//! CHW order of a [`Dataset`], so the pixels are copied as they are. A batch file larger
//! than [`MAX_BATCH_BYTES`] is refused before it is read.

use super::{Dataset, TrainTest, CIFAR10_CLASSES, FETCH_HINT};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Pixel bytes per image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Bytes per record: one label byte and the pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// The five training batch files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The file listing the class names, one a line.
pub const META_FILE: &str = "batches.meta.txt";
/// The largest batch file dlkit reads: 1 GiB, about 35 official batches (10,000 records,
/// 30,730,000 bytes each).
pub const MAX_BATCH_BYTES: u64 = 1 << 30;
/// Bytes per record of CIFAR-100's binary version (coarse and fine label bytes, then pixels).
const CIFAR100_RECORD_BYTES: usize = 2 + IMAGE_BYTES;

/// Load the training batches and the test batch from `dir` (`cifar-10-batches-bin/`).
pub fn load(dir: &Path) -> Result<TrainTest> {
    if !dir.is_dir() {
        return Err(missing(dir));
    }
    let classes = class_names(dir)?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in TRAIN_FILES {
        let (i, l) = read_batch(&dir.join(name))?;
        images.extend(i);
        labels.extend(l);
    }
    let shape = (3, SIDE, SIDE);
    let train = Dataset::new(images, labels, shape, classes.clone())?;
    let (images, labels) = read_batch(&dir.join(TEST_FILE))?;
    let test = Dataset::new(images, labels, shape, classes)?;
    Ok(TrainTest { train, test })
}

/// Read one batch file: returns `(pixels in CHW order image after image, labels)`.
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    if !path.is_file() {
        return Err(missing(path));
    }
    let bytes = read_bounded(path)?;
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "empty: the file holds no record"));
    }
    if bytes.len() % RECORD_BYTES != 0 {
        if bytes.len() % CIFAR100_RECORD_BYTES == 0 {
            return Err(Error::bad_file(
                path,
                format!(
                    "{} bytes is a whole number of {CIFAR100_RECORD_BYTES}-byte records, the \
                     layout of CIFAR-100 (two label bytes), not of CIFAR-10 ({RECORD_BYTES}-byte \
                     records)",
                    bytes.len()
                ),
            ));
        }
        let whole = bytes.len() / RECORD_BYTES;
        return Err(Error::bad_file(
            path,
            format!(
                "truncated: {} bytes is not a whole number of {RECORD_BYTES}-byte records \
                 (record {whole} is cut after {} bytes)",
                bytes.len(),
                bytes.len() % RECORD_BYTES
            ),
        ));
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if label as usize >= CIFAR10_CLASSES.len() {
            return Err(Error::bad_file(
                path,
                format!("record {i}: label {label} is out of range (CIFAR-10 labels are 0 to 9)"),
            ));
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok((images, labels))
}

/// The whole file, refused unread when it is larger than [`MAX_BATCH_BYTES`] (and never more
/// than that limit read, should it grow meanwhile).
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let too_large = |len: u64| {
        Error::bad_file(
            path,
            format!(
                "holds {len} bytes, over dlkit's limit of {MAX_BATCH_BYTES} bytes for one batch \
                 file (an official batch holds 10000 records, {} bytes)",
                10_000 * RECORD_BYTES
            ),
        )
    };
    if len > MAX_BATCH_BYTES {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_BATCH_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_BATCH_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Class names from `batches.meta.txt` when present, else [`CIFAR10_CLASSES`].
fn class_names(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(META_FILE);
    if !path.is_file() {
        return Ok(CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let names: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != CIFAR10_CLASSES.len() {
        return Err(Error::bad_file(
            &path,
            format!("lists {} class names, CIFAR-10 has {}", names.len(), CIFAR10_CLASSES.len()),
        ));
    }
    Ok(names)
}

/// The "not found" error for a CIFAR-10 folder or batch file.
fn missing(path: &Path) -> Error {
    Error::DatasetMissing {
        what: "CIFAR-10 (binary version)".into(),
        path: path.to_path_buf(),
        hint: FETCH_HINT.into(),
    }
}
