//! Builders of small data files shared by the loader tests: IDX headers and bodies, gzip
//! streams, CIFAR-10 records, and PNG/JPEG files whose header declares any size.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;

/// One CIFAR record: label byte, then 3072 pixel bytes from `pixel(j)`.
pub fn cifar_record(label: u8, pixel: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(pixel));
    r
}

/// An IDX image file: magic 0x803, n, rows, cols (big-endian), then the pixels.
pub fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

/// An IDX label file: magic 0x801, n, then the labels.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

/// `bytes` as a gzip stream.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A gzip stream of `header` followed by `zeros` zero bytes, written in 1 MiB pieces so that
/// the test never holds the decompressed body (a "gzip bomb" when `zeros` is large).
pub fn gzip_with_zeros(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(header).unwrap();
    let piece = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(piece.len());
        enc.write_all(&piece[..n]).unwrap();
        left -= n;
    }
    enc.finish().unwrap()
}

/// A PNG chunk: length, type, data and the CRC-32 of type and data (PNG spec, section 5.3;
/// the CRC is the same ISO 3309 polynomial as gzip's, so flate2's `Crc` computes it).
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend((data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend(crc.sum().to_be_bytes());
}

/// A PNG whose header declares `width × height` 8-bit pixels of colour type `color`
/// (0 grey, 2 RGB, 6 RGBA), with `idat` as its only image-data chunk; the CRCs are right, so
/// only what the header declares (and the data) can be wrong.
pub fn png_declaring(width: u32, height: u32, color: u8, idat: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, color, 0, 0, 0]); // bit depth, colour type, deflate, filter 0, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", idat);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A valid `width × height` RGB JPEG (baseline, quality 90) of one flat colour.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([90, 120, 200]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).unwrap();
    bytes
}

/// A valid 8×8 JPEG whose start-of-frame header is rewritten to declare `width × height`
/// (JPEG has no checksum, so the decoder sees only the declared size change).
pub fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(8, 8);
    // SOF0: FF C0, length (2), precision (1), height (2), width (2).
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline JPEG has SOF0");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// `count` synthetic CIFAR-shaped batches of `batch` images: pixels in [-1, 1) from a 64-bit LCG
/// started at `seed`, labels `(i * label_step + label_offset) % 10` for image `i` of a batch.
pub fn synthetic_batches(
    count: usize,
    batch: usize,
    seed: u64,
    (label_step, label_offset): (u32, u32),
) -> Vec<(candle_core::Tensor, candle_core::Tensor)> {
    use candle_core::{Device, Tensor};
    let mut state = seed;
    (0..count)
        .map(|_| {
            let pixels: Vec<f32> = (0..batch * 3 * 32 * 32)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let labels: Vec<u32> = (0..batch as u32).map(|i| (i * label_step + label_offset) % 10).collect();
            (
                Tensor::from_vec(pixels, (batch, 3, 32, 32), &Device::Cpu).expect("pixels match the shape"),
                Tensor::from_vec(labels, batch, &Device::Cpu).expect("labels match the shape"),
            )
        })
        .collect()
}
