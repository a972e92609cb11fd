//! The 60k-image data set of `rote bench frames`: Fashion-MNIST's 60,000 training images when a
//! copy is on disk, otherwise 60,000 images made deterministically from the bundled 20,000.

use std::path::{Path, PathBuf};

use rand::{Rng as _, SeedableRng as _};

use crate::data::{load_bundled, write_idx};
use crate::error::{CoreError, CoreResult};

/// Environment variable naming a folder with Fashion-MNIST's standard IDX files
/// (`train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]`).
pub const FASHION_MNIST_ENV: &str = "ROTE_FASHION_MNIST";

/// Seed of the generated variants.
const SEED: u64 = 60_000;

/// Largest shift of a generated variant, in pixels, each way.
const MAX_SHIFT: i64 = 3;

/// The data set the benchmark opens.
#[derive(Clone, Debug)]
pub struct BenchData {
    /// The IDX images file (its labels file lies beside it).
    pub images: PathBuf,
    /// Where the images came from, in words.
    pub source: String,
    /// Whether it was generated (written into the benchmark's temporary folder).
    pub generated: bool,
}

/// Fashion-MNIST's training images on disk: in `$ROTE_FASHION_MNIST`, or in the folders where
/// Keras and torchvision keep their downloads.
pub fn find_fashion_mnist() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os(FASHION_MNIST_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".keras/datasets/fashion-mnist"));
    }
    dirs.push(PathBuf::from("data/FashionMNIST/raw"));
    dirs.push(PathBuf::from("data/fashion-mnist"));
    for d in dirs {
        for name in ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"] {
            let images = d.join(name);
            let labels = d.join(name.replace("images-idx3", "labels-idx1"));
            if images.is_file() && labels.is_file() {
                return Some(images);
            }
        }
    }
    None
}

/// `n` 28x28 grey images with labels: the bundled Fashion-MNIST (10,000 train then 10,000 test)
/// first, then seeded variants of random bundled images (shifted by up to 3 pixels each way,
/// half of them mirrored left-right) with their source's label. Identical on every run.
pub fn generate(n: usize) -> CoreResult<(Vec<u8>, Vec<u16>)> {
    let base = load_bundled("fashion-mnist")?;
    let (h, w) = (base.h, base.w);
    let len = base.image_len();
    if base.c != 1 || base.n == 0 {
        return Err(CoreError::Invalid(
            "bundled fashion-mnist is not a grey image set".into(),
        ));
    }
    let mut pixels = Vec::with_capacity(n * len);
    let mut labels = Vec::with_capacity(n);
    let direct = n.min(base.n);
    pixels.extend_from_slice(&base.pixels[..direct * len]);
    labels.extend_from_slice(&base.labels[..direct]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    for _ in direct..n {
        let src = rng.random_range(0..base.n);
        let dx = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
        let dy = rng.random_range(-MAX_SHIFT..=MAX_SHIFT);
        // A variant never equals its source: no shift means a mirror.
        let flip = rng.random_bool(0.5) || (dx == 0 && dy == 0);
        let img = &base.pixels[src * len..(src + 1) * len];
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let (sy, sx) = (y - dy, x - dx);
                let v = if (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx) {
                    let sx = if flip { w as i64 - 1 - sx } else { sx };
                    img[(sy * w as i64 + sx) as usize]
                } else {
                    0
                };
                pixels.push(v);
            }
        }
        labels.push(base.labels[src]);
    }
    Ok((pixels, labels))
}

/// The benchmark's data set: Fashion-MNIST from disk when found (all of its training images),
/// otherwise `n` generated images written as gzip'd IDX files into `dir`.
pub fn prepare(n: usize, dir: &Path) -> CoreResult<BenchData> {
    if let Some(images) = find_fashion_mnist() {
        return Ok(BenchData {
            source: format!("Fashion-MNIST training images from {}", images.display()),
            images,
            generated: false,
        });
    }
    write_generated(n, dir)
}

/// Writes [`generate`]'s `n` images into `dir` as `fashion60k-{images,labels}-idx*-ubyte.gz`.
pub fn write_generated(n: usize, dir: &Path) -> CoreResult<BenchData> {
    let (pixels, labels) = generate(n)?;
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let images = dir.join("fashion60k-images-idx3-ubyte.gz");
    write_idx(&images, &[n as u32, 28, 28], &pixels, true)?;
    let label_bytes: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
    write_idx(
        &dir.join("fashion60k-labels-idx1-ubyte.gz"),
        &[n as u32],
        &label_bytes,
        true,
    )?;
    Ok(BenchData {
        source: format!(
            "generated: {n} images from the bundled Fashion-MNIST (20,000 + seeded shifted/mirrored \
             variants; no copy found in ${FASHION_MNIST_ENV})"
        ),
        images,
        generated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_60k_is_deterministic_with_bundled_labels() {
        let (pixels, labels) = generate(60_000).unwrap();
        assert_eq!(labels.len(), 60_000);
        assert_eq!(pixels.len(), 60_000 * 28 * 28);
        assert!(labels.iter().all(|&l| l < 10));
        let base = load_bundled("fashion-mnist").unwrap();
        assert_eq!(&pixels[..20_000 * 784], &base.pixels[..]);
        // Every class keeps a fair share.
        let mut counts = [0usize; 10];
        for &l in &labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 5_000), "{counts:?}");
        // No variant is a copy of an image (variants differ from their source).
        assert_ne!(&pixels[20_000 * 784..20_001 * 784], &pixels[..784]);
        let ds = crate::data::Dataset::new(
            "fashion60k",
            "test",
            [60_000, 1, 28, 28],
            pixels,
            labels,
            vec![],
            255,
            None,
        )
        .unwrap();
        // The content hash (shape, pixels, labels) is pinned: the set is the same on every run and
        // machine.
        assert_eq!(ds.hash, "3dc918587ef06b85");
        let (again, again_labels) = generate(60_000).unwrap();
        assert_eq!(again[..], ds.pixels[..]);
        assert_eq!(again_labels[..], ds.labels[..]);
    }

    #[test]
    fn written_set_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        // A small n keeps the test quick; the files are the same for any n.
        let (pixels, labels) = generate(20_050).unwrap();
        let written = write_generated(20_050, dir.path()).unwrap();
        assert!(written.generated);
        let ds = crate::data::load(&written.images.display().to_string()).unwrap();
        assert_eq!(ds.n, 20_050);
        assert_eq!(ds.name, "fashion60k");
        assert_eq!(&ds.pixels[..], &pixels[..]);
        assert_eq!(&ds.labels[..], &labels[..]);
    }
}
