//! Datasets: loading from disk (CIFAR-10 binary, image folders, IDX), u8 storage, splits,
//! resizing, normalisation and seeded mini-batches on any device.
//!
//! Every loader returns a [`Dataset`] (u8 pixels in NCHW order, one label byte per image);
//! [`DeviceData`] moves it to a `Device` once and hands out normalised f32 batches.

mod batches;
pub mod cifar;
pub mod folder;
pub mod idx;

pub use batches::{Batches, DeviceData, Normalization};

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

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut sq = vec![0f64; self.channels];
        for img in self.images.chunks_exact(self.image_size()) {
            for (ch, p) in img.chunks_exact(plane).enumerate() {
                for &v in p {
                    let v = v as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt()) as f32)
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
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data")),
    }
}

/// The command that fetches the datasets, named in every "not found" error.
pub const FETCH_HINT: &str =
    "run `bash data/fetch.sh` (or `dlkit fetch`) on a machine with internet, or set DLKIT_DATA to the folder that holds the data";
