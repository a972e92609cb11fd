//! Host-side repacking for the tiled kernel: the tile geometry of an image shape and the rows
//! rearranged tile after tile ([`TiledImages`]), each tile padded to whole u32 words.

use rayon::prelude::*;

use crate::error::{CoreError, CoreResult};
use crate::gpu::PackedImages;

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

    pub(super) fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    pub(super) fn slice_rows(&self, start: usize, end: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[start * rb..end * rb]
    }

    pub(in crate::gpu) fn check_compatible(&self, other: &Self) -> CoreResult<()> {
        if self.shape != other.shape || self.grid != other.grid {
            return Err(CoreError::Mismatch(format!(
                "tiled images differ: {:?} in a {}x{} grid vs {:?} in a {}x{} grid",
                self.shape, self.grid, self.grid, other.shape, other.grid, other.grid
            )));
        }
        Ok(())
    }
}
