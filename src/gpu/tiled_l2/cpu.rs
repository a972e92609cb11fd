//! The CPU twin of `shaders/tiled_l2.wgsl`: exact integer tiled distances on repacked rows, and
//! the direct per-pair form on images in their natural layout.

use rayon::prelude::*;

use super::repack::{TiledImages, tile_geometry};
use crate::error::{CoreError, CoreResult};
use crate::gpu::PackedImages;

fn sq_diff_sum(x: &[u8], y: &[u8]) -> u32 {
    x.iter()
        .zip(y)
        .map(|(&p, &q)| {
            let d = i32::from(p) - i32::from(q);
            (d * d) as u32
        })
        .sum()
}

/// The tiled squared distance of one pair of C x H x W images in their natural (channel-major)
/// layout, computed directly; only the first C·H·W bytes of each slice are read.
pub fn tiled_sq_l2_pair(x: &[u8], y: &[u8], shape: [usize; 3], grid: usize) -> CoreResult<u32> {
    let (th, tw, _) = tile_geometry(shape, grid)?;
    let [c, h, w] = shape;
    if x.len() < c * h * w || y.len() < c * h * w {
        return Err(CoreError::Mismatch(format!(
            "images of {} and {} bytes do not hold {c}x{h}x{w} pixels",
            x.len(),
            y.len()
        )));
    }
    let mut best = 0u32;
    for ty in 0..grid {
        for tx in 0..grid {
            let mut acc = 0u32;
            for ch in 0..c {
                for yy in ty * th..(ty + 1) * th {
                    let s = ch * h * w + yy * w + tx * tw;
                    acc += sq_diff_sum(&x[s..s + tw], &y[s..s + tw]);
                }
            }
            best = best.max(acc);
        }
    }
    Ok(best)
}

/// CPU twin of the kernel on prepacked rows: the m x n matrix of exact tiled squared distances,
/// row-major.
pub fn tiled_sq_l2_cpu_packed(a: &TiledImages, b: &TiledImages) -> CoreResult<Vec<u32>> {
    a.check_compatible(b)?;
    let n = b.rows;
    let tile_bytes = a.tile_words * 4;
    let mut out = vec![0u32; a.rows * n];
    out.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        let x = a.row(i);
        for (j, o) in row.iter_mut().enumerate() {
            let y = b.row(j);
            *o = x
                .chunks_exact(tile_bytes)
                .zip(y.chunks_exact(tile_bytes))
                .map(|(p, q)| sq_diff_sum(p, q))
                .max()
                .unwrap_or(0);
        }
    });
    Ok(out)
}

/// CPU twin of the kernel: the m x n matrix of exact tiled squared distances between the rows of
/// `a` and `b` (C x H x W images, `shape` = [C, H, W]) on a `grid` x `grid` grid, row-major.
pub fn tiled_sq_l2_cpu(
    a: &PackedImages,
    b: &PackedImages,
    shape: [usize; 3],
    grid: usize,
) -> CoreResult<Vec<u32>> {
    tiled_sq_l2_cpu_packed(
        &TiledImages::new(a, shape, grid)?,
        &TiledImages::new(b, shape, grid)?,
    )
}
