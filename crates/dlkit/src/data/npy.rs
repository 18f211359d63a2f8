//! Datasets written as NumPy `.npy` files, so Keras or PyTorch can train on exactly the images a
//! dlkit run used (`dlkit export`; `bench/keras_training_parity.py` reads them).
//!
//! Images are written channels-last (`N × H × W × C`, Keras's default layout) as `uint8`,
//! labels as a `uint8` vector, in the format's version 1.0: the magic `\x93NUMPY`, the version,
//! a little-endian `u16` header length, a Python-literal header padded with spaces to a
//! multiple of 64 bytes and ending in a newline, then the raw bytes in C order.

use super::Dataset;
use crate::error::Result;
use std::path::Path;

/// The `.npy` bytes of a C-ordered `uint8` array of `shape`.
pub fn npy_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The images of `dataset` reordered from `C × H × W` to `H × W × C`, image after image.
pub fn channels_last(dataset: &Dataset) -> Vec<u8> {
    let (c, plane) = (dataset.channels, dataset.height * dataset.width);
    let mut out = Vec::with_capacity(dataset.images.len());
    for image in dataset.images.chunks_exact(dataset.image_size()) {
        for p in 0..plane {
            out.extend((0..c).map(|ch| image[ch * plane + p]));
        }
    }
    out
}

/// Write `<folder>/<name>_images.npy` (N × H × W × C) and `<folder>/<name>_labels.npy` (N),
/// each atomically.
pub fn save_dataset(dataset: &Dataset, folder: &Path, name: &str) -> Result<()> {
    let shape = [dataset.len(), dataset.height, dataset.width, dataset.channels];
    let images = npy_u8(&shape, &channels_last(dataset));
    crate::io::write_bytes_atomically(&folder.join(format!("{name}_images.npy")), &images)?;
    let labels = npy_u8(&[dataset.len()], &dataset.labels);
    crate::io::write_bytes_atomically(&folder.join(format!("{name}_labels.npy")), &labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_bytes_and_names_the_shape() {
        let bytes = npy_u8(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&bytes[10 + header_len..], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn one_dimensional_shape_is_a_one_tuple() {
        let bytes = npy_u8(&[3], &[7, 8, 9]);
        let header = String::from_utf8_lossy(&bytes[10..]);
        assert!(header.contains("'shape': (3,)"), "{header}");
    }

    #[test]
    fn channels_last_moves_each_pixel_to_its_hwc_position() {
        // One 2×1×2 image (C = 2, H = 1, W = 2): channel 0 = [10, 11], channel 1 = [20, 21].
        let d = Dataset::new(vec![10, 11, 20, 21], vec![0], (2, 1, 2), vec!["a".into()]).unwrap();
        assert_eq!(channels_last(&d), vec![10, 20, 11, 21]);
    }
}
