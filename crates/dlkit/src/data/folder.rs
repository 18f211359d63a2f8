//! Image folders: `<root>/{train,test}/<class>/*.{jpg,jpeg,png}`.
//!
//! The classes are the subfolder names sorted by name (the test split reuses the training
//! split's list, so a label means the same class in both); within a class the files are
//! taken in name order. Images are decoded in parallel, converted to 8-bit RGB (grey is
//! copied to the three channels, alpha is dropped, 16-bit values v become round(v / 257)) and
//! stored CHW; every image must have the size of the first one.
//!
//! Every class folder of a split read without a given class list (the training split) must
//! hold an image; a split read with the training split's list (the test split) may lack a
//! class. Decoding is bounded: an image may be at most [`MAX_SIDE`] pixels a side and its
//! decoder may allocate at most [`MAX_DECODE_BYTES`]; a header declaring more is refused
//! before any pixel is decoded.

use super::{Dataset, TrainTest, FETCH_HINT};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// File extensions (compared without case) taken as images.
pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];
/// The largest image width or height decoded, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// The most memory the decoder may allocate for one image: 256 MiB (an 8192×8192 RGBA image).
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Load `root/train` and `root/test`, every image of every class.
pub fn load(root: &Path) -> Result<TrainTest> {
    load_limited(root, None, None)
}

/// Load `root/train` and `root/test`, decoding at most the first `k` files of each class
/// in each split (`None`: all of them).
pub fn load_limited(
    root: &Path,
    per_class_train: Option<usize>,
    per_class_test: Option<usize>,
) -> Result<TrainTest> {
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        return Err(Error::DatasetMissing {
            what: "image folder training split".into(),
            path: train_dir,
            hint: FETCH_HINT.into(),
        });
    }
    let train = load_split_limited(&train_dir, None, per_class_train)?;
    let test_dir = root.join("test");
    if !test_dir.is_dir() {
        return Err(Error::DatasetMissing {
            what: "image folder test split".into(),
            path: test_dir,
            hint: FETCH_HINT.into(),
        });
    }
    let test = load_split_limited(&test_dir, Some(&train.classes), per_class_test)?;
    Ok(TrainTest { train, test })
}

/// Load one split `dir/<class>/*`; `classes` fixes the class list (else: the sorted subfolders).
pub fn load_split(dir: &Path, classes: Option<&[String]>) -> Result<Dataset> {
    load_split_limited(dir, classes, None)
}

/// Like [`load_split`], decoding only the first `limit_per_class` files of each class.
pub fn load_split_limited(
    dir: &Path,
    classes: Option<&[String]>,
    limit_per_class: Option<usize>,
) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::DatasetMissing {
            what: "image folder".into(),
            path: dir.to_path_buf(),
            hint: FETCH_HINT.into(),
        });
    }
    let found = sorted_entries(dir, |p| p.is_dir())?;
    let names: Vec<String> = found.iter().map(|p| file_name(p)).collect();
    let given = classes;
    let classes: Vec<String> = match classes {
        None => names,
        Some(list) => {
            if let Some(extra) = names.iter().find(|n| !list.contains(n)) {
                return Err(Error::bad_file(
                    dir.join(extra),
                    format!("class folder is not one of the known classes {list:?}"),
                ));
            }
            list.to_vec()
        }
    };
    if classes.len() > 256 {
        return Err(Error::bad_file(
            dir,
            format!("{} classes do not fit u8 labels", classes.len()),
        ));
    }

    let mut files: Vec<(PathBuf, u8)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue; // a split may lack a class; the label list stays the same
        }
        let mut images = sorted_entries(&class_dir, is_image_file)?;
        if images.is_empty() && given.is_none() && limit_per_class != Some(0) {
            let others =
                std::fs::read_dir(&class_dir).map_err(|e| Error::io(&class_dir, e))?.count();
            return Err(Error::bad_file(
                &class_dir,
                format!(
                    "class folder holds no .jpg/.jpeg/.png image ({others} other entries); every \
                     training class needs at least one"
                ),
            ));
        }
        if let Some(k) = limit_per_class {
            images.truncate(k);
        }
        files.extend(images.into_iter().map(|p| (p, label as u8)));
    }
    let Some((first, _)) = files.first() else {
        return Err(Error::bad_file(
            dir,
            "holds no .jpg/.jpeg/.png image in a class subfolder (<split>/<class>/<image>)",
        ));
    };

    let (width, height, first_pixels) = decode_chw(first)?;
    let size = first_pixels.len();
    let mut images = allocate(dir, files.len(), (width, height))?;
    images[..size].copy_from_slice(&first_pixels);
    let outcomes: Vec<Result<()>> = images[size..]
        .par_chunks_mut(size)
        .zip(files[1..].par_iter())
        .map(|(out, (path, _))| {
            let (w, h, pixels) = decode_chw(path)?;
            if (w, h) != (width, height) {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "image is {w}x{h} but {} is {width}x{height}; all images must share one size",
                        first.display()
                    ),
                ));
            }
            out.copy_from_slice(&pixels);
            Ok(())
        })
        .collect();
    // Report the first failure in file order, so the message does not depend on scheduling.
    outcomes.into_iter().collect::<Result<()>>()?;

    let labels = files.iter().map(|(_, l)| *l).collect();
    Dataset::new(images, labels, (3, height as usize, width as usize), classes)
}

/// Zeroed room for `count` RGB images of `width × height`, or an error naming the folder when
/// they need more than the machine's physical memory or the allocation fails (instead of
/// aborting the process, or of being killed once an over-committed allocation is touched).
fn allocate(dir: &Path, count: usize, (width, height): (u32, u32)) -> Result<Vec<u8>> {
    let need = 3 * u128::from(width) * u128::from(height) * count as u128;
    let memory = physical_memory();
    let refuse = |what: String| {
        Error::bad_file(
            dir,
            format!(
                "{count} images of {width}x{height} need {need} bytes, {what}; load fewer images \
                 per class (load_limited) or smaller ones"
            ),
        )
    };
    if let Some(memory) = memory.filter(|&m| need > u128::from(m)) {
        return Err(refuse(format!("more than this machine's {memory} bytes of memory")));
    }
    let bytes = usize::try_from(need).ok().filter(|&b| b <= isize::MAX as usize);
    let mut images = Vec::new();
    match bytes.map(|b| images.try_reserve_exact(b).map(|()| b)) {
        Some(Ok(b)) => {
            images.resize(b, 0);
            Ok(images)
        }
        _ => Err(refuse("more memory than can be allocated".into())),
    }
}

/// The machine's physical memory in bytes, where the system says.
fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system configuration values.
        let (pages, page) =
            unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        if pages > 0 && page > 0 {
            return (pages as u64).checked_mul(page as u64);
        }
    }
    None
}

/// Decode one image file to RGB: `(width, height, pixels in CHW order)`, refusing images over
/// [`MAX_SIDE`] or [`MAX_DECODE_BYTES`] before decoding them.
fn decode_chw(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = open_image(path)?;
    reader.limits(limits);
    let rgb = match reader.decode() {
        Ok(image) => image.into_rgb8(),
        Err(image::ImageError::Limits(e)) => return Err(too_large(path, e)),
        Err(e) => return Err(Error::bad_file(path, format!("cannot decode image: {e}"))),
    };
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::bad_file(path, format!("image is {w}x{h}: it has no pixels")));
    }
    let plane = w as usize * h as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        chw[i] = px[0];
        chw[plane + i] = px[1];
        chw[2 * plane + i] = px[2];
    }
    Ok((w, h, chw))
}

/// An image reader for `path`, its format guessed from the content (else the extension).
fn open_image(path: &Path) -> Result<image::io::Reader<std::io::BufReader<std::fs::File>>> {
    image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))
}

/// The error for an image over the decoding limits, with the size its header declares.
fn too_large(path: &Path, e: image::error::LimitError) -> Error {
    let declared = open_image(path).ok().and_then(|r| r.into_dimensions().ok());
    let reason = match declared {
        Some((w, h)) if w > MAX_SIDE || h > MAX_SIDE => format!(
            "the header declares {w}x{h} pixels, over dlkit's limit of {MAX_SIDE} pixels a side; \
             resize the image"
        ),
        Some((w, h)) => format!(
            "the header declares {w}x{h} pixels, which need more than dlkit's limit of \
             {MAX_DECODE_BYTES} bytes to decode; resize the image"
        ),
        None => format!(
            "image is over dlkit's limits of {MAX_SIDE} pixels a side and {MAX_DECODE_BYTES} \
             bytes to decode ({e})"
        ),
    };
    Error::bad_file(path, reason)
}

/// The entries of `dir` accepted by `keep`, hidden ones skipped, sorted by name.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !file_name(&path).starts_with('.') && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// True for a file whose extension is one of [`EXTENSIONS`], and for a link with such a name
/// whose target is missing (so that decoding it names the broken link instead of skipping it).
fn is_image_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let dangling =
        || path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) && !path.exists();
    EXTENSIONS.contains(&ext.as_str()) && (path.is_file() || dangling())
}

/// The last component of a path, as text.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
