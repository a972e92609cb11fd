//! Tiled squared-l2 distance matrices between two sets of `u8` images: for every pair, the
//! **maximum over a g x g grid of tiles** of the exact sum of squared pixel differences inside the
//! tile. This is the distance Carlini et al. ("Extracting Training Data from Diffusion Models",
//! USENIX Security 2023) use so that images with large uniform backgrounds do not look like copies:
//!
//! ```text
//! d_tile(a, b) = max_{t = 1..g²} sum_{p in tile t} (a_p - b_p)²
//! ```
//!
//! Images are channel-major C x H x W (as in [`crate::data::Dataset`]); a tile is an
//! (H/g) x (W/g) window across all channels, so H and W must be divisible by g.
//!
//! The kernel is `shaders/tiled_l2.wgsl`; [`tiled_sq_l2_cpu`] is its CPU twin. Both read rows
//! repacked tile after tile ([`TiledImages`]) and compute exact integers, so they agree bit for bit.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::context::{Gpu, gpu};
use super::matrix_kernel::{MAX_GROUPS, MAX_OUT_BYTES, compile, run_matrix_kernel};
use super::pairwise_l2::{Backend, PackedImages};
use crate::error::{CoreError, CoreResult};

/// Most pixels in one tile for which the u32 tile sum cannot overflow (255² per pixel).
pub const MAX_TILE_PIXELS: usize = (u32::MAX / (255 * 255)) as usize;

/// The tile geometry of `shape` = [C, H, W] cut into a `grid` x `grid` grid: (tile height, tile
/// width, pixels per tile across all channels), or a clear error when the shape does not divide.
pub fn tile_geometry(shape: [usize; 3], grid: usize) -> CoreResult<(usize, usize, usize)> {
    let [c, h, w] = shape;
    if c == 0 || h == 0 || w == 0 {
        return Err(CoreError::Invalid(format!("empty image shape {c}x{h}x{w}")));
    }
    if grid == 0 {
        return Err(CoreError::Invalid("the tile grid must be at least 1x1".into()));
    }
    if !h.is_multiple_of(grid) || !w.is_multiple_of(grid) {
        return Err(CoreError::Invalid(format!(
            "a {grid}x{grid} tile grid needs the image height and width to be divisible by {grid}, \
             but the images are {c}x{h}x{w} (C x H x W)"
        )));
    }
    let (th, tw) = (h / grid, w / grid);
    let tile_pixels = c * th * tw;
    if tile_pixels > MAX_TILE_PIXELS {
        return Err(CoreError::Invalid(format!(
            "tiles of {tile_pixels} pixels ({c}x{th}x{tw}) could overflow the exact u32 sums; \
             use a finer grid (at most {MAX_TILE_PIXELS} pixels per tile)"
        )));
    }
    Ok((th, tw, tile_pixels))
}

/// Images repacked tile-major for the tiled kernel: each row holds grid² tiles one after the
/// other; a tile holds its pixels channel by channel, row by row, zero-padded to whole u32 words.
#[derive(Clone, Debug)]
pub struct TiledImages {
    /// Number of rows.
    pub rows: usize,
    /// Image shape [C, H, W].
    pub shape: [usize; 3],
    /// Tiles per side.
    pub grid: usize,
    /// Pixels per tile (C * H/g * W/g).
    pub tile_pixels: usize,
    /// u32 words per tile after padding.
    pub tile_words: usize,
    /// `rows * grid² * tile_words * 4` bytes.
    pub data: Vec<u8>,
}

impl TiledImages {
    fn build<'a>(
        rows: usize,
        row_at: &(dyn Fn(usize) -> &'a [u8] + Sync),
        shape: [usize; 3],
        grid: usize,
    ) -> CoreResult<Self> {
        let (th, tw, tile_pixels) = tile_geometry(shape, grid)?;
        let [c, h, w] = shape;
        let tile_words = tile_pixels.div_ceil(4);
        let tile_bytes = tile_words * 4;
        let row_bytes = grid * grid * tile_bytes;
        let mut data = vec![0u8; rows * row_bytes];
        data.par_chunks_mut(row_bytes.max(1))
            .enumerate()
            .for_each(|(r, dst)| {
                let src = row_at(r);
                for ty in 0..grid {
                    for tx in 0..grid {
                        let tile = &mut dst[(ty * grid + tx) * tile_bytes..][..tile_bytes];
                        let mut o = 0;
                        for ch in 0..c {
                            for y in ty * th..(ty + 1) * th {
                                let s = ch * h * w + y * w + tx * tw;
                                tile[o..o + tw].copy_from_slice(&src[s..s + tw]);
                                o += tw;
                            }
                        }
                    }
                }
            });
        Ok(Self {
            rows,
            shape,
            grid,
            tile_pixels,
            tile_words,
            data,
        })
    }

    /// Repacks `p`, whose rows hold C x H x W pixels (padded to whole words as [`PackedImages`]
    /// does).
    pub fn new(p: &PackedImages, shape: [usize; 3], grid: usize) -> CoreResult<Self> {
        let len = shape.iter().product::<usize>();
        if p.row_bytes != len.div_ceil(4) * 4 || p.data.len() != p.rows * p.row_bytes {
            return Err(CoreError::Mismatch(format!(
                "packed rows of {} bytes do not hold {}x{}x{} images",
                p.row_bytes, shape[0], shape[1], shape[2]
            )));
        }
        let row_at = |r: usize| &p.data[r * p.row_bytes..r * p.row_bytes + len];
        Self::build(p.rows, &row_at, shape, grid)
    }

    /// Repacks N x C x H x W pixels stored back to back (e.g. `Dataset::pixels`).
    pub fn from_flat(pixels: &[u8], shape: [usize; 3], grid: usize) -> CoreResult<Self> {
        let len = shape.iter().product::<usize>();
        tile_geometry(shape, grid)?;
        if !pixels.len().is_multiple_of(len) {
            return Err(CoreError::Mismatch(format!(
                "{} bytes are not a whole number of {}x{}x{} images",
                pixels.len(),
                shape[0],
                shape[1],
                shape[2]
            )));
        }
        let row_at = |r: usize| &pixels[r * len..(r + 1) * len];
        Self::build(pixels.len() / len, &row_at, shape, grid)
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.grid * self.grid * self.tile_words * 4
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    fn slice_rows(&self, start: usize, end: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[start * rb..end * rb]
    }

    pub(super) fn check_compatible(&self, other: &Self) -> CoreResult<()> {
        if self.shape != other.shape || self.grid != other.grid {
            return Err(CoreError::Mismatch(format!(
                "tiled images differ: {:?} in a {}x{} grid vs {:?} in a {}x{} grid",
                self.shape, self.grid, self.grid, other.shape, other.grid, other.grid
            )));
        }
        Ok(())
    }
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

pub(super) fn pipeline(g: &Gpu) -> &wgpu::ComputePipeline {
    static PIPELINE: OnceLock<wgpu::ComputePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| compile(g, "tiled_l2", include_str!("../../shaders/tiled_l2.wgsl")))
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

/// Tiled distances of prepacked rows on the GPU when `prefer_gpu` and an adapter exist, else on
/// the CPU twin.
pub fn tiled_sq_l2_packed(
    a: &TiledImages,
    b: &TiledImages,
    prefer_gpu: bool,
) -> CoreResult<(Vec<u32>, Backend)> {
    if prefer_gpu {
        match gpu() {
            Ok(g) => {
                return Ok((
                    tiled_sq_l2_gpu_packed(&g, a, b)?,
                    Backend::Wgpu(g.info.name.clone()),
                ));
            }
            Err(why) => log::warn!("GPU compute unavailable, using the CPU twin: {why}"),
        }
    }
    Ok((tiled_sq_l2_cpu_packed(a, b)?, Backend::Cpu))
}

/// Tiled distances (max over a `grid` x `grid` grid of per-tile exact squared distances) on the
/// GPU when `prefer_gpu` and an adapter exist, else on the CPU twin. Errors with
/// [`CoreError::Invalid`] when H or W is not divisible by `grid`.
pub fn tiled_sq_l2(
    a: &PackedImages,
    b: &PackedImages,
    shape: [usize; 3],
    grid: usize,
    prefer_gpu: bool,
) -> CoreResult<(Vec<u32>, Backend)> {
    tiled_sq_l2_packed(
        &TiledImages::new(a, shape, grid)?,
        &TiledImages::new(b, shape, grid)?,
        prefer_gpu,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_rows(rows: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut s = seed;
        (0..rows)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (s >> 56) as u8
                    })
                    .collect()
            })
            .collect()
    }

    fn pack(rows: &[Vec<u8>]) -> PackedImages {
        let r: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        PackedImages::from_rows(&r)
    }

    #[test]
    fn cpu_twin_matches_direct_per_tile_sums_on_odd_shapes() {
        for (shape, grid) in [
            ([1, 28, 28], 4),
            ([3, 32, 32], 4),
            ([3, 32, 32], 8),
            ([2, 6, 10], 2),
            ([1, 5, 3], 1),
        ] {
            let len = shape.iter().product::<usize>();
            let mut a = random_rows(5, len, 7);
            let b = random_rows(9, len, 11);
            a[0].iter_mut().for_each(|v| *v = 255);
            let d = tiled_sq_l2_cpu(&pack(&a), &pack(&b), shape, grid).unwrap();
            for (i, x) in a.iter().enumerate() {
                for (j, y) in b.iter().enumerate() {
                    assert_eq!(
                        d[i * 9 + j],
                        tiled_sq_l2_pair(x, y, shape, grid).unwrap(),
                        "{shape:?} g={grid}"
                    );
                }
            }
            // One tile of the whole image is plain squared l2.
            if grid == 1 {
                let plain = crate::gpu::pairwise_sq_l2_cpu(&pack(&a), &pack(&b));
                assert_eq!(d, plain);
            }
        }
    }

    #[test]
    fn tiled_distance_is_the_worst_tile() {
        // 1x8x8 image, 2x2 grid of 4x4 tiles: a difference confined to the bottom-right tile.
        let a = vec![0u8; 64];
        let mut b = a.clone();
        b[7 * 8 + 7] = 10; // bottom-right tile
        b[5 * 8 + 4] = 3; // bottom-right tile
        b[0] = 4; // top-left tile
        let d = tiled_sq_l2_pair(&a, &b, [1, 8, 8], 2).unwrap();
        assert_eq!(d, 100 + 9);
        let cpu = tiled_sq_l2_cpu(&pack(&[a]), &pack(&[b]), [1, 8, 8], 2).unwrap();
        assert_eq!(cpu, vec![109]);
    }

    #[test]
    fn indivisible_shapes_and_mismatches_are_clear_errors() {
        let a = pack(&random_rows(2, 3 * 30 * 30, 1));
        let err = tiled_sq_l2_cpu(&a, &a, [3, 30, 30], 4).unwrap_err();
        assert!(matches!(err, CoreError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("divisible by 4"), "{err}");
        assert!(tiled_sq_l2(&a, &a, [3, 30, 30], 0, false).is_err());
        // Wrong shape for the rows.
        assert!(matches!(
            tiled_sq_l2_cpu(&a, &a, [3, 32, 32], 4),
            Err(CoreError::Mismatch(_))
        ));
        // Tiles too large for exact u32 sums.
        assert!(tile_geometry([3, 256, 256], 1).is_err());
        assert!(tile_geometry([3, 256, 256], 2).is_ok());
    }

    #[test]
    fn empty_inputs_give_empty_matrices() {
        let a = pack(&random_rows(3, 16, 1));
        let empty = PackedImages {
            rows: 0,
            row_bytes: 16,
            data: Vec::new(),
        };
        assert!(tiled_sq_l2_cpu(&a, &empty, [1, 4, 4], 2).unwrap().is_empty());
        assert!(tiled_sq_l2_cpu(&empty, &a, [1, 4, 4], 2).unwrap().is_empty());
    }
}
