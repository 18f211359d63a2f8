//! MNIST / Fashion-MNIST IDX files, gzipped or not.
//!
//! An IDX file is a big-endian header followed by raw bytes: images start with the magic
//! number `0x00000803` and the dimensions `n, rows, cols`; labels start with `0x00000801`
//! and `n`. The official files are gzipped; a file is un-gzipped when it begins with the
//! gzip magic bytes `1f 8b`, whatever its name.
//!
//! The header is checked before the body is read: no dimension may be zero, and the body it
//! announces must fit in [`MAX_BODY_BYTES`]. The body is read up to one byte past what the
//! header announces, so neither a lying header nor a gzip bomb makes the reader allocate more
//! than the file holds or the header promises.

use super::{Dataset, TrainTest, FETCH_HINT};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of u8 images (`n × rows × cols`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (`n`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The largest body (bytes after the header) dlkit reads from one IDX file: 2 GiB, about 45
/// times Fashion-MNIST's training images (60000 × 28 × 28 = 47,040,000 bytes).
pub const MAX_BODY_BYTES: u64 = 1 << 31;

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
    let mut file = IdxFile::open(path)?;
    file.check_magic(IMAGES_MAGIC)?;
    let [n, rows, cols] = file.words::<3>()?;
    if n == 0 {
        return Err(Error::bad_file(
            path,
            "the header announces 0 images; the file must hold at least one",
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(Error::bad_file(
            path,
            format!("the header announces images of {rows}x{cols} pixels; both sides must be at least 1"),
        ));
    }
    let what = format!("{n} images of {rows}x{cols}");
    let expected =
        u64::from(n).checked_mul(u64::from(rows)).and_then(|v| v.checked_mul(u64::from(cols)));
    let pixels = file.body(expected, &what)?;
    Ok((pixels, n as usize, rows as usize, cols as usize))
}

/// Read an IDX label file: one byte per image.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut file = IdxFile::open(path)?;
    file.check_magic(LABELS_MAGIC)?;
    let [n] = file.words::<1>()?;
    if n == 0 {
        return Err(Error::bad_file(
            path,
            "the header announces 0 labels; the file must hold at least one",
        ));
    }
    file.body(Some(u64::from(n)), &format!("{n} labels"))
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

/// An IDX file being read front to back, through gzip when it starts with `1f 8b`.
struct IdxFile<'a> {
    path: &'a Path,
    reader: Box<dyn Read>,
    /// The file's length when it is not compressed (the body's length is then known).
    plain_len: Option<u64>,
    /// Header bytes read so far.
    header: usize,
}

impl<'a> IdxFile<'a> {
    /// Open `path`, looking at its first two bytes for the gzip magic.
    fn open(path: &'a Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut magic = [0u8; 2];
        let got = read_fully(&mut file, &mut magic).map_err(|e| Error::io(path, e))?;
        file.rewind().map_err(|e| Error::io(path, e))?;
        let file = BufReader::new(file);
        let (reader, plain_len): (Box<dyn Read>, _) = if got == 2 && magic == [0x1f, 0x8b] {
            (Box::new(flate2::read::GzDecoder::new(file)), None)
        } else {
            (Box::new(file), Some(len))
        };
        Ok(IdxFile { path, reader, plain_len, header: 0 })
    }

    /// A read error: a broken gzip stream, or an I/O error on the file.
    fn read_error(&self, e: std::io::Error) -> Error {
        if self.plain_len.is_none() {
            Error::bad_file(self.path, format!("broken gzip stream: {e}"))
        } else {
            Error::io(self.path, e)
        }
    }

    /// The next `N` big-endian u32 words of the header.
    fn words<const N: usize>(&mut self) -> Result<[u32; N]> {
        let mut out = [0u32; N];
        for word in &mut out {
            let mut bytes = [0u8; 4];
            let got = read_fully(&mut self.reader, &mut bytes).map_err(|e| self.read_error(e))?;
            if got < 4 {
                let (have, need) = (self.header + got, self.header + 4 * N);
                return Err(Error::bad_file(
                    self.path,
                    format!("truncated: {have} bytes is too short for the IDX header ({need} bytes or more)"),
                ));
            }
            self.header += 4;
            *word = u32::from_be_bytes(bytes);
        }
        Ok(out)
    }

    /// Read the magic number and check it is `expected`.
    fn check_magic(&mut self, expected: u32) -> Result<()> {
        let [found] = self.words::<1>()?;
        if found == expected {
            return Ok(());
        }
        Err(Error::bad_file(
            self.path,
            format!(
                "wrong magic number: expected {expected:#010x} ({}), found {found:#010x} ({}); \
                 dlkit reads IDX files of unsigned bytes: images in 3 dimensions, labels in 1",
                describe_magic(expected),
                describe_magic(found)
            ),
        ))
    }

    /// The rest of the file, which must be exactly `expected` bytes (`None`: the header's
    /// product overflowed). At most `expected + 1` bytes are read.
    fn body(mut self, expected: Option<u64>, what: &str) -> Result<Vec<u8>> {
        let expected = match expected {
            Some(e) if e <= MAX_BODY_BYTES => e,
            Some(e) => {
                return Err(Error::bad_file(
                    self.path,
                    format!(
                        "the header announces {what} ({e} bytes), over dlkit's limit of \
                         {MAX_BODY_BYTES} bytes for one IDX file"
                    ),
                ))
            }
            None => {
                return Err(Error::bad_file(
                    self.path,
                    format!(
                        "the header announces {what}, more than 2^64 bytes and over dlkit's \
                         limit of {MAX_BODY_BYTES} bytes for one IDX file"
                    ),
                ))
            }
        };
        let on_disk = self.plain_len.map(|len| len.saturating_sub(self.header as u64));
        // Reserve what both the header and the file allow; a gzip stream grows as it inflates.
        let mut body = Vec::with_capacity(on_disk.unwrap_or(0).min(expected) as usize);
        (&mut self.reader)
            .take(expected + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.read_error(e))?;
        let got = body.len() as u64;
        if got < expected {
            return Err(Error::bad_file(
                self.path,
                format!("truncated: the header announces {what} ({expected} bytes) but only {got} bytes follow"),
            ));
        }
        if got > expected {
            let follow = match on_disk {
                Some(n) => format!("{n} bytes follow"),
                None => format!("more than {expected} bytes follow (decompression stopped there)"),
            };
            return Err(Error::bad_file(
                self.path,
                format!("the header announces {what} ({expected} bytes) but {follow}"),
            ));
        }
        Ok(body)
    }
}

/// What an IDX magic number declares: element type and number of dimensions
/// (bytes 3 and 4; the first two bytes are always zero).
fn describe_magic(magic: u32) -> String {
    let [zero1, zero2, kind, dims] = magic.to_be_bytes();
    if zero1 != 0 || zero2 != 0 {
        return "not an IDX file".into();
    }
    let kind = match kind {
        0x08 => "unsigned bytes",
        0x09 => "signed bytes",
        0x0B => "16-bit integers",
        0x0C => "32-bit integers",
        0x0D => "32-bit floats",
        0x0E => "64-bit floats",
        _ => return format!("unknown element type {kind:#04x}"),
    };
    let plural = if dims == 1 { "" } else { "s" };
    format!("{kind}, {dims} dimension{plural}")
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
