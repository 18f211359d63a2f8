//! A `candle_datasets::vision::Dataset` (candle's own loaders, e.g. its Hugging Face hub
//! MNIST / Fashion-MNIST / CIFAR-10 downloads) turned into dlkit's [`TrainTest`].
//!
//! Behind the `candle-datasets` cargo feature: that crate always pulls `hf-hub` (with an
//! HTTP client and an async runtime), `parquet` and `tokenizers`, which the notebook kernel
//! would otherwise compile for nothing; dlkit's own loaders read the files directly.
//!
//! candle's loaders hold images as f32 tensors scaled to `[0, 1]` (pixel / 255), either
//! `N × C × H × W` (CIFAR-10) or flattened to `N × (H·W)` (MNIST-like), and labels as a `u8`
//! vector; [`to_train_test`] turns them back into bytes (`round(v · 255)`), in dlkit's NCHW
//! order. `u8` image tensors are taken as they are.
//!
//! candle-datasets 0.11's hub CIFAR-10 loader (`vision::cifar::load`) permutes image-rs's
//! `(H, W, C)` buffers with `(0, 3, 2, 1)`, so its images come out with height and width
//! swapped (each picture mirrored about its diagonal; `cifar::load_dir`, which reads the binary
//! release, is not affected). [`transpose_images`] swaps them back.

use super::{Dataset, TrainTest};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

pub use ::candle_datasets::vision;

/// Images converted per block, so that a float dataset is never copied whole.
const BLOCK: usize = 1024;

/// The training and test sets of `dataset`, with `classes` naming the labels in order
/// (`None`: `"0"`, `"1"`, … up to `dataset.labels`). Flattened images (`N × D`) must be square
/// single-channel pictures (`D = s²`); use [`to_train_test_shaped`] otherwise.
pub fn to_train_test(dataset: &vision::Dataset, classes: Option<&[&str]>) -> Result<TrainTest> {
    convert(dataset, classes, None)
}

/// As [`to_train_test`], with each image's `(channels, height, width)` given; needed when the
/// images are flattened (`N × D`, `D = channels·height·width`) and not square grey pictures.
pub fn to_train_test_shaped(
    dataset: &vision::Dataset,
    classes: Option<&[&str]>,
    shape: (usize, usize, usize),
) -> Result<TrainTest> {
    convert(dataset, classes, Some(shape))
}

/// The same images with height and width swapped (pixel `(y, x)` moves to `(x, y)`).
pub fn transpose_images(data: &Dataset) -> Dataset {
    let (c, h, w) = (data.channels, data.height, data.width);
    let mut images = vec![0u8; data.images.len()];
    for (src, dst) in data.images.chunks_exact(c * h * w).zip(images.chunks_exact_mut(c * h * w)) {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    dst[ch * h * w + x * h + y] = src[ch * h * w + y * w + x];
                }
            }
        }
    }
    Dataset { images, labels: data.labels.clone(), channels: c, height: w, width: h, classes: data.classes.clone() }
}

fn convert(dataset: &vision::Dataset, classes: Option<&[&str]>, shape: Option<(usize, usize, usize)>) -> Result<TrainTest> {
    let classes = class_names(dataset.labels, classes)?;
    let train = split("train", &dataset.train_images, &dataset.train_labels, &classes, shape)?;
    let test = split("test", &dataset.test_images, &dataset.test_labels, &classes, shape)?;
    Ok(TrainTest { train, test })
}

/// The caller's class names, checked against the dataset's count, or `"0"`…`"n-1"`.
fn class_names(count: usize, given: Option<&[&str]>) -> Result<Vec<String>> {
    if count == 0 || count > 256 {
        return Err(Error::Config(format!(
            "the candle dataset has {count} classes; dlkit stores labels as bytes, so 1 to 256 are accepted"
        )));
    }
    match given {
        Some(names) if names.len() != count => Err(Error::Config(format!(
            "{} class names were given but the candle dataset has {count} classes (its `labels` field)",
            names.len()
        ))),
        Some(names) => Ok(names.iter().map(|s| s.to_string()).collect()),
        None => Ok((0..count).map(|i| i.to_string()).collect()),
    }
}

/// One split (`which` is "train" or "test", for messages).
fn split(
    which: &str,
    images: &Tensor,
    labels: &Tensor,
    classes: &[String],
    shape: Option<(usize, usize, usize)>,
) -> Result<Dataset> {
    let n = images.dims().first().copied().unwrap_or(0);
    let (c, h, w) = image_shape(which, images.dims(), shape)?;
    let labels = label_bytes(which, labels, n, classes.len())?;
    let pixels = pixel_bytes(which, images, n)?;
    Dataset::new(pixels, labels, (c, h, w), classes.to_vec())
}

/// `(channels, height, width)` of one image from the tensor's dimensions.
fn image_shape(which: &str, dims: &[usize], given: Option<(usize, usize, usize)>) -> Result<(usize, usize, usize)> {
    let shape = match (dims, given) {
        (&[_, d], Some((c, h, w))) if c * h * w == d => (c, h, w),
        (&[_, c, h, w], Some(s)) if s == (c, h, w) => s,
        (&[_, h, w], Some(s)) if s == (1, h, w) => s,
        (_, Some((c, h, w))) => {
            return Err(Error::Config(format!(
                "{which}_images has shape {dims:?}, which does not hold images of {c}x{h}x{w}"
            )))
        }
        (&[_, d], None) => {
            let side = (d as f64).sqrt().round() as usize;
            if side * side != d || d == 0 {
                return Err(Error::Config(format!(
                    "{which}_images has shape {dims:?}: {d} values per image is not a square picture; \
                     give the (channels, height, width) with to_train_test_shaped"
                )));
            }
            (1, side, side)
        }
        (&[_, h, w], None) => (1, h, w),
        (&[_, c, h, w], None) => (c, h, w),
        _ => {
            return Err(Error::Config(format!(
                "{which}_images has shape {dims:?}; expected N x C x H x W, N x H x W or N x (H*W)"
            )))
        }
    };
    if shape.0 != 1 && shape.0 != 3 {
        return Err(Error::Config(format!(
            "{which}_images has {} channels (shape {dims:?}); dlkit's models take 1 or 3 (images must be N x C x H x W)",
            shape.0
        )));
    }
    Ok(shape)
}

/// The labels as bytes, checked: one per image, each below the class count.
fn label_bytes(which: &str, labels: &Tensor, n: usize, classes: usize) -> Result<Vec<u8>> {
    if labels.dims() != [n] {
        return Err(Error::Config(format!(
            "{which}_labels has shape {:?}; expected one label per image ([{n}])",
            labels.dims()
        )));
    }
    let values: Vec<i64> = match labels.dtype() {
        DType::U8 | DType::U32 | DType::I64 => labels.to_dtype(DType::I64)?.to_vec1()?,
        other => {
            return Err(Error::Config(format!(
                "{which}_labels has dtype {other:?}; expected an integer type (u8, u32 or i64)"
            )))
        }
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            u8::try_from(l).ok().filter(|&b| (b as usize) < classes).ok_or_else(|| {
                Error::Config(format!("{which}_labels[{i}] is {l}, outside 0..{classes} (the dataset's `labels` field)"))
            })
        })
        .collect()
}

/// The pixels as bytes in NCHW order: u8 tensors as they are, float tensors in `[0, 1]` as
/// `round(v · 255)`.
fn pixel_bytes(which: &str, images: &Tensor, n: usize) -> Result<Vec<u8>> {
    let images = images.contiguous()?;
    match images.dtype() {
        DType::U8 => Ok(images.flatten_all()?.to_vec1::<u8>()?),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => {
            let per_image = images.elem_count() / n.max(1);
            let mut bytes = Vec::with_capacity(images.elem_count());
            for start in (0..n).step_by(BLOCK) {
                let len = BLOCK.min(n - start);
                let block = images.narrow(0, start, len)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                for (k, &v) in block.iter().enumerate() {
                    let scaled = v * 255.0;
                    if !(-0.5..255.5).contains(&scaled) {
                        return Err(Error::Config(format!(
                            "{which}_images holds {v} (image {}); expected pixel values scaled to [0, 1], as \
                             candle-datasets' loaders give them (undo any normalisation first)",
                            start + k / per_image.max(1)
                        )));
                    }
                    bytes.push(scaled.round() as u8);
                }
            }
            Ok(bytes)
        }
        other => Err(Error::Config(format!(
            "{which}_images has dtype {other:?}; expected u8 pixels or floats in [0, 1]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A dataset the way candle's loaders make one: u8 bytes → f32 / 255.
    fn scaled(bytes: Vec<u8>, shape: &[usize]) -> Tensor {
        let t = Tensor::from_vec(bytes, shape, &Device::Cpu).unwrap();
        (t.to_dtype(DType::F32).unwrap() / 255.0).unwrap()
    }

    fn labels(v: Vec<u8>) -> Tensor {
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu).unwrap()
    }

    #[test]
    fn nchw_float_images_come_back_as_the_same_bytes() {
        // Two 3 × 2 × 2 images with every byte distinct, including 0, 1, 254 and 255, the
        // values where rounding v·255 back would go wrong first.
        let train: Vec<u8> = vec![0, 1, 2, 3, 10, 11, 12, 13, 127, 128, 129, 130, 250, 251, 254, 255, 20, 21, 22, 23, 30, 31, 32, 33];
        let test: Vec<u8> = vec![255, 0, 1, 254, 5, 6, 7, 8, 9, 10, 11, 12];
        let ds = vision::Dataset {
            train_images: scaled(train.clone(), &[2, 3, 2, 2]),
            train_labels: labels(vec![1, 0]),
            test_images: scaled(test.clone(), &[1, 3, 2, 2]),
            test_labels: labels(vec![1]),
            labels: 2,
        };
        let tt = to_train_test(&ds, Some(&["cat", "dog"])).unwrap();
        assert_eq!(tt.train.images, train);
        assert_eq!((tt.train.channels, tt.train.height, tt.train.width), (3, 2, 2));
        assert_eq!(tt.train.labels, vec![1, 0]);
        assert_eq!(tt.train.classes, vec!["cat", "dog"]);
        assert_eq!(tt.test.images, test);
        assert_eq!(tt.test.labels, vec![1]);
        // Image 1 = bytes 12..24; its channel 1, row 0, column 1 is offset 1·4 + 0·2 + 1 = 5: 21.
        assert_eq!(tt.train.image(1)[5], 21);
    }

    #[test]
    fn flat_images_become_square_grey_pictures_and_classes_default_to_numbers() {
        let ds = vision::Dataset {
            train_images: scaled(vec![1, 2, 3, 4, 5, 6, 7, 8, 9], &[1, 9]),
            train_labels: labels(vec![2]),
            test_images: scaled(vec![9, 8, 7, 6, 5, 4, 3, 2, 1], &[1, 9]),
            test_labels: labels(vec![0]),
            labels: 3,
        };
        let tt = to_train_test(&ds, None).unwrap();
        assert_eq!((tt.train.channels, tt.train.height, tt.train.width), (1, 3, 3));
        assert_eq!(tt.train.classes, vec!["0", "1", "2"]);
        assert_eq!(tt.test.images, vec![9, 8, 7, 6, 5, 4, 3, 2, 1]);

        // 6 values per image are no square: the error says so and names the way out.
        let flat6 = vision::Dataset {
            train_images: scaled(vec![0; 6], &[1, 6]),
            train_labels: labels(vec![0]),
            test_images: scaled(vec![0; 6], &[1, 6]),
            test_labels: labels(vec![0]),
            labels: 1,
        };
        let err = to_train_test(&flat6, None).unwrap_err().to_string();
        assert!(err.contains("train_images") && err.contains("to_train_test_shaped"), "{err}");
        let tt = to_train_test_shaped(&flat6, None, (1, 2, 3)).unwrap();
        assert_eq!((tt.test.height, tt.test.width), (2, 3));
    }

    #[test]
    fn u8_images_and_i64_labels_are_taken_as_they_are() {
        let ds = vision::Dataset {
            train_images: Tensor::from_vec(vec![7u8, 8, 9, 10], (1, 1, 2, 2), &Device::Cpu).unwrap(),
            train_labels: Tensor::from_vec(vec![1i64], 1, &Device::Cpu).unwrap(),
            test_images: Tensor::from_vec(vec![1u8, 2, 3, 4], (1, 2, 2), &Device::Cpu).unwrap(),
            test_labels: Tensor::from_vec(vec![0u32], 1, &Device::Cpu).unwrap(),
            labels: 2,
        };
        let tt = to_train_test(&ds, None).unwrap();
        assert_eq!(tt.train.images, vec![7, 8, 9, 10]);
        assert_eq!(tt.train.labels, vec![1]);
        assert_eq!((tt.test.channels, tt.test.height, tt.test.width), (1, 2, 2));
    }

    #[test]
    fn bad_inputs_are_refused_naming_the_field() {
        let good = || vision::Dataset {
            train_images: scaled(vec![0, 255, 0, 255], &[1, 1, 2, 2]),
            train_labels: labels(vec![1]),
            test_images: scaled(vec![0, 255, 0, 255], &[1, 1, 2, 2]),
            test_labels: labels(vec![0]),
            labels: 2,
        };
        let err = |ds: vision::Dataset, classes: Option<&[&str]>| to_train_test(&ds, classes).unwrap_err().to_string();

        let e = err(good(), Some(&["a", "b", "c"]));
        assert!(e.contains("3 class names") && e.contains("2 classes"), "{e}");

        let e = err(vision::Dataset { test_labels: labels(vec![2]), ..good() }, None);
        assert!(e.contains("test_labels[0] is 2") && e.contains("0..2"), "{e}");

        let e = err(vision::Dataset { train_labels: labels(vec![0, 1]), ..good() }, None);
        assert!(e.contains("train_labels has shape [2]") && e.contains("[1]"), "{e}");

        // Normalised images (mean 0.5, std 0.25 here) are not pixels in [0, 1].
        let normalised = ((scaled(vec![0, 255, 0, 255], &[1, 1, 2, 2]) - 0.5).unwrap() / 0.25).unwrap();
        let e = err(vision::Dataset { train_images: normalised, ..good() }, None);
        assert!(e.contains("train_images holds -2") && e.contains("[0, 1]"), "{e}");

        let two_channels = scaled(vec![0; 8], &[1, 2, 2, 2]);
        let e = err(vision::Dataset { test_images: two_channels, ..good() }, None);
        assert!(e.contains("test_images has 2 channels"), "{e}");

        let e = err(vision::Dataset { labels: 300, ..good() }, None);
        assert!(e.contains("300 classes") && e.contains("1 to 256"), "{e}");
    }

    #[test]
    fn transposing_swaps_rows_and_columns_of_every_channel() {
        // One 2-channel 2 × 3 image: [[1, 2, 3], [4, 5, 6]] and [[7, 8, 9], [10, 11, 12]];
        // transposed by hand: [[1, 4], [2, 5], [3, 6]] and [[7, 10], [8, 11], [9, 12]].
        let d = Dataset::new((1..=12).collect(), vec![0], (2, 2, 3), vec!["x".into()]).unwrap();
        let t = transpose_images(&d);
        assert_eq!((t.channels, t.height, t.width), (2, 3, 2));
        assert_eq!(t.images, vec![1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12]);
        assert_eq!(transpose_images(&t).images, d.images);
    }

    #[test]
    fn candles_own_idx_loader_agrees_with_dlkits() {
        // Write a tiny MNIST-style dataset (IDX, uncompressed), read it with candle-datasets'
        // `mnist::load_dir` (f32 / 255, images flattened to N × 784) and with dlkit's IDX
        // reader: after conversion both must hold the same bytes, shape and labels.
        fn idx_images(n: u32, bytes: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            for word in [0x0803u32, n, 28, 28] {
                v.extend_from_slice(&word.to_be_bytes());
            }
            v.extend_from_slice(bytes);
            v
        }
        fn idx_labels(labels: &[u8]) -> Vec<u8> {
            let mut v = Vec::new();
            for word in [0x0801u32, labels.len() as u32] {
                v.extend_from_slice(&word.to_be_bytes());
            }
            v.extend_from_slice(labels);
            v
        }
        let dir = tempfile::tempdir().unwrap();
        let train: Vec<u8> = (0..3 * 784).map(|i| (i * 7 % 256) as u8).collect();
        let test: Vec<u8> = (0..2 * 784).map(|i| (i * 13 % 256) as u8).collect();
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("train-images-idx3-ubyte", idx_images(3, &train));
        write("train-labels-idx1-ubyte", idx_labels(&[3, 9, 0]));
        write("t10k-images-idx3-ubyte", idx_images(2, &test));
        write("t10k-labels-idx1-ubyte", idx_labels(&[5, 1]));

        let candle = vision::mnist::load_dir(dir.path()).unwrap();
        assert_eq!(candle.train_images.dims(), [3, 784]);
        let ours = to_train_test(&candle, Some(&crate::data::FASHION_MNIST_CLASSES)).unwrap();
        let reference = crate::data::idx::load(dir.path(), &crate::data::FASHION_MNIST_CLASSES).unwrap();
        for (a, b) in [(&ours.train, &reference.train), (&ours.test, &reference.test)] {
            assert_eq!(a.images, b.images);
            assert_eq!(a.labels, b.labels);
            assert_eq!((a.channels, a.height, a.width), (b.channels, b.height, b.width));
            assert_eq!(a.classes, b.classes);
        }
        assert_eq!(ours.train.images, train);
    }
}
