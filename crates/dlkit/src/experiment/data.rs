//! The data of an experiment, described as data ([`DataSpec`]: which dataset, how much of it,
//! which split, which normalisation) and prepared on a device ([`Prepared`]).

use crate::data::{self, Dataset, DeviceData, Normalization, TrainTest};
use crate::error::{Error, Result};
use candle_core::Device;

/// The datasets of the coursework.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DatasetName {
    /// CIFAR-10 (32×32×3, 10 classes), from `$DLKIT_DATA`.
    Cifar10,
    /// Fashion-MNIST resized 28→32 (32×32×1, 10 classes).
    FashionMnist,
}

impl DatasetName {
    /// Parse `cifar10` or `fashion-mnist`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "cifar10" | "cifar-10" => Ok(DatasetName::Cifar10),
            "fashion-mnist" | "fashionmnist" | "fmnist" => Ok(DatasetName::FashionMnist),
            other => Err(Error::Config(format!("unknown dataset `{other}`: use cifar10 or fashion-mnist"))),
        }
    }

    /// Channels of its images as the models receive them (3 or 1).
    pub fn channels(self) -> usize {
        match self {
            DatasetName::Cifar10 => 3,
            DatasetName::FashionMnist => 1,
        }
    }

    /// Where it is read from (for messages).
    pub fn source(self) -> String {
        let root = data::data_root();
        match self {
            DatasetName::Cifar10 if root.join("cifar-10-batches-bin").is_dir() => {
                root.join("cifar-10-batches-bin").display().to_string()
            }
            DatasetName::Cifar10 => root.join("cifar10-jpg").display().to_string(),
            DatasetName::FashionMnist => "Fashion-MNIST (IDX files)".into(),
        }
    }

    /// Load it (optionally only the first `per_class` images of each class for quick runs).
    pub fn load(self, per_class_train: Option<usize>, per_class_test: Option<usize>) -> Result<TrainTest> {
        match self {
            DatasetName::Cifar10 => data::cifar10_limited(per_class_train, per_class_test),
            DatasetName::FashionMnist => {
                let full = data::fashion_mnist()?;
                let cut = |d: &Dataset, k: Option<usize>| match k {
                    Some(k) => data::first_per_class(d, Some(k)),
                    None => d.clone(),
                };
                let train = cut(&full.train, per_class_train).resize(32, 32);
                let test = cut(&full.test, per_class_test).resize(32, 32);
                Ok(TrainTest { train, test })
            }
        }
    }
}

/// How the validation images are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// A seeded random hold-out of `validation` training images, not trained on.
    #[default]
    HoldOut,
    /// Validation = the last `validation` of the training images, which are **also trained on**
    /// (the section-06 report's split: it makes validation accuracy overstate test accuracy).
    Overlapping,
    /// Validation = the test set, every training image trained on (the section-05 report's
    /// `validation_data=(x_test, y_test)`): choosing the epoch by validation then chooses it on
    /// the test images, so the best "validation" accuracy is an optimistic test figure.
    /// `validation` is ignored.
    TestSet,
}

/// How pixels are scaled for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Scaling {
    /// `x / 255` (the coursework's default).
    #[default]
    UnitRange,
    /// `x / 255`, then per-channel mean and standard deviation of the training images (Keras
    /// `featurewise_center` + `featurewise_std_normalization`).
    Featurewise,
}

/// An experiment's data as data: saved with every run record, so a changed subset retrains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataSpec {
    /// The dataset.
    pub dataset: DatasetName,
    /// Training images kept (a seeded random subset), before the validation split.
    pub train_limit: Option<usize>,
    /// Test images kept (a seeded random subset).
    pub test_limit: Option<usize>,
    /// Validation images (see `split`).
    pub validation: usize,
    /// How the validation images are chosen.
    #[serde(default)]
    pub split: Split,
    /// How pixels are scaled.
    #[serde(default)]
    pub scaling: Scaling,
    /// Seed of the subsets and of the hold-out.
    pub seed: u64,
}

impl DataSpec {
    /// `dataset` with at most `train_limit`/`test_limit` images, `validation` held out (seeded),
    /// pixels scaled to [0, 1].
    pub fn new(dataset: DatasetName, train_limit: Option<usize>, test_limit: Option<usize>, validation: usize, seed: u64) -> Self {
        DataSpec { dataset, train_limit, test_limit, validation, split: Split::HoldOut, scaling: Scaling::UnitRange, seed }
    }

    /// Check the sizes before any data is read, naming the field.
    pub fn check(&self) -> Result<()> {
        if self.train_limit == Some(0) || self.test_limit == Some(0) {
            return Err(Error::Config("train_limit and test_limit must be at least 1 (or None for all)".into()));
        }
        if self.validation == 0 && self.split != Split::TestSet {
            return Err(Error::Config("validation: at least 1 image is needed to validate on".into()));
        }
        if let Some(n) = self.train_limit.filter(|&n| self.split == Split::HoldOut && self.validation >= n) {
            return Err(Error::Config(format!(
                "validation ({}) must be smaller than train_limit ({n}): nothing would be left to train on",
                self.validation
            )));
        }
        Ok(())
    }

    /// Load, cut and split the data (pixels still bytes): the images every run of this spec
    /// trains, validates and tests on, in that order.
    pub fn splits(&self) -> Result<Splits> {
        self.check()?;
        let per_class = |n: Option<usize>| n.map(|n| n.div_ceil(10));
        let tt = self.dataset.load(per_class(self.train_limit), per_class(self.test_limit))?;
        let train = self.train_limit.map_or(tt.train.clone(), |n| tt.train.limit(n, self.seed));
        let test = self.test_limit.map_or(tt.test.clone(), |n| tt.test.limit(n, self.seed));
        let (train, validation) = match self.split {
            Split::HoldOut => train.split(self.validation, self.seed)?,
            Split::Overlapping => {
                let n = train.len();
                if self.validation > n {
                    return Err(Error::Config(format!("validation ({}) exceeds the {n} training images", self.validation)));
                }
                let last: Vec<usize> = (n - self.validation..n).collect();
                (train.clone(), train.subset(&last))
            }
            Split::TestSet => (train, test.clone()),
        };
        Ok(Splits { train, validation, test })
    }

    /// Load, cut, split and scale the data, and move it to `device`.
    pub fn prepare(&self, device: &Device) -> Result<Prepared> {
        let Splits { train, validation, test } = self.splits()?;
        let normalization = match self.scaling {
            Scaling::UnitRange => Normalization::UnitRange,
            Scaling::Featurewise => Normalization::fitted_to(&train),
        };
        Ok(Prepared {
            train: DeviceData::new(&train, device, normalization.clone())?,
            validation: DeviceData::new(&validation, device, normalization.clone())?,
            test: DeviceData::new(&test, device, normalization)?,
            classes: train.classes.clone(),
            image_shape: (train.channels, train.height, train.width),
            source: self.dataset.source(),
            spec: self.clone(),
        })
    }
}

/// The training, validation and test images of a [`DataSpec`], as bytes.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Images trained on.
    pub train: Dataset,
    /// Images validated on.
    pub validation: Dataset,
    /// Images tested on.
    pub test: Dataset,
}

/// Training, validation and test data on a device, ready for any number of experiments.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Training samples.
    pub train: DeviceData,
    /// Validation samples.
    pub validation: DeviceData,
    /// Test samples.
    pub test: DeviceData,
    /// Class names.
    pub classes: Vec<String>,
    /// (channels, height, width) of every image.
    pub image_shape: (usize, usize, usize),
    /// Where the images were read from (for messages).
    pub source: String,
    /// How this data was made.
    pub spec: DataSpec,
}

impl Prepared {
    /// Load `dataset`, keep at most `train_limit`/`test_limit` images, hold out `validation`
    /// training images (seeded), scale pixels to [0, 1] (the coursework's normalisation) and
    /// move everything to `device`.
    pub fn new(
        dataset: DatasetName,
        train_limit: Option<usize>,
        test_limit: Option<usize>,
        validation: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        DataSpec::new(dataset, train_limit, test_limit, validation, seed).prepare(device)
    }

    /// `"N training, M validation, K test images"`.
    pub fn describe(&self) -> String {
        let (train, val, test) = (self.train.len(), self.validation.len(), self.test.len());
        match self.spec.split {
            Split::HoldOut => format!("{train} training, {val} validation (held out), {test} test images"),
            Split::Overlapping => {
                format!("{train} training images, of which the last {val} are also the validation images; {test} test images")
            }
            Split::TestSet => format!("{train} training images; validation on the {test} test images"),
        }
    }
}
