//! Squared-l2 distance matrices and k-nearest neighbours between two sets of `u8` images.
//!
//! The kernel is `shaders/pairwise_l2.wgsl`; [`pairwise_sq_l2_cpu`] is its CPU twin. Both compute
//! exact integer sums of squared pixel differences, so they agree bit for bit and give the same
//! neighbours (ties broken by the smaller index).

use std::sync::OnceLock;

use rayon::prelude::*;

use super::context::{Gpu, gpu};
use super::matrix_kernel::{MAX_GROUPS, MAX_OUT_BYTES, compile, run_matrix_kernel};
use super::topk_rows::{MAX_TOP_K, SkipColumn, pairwise_top_k_gpu};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Images as rows of bytes, each padded with zeros to a multiple of 4 (one u32 word per 4 pixels).
#[derive(Clone, Debug)]
pub struct PackedImages {
    /// Number of rows.
    pub rows: usize,
    /// Bytes per row after padding (a multiple of 4).
    pub row_bytes: usize,
    /// `rows * row_bytes` bytes.
    pub data: Vec<u8>,
}

impl PackedImages {
    /// Packs the images of `ds` at `indices`.
    pub fn from_dataset(ds: &Dataset, indices: &[usize]) -> Self {
        let len = ds.image_len();
        let row_bytes = len.div_ceil(4) * 4;
        let mut data = vec![0u8; indices.len() * row_bytes];
        for (r, &i) in indices.iter().enumerate() {
            if let Some(img) = ds.image(i) {
                data[r * row_bytes..r * row_bytes + len].copy_from_slice(img);
            }
        }
        Self {
            rows: indices.len(),
            row_bytes,
            data,
        }
    }

    /// Packs raw rows of `len` bytes each.
    pub fn from_rows(rows: &[&[u8]]) -> Self {
        let len = rows.first().map_or(0, |r| r.len());
        let row_bytes = len.div_ceil(4) * 4;
        let mut data = vec![0u8; rows.len() * row_bytes];
        for (r, src) in rows.iter().enumerate() {
            data[r * row_bytes..r * row_bytes + src.len().min(len)]
                .copy_from_slice(&src[..src.len().min(len)]);
        }
        Self {
            rows: rows.len(),
            row_bytes,
            data,
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    pub(super) fn slice_rows(&self, start: usize, end: usize) -> &[u8] {
        &self.data[start * self.row_bytes..end * self.row_bytes]
    }
}

/// Which implementation computed a result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "adapter", rename_all = "lowercase")]
pub enum Backend {
    /// The rayon CPU twin.
    Cpu,
    /// The WGSL kernel on this adapter.
    Wgpu(String),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Wgpu(name) => write!(f, "wgpu ({name})"),
        }
    }
}

/// One neighbour.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Neighbour {
    /// Index into the data set.
    pub index: usize,
    /// Exact sum of squared differences of raw pixel values.
    pub sq_l2: u32,
    /// Euclidean distance with pixels scaled to [0, 1].
    pub distance: f32,
}

/// CPU twin of the kernel: the m x n matrix of exact squared distances, row-major.
pub fn pairwise_sq_l2_cpu(a: &PackedImages, b: &PackedImages) -> Vec<u32> {
    let n = b.rows;
    let mut out = vec![0u32; a.rows * n];
    out.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        let x = a.row(i);
        for (j, o) in row.iter_mut().enumerate() {
            let y = b.row(j);
            *o = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| {
                    let d = i32::from(p) - i32::from(q);
                    (d * d) as u32
                })
                .sum();
        }
    });
    out
}

pub(super) fn pairwise_pipeline(g: &Gpu) -> &wgpu::ComputePipeline {
    static PIPELINE: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| compile(g, "pairwise_l2", include_str!("../../shaders/pairwise_l2.wgsl")))
}

fn dispatch(g: &Gpu, a: &[u8], m: usize, b: &[u8], n: usize, words: usize) -> CoreResult<Vec<u32>> {
    let params = [m as u32, n as u32, words as u32, 0];
    run_matrix_kernel(g, pairwise_pipeline(g), "pairwise_l2", a, m, b, n, params)
}

/// The kernel on `g`: the m x n matrix of exact squared distances, tiled to fit the device's
/// buffer limits and the dispatch-size limit.
pub fn pairwise_sq_l2_gpu(g: &Gpu, a: &PackedImages, b: &PackedImages) -> CoreResult<Vec<u32>> {
    if a.row_bytes != b.row_bytes {
        return Err(CoreError::Mismatch(format!(
            "row sizes differ: {} vs {} bytes",
            a.row_bytes, b.row_bytes
        )));
    }
    let (m, n) = (a.rows, b.rows);
    let mut out = vec![0u32; m * n];
    if m == 0 || n == 0 || a.row_bytes == 0 {
        return Ok(out);
    }
    let words = a.row_bytes / 4;
    let limit = g.info.max_storage_binding.min(g.info.max_buffer) as usize;
    let rows_fit = (limit / a.row_bytes).max(1);
    let b_chunk = rows_fit.min(MAX_GROUPS * 16).min(n);
    let out_limit = (MAX_OUT_BYTES as usize).min(limit);
    let a_chunk = (out_limit / (b_chunk * 4))
        .max(1)
        .min(rows_fit)
        .min(MAX_GROUPS * 16)
        .min(m);
    for b0 in (0..n).step_by(b_chunk) {
        let b1 = (b0 + b_chunk).min(n);
        for a0 in (0..m).step_by(a_chunk) {
            let a1 = (a0 + a_chunk).min(m);
            let block = dispatch(
                g,
                a.slice_rows(a0, a1),
                a1 - a0,
                b.slice_rows(b0, b1),
                b1 - b0,
                words,
            )?;
            for (r, src) in block.chunks_exact(b1 - b0).enumerate() {
                out[(a0 + r) * n + b0..(a0 + r) * n + b1].copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// Distances on the GPU when `prefer_gpu` and an adapter exist, else on the CPU twin.
pub fn pairwise_sq_l2(
    a: &PackedImages,
    b: &PackedImages,
    prefer_gpu: bool,
) -> CoreResult<(Vec<u32>, Backend)> {
    if prefer_gpu {
        match gpu() {
            Ok(g) => {
                return Ok((pairwise_sq_l2_gpu(&g, a, b)?, Backend::Wgpu(g.info.name.clone())));
            }
            Err(why) => log::warn!("GPU compute unavailable, using the CPU twin: {why}"),
        }
    }
    Ok((pairwise_sq_l2_cpu(a, b), Backend::Cpu))
}

/// The `k` smallest entries of each row of an m x n matrix, as (column, value), ties broken by
/// the smaller column. `skip(row, col)` excludes entries (e.g. a query's own image).
pub fn top_k_rows(
    d: &[u32],
    m: usize,
    n: usize,
    k: usize,
    skip: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Vec<Vec<(usize, u32)>> {
    (0..m)
        .into_par_iter()
        .map(|i| {
            let row = &d[i * n..(i + 1) * n];
            let mut cand: Vec<(u32, usize)> = row
                .iter()
                .enumerate()
                .filter(|(j, _)| !skip(i, *j))
                .map(|(j, &v)| (v, j))
                .collect();
            let k = k.min(cand.len());
            if k == 0 {
                return Vec::new();
            }
            cand.select_nth_unstable(k - 1);
            cand.truncate(k);
            cand.sort_unstable();
            cand.into_iter().map(|(v, j)| (j, v)).collect()
        })
        .collect()
}

/// Queries per block when searching neighbours (bounds memory: block x refs x 4 bytes).
const QUERY_BLOCK: usize = 1024;

/// The `k` nearest images among `refs` for each image in `queries` (all indices into `ds`),
/// excluding the query itself. Uses the GPU when `prefer_gpu` and an adapter exist: distances and
/// the top-k selection both run there ([`pairwise_top_k_gpu`]) and only k pairs per query come
/// back; the full matrix is read back only for k > [`MAX_TOP_K`] or refs listing a query twice.
pub fn nearest_neighbours(
    ds: &Dataset,
    queries: &[usize],
    refs: &[usize],
    k: usize,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<(Vec<Vec<Neighbour>>, Backend)> {
    let b = PackedImages::from_dataset(ds, refs);
    let scale = f32::from(ds.max_value.max(1));
    // The column of each query among the refs, when the device top-k can skip it exactly (at most
    // one such column per query).
    let on_device = if prefer_gpu && k <= MAX_TOP_K {
        match gpu() {
            Ok(g) => own_columns(queries, refs).map(|cols| (g, cols)),
            Err(why) => {
                log::warn!("GPU compute unavailable, using the CPU twin: {why}");
                None
            }
        }
    } else {
        None
    };
    let mut all = Vec::with_capacity(queries.len());
    let mut backend = Backend::Cpu;
    for (blk, qs) in queries.chunks(QUERY_BLOCK).enumerate() {
        if let Some(ctx) = ctx {
            ctx.checkpoint()?;
            ctx.progress(
                "nearest neighbours",
                (blk * QUERY_BLOCK) as u64,
                queries.len() as u64,
            );
        }
        let a = PackedImages::from_dataset(ds, qs);
        let top = if let Some((g, cols)) = &on_device {
            backend = Backend::Wgpu(g.info.name.clone());
            let start = blk * QUERY_BLOCK;
            let skip = SkipColumn::PerRow(&cols[start..start + qs.len()]);
            pairwise_top_k_gpu(g, &a, &b, k, skip)?
        } else {
            let (d, used) = pairwise_sq_l2(&a, &b, prefer_gpu)?;
            backend = used;
            let skip = |i: usize, j: usize| qs[i] == refs[j];
            top_k_rows(&d, qs.len(), refs.len(), k, &skip)
        };
        for row in top {
            all.push(
                row.into_iter()
                    .map(|(j, v)| Neighbour {
                        index: refs[j],
                        sq_l2: v,
                        distance: (v as f32).sqrt() / scale,
                    })
                    .collect(),
            );
        }
    }
    Ok((all, backend))
}

/// For each query, the one column of `refs` holding it (or none); `None` when some query appears
/// more than once in `refs` (one skipped column per row could not express that).
fn own_columns(queries: &[usize], refs: &[usize]) -> Option<Vec<Option<usize>>> {
    let wanted: std::collections::HashSet<usize> = queries.iter().copied().collect();
    let mut at = std::collections::HashMap::with_capacity(wanted.len().min(refs.len()));
    for (j, r) in refs.iter().enumerate() {
        if wanted.contains(r) && at.insert(*r, j).is_some() {
            return None;
        }
    }
    Some(queries.iter().map(|q| at.get(q).copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_twin_matches_direct_sum_and_topk_breaks_ties_by_index() {
        let rows: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 0, 0],
            vec![1, 2, 3, 4, 5],
            vec![255, 0, 0, 0, 1],
            vec![1, 2, 3, 4, 5],
        ];
        let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let p = PackedImages::from_rows(&refs);
        assert_eq!(p.row_bytes, 8);
        let d = pairwise_sq_l2_cpu(&p, &p);
        assert_eq!(d[1], 1 + 4 + 9 + 16 + 25);
        assert_eq!(d[2], 255 * 255 + 1);
        let top = top_k_rows(&d, 4, 4, 2, &|i, j| i == j);
        // Row 1: row 3 is identical (0), then row 0 (55).
        assert_eq!(top[1], vec![(3, 0), (0, 55)]);
        // Row 0: rows 1 and 3 tie at 55; the smaller index comes first.
        assert_eq!(top[0], vec![(1, 55), (3, 55)]);
    }
}
