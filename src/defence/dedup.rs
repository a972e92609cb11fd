//! Deduplication of a diffusion model's training set before training (spec 13 §D.3): Carlini et
//! al. 2023 ("Extracting Training Data from Diffusion Models", §4 and §7) find extracted images
//! concentrated among duplicated training images and deduplication reduces extraction.
//!
//! Near duplicates are found with the same distance the extraction uses, the tiled l2 of
//! `gpu::tiled_l2` (the GPU kernel or its CPU twin): two images are near duplicates when, in their
//! worst tile, the root-mean-square pixel difference is at most `threshold` of the value range,
//!
//! ```text
//! sqrt( max_t sum_{p in tile t} (a_p - b_p)^2 / pixels per tile ) / max_value <= threshold
//! ```
//!
//! Each image's nearest neighbours under the threshold are joined (union–find) into clusters; one
//! image per cluster is kept (the smallest index), and repeated copies of one image (weight-based
//! oversampling, as rote's planted duplicates are) count once. The clusters are what a user reviews:
//! their sizes are reported with the threshold.

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::gpu::{PackedImages, SkipColumn, TiledImages, tiled_top_k};

/// Default threshold: 5 % RMS difference in the worst tile.
pub const DEFAULT_THRESHOLD: f64 = 0.05;

/// Neighbours examined per image (a cluster larger than this is still joined through chains).
const NEIGHBOURS: usize = 16;

/// What deduplication did (recorded in the trained model's card).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DedupRecord {
    /// RMS threshold in the worst tile, as a fraction of the value range.
    pub threshold: f64,
    /// Tiles per side of the tiled distance.
    pub grid: usize,
    /// Entries of the training list before (repeats included).
    pub entries_before: usize,
    /// Distinct images kept.
    pub kept: usize,
    /// Entries removed (repeated copies and near-duplicate images).
    pub removed: usize,
    /// Clusters of two or more distinct images (data-set indices, kept one first).
    pub clusters: Vec<Vec<u32>>,
}

/// The largest grid in {4, 2, 1} that divides both sides.
pub fn grid_for(h: usize, w: usize) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|g| h.is_multiple_of(*g) && w.is_multiple_of(*g))
        .unwrap_or(1)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Deduplicates the training list `entries` (data-set indices of `ds`, repeats allowed): returns
/// the kept indices (ascending, one per cluster of near duplicates) and the record.
pub fn dedup(
    ds: &Dataset,
    entries: &[usize],
    threshold: f64,
    prefer_gpu: bool,
) -> CoreResult<(Vec<usize>, DedupRecord)> {
    if !(threshold.is_finite() && (0.0..1.0).contains(&threshold)) {
        return Err(CoreError::Invalid(format!(
            "--dedup-threshold must lie in [0, 1) (an RMS difference as a fraction of the value range), not {threshold}"
        )));
    }
    let mut distinct: Vec<usize> = entries.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if let Some(&bad) = distinct.iter().find(|&&i| i >= ds.n) {
        return Err(CoreError::Invalid(format!(
            "training entry {bad} is outside the data set of {} images",
            ds.n
        )));
    }
    let n = distinct.len();
    let grid = grid_for(ds.h, ds.w);
    let mut parent: Vec<usize> = (0..n).collect();
    if n > 1 {
        let packed = PackedImages::from_dataset(ds, &distinct);
        let tiled = TiledImages::new(&packed, [ds.c, ds.h, ds.w], grid)?;
        let k = NEIGHBOURS.min(n - 1);
        let (top, _) = tiled_top_k(&tiled, &tiled, k, SkipColumn::Diagonal(0), prefer_gpu)?;
        let tile_pixels = (ds.c * (ds.h / grid) * (ds.w / grid)) as f64;
        let max = f64::from(ds.max_value.max(1));
        let limit = (threshold * max).powi(2) * tile_pixels;
        for (i, row) in top.iter().enumerate() {
            for &(j, d) in row {
                if f64::from(d) <= limit {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<u32>> = std::collections::BTreeMap::new();
    for (i, &index) in distinct.iter().enumerate() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(index as u32);
    }
    let kept: Vec<usize> = groups.values().map(|g| g[0] as usize).collect();
    let clusters: Vec<Vec<u32>> = groups.into_values().filter(|g| g.len() > 1).collect();
    let record = DedupRecord {
        threshold,
        grid,
        entries_before: entries.len(),
        kept: kept.len(),
        removed: entries.len() - kept.len(),
        clusters,
    };
    Ok((kept, record))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;

    /// Planted groups (exact copies, copies with a few pixels of noise, repeats in the list) are
    /// each reduced to one image; distinct digits are all kept.
    #[test]
    fn dedup_removes_every_planted_duplicate_group() {
        let digits = crate::data::load("digits8x8").unwrap();
        let base: Vec<usize> = (0..60).collect();
        let len = digits.image_len();
        let mut pixels = digits.pixels[..60 * len].to_vec();
        let mut labels = digits.labels[..60].to_vec();
        // Groups: image g copied 1 to 3 times, every other copy with +-1 level on a few pixels.
        let mut planted: Vec<Vec<usize>> = Vec::new();
        for g in 0..6usize {
            let mut group = vec![g * 7];
            for c in 0..=g % 3 {
                let mut img = digits.image(g * 7).unwrap().to_vec();
                if c % 2 == 1 {
                    for p in (0..len).step_by(9) {
                        img[p] = if img[p] < digits.max_value {
                            img[p] + 1
                        } else {
                            img[p] - 1
                        };
                    }
                }
                group.push(pixels.len() / len);
                pixels.extend_from_slice(&img);
                labels.push(digits.labels[g * 7]);
            }
            planted.push(group);
        }
        let n = pixels.len() / len;
        let ds = Dataset::new(
            "planted",
            "test",
            [n, digits.c, digits.h, digits.w],
            pixels,
            labels,
            digits.class_names.clone(),
            digits.max_value,
            None,
        )
        .unwrap();
        // The training list repeats image 3 four times (weight-based oversampling).
        let mut entries: Vec<usize> = (0..n).collect();
        entries.extend([3, 3, 3]);
        let (kept, rec) = dedup(&ds, &entries, DEFAULT_THRESHOLD, false).unwrap();
        for group in &planted {
            let in_kept = group.iter().filter(|i| kept.binary_search(i).is_ok()).count();
            assert_eq!(in_kept, 1, "group {group:?}: kept {kept:?}");
            assert!(
                rec.clusters
                    .iter()
                    .any(|c| c.iter().map(|&i| i as usize).collect::<Vec<usize>>() == *group)
            );
        }
        // Every base image that is not a planted original's twin is kept (digits8x8 itself may hold
        // a near-duplicate pair: then exactly that pair is a cluster too).
        let extra: Vec<&Vec<u32>> = rec
            .clusters
            .iter()
            .filter(|c| !planted.iter().any(|g| g.contains(&(c[0] as usize))))
            .collect();
        let lost = base.iter().filter(|i| kept.binary_search(i).is_err()).count();
        assert_eq!(
            lost,
            extra.iter().map(|c| c.len() - 1).sum::<usize>(),
            "{extra:?}"
        );
        assert_eq!(rec.kept, kept.len());
        assert_eq!(rec.removed, entries.len() - kept.len());
        assert!(rec.removed >= 3 + planted.iter().map(|g| g.len() - 1).sum::<usize>());
        // Threshold 0 still joins byte-identical copies, not the noisy ones.
        let (kept0, _) = dedup(&ds, &entries, 0.0, false).unwrap();
        assert!(kept0.len() > kept.len());
        assert!(
            dedup(&ds, &entries, 1.5, false)
                .unwrap_err()
                .to_string()
                .contains("--dedup-threshold")
        );
    }
}
