//! A dataset on a device, and seeded shuffling mini-batches of normalised f32 images.

use super::Dataset;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// How u8 pixels become model inputs: `x = (p / 255 − mean_c) / std_c` (see each variant).
///
/// Fit statistics on the training images only (after holding out the validation split) and
/// hand the same value to the training, validation and test [`DeviceData`], as Keras applies
/// one fitted generator's `mean` and `std` to every split.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// Scale to [0, 1] only (the coursework's `x / 255`).
    UnitRange,
    /// Scale to [0, 1], then subtract a per-channel mean and divide by a per-channel std
    /// (statistics given by hand, e.g. a paper's published values).
    MeanStd {
        /// Per-channel mean of the [0, 1]-scaled training pixels.
        mean: Vec<f32>,
        /// Per-channel standard deviation of the [0, 1]-scaled training pixels.
        std: Vec<f32>,
    },
    /// Keras's `ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
    /// rescale=1/255)` after `datagen.fit(x_train)`: `x = (p / 255 − mean_c) / (std_c + 1e-6)`.
    /// Keras's `fit` rescales before measuring, so `mean`/`std` are those of the
    /// [0, 1]-scaled pixels over all images, rows and columns of channel `c` (population std);
    /// the same numbers as fitting on `x_train / 255` without `rescale`.
    Featurewise {
        /// Per-channel mean of the [0, 1]-scaled training pixels.
        mean: Vec<f32>,
        /// Per-channel population standard deviation of the [0, 1]-scaled training pixels
        /// (Keras adds [`KERAS_STD_EPSILON`] when dividing).
        std: Vec<f32>,
    },
}

/// What Keras adds to the featurewise standard deviation before dividing by it.
pub const KERAS_STD_EPSILON: f32 = 1e-6;

impl Normalization {
    /// Keras's featurewise statistics measured on `train` ([`Normalization::Featurewise`]).
    pub fn fitted_to(train: &Dataset) -> Self {
        let (mean, std) = train.channel_mean_std();
        Normalization::Featurewise { mean, std }
    }
}

/// A dataset moved once to a device (u8 pixels, u32 labels); batches are cut there.
#[derive(Debug, Clone)]
pub struct DeviceData {
    images: Tensor,
    labels: Tensor,
    normalization: Normalization,
    shift: Option<(Tensor, Tensor)>,
}

impl DeviceData {
    /// Copy `data` to `device`; batches come out normalised by `normalization`.
    pub fn new(data: &Dataset, device: &Device, normalization: Normalization) -> Result<Self> {
        let (c, h, w) = (data.channels, data.height, data.width);
        let images = Tensor::from_slice(&data.images, (data.len(), c, h, w), device)?;
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let labels = Tensor::from_vec(labels, data.len(), device)?;
        let per_channel = |mean: &[f32], divisor: Vec<f32>| -> Result<Option<(Tensor, Tensor)>> {
            let m = Tensor::from_slice(mean, (1, c, 1, 1), device)?;
            let s = Tensor::from_vec(divisor, (1, c, 1, 1), device)?;
            Ok(Some((m, s)))
        };
        let shift = match &normalization {
            Normalization::UnitRange => None,
            Normalization::MeanStd { mean, std } => {
                if mean.len() != c || std.len() != c || std.iter().any(|s| s.is_nan() || *s <= 0.0)
                {
                    return Err(Error::Config(format!(
                        "mean/std normalisation needs {c} means and {c} stds > 0, got {mean:?} and {std:?}"
                    )));
                }
                per_channel(mean, std.clone())?
            }
            Normalization::Featurewise { mean, std } => {
                if mean.len() != c || std.len() != c || std.iter().any(|s| s.is_nan() || *s < 0.0) {
                    return Err(Error::Config(format!(
                        "featurewise normalisation needs {c} means and {c} stds ≥ 0, got {mean:?} and {std:?}"
                    )));
                }
                per_channel(mean, std.iter().map(|s| s + KERAS_STD_EPSILON).collect())?
            }
        };
        Ok(DeviceData { images, labels, normalization, shift })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the data lives on.
    pub fn device(&self) -> &Device {
        self.images.device()
    }

    /// The normalisation applied to every batch.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// All labels as a u32 tensor `[N]`.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// The samples at `indices`: images `[B, C, H, W]` f32 normalised, labels `[B]` u32.
    pub fn batch(&self, indices: &[u32]) -> Result<(Tensor, Tensor)> {
        let ids = Tensor::from_slice(indices, indices.len(), self.images.device())?;
        let x = self.images.index_select(&ids, 0)?;
        let y = self.labels.index_select(&ids, 0)?;
        Ok((self.normalize(&x)?, y))
    }

    /// Samples `start..start+len` in stored order (for evaluation).
    pub fn range(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let x = self.images.narrow(0, start, len)?;
        let y = self.labels.narrow(0, start, len)?;
        Ok((self.normalize(&x)?, y))
    }

    /// Turn a u8 image tensor into the model's f32 input.
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(DType::F32)?.affine(1.0 / 255.0, 0.0)?;
        Ok(match &self.shift {
            None => x,
            Some((m, s)) => x.broadcast_sub(m)?.broadcast_div(s)?,
        })
    }

    /// Undo [`DeviceData::normalize`]: model inputs back to pixels scaled to [0, 1] (for showing
    /// augmented images).
    pub fn to_unit_range(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.shift {
            None => x.clone(),
            Some((m, s)) => x.broadcast_mul(s)?.broadcast_add(m)?,
        })
    }

    /// One epoch of shuffled mini-batches; the order depends only on `(seed, epoch)`.
    pub fn batches(&self, batch_size: usize, seed: u64, epoch: usize) -> Result<Batches<'_>> {
        if batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        let mix = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(mix));
        Ok(Batches { data: self, order, batch_size, next: 0 })
    }
}

/// An epoch's mini-batches: every sample exactly once, the last batch possibly smaller.
pub struct Batches<'a> {
    data: &'a DeviceData,
    order: Vec<u32>,
    batch_size: usize,
    next: usize,
}

impl Batches<'_> {
    /// Number of batches in the epoch (named so that `Iterator::count`, which would
    /// consume the batches, cannot shadow it).
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Change the batch size for the remaining batches (cyclical batch size).
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.batch_size = batch_size.max(1);
    }

    /// The sample indices of the epoch, in visiting order.
    pub fn order(&self) -> &[u32] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let ids = &self.order[self.next..end];
        self.next = end;
        Some(self.data.batch(ids))
    }
}
