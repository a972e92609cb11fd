//! k-nearest neighbours with the selection on the device: the pairwise kernel writes a block of the
//! distance matrix into a device buffer, `shaders/topk_rows.wgsl` picks the k smallest entries of
//! each row from it, and only rows x k (distance, column) pairs are read back. Its CPU twin is
//! [`pairwise_top_k_cpu`] ([`pairwise_sq_l2_cpu`] then [`top_k_rows`]); both give the same k
//! entries in the same order (ties broken by the smaller column) with the same skipped column.

use std::sync::OnceLock;

use super::context::Gpu;
use super::matrix_kernel::{
    MAX_GROUPS, MAX_OUT_BYTES, compile, encode_matrix, encode_top_k, read_back, storage,
};
use super::pairwise_l2::{PackedImages, pairwise_pipeline, pairwise_sq_l2_cpu, top_k_rows};
use crate::error::{CoreError, CoreResult};

/// Largest k the device top-k supports (its per-thread lists are this long).
pub const MAX_TOP_K: usize = 32;

/// The top-k (column, value) pairs of each row, as [`top_k_rows`] returns them.
pub type TopK = Vec<Vec<(usize, u32)>>;

/// Which column, if any, each row must not return (a query's own image among the references).
#[derive(Clone, Copy, Debug)]
pub enum SkipColumn<'a> {
    /// Every column may be returned.
    None,
    /// Row i skips column i + offset (queries are references offset..offset + m).
    Diagonal(usize),
    /// Row i skips column `cols[i]` when it is `Some`.
    PerRow(&'a [Option<usize>]),
}

impl SkipColumn<'_> {
    /// The column row `i` skips.
    pub fn column(&self, i: usize) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Diagonal(offset) => Some(i + offset),
            Self::PerRow(cols) => cols.get(i).copied().flatten(),
        }
    }
}

fn top_k_pipeline(g: &Gpu) -> &wgpu::ComputePipeline {
    static PIPELINE: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| compile(g, "topk_rows", include_str!("../../shaders/topk_rows.wgsl")))
}

/// CPU twin of [`pairwise_top_k_gpu`]: the full matrix with [`pairwise_sq_l2_cpu`], then
/// [`top_k_rows`].
pub fn pairwise_top_k_cpu(a: &PackedImages, b: &PackedImages, k: usize, skip: SkipColumn<'_>) -> TopK {
    let d = pairwise_sq_l2_cpu(a, b);
    top_k_rows(&d, a.rows, b.rows, k, &|i, j| skip.column(i) == Some(j))
}

/// The `k` (<= [`MAX_TOP_K`]) nearest rows of `b` to each row of `a` by exact squared l2, as
/// (column, distance) sorted by distance then column, computed and selected on `g`; identical to
/// [`pairwise_top_k_cpu`]. Tiled to the device's buffer and dispatch limits.
pub fn pairwise_top_k_gpu(
    g: &Gpu,
    a: &PackedImages,
    b: &PackedImages,
    k: usize,
    skip: SkipColumn<'_>,
) -> CoreResult<TopK> {
    pairwise_top_k_gpu_tiled(g, a, b, k, skip, usize::MAX, usize::MAX)
}

/// [`pairwise_top_k_gpu`] with at most `max_rows` queries and `max_cols` references per dispatch
/// (the tests use small tiles to exercise the tiling; partial results of column tiles are merged
/// exactly on the host).
#[doc(hidden)]
pub fn pairwise_top_k_gpu_tiled(
    g: &Gpu,
    a: &PackedImages,
    b: &PackedImages,
    k: usize,
    skip: SkipColumn<'_>,
    max_rows: usize,
    max_cols: usize,
) -> CoreResult<TopK> {
    if a.row_bytes != b.row_bytes {
        return Err(CoreError::Mismatch(format!(
            "row sizes differ: {} vs {} bytes",
            a.row_bytes, b.row_bytes
        )));
    }
    if k > MAX_TOP_K {
        return Err(CoreError::Invalid(format!(
            "the device top-k supports k <= {MAX_TOP_K}, not {k}"
        )));
    }
    let (m, n) = (a.rows, b.rows);
    if m == 0 || n == 0 || k == 0 || a.row_bytes == 0 {
        // Nothing to dispatch (and no zero-sized bindings): the twin is trivial here.
        return Ok(pairwise_top_k_cpu(a, b, k, skip));
    }
    if n > u32::MAX as usize - 1 {
        return Err(CoreError::Invalid(format!(
            "{n} references exceed the u32 column range"
        )));
    }
    let words = a.row_bytes / 4;
    let limit = g.info.max_storage_binding.min(g.info.max_buffer) as usize;
    let rows_fit = (limit / a.row_bytes).max(1);
    let b_chunk = rows_fit.min(MAX_GROUPS * 16).min(n).min(max_cols.max(1));
    let out_limit = (MAX_OUT_BYTES as usize).min(limit);
    // One top-k workgroup per row, so at most MAX_GROUPS rows per dispatch.
    let a_chunk = (out_limit / (b_chunk * 4))
        .max(1)
        .min(rows_fit)
        .min(MAX_GROUPS)
        .min(m)
        .min(max_rows.max(1));
    let skip_cols: Vec<u32> = (0..m)
        .map(|i| skip.column(i).filter(|&c| c < n).map_or(u32::MAX, |c| c as u32))
        .collect();
    let label = "pairwise_top_k";
    let mut best: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m];
    for b0 in (0..n).step_by(b_chunk) {
        let b1 = (b0 + b_chunk).min(n);
        let buf_b = storage(g, label, b.slice_rows(b0, b1));
        for a0 in (0..m).step_by(a_chunk) {
            let a1 = (a0 + a_chunk).min(m);
            let rows = a1 - a0;
            let buf_a = storage(g, label, a.slice_rows(a0, a1));
            let mut enc = g
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            let params = [rows as u32, (b1 - b0) as u32, words as u32, 0];
            let dist = encode_matrix(
                g,
                &mut enc,
                pairwise_pipeline(g),
                label,
                &buf_a,
                rows,
                &buf_b,
                b1 - b0,
                params,
            );
            let out = encode_top_k(
                g,
                &mut enc,
                top_k_pipeline(g),
                &dist,
                rows,
                b1 - b0,
                &skip_cols[a0..a1],
                k,
                b0,
            );
            let pairs = read_back(g, label, enc, &out, (rows * k * 8) as u64)?;
            for (r, got) in pairs.chunks_exact(2 * k).enumerate() {
                let row = &mut best[a0 + r];
                row.extend(
                    got.chunks_exact(2)
                        .map(|p| (p[0], p[1]))
                        .filter(|&(_, j)| j != u32::MAX),
                );
                if b0 > 0 {
                    // The k smallest of the union are among the k smallest of each column tile.
                    row.sort_unstable();
                    row.truncate(k);
                }
            }
        }
    }
    Ok(best
        .into_iter()
        .map(|row| row.into_iter().map(|(v, j)| (j as usize, v)).collect())
        .collect())
}
