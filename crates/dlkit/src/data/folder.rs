//! Image folders: `<root>/{train,test}/<class>/*.{jpg,jpeg,png}`.
//!
//! The classes are the subfolder names sorted by name (the test split reuses the training
//! split's list, so a label means the same class in both); within a class the files are
//! taken in name order. Images are decoded in parallel, converted to RGB and stored CHW;
//! every image must have the size of the first one.

use super::{Dataset, TrainTest, FETCH_HINT};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// File extensions (compared without case) taken as images.
pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

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
    let mut images = vec![0u8; files.len() * size];
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

/// Decode one image file to RGB: `(width, height, pixels in CHW order)`.
fn decode_chw(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let undecodable =
        |e: image::ImageError| Error::bad_file(path, format!("cannot decode image: {e}"));
    let rgb = image::io::Reader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(undecodable)?
        .to_rgb8();
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
        chw[i] = px[0];
        chw[plane + i] = px[1];
        chw[2 * plane + i] = px[2];
    }
    Ok((w, h, chw))
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

/// True for a file whose extension is one of [`EXTENSIONS`].
fn is_image_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    path.is_file() && EXTENSIONS.contains(&ext.as_str())
}

/// The last component of a path, as text.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
