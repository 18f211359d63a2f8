//! Property tests of the file readers (CIFAR-10 binary, IDX plain and gzipped, image
//! folders) over arbitrary bytes and over valid files with mutated headers and bodies:
//! no reader panics, every error names the file, and what a reader allocates is bounded by
//! what the file holds, not by what its header claims.
//!
//! Allocation is measured by a counting global allocator, per thread (the readers decode a
//! one-image folder on the calling thread), so tests running in parallel do not disturb it.
//!
//! Each property runs 64 cases by default (a few seconds); more with e.g.
//! `PROPTEST_CASES=5000 cargo test -p dlkit --release --test loader_fuzz`.

mod common;

use common::{
    cifar_record, gzip, gzip_with_zeros, idx_images, idx_labels, jpeg, jpeg_declaring,
    png_declaring,
};
use dlkit::data::{cifar, folder, idx};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- allocation accounting

/// Counts the bytes each thread has allocated and not freed, and the peak of that count.
struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get().wrapping_add(delta);
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f`'s result and the most bytes this thread held at once during it, beyond what it held
/// before.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = f();
    (result, (PEAK.with(Cell::get) - base).max(0) as usize)
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// ---------------------------------------------------------------- inputs

/// Proptest's configuration: `cases` unless `PROPTEST_CASES` says otherwise; failures are
/// not written to disk (each one found is kept as an explicit test below).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// One change to a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero value.
    Flip { at: usize, xor: u8 },
    /// Cut the file at a position.
    Truncate { at: usize },
    /// Append bytes.
    Extend { bytes: Vec<u8> },
    /// Overwrite bytes from a position.
    Overwrite { at: usize, bytes: Vec<u8> },
}

/// Positions: half of them in the first 32 bytes (the headers), the rest anywhere.
fn position() -> impl Strategy<Value = usize> {
    prop_oneof![0..32usize, any::<usize>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (position(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => position().prop_map(|at| Mutation::Truncate { at }),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Mutation::Extend { bytes }),
        2 => (position(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

/// `bytes` with the mutations applied in order (positions taken modulo the length).
fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip { at, xor } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b ^= xor;
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at % len),
            Mutation::Extend { bytes: more } => bytes.extend_from_slice(more),
            Mutation::Overwrite { at, bytes: new } => {
                for (i, &b) in new.iter().enumerate() {
                    if let Some(old) = bytes.get_mut(at % len + i) {
                        *old = b;
                    }
                }
            }
        }
    }
    bytes
}

/// Header words: small, zero, huge, and anything.
fn header_word() -> impl Strategy<Value = u32> {
    prop_oneof![0..4u32, 1..48u32, Just(u32::MAX), (1u32 << 16)..(1 << 24), any::<u32>()]
}

/// Write `bytes` to `dir/name` and return the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error message names the file.
fn names_file(err: &dlkit::Error, name: &str) -> Result<(), TestCaseError> {
    let msg = err.to_string();
    prop_assert!(msg.contains(name), "error does not name {}: {}", name, msg);
    Ok(())
}

// ---------------------------------------------------------------- IDX

/// Read `bytes` as an IDX image file and as an IDX label file, checking the common
/// properties; returns both outcomes and the larger allocation peak.
type Images = dlkit::Result<(Vec<u8>, usize, usize, usize)>;
fn read_idx(
    bytes: &[u8],
    name: &str,
) -> Result<(Images, dlkit::Result<Vec<u8>>, usize), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), name, bytes);
    let (images, peak_images) = peak_of(|| idx::read_images(&path));
    let (labels, peak_labels) = peak_of(|| idx::read_labels(&path));
    if let Err(e) = &images {
        names_file(e, name)?;
    }
    if let Err(e) = &labels {
        names_file(e, name)?;
    }
    Ok((images, labels, peak_images.max(peak_labels)))
}

/// Reading a plain IDX file allocates its body at most once, plus buffers: 64 KiB.
fn plain_bound(len: usize) -> usize {
    len + 64 * KIB
}

/// Reading a gzip stream of `len` bytes: deflate inflates at most 1032-fold (RFC 1951: a
/// 258-byte match per 2 bits at best), the body vector may double its capacity once past it,
/// and the decoder keeps a 32 KiB window and tables: 2 × 1032 × len + 256 KiB.
fn gzip_bound(len: usize) -> usize {
    2 * 1032 * len + 256 * KIB
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn idx_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (_, _, peak) = read_idx(&bytes, "arbitrary")?;
        // Bytes that begin with the gzip magic are read as gzip (see the regression test below).
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        let bound = if gz { gzip_bound(bytes.len()) } else { plain_bound(bytes.len()) };
        prop_assert!(peak <= bound, "peak {} for {} bytes", peak, bytes.len());
    }

    #[test]
    fn idx_arbitrary_gzip_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        // A gzip magic, method deflate, then anything.
        let mut file = vec![0x1f, 0x8b, 0x08];
        file.extend(bytes);
        let (images, labels, peak) = read_idx(&file, "arbitrary.gz")?;
        prop_assert!(images.is_err() && labels.is_err());
        prop_assert!(peak <= gzip_bound(file.len()), "peak {} for {} bytes", peak, file.len());
    }

    /// Headers with any dimensions over bodies of any length, half of them within two bytes
    /// of what the header announces: the oracle is the IDX format itself (every dimension at
    /// least 1, body length = their product).
    #[test]
    fn idx_any_header_over_any_body(
        n in header_word(), rows in header_word(), cols in header_word(),
        near in any::<bool>(), delta in -2i64..=2, other in 0..2048u64, gz in any::<bool>(),
    ) {
        let body_of = |announced: Option<u64>| {
            let len = announced
                .filter(|_| near)
                .and_then(|a| a.checked_add_signed(delta))
                .filter(|&l| l <= 4096)
                .unwrap_or(other);
            (0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>()
        };
        let product = u64::from(n).checked_mul(u64::from(rows)).and_then(|v| v.checked_mul(u64::from(cols)));
        let pixels = body_of(product);
        let labels = body_of(Some(u64::from(n)));
        let images_file = idx_images(n, rows, cols, &pixels);
        let mut labels_file = idx_labels(&[]);
        labels_file[4..8].copy_from_slice(&n.to_be_bytes());
        labels_file.extend_from_slice(&labels);
        for (file, is_images) in [(images_file, true), (labels_file, false)] {
            let file = if gz { gzip(&file) } else { file };
            let name = if gz { "any.gz" } else { "any" };
            let (images, read_labels, peak) = read_idx(&file, name)?;
            let bound = if gz { gzip_bound(file.len()) } else { plain_bound(file.len()) };
            prop_assert!(peak <= bound, "peak {} for {} bytes", peak, file.len());
            if is_images {
                let valid = n > 0 && rows > 0 && cols > 0 && product == Some(pixels.len() as u64);
                prop_assert_eq!(images.is_ok(), valid, "{:?}", images.as_ref().err().map(|e| e.to_string()));
                if let Ok((read, rn, rr, rc)) = images {
                    prop_assert_eq!((rn, rr, rc), (n as usize, rows as usize, cols as usize));
                    prop_assert_eq!(&read, &pixels);
                }
                prop_assert!(read_labels.is_err()); // magic 0x803 is not a label file
            } else {
                let valid = n > 0 && n as usize == labels.len();
                prop_assert_eq!(read_labels.is_ok(), valid);
                if let Ok(read) = read_labels {
                    prop_assert_eq!(&read, &labels);
                }
                prop_assert!(images.is_err()); // magic 0x801 is not an image file
            }
        }
    }

    #[test]
    fn idx_mutated_valid_files(muts in mutations(), gz in any::<bool>()) {
        let pixels: Vec<u8> = (0..3 * 5 * 4).map(|i| i as u8).collect();
        let images = idx_images(3, 5, 4, &pixels);
        let labels = idx_labels(&[1, 2, 3]);
        for (file, name) in [(images, "images"), (labels, "labels")] {
            let file = if gz { mutate(gzip(&file), &muts) } else { mutate(file, &muts) };
            let (_, _, peak) = read_idx(&file, name)?;
            let bound = if gz { gzip_bound(file.len()) } else { plain_bound(file.len()) };
            prop_assert!(peak <= bound, "peak {} for {} bytes", peak, file.len());
        }
    }
}

/// Found by `idx_arbitrary_bytes` with 20,000 cases: a file of just the gzip magic is read as
/// gzip, whose decoder state (about 80 KiB) is more than the plain-file bound allowed.
#[test]
fn idx_gzip_magic_alone_is_a_broken_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "magic-only", &[0x1f, 0x8b]);
    let (result, peak) = peak_of(|| idx::read_images(&path));
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("magic-only") && msg.contains("broken gzip stream"), "{msg}");
    assert!(peak <= gzip_bound(2), "peak {peak}");
}

#[test]
fn idx_gzip_bomb_allocates_what_the_header_announces_not_what_it_inflates_to() {
    let tmp = tempfile::tempdir().unwrap();
    // 4 bytes announced, 64 MiB inflated from a 64 KiB file.
    let bomb = gzip_with_zeros(&idx_images(1, 2, 2, &[]), 64 * MIB);
    let path = write(tmp.path(), "bomb.gz", &bomb);
    let (result, peak) = peak_of(|| idx::read_images(&path));
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("bomb.gz") && msg.contains("more than 4 bytes follow"), "{msg}");
    assert!(peak < 256 * KIB, "peak allocation {peak} bytes for a {}-byte bomb", bomb.len());
}

#[test]
fn idx_header_promising_more_than_the_file_holds_allocates_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Fashion-MNIST's header (60000 images of 28x28, 47 MB) over 100 bytes.
    let file = idx_images(60_000, 28, 28, &[5; 100]);
    for (name, bytes) in [("short", file.clone()), ("short.gz", gzip(&file))] {
        let path = write(tmp.path(), name, &bytes);
        let (result, peak) = peak_of(|| idx::read_images(&path));
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains("truncated") && msg.contains("only 100 bytes follow"), "{msg}");
        assert!(peak < 256 * KIB, "{name}: peak allocation {peak} bytes");
    }
}

// ---------------------------------------------------------------- CIFAR-10 binary

/// The CIFAR batch format as an oracle: a non-empty whole number of 3073-byte records, each
/// label below 10.
fn cifar_valid(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() % 3073 == 0 && bytes.chunks(3073).all(|r| r[0] < 10)
}

fn check_cifar(bytes: &[u8]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "data_batch_1.bin", bytes);
    let (result, peak) = peak_of(|| cifar::read_batch(&path));
    // The file once, then the pixels and labels copied out of it.
    prop_assert!(peak <= 2 * bytes.len() + 64 * KIB, "peak {} for {} bytes", peak, bytes.len());
    prop_assert_eq!(result.is_ok(), cifar_valid(bytes));
    match result {
        Ok((images, labels)) => {
            let records: Vec<&[u8]> = bytes.chunks(3073).collect();
            prop_assert_eq!(labels, records.iter().map(|r| r[0]).collect::<Vec<_>>());
            prop_assert_eq!(
                images,
                records.iter().flat_map(|r| r[1..].to_vec()).collect::<Vec<_>>()
            );
        }
        Err(e) => names_file(&e, "data_batch_1.bin")?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn cifar_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..8000)) {
        check_cifar(&bytes)?;
    }

    #[test]
    fn cifar_mutated_valid_batches(labels in prop::collection::vec(0..12u8, 1..4), muts in mutations()) {
        let bytes: Vec<u8> = labels.iter().flat_map(|&l| cifar_record(l, |j| (j % 256) as u8)).collect();
        check_cifar(&mutate(bytes, &muts))?;
    }
}

// ---------------------------------------------------------------- image folders

/// What one-image folder reading may allocate: the decoder's limit, jpeg-decoder's own
/// buffers outside it (component planes and coefficients, about twice the output), the RGB
/// and CHW copies and the dataset (three times the RGB image), and 1 MiB of buffers.
fn folder_bound(pixels: usize) -> usize {
    3 * folder::MAX_DECODE_BYTES as usize + 3 * 3 * pixels + MIB
}

/// Load `train/cls/<name>` holding `bytes` as a one-image training split.
fn check_folder(bytes: &[u8], name: &str) -> Result<Option<(usize, usize)>, TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("train/cls"), name, bytes);
    let (result, peak) = peak_of(|| folder::load_split(&tmp.path().join("train"), None));
    match result {
        Ok(ds) => {
            prop_assert_eq!((ds.len(), ds.channels), (1, 3));
            let side = folder::MAX_SIDE as usize;
            prop_assert!(ds.height <= side && ds.width <= side);
            prop_assert!(peak <= folder_bound(ds.height * ds.width), "peak {}", peak);
            Ok(Some((ds.width, ds.height)))
        }
        Err(e) => {
            names_file(&e, name)?;
            prop_assert!(peak <= folder_bound(0), "peak {}", peak);
            Ok(None)
        }
    }
}

/// A valid 8-bit RGB PNG of `width × height` with a pattern.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 5) as u8, 77])
    });
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageOutputFormat::Png).unwrap();
    bytes
}

/// Declared image sides: small, just over the limit, and anything.
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![0..40u32, (folder::MAX_SIDE + 1)..(folder::MAX_SIDE + 64), any::<u32>()]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn folder_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096), png in any::<bool>()) {
        check_folder(&bytes, if png { "x.png" } else { "x.jpg" })?;
    }

    #[test]
    fn folder_mutated_valid_png(w in 1..24u32, h in 1..24u32, muts in mutations()) {
        check_folder(&mutate(png(w, h), &muts), "x.png")?;
    }

    #[test]
    fn folder_mutated_valid_jpeg(w in 1..24u32, h in 1..24u32, muts in mutations()) {
        check_folder(&mutate(jpeg(w, h), &muts), "x.jpg")?;
    }

    /// PNG headers declaring any size, with correct CRCs and a tiny image-data chunk: sizes
    /// over the limit are refused, naming the limit, when they are valid PNG sizes (1 to
    /// 2^31 − 1 a side); invalid ones are refused as undecodable.
    #[test]
    fn folder_png_declaring_any_size(w in side(), h in side(), color in prop::sample::select(vec![0u8, 2, 6])) {
        let idat = [0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01];
        let bytes = png_declaring(w, h, color, &idat);
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("train/cls"), "x.png", &bytes);
        let valid = |s: u32| (1..1 << 31).contains(&s);
        if valid(w) && valid(h) && (w > folder::MAX_SIDE || h > folder::MAX_SIDE) {
            let (result, peak) = peak_of(|| folder::load_split(&tmp.path().join("train"), None));
            let msg = result.unwrap_err().to_string();
            prop_assert!(msg.contains("x.png") && msg.contains("limit"), "{}", msg);
            prop_assert!(peak < MIB, "peak {} for a refused header", peak);
        } else {
            check_folder(&bytes, "x.png")?;
        }
    }

    /// The same for JPEG, whose sides are 16-bit (a height of 0 means "defined later", which
    /// the decoder does not support).
    #[test]
    fn folder_jpeg_declaring_any_size(w in side(), h in side()) {
        let (w, h) = (w.min(65_535) as u16, h.min(65_535) as u16);
        let bytes = jpeg_declaring(w, h);
        let over = u32::from(w) > folder::MAX_SIDE || u32::from(h) > folder::MAX_SIDE;
        if w > 0 && h > 0 && over {
            let tmp = tempfile::tempdir().unwrap();
            write(&tmp.path().join("train/cls"), "x.jpg", &bytes);
            let (result, peak) = peak_of(|| folder::load_split(&tmp.path().join("train"), None));
            let msg = result.unwrap_err().to_string();
            prop_assert!(msg.contains("x.jpg") && msg.contains("limit"), "{}", msg);
            prop_assert!(peak < MIB, "peak {} for a refused header", peak);
        } else {
            check_folder(&bytes, "x.jpg")?;
        }
    }
}
