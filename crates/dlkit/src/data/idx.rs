//! MNIST / Fashion-MNIST IDX files, gzipped or not.
//!
//! An IDX file is a big-endian header followed by raw bytes: images start with the magic
//! number `0x00000803` and the dimensions `n, rows, cols`; labels start with `0x00000801`
//! and `n`. The official files are gzipped; a file is un-gzipped when it begins with the
//! gzip magic bytes `1f 8b`, whatever its name.

use super::{Dataset, TrainTest, FETCH_HINT};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of u8 images (`n × rows × cols`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (`n`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The four files of an MNIST-style dataset, without the optional `.gz`.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels file name (without `.gz`).
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images file name (without `.gz`).
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels file name (without `.gz`).
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Read an IDX image file: returns `(pixels, n, rows, cols)`, pixels image after image.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    let bytes = read_maybe_gzip(path)?;
    check_magic(path, &bytes, IMAGES_MAGIC)?;
    let n = header_word(path, &bytes, 1)?;
    let rows = header_word(path, &bytes, 2)?;
    let cols = header_word(path, &bytes, 3)?;
    let what = format!("{n} images of {rows}x{cols}");
    let expected = n.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    check_body_len(path, &bytes, 16, expected, &what)?;
    Ok((bytes[16..].to_vec(), n, rows, cols))
}

/// Read an IDX label file: one byte per image.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gzip(path)?;
    check_magic(path, &bytes, LABELS_MAGIC)?;
    let n = header_word(path, &bytes, 1)?;
    check_body_len(path, &bytes, 8, Some(n), &format!("{n} labels"))?;
    Ok(bytes[8..].to_vec())
}

/// Load an MNIST-style dataset from `dir` (the four IDX files, each gzipped or not).
///
/// `classes` names the labels in order; a label `≥ classes.len()` is an error.
pub fn load(dir: &Path, classes: &[&str]) -> Result<TrainTest> {
    if !dir.is_dir() {
        return Err(Error::DatasetMissing {
            what: "IDX dataset folder".into(),
            path: dir.to_path_buf(),
            hint: FETCH_HINT.into(),
        });
    }
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let train = load_split(dir, TRAIN_IMAGES, TRAIN_LABELS, &classes)?;
    let test = load_split(dir, TEST_IMAGES, TEST_LABELS, &classes)?;
    Ok(TrainTest { train, test })
}

/// One split: the images file and the labels file, checked against each other.
fn load_split(dir: &Path, images: &str, labels: &str, classes: &[String]) -> Result<Dataset> {
    let images_path = find_file(dir, images)?;
    let labels_path = find_file(dir, labels)?;
    let (pixels, n, rows, cols) = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if labels.len() != n {
        return Err(Error::bad_file(
            &labels_path,
            format!("holds {} labels but {} holds {n} images", labels.len(), images_path.display()),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes.len()) {
        return Err(Error::bad_file(
            &labels_path,
            format!("label {l} of record {i} is out of range for {} classes", classes.len()),
        ));
    }
    Dataset::new(pixels, labels, (1, rows, cols), classes.to_vec())
}

/// `dir/name`, or `dir/name.gz` when only the gzipped file is there.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::DatasetMissing {
        what: format!("IDX file {name} (or {name}.gz)"),
        path: plain,
        hint: FETCH_HINT.into(),
    })
}

/// The whole file, un-gzipped when it starts with the gzip magic bytes `1f 8b`.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| Error::bad_file(path, format!("broken gzip stream: {e}")))?;
    Ok(out)
}

/// Check the 4-byte magic number at the start of the file.
fn check_magic(path: &Path, bytes: &[u8], expected: u32) -> Result<()> {
    let found = header_word(path, bytes, 0)? as u32;
    if found == expected {
        return Ok(());
    }
    let kind = |m: u32| match m {
        IMAGES_MAGIC => " (IDX images)",
        LABELS_MAGIC => " (IDX labels)",
        _ => "",
    };
    Err(Error::bad_file(
        path,
        format!(
            "wrong magic number: expected {expected:#010x}{}, found {found:#010x}{}",
            kind(expected),
            kind(found)
        ),
    ))
}

/// The big-endian u32 at word `index` of the header.
fn header_word(path: &Path, bytes: &[u8], index: usize) -> Result<usize> {
    let start = 4 * index;
    match bytes.get(start..start + 4) {
        Some(w) => Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize),
        None => Err(Error::bad_file(
            path,
            format!("truncated: {} bytes is too short for the IDX header", bytes.len()),
        )),
    }
}

/// Check that the data after a `header`-byte header holds exactly `expected` bytes.
fn check_body_len(
    path: &Path,
    bytes: &[u8],
    header: usize,
    expected: Option<usize>,
    what: &str,
) -> Result<()> {
    let body = bytes.len() - header;
    match expected {
        Some(e) if e == body => Ok(()),
        Some(e) if e > body => Err(Error::bad_file(
            path,
            format!(
                "truncated: the header announces {what} ({e} bytes) but only {body} bytes follow"
            ),
        )),
        Some(e) => Err(Error::bad_file(
            path,
            format!("the header announces {what} ({e} bytes) but {body} bytes follow"),
        )),
        None => Err(Error::bad_file(path, format!("the header announces {what}, which overflows"))),
    }
}
