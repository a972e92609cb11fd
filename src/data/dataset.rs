//! The [`Dataset`] type shared by every image set.

use std::sync::Arc;

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use sha2::Digest as _;

use crate::error::{CoreError, CoreResult};

/// Which side of the train/test split a sample is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Available for training.
    Train,
    /// Held out for evaluation.
    Test,
}

/// An image data set: `u8` pixels, N x C x H x W, with labels and a train/test split.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Short name (`mnist10k`, or the file stem of a user's file).
    pub name: String,
    /// Where it came from (a path or "bundled: ...").
    pub source: String,
    /// Number of images.
    pub n: usize,
    /// Channels (1 grey, 3 RGB).
    pub c: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// Pixels, N x C x H x W.
    pub pixels: Arc<[u8]>,
    /// Class index per image.
    pub labels: Arc<[u16]>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Which split each image is on.
    pub split: Arc<[Split]>,
    /// Pixel value that means full intensity (255 for most sets, 16 for the 8x8 digits).
    pub max_value: u8,
    /// Hex content hash over shape, pixels and labels (first 16 hex digits of SHA-256).
    pub hash: String,
    /// A table's encoded rows (N x width, standardised numerics and one-hot categoricals; see
    /// [`TabularData::encode`](super::tabular::TabularData::encode)): where present, the model
    /// inputs are these instead of the pixels (which are zeros), and the set is 1 x 1 x width.
    pub features: Option<Arc<[f32]>>,
}

impl Dataset {
    /// Builds a data set, checking sizes, and computes its content hash. The split defaults to a
    /// seeded 80/20 stratified split; use [`Dataset::with_split`] when the source defines one.
    #[expect(clippy::too_many_arguments, reason = "a plain constructor of a plain record")]
    pub fn new(
        name: impl Into<String>,
        source: impl Into<String>,
        shape: [usize; 4],
        pixels: Vec<u8>,
        labels: Vec<u16>,
        class_names: Vec<String>,
        max_value: u8,
        split: Option<Vec<Split>>,
    ) -> CoreResult<Self> {
        let [n, c, h, w] = shape;
        let source = source.into();
        let expected = n
            .checked_mul(c)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w))
            .ok_or_else(|| CoreError::Invalid(format!("{source}: image dimensions overflow")))?;
        if pixels.len() != expected {
            return Err(CoreError::Invalid(format!(
                "{source}: {} pixel bytes for {n} images of {c}x{h}x{w} (expected {expected})",
                pixels.len()
            )));
        }
        if labels.len() != n {
            return Err(CoreError::Invalid(format!(
                "{source}: {} labels for {n} images",
                labels.len()
            )));
        }
        if n == 0 {
            return Err(CoreError::Invalid(format!("{source}: the data set is empty")));
        }
        if !(c == 1 || c == 3) {
            return Err(CoreError::Invalid(format!(
                "{source}: {c} channels (only 1 or 3 are supported)"
            )));
        }
        let max_label = labels.iter().copied().max().unwrap_or(0) as usize;
        let mut class_names = class_names;
        if class_names.len() <= max_label {
            for k in class_names.len()..=max_label {
                class_names.push(k.to_string());
            }
        }
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!("{n}x{c}x{h}x{w};").as_bytes());
        hasher.update(&pixels);
        for l in &labels {
            hasher.update(l.to_le_bytes());
        }
        let digest = hasher.finalize();
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let split = match split {
            Some(s) => {
                if s.len() != n {
                    return Err(CoreError::Invalid(format!(
                        "{source}: split has {} entries for {n} images",
                        s.len()
                    )));
                }
                s
            }
            None => stratified_split(&labels, 0.2, 0),
        };
        Ok(Self {
            name: name.into(),
            source,
            n,
            c,
            h,
            w,
            pixels: pixels.into(),
            labels: labels.into(),
            class_names,
            split: split.into(),
            max_value,
            hash,
            features: None,
        })
    }

    /// A table as a data set: every row encoded (numerics standardised with the train split's
    /// mean and deviation, categoricals one-hot, the target excluded), labels from the target,
    /// the table's own split and hash.
    pub fn from_tabular(table: &super::tabular::TabularData) -> CoreResult<Self> {
        let n = table.n_rows();
        let rows: Vec<usize> = (0..n).collect();
        let (x, width) = table.encode(&rows);
        let mut ds = Self::new(
            table.name.clone(),
            table.source.clone(),
            [n, 1, 1, width],
            vec![0u8; n * width],
            table.labels.clone(),
            table.class_names.clone(),
            1,
            Some(table.split.clone()),
        )?;
        ds.features = Some(x.into());
        ds.hash = table.hash.clone();
        Ok(ds)
    }

    /// Whether this set is an encoded table (see [`Dataset::features`]).
    pub fn is_tabular(&self) -> bool {
        self.features.is_some()
    }

    /// Carries `other`'s table features over to this rebuilt copy of it (same rows, e.g. with
    /// planted labels or another split); the hash combines both so it still names the table.
    pub fn with_features_of(mut self, other: &Self) -> Self {
        if let Some(f) = &other.features {
            self.features = Some(f.clone());
            self.hash = format!("{}-{}", other.hash, &self.hash[..8.min(self.hash.len())]);
        }
        self
    }

    /// `self` followed by `other` (same image shape and value range), labels kept; the split
    /// marks `self` as train and `other` as test (members and held-out images of one model).
    pub fn concat(&self, other: &Self) -> CoreResult<Self> {
        if [self.c, self.h, self.w] != [other.c, other.h, other.w] || self.max_value != other.max_value {
            return Err(CoreError::Mismatch(format!(
                "{} holds {}x{}x{} images up to {}, {} holds {}x{}x{} up to {}; both sets must be alike",
                self.source,
                self.c,
                self.h,
                self.w,
                self.max_value,
                other.source,
                other.c,
                other.h,
                other.w,
                other.max_value
            )));
        }
        let pixels = [&self.pixels[..], &other.pixels[..]].concat();
        let labels = [&self.labels[..], &other.labels[..]].concat();
        let split = std::iter::repeat_n(Split::Train, self.n)
            .chain(std::iter::repeat_n(Split::Test, other.n))
            .collect();
        let names = if self.class_names.len() >= other.class_names.len() {
            self.class_names.clone()
        } else {
            other.class_names.clone()
        };
        let mut out = Self::new(
            format!("{}+{}", self.name, other.name),
            format!("{} + {}", self.source, other.source),
            [self.n + other.n, self.c, self.h, self.w],
            pixels,
            labels,
            names,
            self.max_value,
            Some(split),
        )?;
        if let (Some(a), Some(b)) = (&self.features, &other.features) {
            out.features = Some([&a[..], &b[..]].concat().into());
        }
        Ok(out)
    }

    /// Replaces the split.
    pub fn with_split(mut self, split: Vec<Split>) -> CoreResult<Self> {
        if split.len() != self.n {
            return Err(CoreError::Invalid(format!(
                "{}: split has {} entries for {} images",
                self.source,
                split.len(),
                self.n
            )));
        }
        self.split = split.into();
        Ok(self)
    }

    /// Bytes per image (C x H x W).
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The pixels of image `i` (C x H x W), or `None` when out of range.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let len = self.image_len();
        self.pixels.get(i * len..(i + 1) * len)
    }

    /// Indices on the training side of the split, ascending.
    pub fn train_indices(&self) -> Vec<usize> {
        self.indices_of(Split::Train)
    }

    /// Indices on the test side of the split, ascending.
    pub fn test_indices(&self) -> Vec<usize> {
        self.indices_of(Split::Test)
    }

    fn indices_of(&self, which: Split) -> Vec<usize> {
        self.split
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == which)
            .map(|(i, _)| i)
            .collect()
    }

    /// Image `i` as floats in [0, 1], C x H x W (a table's row: its encoded features).
    pub fn image_f32(&self, i: usize) -> Option<Vec<f32>> {
        if let Some(f) = &self.features {
            let len = self.image_len();
            return f.get(i * len..(i + 1) * len).map(<[f32]>::to_vec);
        }
        let scale = 1.0 / f32::from(self.max_value.max(1));
        self.image(i)
            .map(|px| px.iter().map(|&p| f32::from(p) * scale).collect())
    }

    /// Images at `indices` as one flat f32 buffer in [0, 1] (len x C x H x W); a table's rows
    /// as their encoded features.
    pub fn batch_f32(&self, indices: &[usize]) -> Vec<f32> {
        let len = self.image_len();
        if let Some(f) = &self.features {
            let mut out = Vec::with_capacity(indices.len() * len);
            for &i in indices {
                if let Some(row) = f.get(i * len..(i + 1) * len) {
                    out.extend_from_slice(row);
                }
            }
            return out;
        }
        let scale = 1.0 / f32::from(self.max_value.max(1));
        let mut out = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            if let Some(px) = self.image(i) {
                out.extend(px.iter().map(|&p| f32::from(p) * scale));
            }
        }
        out
    }

    /// Image `i` as RGBA bytes (H x W x 4) scaled to 0..255, for display.
    pub fn image_rgba(&self, i: usize) -> Option<Vec<u8>> {
        let px = self.image(i)?;
        let hw = self.h * self.w;
        let max = u32::from(self.max_value.max(1));
        let scale = |v: u8| -> u8 { ((u32::from(v) * 255 + max / 2) / max).min(255) as u8 };
        let mut out = Vec::with_capacity(hw * 4);
        for p in 0..hw {
            if self.c == 1 {
                let g = scale(px[p]);
                out.extend_from_slice(&[g, g, g, 255]);
            } else {
                out.extend_from_slice(&[scale(px[p]), scale(px[hw + p]), scale(px[2 * hw + p]), 255]);
            }
        }
        Some(out)
    }

    /// Mean pixel intensity of every image in [0, 1]: a built-in per-sample score column.
    pub fn mean_intensity(&self) -> Vec<f32> {
        let len = self.image_len();
        let denom = (len as f32) * f32::from(self.max_value.max(1));
        self.pixels
            .chunks_exact(len)
            .map(|img| img.iter().map(|&p| p as u32).sum::<u32>() as f32 / denom)
            .collect()
    }

    /// Number of images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes()];
        for &l in self.labels.iter() {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// A seeded, stratified split: within each class, `test_frac` of the images (rounded) go to test.
pub fn stratified_split(labels: &[u16], test_frac: f64, seed: u64) -> Vec<Split> {
    let mut split = vec![Split::Train; labels.len()];
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for class in 0..=max {
        let mut members: Vec<usize> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l as usize == class)
            .map(|(i, _)| i)
            .collect();
        members.shuffle(&mut rng);
        let n_test = ((members.len() as f64) * test_frac).round() as usize;
        for &i in members.iter().take(n_test) {
            split[i] = Split::Test;
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let labels: Vec<u16> = (0..20).map(|i| (i % 2) as u16).collect();
        let pixels: Vec<u8> = (0..20 * 4).map(|i| (i % 256) as u8).collect();
        Dataset::new("t", "test", [20, 1, 2, 2], pixels, labels, vec![], 255, None).unwrap()
    }

    #[test]
    fn split_is_stratified_and_deterministic() {
        let a = tiny();
        let b = tiny();
        assert_eq!(a.split, b.split);
        assert_eq!(a.test_indices().len(), 4);
        let test_labels: Vec<u16> = a.test_indices().iter().map(|&i| a.labels[i]).collect();
        assert_eq!(test_labels.iter().filter(|&&l| l == 0).count(), 2);
    }

    #[test]
    fn hash_changes_with_one_pixel() {
        let a = tiny();
        let mut px = a.pixels.to_vec();
        px[7] ^= 1;
        let b = Dataset::new(
            "t",
            "test",
            [20, 1, 2, 2],
            px,
            a.labels.to_vec(),
            vec![],
            255,
            None,
        )
        .unwrap();
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.class_names, vec!["0", "1"]);
    }

    #[test]
    fn rejects_wrong_sizes_and_empty() {
        let err = Dataset::new(
            "t",
            "x.idx",
            [2, 1, 2, 2],
            vec![0; 7],
            vec![0, 1],
            vec![],
            255,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("x.idx"));
        assert!(Dataset::new("t", "e", [0, 1, 2, 2], vec![], vec![], vec![], 255, None).is_err());
        assert!(Dataset::new("t", "c", [1, 2, 1, 1], vec![0, 0], vec![0], vec![], 255, None).is_err());
    }
}
