//! The GPU side of `shaders/tiled_l2.wgsl`: the compiled pipeline and the dispatches, tiled to
//! fit the device's buffer and dispatch-size limits.

use std::sync::OnceLock;

use super::repack::TiledImages;
use crate::error::CoreResult;
use crate::gpu::PackedImages;
use crate::gpu::context::Gpu;
use crate::gpu::matrix_kernel::{MAX_GROUPS, MAX_OUT_BYTES, compile, run_matrix_kernel};

pub(in crate::gpu) fn pipeline(g: &Gpu) -> &wgpu::ComputePipeline {
    static PIPELINE: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| compile(g, "tiled_l2", include_str!("../../../shaders/tiled_l2.wgsl")))
}

/// One dispatch: `m` rows of `a` against `n` rows of `b`, `words` u32 per row.
fn dispatch(
    g: &Gpu,
    a: &[u8],
    m: usize,
    b: &[u8],
    n: usize,
    words: usize,
    tile_words: usize,
) -> CoreResult<Vec<u32>> {
    let params = [m as u32, n as u32, words as u32, tile_words as u32];
    run_matrix_kernel(g, pipeline(g), "tiled_l2", a, m, b, n, params)
}

/// The kernel on `g` on prepacked rows, tiled to fit the device's buffer limits and the
/// dispatch-size limit.
pub fn tiled_sq_l2_gpu_packed(g: &Gpu, a: &TiledImages, b: &TiledImages) -> CoreResult<Vec<u32>> {
    a.check_compatible(b)?;
    let (m, n) = (a.rows, b.rows);
    let mut out = vec![0u32; m * n];
    if m == 0 || n == 0 {
        return Ok(out);
    }
    let row_bytes = a.row_bytes();
    let words = row_bytes / 4;
    let limit = g.info.max_storage_binding.min(g.info.max_buffer) as usize;
    let rows_fit = (limit / row_bytes).max(1);
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
                a.tile_words,
            )?;
            for (r, src) in block.chunks_exact(b1 - b0).enumerate() {
                out[(a0 + r) * n + b0..(a0 + r) * n + b1].copy_from_slice(src);
            }
        }
    }
    Ok(out)
}

/// The kernel on `g`: the m x n matrix of exact tiled squared distances between the rows of `a`
/// and `b` (C x H x W images, `shape` = [C, H, W]) on a `grid` x `grid` grid, row-major.
pub fn tiled_sq_l2_gpu(
    g: &Gpu,
    a: &PackedImages,
    b: &PackedImages,
    shape: [usize; 3],
    grid: usize,
) -> CoreResult<Vec<u32>> {
    tiled_sq_l2_gpu_packed(
        g,
        &TiledImages::new(a, shape, grid)?,
        &TiledImages::new(b, shape, grid)?,
    )
}
