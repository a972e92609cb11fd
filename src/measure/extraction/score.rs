//! Per-generation scoring: byte-identical training rows merged, nearest training images found
//! block by block (GPU or CPU), ℓ_rel, the criterion's verdict and eidetic k (see the
//! [module docs](super)).

use std::collections::{BTreeMap, HashMap};

use super::{Criterion, Distance, ExtractionConfig, GenerationScore};
use crate::error::{CoreError, CoreResult};
use crate::gpu::{
    Backend, PackedImages, SkipColumn, TiledImages, TopK, pairwise_sq_l2, pairwise_top_k, tile_geometry,
    tiled_sq_l2_packed, tiled_sq_l2_pair, tiled_top_k,
};
use crate::job::JobCtx;

/// Normalised ℓ2 of an exact squared distance over `dim` pixels.
fn norm(sq: u32, dim: usize) -> f64 {
    (f64::from(sq) / dim as f64).sqrt() / 255.0
}

fn sq_diff_sum(x: &[u8], y: &[u8]) -> u32 {
    x.iter()
        .zip(y)
        .map(|(&p, &q)| {
            let d = i32::from(p) - i32::from(q);
            (d * d) as u32
        })
        .sum()
}

/// Rows per query block: at most 1024 and about 32M matrix entries.
pub(super) fn block_rows(refs: usize) -> usize {
    ((1usize << 25) / refs.max(1)).clamp(16, 1024)
}

pub(super) fn count_rows(pixels: &[u8], dim: usize, what: &str, shape: [usize; 3]) -> CoreResult<usize> {
    if !pixels.len().is_multiple_of(dim) {
        return Err(CoreError::Mismatch(format!(
            "{what}: {} bytes are not a whole number of {}x{}x{} images",
            pixels.len(),
            shape[0],
            shape[1],
            shape[2]
        )));
    }
    Ok(pixels.len() / dim)
}

/// Training rows with byte-identical rows merged.
pub(super) struct Dedup {
    /// Flat pixels of the distinct images, in order of first appearance.
    pub(super) pixels: Vec<u8>,
    /// First training row of each distinct image.
    pub(super) first: Vec<usize>,
    /// Copies of each distinct image.
    pub(super) copies: Vec<usize>,
    /// Distinct image of each training row.
    pub(super) of_row: Vec<usize>,
}

pub(super) fn dedupe(train: &[u8], dim: usize) -> Dedup {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut d = Dedup {
        pixels: Vec::new(),
        first: Vec::new(),
        copies: Vec::new(),
        of_row: Vec::with_capacity(train.len() / dim),
    };
    for (i, row) in train.chunks_exact(dim).enumerate() {
        let u = *seen.entry(row).or_insert_with(|| {
            d.pixels.extend_from_slice(row);
            d.first.push(i);
            d.copies.push(0);
            d.first.len() - 1
        });
        d.copies[u] += 1;
        d.of_row.push(u);
    }
    d
}

/// The reference side of a distance, packed once.
pub(super) enum Refs {
    L2(PackedImages),
    Tiled(TiledImages),
}

/// A distance on flat rows of one shape.
pub(super) struct Metric {
    distance: Distance,
    shape: [usize; 3],
    grid: usize,
    pub(super) dim: usize,
    tile_pixels: usize,
}

impl Metric {
    pub(super) fn new(distance: Distance, shape: [usize; 3], grid: usize) -> CoreResult<Self> {
        let (_, _, tile_pixels) = tile_geometry(shape, grid)?;
        Ok(Self {
            distance,
            shape,
            grid,
            dim: shape.iter().product(),
            tile_pixels,
        })
    }

    pub(super) fn pack(&self, flat: &[u8]) -> CoreResult<Refs> {
        Ok(match self.distance {
            Distance::L2 => {
                let rows: Vec<&[u8]> = flat.chunks_exact(self.dim).collect();
                Refs::L2(PackedImages::from_rows(&rows))
            }
            Distance::Tiled => Refs::Tiled(TiledImages::from_flat(flat, self.shape, self.grid)?),
        })
    }

    /// Exact squared distances (per the metric) between `queries` (flat rows) and `refs`.
    pub(super) fn matrix(
        &self,
        queries: &[u8],
        refs: &Refs,
        prefer_gpu: bool,
    ) -> CoreResult<(Vec<u32>, Backend)> {
        match (self.pack(queries)?, refs) {
            (Refs::L2(q), Refs::L2(r)) => pairwise_sq_l2(&q, r, prefer_gpu),
            (Refs::Tiled(q), Refs::Tiled(r)) => tiled_sq_l2_packed(&q, r, prefer_gpu),
            _ => Err(CoreError::Mismatch("query and reference packings differ".into())),
        }
    }

    /// The `k` nearest rows of `refs` to each of `queries` (flat rows) as (column, exact squared
    /// distance), by distance then column: on the GPU (distances and selection there, only k pairs
    /// per query read back) when `prefer_gpu`, an adapter exists and k <= `MAX_TOP_K`; otherwise the
    /// full matrix then `top_k_rows`. The same lists either way.
    pub(super) fn top_k(
        &self,
        queries: &[u8],
        refs: &Refs,
        k: usize,
        prefer_gpu: bool,
    ) -> CoreResult<(TopK, Backend)> {
        match (self.pack(queries)?, refs) {
            (Refs::L2(q), Refs::L2(r)) => pairwise_top_k(&q, r, k, SkipColumn::None, prefer_gpu),
            (Refs::Tiled(q), Refs::Tiled(r)) => tiled_top_k(&q, r, k, SkipColumn::None, prefer_gpu),
            _ => Err(CoreError::Mismatch("query and reference packings differ".into())),
        }
    }

    /// Normalised distance of an exact squared distance under this metric.
    pub(super) fn norm(&self, sq: u32) -> f64 {
        match self.distance {
            Distance::L2 => norm(sq, self.dim),
            Distance::Tiled => norm(sq, self.tile_pixels),
        }
    }
}

fn validate(cfg: &ExtractionConfig) -> CoreResult<()> {
    if cfg.n_neighbours == 0 {
        return Err(CoreError::Invalid("n_neighbours must be at least 1".into()));
    }
    if !(cfg.alpha.is_finite() && cfg.alpha > 0.0) {
        return Err(CoreError::Invalid(format!(
            "alpha must be positive, not {}",
            cfg.alpha
        )));
    }
    if !(cfg.delta.is_finite() && cfg.delta >= 0.0) {
        return Err(CoreError::Invalid(format!(
            "delta must be ≥ 0, not {}",
            cfg.delta
        )));
    }
    Ok(())
}

/// Scores every generation against the training set (both N x C x H x W u8 pixels back to back,
/// `shape` = [C, H, W]): nearest training image, plain and tiled ℓ2 to it, ℓ_rel, the criterion's
/// verdict and, for extractions, eidetic k. Byte-identical training rows are merged first (see the
/// [module docs](super)). Reports progress and honours cancellation through `ctx`.
pub fn score_generations(
    generations: &[u8],
    train: &[u8],
    shape: [usize; 3],
    cfg: &ExtractionConfig,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<(Vec<GenerationScore>, Backend)> {
    validate(cfg)?;
    let metric = Metric::new(cfg.distance, shape, cfg.grid)?;
    let dim = metric.dim;
    let n_gen = count_rows(generations, dim, "generations", shape)?;
    count_rows(train, dim, "training images", shape)?;
    let dd = dedupe(train, dim);
    let n_unique = dd.first.len();
    if n_unique == 0 {
        return Err(CoreError::Invalid("no training images to compare with".into()));
    }
    let refs = metric.pack(&dd.pixels)?;
    let n_eff = cfg.n_neighbours.min(n_unique);
    let block = block_rows(n_unique);
    let mut backend = Backend::Cpu;
    let mut rows = Vec::with_capacity(n_gen);
    // Per generation: distinct nearest image and extraction radius.
    let mut hit: Vec<(usize, f64)> = Vec::with_capacity(n_gen);
    for (bi, chunk) in generations.chunks(block * dim).enumerate() {
        if let Some(ctx) = ctx {
            ctx.checkpoint()?;
            ctx.progress(
                "extraction: nearest training images",
                (bi * block) as u64,
                n_gen as u64,
            );
        }
        let q = chunk.len() / dim;
        // Only the n_eff nearest distinct images of each generation are needed here (d1, their
        // mean for ℓ_rel, and the plain and tiled ℓ2 to the nearest, recomputed from its pixels).
        let (top, used) = metric.top_k(chunk, &refs, n_eff, prefer_gpu)?;
        backend = used;
        if top.len() != q {
            return Err(CoreError::Invalid("neighbour search lost queries".into()));
        }
        for (r, nb) in top.iter().enumerate() {
            let gi = bi * block + r;
            let Some(&(u1, v1)) = nb.first() else {
                return Err(CoreError::Invalid("no neighbours found".into()));
            };
            let x = &chunk[r * dim..(r + 1) * dim];
            let y = &dd.pixels[u1 * dim..(u1 + 1) * dim];
            let d1 = metric.norm(v1);
            let mean = nb.iter().map(|&(_, v)| metric.norm(v)).sum::<f64>() / nb.len() as f64;
            // d1 ≤ every neighbour distance, so a zero mean means an exact copy with no other image
            // around: score it 0.
            let rel = if mean > 0.0 { d1 / (cfg.alpha * mean) } else { 0.0 };
            let plain_sq = match cfg.distance {
                Distance::L2 => v1,
                Distance::Tiled => sq_diff_sum(x, y),
            };
            let tiled_sq = match cfg.distance {
                Distance::L2 => tiled_sq_l2_pair(x, y, shape, cfg.grid)?,
                Distance::Tiled => v1,
            };
            let (score, radius) = match cfg.criterion {
                Criterion::Relative => (rel, cfg.delta * cfg.alpha * mean),
                Criterion::Absolute => (d1, cfg.delta),
            };
            let extracted = score <= cfg.delta;
            hit.push((u1, radius));
            rows.push(GenerationScore {
                generation: gi,
                nearest: dd.first[u1],
                nearest_copies: dd.copies[u1],
                l2: norm(plain_sq, dim) as f32,
                tiled_l2: norm(tiled_sq, metric.tile_pixels) as f32,
                rel_l2: rel as f32,
                score: score as f32,
                extracted,
                eidetic_k: None,
            });
        }
    }

    // Eidetic k: distances from each extracted distinct image to all distinct images (whole rows:
    // every image within the radius counts, so this keeps the full matrix).
    let mut by_image: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.extracted) {
        by_image
            .entry(hit[row.generation].0)
            .or_default()
            .push(row.generation);
    }
    let images: Vec<usize> = by_image.keys().copied().collect();
    for (bi, ids) in images.chunks(block).enumerate() {
        if let Some(ctx) = ctx {
            ctx.checkpoint()?;
            ctx.progress("extraction: eidetic k", (bi * block) as u64, images.len() as u64);
        }
        let mut flat = Vec::with_capacity(ids.len() * dim);
        for &u in ids {
            flat.extend_from_slice(&dd.pixels[u * dim..(u + 1) * dim]);
        }
        let (mat, used) = metric.matrix(&flat, &refs, prefer_gpu)?;
        backend = used;
        for (r, u) in ids.iter().enumerate() {
            let drow: Vec<f64> = mat[r * n_unique..(r + 1) * n_unique]
                .iter()
                .map(|&v| metric.norm(v))
                .collect();
            for &gi in by_image.get(u).map_or(&[][..], Vec::as_slice) {
                let radius = hit[gi].1;
                let k = drow
                    .iter()
                    .zip(&dd.copies)
                    .filter(|(d, _)| **d <= radius)
                    .map(|(_, c)| c)
                    .sum();
                rows[gi].eidetic_k = Some(k);
            }
        }
    }
    Ok((rows, backend))
}
