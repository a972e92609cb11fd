//! k-nearest neighbours with the selection on the device: a distance kernel (pairwise l2,
//! `shaders/pairwise_l2.wgsl`, or tiled l2, `shaders/tiled_l2.wgsl`) writes a block of the distance
//! matrix into a device buffer, `shaders/topk_rows.wgsl` picks the k smallest entries of each row
//! from it in the same submission, and only rows x k (distance, column) pairs are read back. The
//! CPU twins are [`pairwise_top_k_cpu`] ([`pairwise_sq_l2_cpu`] then [`top_k_rows`]) and
//! [`tiled_top_k_cpu`] ([`tiled_sq_l2_cpu_packed`] then [`top_k_rows`]); each pair gives the same
//! k entries in the same order (ties broken by the smaller column) with the same skipped column.

use std::sync::OnceLock;

use super::context::{Gpu, gpu};
use super::matrix_kernel::{
    MAX_GROUPS, MAX_OUT_BYTES, compile, encode_matrix, encode_top_k, read_back, storage,
};
use super::pairwise_l2::{
    Backend, PackedImages, pairwise_pipeline, pairwise_sq_l2, pairwise_sq_l2_cpu, top_k_rows,
};
use super::tiled_l2::{TiledImages, pipeline as tiled_pipeline, tiled_sq_l2_cpu_packed, tiled_sq_l2_packed};
use crate::error::{CoreError, CoreResult};

/// Largest k the device top-k supports (its per-thread lists are this long).
pub const MAX_TOP_K: usize = 64;

/// Largest k served by the short-list copy of the top-k kernel.
const SHORT_K: usize = 32;

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

/// The top-k kernel whose private lists hold at least `k` entries: the shader as written (32) for
/// k <= [`SHORT_K`], else a copy with 64-entry lists.
fn top_k_pipeline(g: &Gpu, k: usize) -> &wgpu::ComputePipeline {
    const SOURCE: &str = include_str!("../../shaders/topk_rows.wgsl");
    static SHORT: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    static LONG: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    if k <= SHORT_K {
        SHORT.get_or_init(|| compile(g, "topk_rows", SOURCE))
    } else {
        LONG.get_or_init(|| {
            let long = SOURCE.replace(
                "const MAX_K: u32 = 32u;",
                &format!("const MAX_K: u32 = {MAX_TOP_K}u;"),
            );
            compile(g, "topk_rows_64", long)
        })
    }
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
    check_k(k)?;
    if a.rows == 0 || b.rows == 0 || k == 0 || a.row_bytes == 0 {
        // Nothing to dispatch (and no zero-sized bindings): the twin is trivial here.
        return Ok(pairwise_top_k_cpu(a, b, k, skip));
    }
    let tiles = Tiles { max_rows, max_cols };
    let (a, b) = (KernelRows::from(a), KernelRows::from(b));
    matrix_top_k_gpu(g, pairwise_pipeline(g), "pairwise_top_k", a, b, 0, k, skip, tiles)
}

/// CPU twin of [`tiled_top_k_gpu`]: the full matrix with [`tiled_sq_l2_cpu_packed`], then
/// [`top_k_rows`].
pub fn tiled_top_k_cpu(a: &TiledImages, b: &TiledImages, k: usize, skip: SkipColumn<'_>) -> CoreResult<TopK> {
    let d = tiled_sq_l2_cpu_packed(a, b)?;
    Ok(top_k_rows(&d, a.rows, b.rows, k, &|i, j| {
        skip.column(i) == Some(j)
    }))
}

/// The `k` (<= [`MAX_TOP_K`]) nearest rows of `b` to each row of `a` by the exact tiled squared
/// l2 (max over tiles, see [`super::tiled_sq_l2_gpu_packed`]), as (column, distance) sorted by
/// distance then column, computed and selected on `g` so that only k pairs per query come back;
/// identical to [`tiled_top_k_cpu`]. Tiled to the device's buffer and dispatch limits.
pub fn tiled_top_k_gpu(
    g: &Gpu,
    a: &TiledImages,
    b: &TiledImages,
    k: usize,
    skip: SkipColumn<'_>,
) -> CoreResult<TopK> {
    tiled_top_k_gpu_tiled(g, a, b, k, skip, usize::MAX, usize::MAX)
}

/// [`tiled_top_k_gpu`] with at most `max_rows` queries and `max_cols` references per dispatch (for
/// the tests, as [`pairwise_top_k_gpu_tiled`]).
#[doc(hidden)]
pub fn tiled_top_k_gpu_tiled(
    g: &Gpu,
    a: &TiledImages,
    b: &TiledImages,
    k: usize,
    skip: SkipColumn<'_>,
    max_rows: usize,
    max_cols: usize,
) -> CoreResult<TopK> {
    a.check_compatible(b)?;
    check_k(k)?;
    if a.rows == 0 || b.rows == 0 || k == 0 || a.row_bytes() == 0 {
        return tiled_top_k_cpu(a, b, k, skip);
    }
    let tile_words = u32::try_from(a.tile_words)
        .map_err(|_| CoreError::Invalid(format!("{} words per tile", a.tile_words)))?;
    let tiles = Tiles { max_rows, max_cols };
    let (a, b) = (KernelRows::from(a), KernelRows::from(b));
    matrix_top_k_gpu(
        g,
        tiled_pipeline(g),
        "tiled_top_k",
        a,
        b,
        tile_words,
        k,
        skip,
        tiles,
    )
}

/// [`pairwise_top_k_gpu`] when `prefer_gpu`, an adapter exists and k <= [`MAX_TOP_K`]; for larger
/// k the full matrix ([`pairwise_sq_l2`], GPU or CPU) goes through [`top_k_rows`]; else
/// [`pairwise_top_k_cpu`]. The same neighbours whichever runs.
pub fn pairwise_top_k(
    a: &PackedImages,
    b: &PackedImages,
    k: usize,
    skip: SkipColumn<'_>,
    prefer_gpu: bool,
) -> CoreResult<(TopK, Backend)> {
    if let Some(g) = device_for(k, prefer_gpu) {
        return Ok((
            pairwise_top_k_gpu(&g, a, b, k, skip)?,
            Backend::Wgpu(g.info.name.clone()),
        ));
    }
    let (d, used) = pairwise_sq_l2(a, b, prefer_gpu && k > MAX_TOP_K)?;
    let top = top_k_rows(&d, a.rows, b.rows, k, &|i, j| skip.column(i) == Some(j));
    Ok((top, used))
}

/// [`tiled_top_k_gpu`] when `prefer_gpu`, an adapter exists and k <= [`MAX_TOP_K`]; for larger k
/// the full matrix ([`tiled_sq_l2_packed`], GPU or CPU) goes through [`top_k_rows`]; else
/// [`tiled_top_k_cpu`]. The same neighbours whichever runs.
pub fn tiled_top_k(
    a: &TiledImages,
    b: &TiledImages,
    k: usize,
    skip: SkipColumn<'_>,
    prefer_gpu: bool,
) -> CoreResult<(TopK, Backend)> {
    if let Some(g) = device_for(k, prefer_gpu) {
        return Ok((
            tiled_top_k_gpu(&g, a, b, k, skip)?,
            Backend::Wgpu(g.info.name.clone()),
        ));
    }
    let (d, used) = tiled_sq_l2_packed(a, b, prefer_gpu && k > MAX_TOP_K)?;
    let top = top_k_rows(&d, a.rows, b.rows, k, &|i, j| skip.column(i) == Some(j));
    Ok((top, used))
}

/// The adapter for a device top-k of `k`, when wanted, possible and present.
fn device_for(k: usize, prefer_gpu: bool) -> Option<std::sync::Arc<Gpu>> {
    if !prefer_gpu || k > MAX_TOP_K {
        return None;
    }
    match gpu() {
        Ok(g) => Some(g),
        Err(why) => {
            log::warn!("GPU compute unavailable, using the CPU twin: {why}");
            None
        }
    }
}

fn check_k(k: usize) -> CoreResult<()> {
    if k > MAX_TOP_K {
        return Err(CoreError::Invalid(format!(
            "the device top-k supports k <= {MAX_TOP_K}, not {k}"
        )));
    }
    Ok(())
}

/// Rows as a distance kernel reads them: `rows` rows of `row_bytes` (a multiple of 4) bytes.
#[derive(Clone, Copy)]
struct KernelRows<'a> {
    rows: usize,
    row_bytes: usize,
    data: &'a [u8],
}

impl<'a> From<&'a PackedImages> for KernelRows<'a> {
    fn from(p: &'a PackedImages) -> Self {
        Self {
            rows: p.rows,
            row_bytes: p.row_bytes,
            data: &p.data,
        }
    }
}

impl<'a> From<&'a TiledImages> for KernelRows<'a> {
    fn from(t: &'a TiledImages) -> Self {
        Self {
            rows: t.rows,
            row_bytes: t.row_bytes(),
            data: &t.data,
        }
    }
}

impl KernelRows<'_> {
    fn slice(&self, start: usize, end: usize) -> &[u8] {
        &self.data[start * self.row_bytes..end * self.row_bytes]
    }
}

/// Caps on the queries and references per dispatch (beyond the device's own limits).
#[derive(Clone, Copy)]
struct Tiles {
    max_rows: usize,
    max_cols: usize,
}

/// Distances by the 16x16 matrix kernel `pipe` (uniform `[rows, cols, words, param3]`) between
/// `a` and `b`, then `shaders/topk_rows.wgsl` on its output buffer in the same submission; only
/// k pairs per query come back. Tiled over rows (one top-k workgroup per row, so at most
/// [`MAX_GROUPS`] per dispatch) and columns (buffer limits; the k smallest of the union are among
/// the k smallest of each column tile, merged exactly on the host). Needs non-empty `a`, `b`, rows
/// of equal non-zero size, and 1 <= k <= [`MAX_TOP_K`].
#[allow(
    clippy::too_many_arguments,
    reason = "the kernel, its operands and the search"
)]
fn matrix_top_k_gpu(
    g: &Gpu,
    pipe: &wgpu::ComputePipeline,
    label: &str,
    a: KernelRows<'_>,
    b: KernelRows<'_>,
    param3: u32,
    k: usize,
    skip: SkipColumn<'_>,
    tiles: Tiles,
) -> CoreResult<TopK> {
    let (m, n) = (a.rows, b.rows);
    if n > u32::MAX as usize - 1 {
        return Err(CoreError::Invalid(format!(
            "{n} references exceed the u32 column range"
        )));
    }
    let words = a.row_bytes / 4;
    let limit = g.info.max_storage_binding.min(g.info.max_buffer) as usize;
    let rows_fit = (limit / a.row_bytes).max(1);
    let b_chunk = rows_fit.min(MAX_GROUPS * 16).min(n).min(tiles.max_cols.max(1));
    let out_limit = (MAX_OUT_BYTES as usize).min(limit);
    // One top-k workgroup per row, so at most MAX_GROUPS rows per dispatch.
    let a_chunk = (out_limit / (b_chunk * 4))
        .max(1)
        .min(rows_fit)
        .min(MAX_GROUPS)
        .min(m)
        .min(tiles.max_rows.max(1));
    let skip_cols: Vec<u32> = (0..m)
        .map(|i| skip.column(i).filter(|&c| c < n).map_or(u32::MAX, |c| c as u32))
        .collect();
    let select = top_k_pipeline(g, k);
    let mut best: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m];
    for b0 in (0..n).step_by(b_chunk) {
        let b1 = (b0 + b_chunk).min(n);
        let buf_b = storage(g, label, b.slice(b0, b1));
        for a0 in (0..m).step_by(a_chunk) {
            let a1 = (a0 + a_chunk).min(m);
            let rows = a1 - a0;
            let buf_a = storage(g, label, a.slice(a0, a1));
            let mut enc = g
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            let params = [rows as u32, (b1 - b0) as u32, words as u32, param3];
            let dist = encode_matrix(g, &mut enc, pipe, label, &buf_a, rows, &buf_b, b1 - b0, params);
            let out = encode_top_k(
                g,
                &mut enc,
                select,
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
