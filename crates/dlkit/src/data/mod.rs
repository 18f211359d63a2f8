//! Datasets: loading from disk (CIFAR-10 binary, image folders, IDX), u8 storage, splits,
//! resizing, normalisation and seeded mini-batches on any device.
//!
//! Every loader returns a [`Dataset`] (u8 pixels in NCHW order, one label byte per image);
//! [`DeviceData`] moves it to a `Device` once and hands out normalised f32 batches.

mod batches;
#[cfg(feature = "candle-datasets")]
pub mod candle_datasets;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod npy;

pub use batches::{Batches, DeviceData, Normalization, KERAS_STD_EPSILON};

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The Fashion-MNIST class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
];

/// A labelled image dataset held as bytes: `images` is `len × channels × height × width`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixels, image after image, each in channel-major (CHW) order.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Channels per image (1 or 3).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

/// A training set and a test set.
#[derive(Debug, Clone)]
pub struct TrainTest {
    /// The training images.
    pub train: Dataset,
    /// The test images.
    pub test: Dataset,
}

impl Dataset {
    /// Build a dataset, checking that the sizes agree and every label names a class.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        (channels, height, width): (usize, usize, usize),
        classes: Vec<String>,
    ) -> Result<Self> {
        let size = channels * height * width;
        if size == 0 || images.len() != labels.len() * size {
            return Err(Error::Config(format!(
                "{} pixel bytes do not hold {} images of {channels}x{height}x{width}",
                images.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            return Err(Error::Config(format!(
                "label {bad} is out of range for {} classes",
                classes.len()
            )));
        }
        Ok(Dataset { images, labels, channels, height, width, classes })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image (`channels × height × width`).
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i` (CHW order).
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.images[i * s..(i + 1) * s]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let s = self.image_size();
        let mut images = Vec::with_capacity(indices.len() * s);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }

    /// A seeded random subset of at most `n` images (the whole set, shuffled, if `n ≥ len`).
    /// Used for quick runs: a random subset keeps the classes balanced on average.
    pub fn limit(&self, n: usize, seed: u64) -> Dataset {
        let mut order = self.shuffled_indices(seed);
        order.truncate(n.min(self.len()));
        self.subset(&order)
    }

    /// Hold out `validation` images chosen at random (seeded): returns `(train, validation)`.
    pub fn split(&self, validation: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if validation >= self.len() {
            return Err(Error::Config(format!(
                "cannot hold out {validation} of {} images for validation",
                self.len()
            )));
        }
        let order = self.shuffled_indices(seed);
        let (val, train) = order.split_at(validation);
        Ok((self.subset(train), self.subset(val)))
    }

    /// Indices of the first `k` images of each of `classes`, class after class (for sample grids).
    pub fn first_of_classes(&self, classes: &[u8], k: usize) -> Vec<usize> {
        classes
            .iter()
            .flat_map(|&c| self.labels.iter().enumerate().filter(move |(_, l)| **l == c).map(|(i, _)| i).take(k))
            .collect()
    }

    /// Images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Resize every image to `height × width` with bilinear filtering (e.g. Fashion-MNIST 28→32).
    pub fn resize(&self, height: usize, width: usize) -> Dataset {
        use image::imageops::{resize, FilterType};
        use rayon::prelude::*;
        let (c, h, w) = (self.channels, self.height as u32, self.width as u32);
        let images: Vec<u8> = (0..self.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let img = self.image(i);
                let mut out = vec![0u8; c * height * width];
                for ch in 0..c {
                    let plane = &img[ch * (h * w) as usize..(ch + 1) * (h * w) as usize];
                    let gray = image::GrayImage::from_raw(w, h, plane.to_vec())
                        .expect("plane has h*w bytes by construction");
                    let r = resize(&gray, width as u32, height as u32, FilterType::Triangle);
                    out[ch * height * width..(ch + 1) * height * width]
                        .copy_from_slice(r.as_raw());
                }
                out
            })
            .collect();
        Dataset { images, height, width, ..self.clone_meta() }
    }

    /// Per-channel mean and population standard deviation of the pixels scaled to [0, 1], over
    /// all images, rows and columns (numpy's `mean`/`std` over axes (0, rows, cols), as Keras's
    /// `ImageDataGenerator.fit`). The sums are exact integers; only the results are rounded.
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0u64; self.channels];
        let mut squares = vec![0u64; self.channels];
        for img in self.images.chunks_exact(self.image_size().max(1)) {
            for (ch, p) in img.chunks_exact(plane.max(1)).enumerate() {
                for &v in p {
                    sum[ch] += v as u64;
                    squares[ch] += (v as u64) * (v as u64);
                }
            }
        }
        let n = (self.len() * plane).max(1) as u128;
        let mean = sum.iter().map(|&s| (s as f64 / n as f64 / 255.0) as f32).collect();
        // Variance of the pixels p: (n·Σp² − (Σp)²) / n², exact in integers; then / 255².
        let std = squares
            .iter()
            .zip(&sum)
            .map(|(&q, &s)| {
                let numerator = n * q as u128 - (s as u128) * (s as u128);
                ((numerator as f64 / (n * n) as f64).sqrt() / 255.0) as f32
            })
            .collect();
        (mean, std)
    }

    fn shuffled_indices(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        order
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: self.labels.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
        }
    }
}

/// The data root: `$DLKIT_DATA` if set, else the repository's `data/` folder.
pub fn data_root() -> PathBuf {
    match std::env::var_os("DLKIT_DATA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::repository_root().join("data"),
    }
}

/// The command that fetches the datasets, named in every "not found" error.
pub const FETCH_HINT: &str =
    "run `bash data/fetch.sh` (or `dlkit fetch`) on a machine with internet, or set DLKIT_DATA to the folder that holds the data";

/// CIFAR-10 from the data root: `cifar-10-batches-bin/` (official binary) if present, else
/// the image folder `cifar10-jpg/`.
pub fn cifar10() -> Result<TrainTest> {
    cifar10_limited(None, None)
}

/// CIFAR-10 from the data root, keeping only the first `k` images of each class per split
/// (`None`: all); with the image folder only those files are decoded, for quick runs.
pub fn cifar10_limited(
    per_class_train: Option<usize>,
    per_class_test: Option<usize>,
) -> Result<TrainTest> {
    let root = data_root();
    let binary = root.join("cifar-10-batches-bin");
    let folder = root.join("cifar10-jpg");
    if binary.is_dir() {
        let all = cifar::load(&binary)?;
        return Ok(TrainTest {
            train: first_per_class(&all.train, per_class_train),
            test: first_per_class(&all.test, per_class_test),
        });
    }
    if folder.join("train").is_dir() {
        let data = folder::load_limited(&folder, per_class_train, per_class_test)?;
        if data.train.classes != CIFAR10_CLASSES {
            return Err(Error::bad_file(
                folder.join("train"),
                format!(
                    "class folders are {:?}, expected the CIFAR-10 classes {CIFAR10_CLASSES:?}",
                    data.train.classes
                ),
            ));
        }
        return Ok(data);
    }
    Err(Error::DatasetMissing {
        what: "CIFAR-10".into(),
        path: binary,
        hint: format!("nor at {} (image folder); {FETCH_HINT}", folder.display()),
    })
}

/// The first `k` images of each class, in stored order (`None`: the whole dataset).
pub fn first_per_class(data: &Dataset, k: Option<usize>) -> Dataset {
    let Some(k) = k else { return data.clone() };
    let mut taken = vec![0usize; data.classes.len()];
    let keep: Vec<usize> = (0..data.len())
        .filter(|&i| {
            let seen = &mut taken[data.labels[i] as usize];
            *seen += 1;
            *seen <= k
        })
        .collect();
    data.subset(&keep)
}

/// Fashion-MNIST from `data_root()/fashion-mnist/` when it holds the files, else from the
/// Debian package's `/usr/share/datasets/fashion-mnist/`.
pub fn fashion_mnist() -> Result<TrainTest> {
    let local = data_root().join("fashion-mnist");
    let system = PathBuf::from("/usr/share/datasets/fashion-mnist");
    let has_files = |dir: &std::path::Path| {
        let name = idx::TRAIN_IMAGES;
        dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file()
    };
    if has_files(&local) {
        return fashion_mnist_from(&local);
    }
    if system.is_dir() {
        return fashion_mnist_from(&system);
    }
    Err(Error::DatasetMissing {
        what: "Fashion-MNIST".into(),
        path: local,
        hint: format!(
            "nor at {}; install it with `apt-get install dataset-fashion-mnist`, or {FETCH_HINT}",
            system.display()
        ),
    })
}

/// Fashion-MNIST from the four IDX files (gzipped or not) in `dir`.
pub fn fashion_mnist_from(dir: &std::path::Path) -> Result<TrainTest> {
    idx::load(dir, &FASHION_MNIST_CLASSES)
}
