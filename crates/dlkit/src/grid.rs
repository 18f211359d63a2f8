//! Image grids: sample images (from a dataset or a batch tensor) tiled into one picture,
//! shown inline in evcxr as a PNG and savable to a file.

use crate::augment::Augment;
use crate::data::{Dataset, DeviceData};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use image::{imageops, RgbImage};

/// A picture made of equally sized tiles, each optionally captioned in the notebook text.
#[derive(Debug, Clone)]
pub struct ImageGrid {
    image: RgbImage,
}

impl ImageGrid {
    /// Tile the dataset images at `indices`, `columns` per row, each enlarged `scale` times.
    pub fn from_dataset(data: &Dataset, indices: &[usize], columns: usize, scale: u32) -> Result<Self> {
        if let Some(bad) = indices.iter().find(|&&i| i >= data.len()) {
            return Err(Error::Config(format!("image {bad} is out of range for {} images", data.len())));
        }
        let tiles: Vec<Vec<u8>> = indices.iter().map(|&i| data.image(i).to_vec()).collect();
        Self::from_chw(&tiles, (data.channels, data.height, data.width), columns, scale)
    }

    /// Tile a batch `[N, C, H, W]` whose values are pixels scaled to [0, 1] (values outside are
    /// clipped), `columns` per row, each enlarged `scale` times.
    pub fn from_tensor(images: &Tensor, columns: usize, scale: u32) -> Result<Self> {
        let (n, c, h, w) = images.dims4()?;
        let bytes = images
            .to_dtype(DType::F32)?
            .clamp(0f32, 1f32)?
            .affine(255.0, 0.5)?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let tiles: Vec<Vec<u8>> = bytes.chunks_exact(c * h * w).map(|t| t.to_vec()).take(n).collect();
        Self::from_chw(&tiles, (c, h, w), columns, scale)
    }

    /// The first `n` images of `data` in the top row and, below it, one row per augmentation
    /// applied to them (seeded by `seed`), each tile enlarged `scale` times.
    pub fn augmented(data: &DeviceData, n: usize, augmentations: &[&dyn Augment], seed: u64, scale: u32) -> Result<Self> {
        use rand::SeedableRng;
        let n = n.min(data.len());
        let (x, y) = data.range(0, n)?;
        let mut rows = vec![data.to_unit_range(&x)?];
        for (k, augmentation) in augmentations.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(k as u64));
            let (augmented, _) = augmentation.apply(&x, &y, &mut rng)?;
            rows.push(data.to_unit_range(&augmented.narrow(0, 0, n)?)?);
        }
        Self::from_tensor(&Tensor::cat(&rows, 0)?, n, scale)
    }

    fn from_chw(tiles: &[Vec<u8>], (c, h, w): (usize, usize, usize), columns: usize, scale: u32) -> Result<Self> {
        if tiles.is_empty() || columns == 0 || scale == 0 || !(c == 1 || c == 3) {
            return Err(Error::Config(format!(
                "an image grid needs images with 1 or 3 channels, columns ≥ 1 and scale ≥ 1 (got {} images, {c} channels)",
                tiles.len()
            )));
        }
        let (tw, th) = (w as u32 * scale, h as u32 * scale);
        let rows = tiles.len().div_ceil(columns) as u32;
        let gap = 2;
        let cols = columns.min(tiles.len()) as u32;
        let mut canvas = RgbImage::from_pixel(cols * (tw + gap) + gap, rows * (th + gap) + gap, image::Rgb([255, 255, 255]));
        for (k, chw) in tiles.iter().enumerate() {
            let tile = RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let at = |ch: usize| chw[ch * h * w + y as usize * w + x as usize];
                if c == 1 {
                    image::Rgb([at(0); 3])
                } else {
                    image::Rgb([at(0), at(1), at(2)])
                }
            });
            let tile = imageops::resize(&tile, tw, th, imageops::FilterType::Nearest);
            let (col, row) = ((k % columns) as u32, (k / columns) as u32);
            imageops::replace(&mut canvas, &tile, (gap + col * (tw + gap)) as i64, (gap + row * (th + gap)) as i64);
        }
        Ok(ImageGrid { image: canvas })
    }

    /// Width and height of the picture in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    /// The picture encoded as PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.image
            .write_to(&mut out, image::ImageOutputFormat::Png)
            .map_err(|e| Error::Plot(format!("PNG encoding failed: {e}")))?;
        Ok(out.into_inner())
    }

    /// Write the picture as a PNG file, atomically.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let png = self.to_png()?;
        crate::io::write_bytes_atomically(path.as_ref(), &png)
    }

    /// Show the picture inline in evcxr.
    pub fn evcxr_display(&self) {
        match self.to_png() {
            Ok(png) => println!("EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT", base64(&png)),
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// Standard base64 (RFC 4648, with padding), as Jupyter expects for binary display data.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_examples() {
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn tiles_land_in_rows_and_columns_with_gaps() {
        // three 1-channel 2×2 images of values 10, 20, 30, two per row, scale 2, gap 2
        let images: Vec<u8> = [10u8, 20, 30].iter().flat_map(|v| [*v; 4]).collect();
        let ds = Dataset::new(images, vec![0, 0, 0], (1, 2, 2), vec!["a".into()]).unwrap();
        let g = ImageGrid::from_dataset(&ds, &[0, 1, 2], 2, 2).unwrap();
        // width 2 + 2·(4 + 2) = 14, height 2 + 2·(4 + 2) = 14
        assert_eq!(g.size(), (14, 14));
        assert_eq!(g.image.get_pixel(2, 2).0, [10, 10, 10]);
        assert_eq!(g.image.get_pixel(8, 5).0, [20, 20, 20]);
        assert_eq!(g.image.get_pixel(2, 8).0, [30, 30, 30]);
        assert_eq!(g.image.get_pixel(8, 8).0, [255, 255, 255], "the empty fourth cell stays white");
        assert!(ImageGrid::from_dataset(&ds, &[3], 2, 2).is_err());
        assert!(g.to_png().unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn tensors_in_unit_range_become_bytes() {
        let t = Tensor::new(&[[[[0f32, 1.0], [0.5, 2.0]]]], &candle_core::Device::Cpu).unwrap();
        let g = ImageGrid::from_tensor(&t, 1, 1).unwrap();
        assert_eq!(g.image.get_pixel(2, 2).0, [0, 0, 0]);
        assert_eq!(g.image.get_pixel(3, 2).0, [255; 3]);
        assert_eq!(g.image.get_pixel(2, 3).0, [128; 3]);
        assert_eq!(g.image.get_pixel(3, 3).0, [255; 3], "values above 1 are clipped");
    }
}
