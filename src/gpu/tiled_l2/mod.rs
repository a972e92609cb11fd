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

mod cpu;
mod kernel;
mod repack;

pub use cpu::{tiled_sq_l2_cpu, tiled_sq_l2_cpu_packed, tiled_sq_l2_pair};
pub(super) use kernel::pipeline;
pub use kernel::{tiled_sq_l2_gpu, tiled_sq_l2_gpu_packed};
pub use repack::{MAX_TILE_PIXELS, TiledImages, tile_geometry};

use super::context::gpu;
use super::pairwise_l2::{Backend, PackedImages};
use crate::error::CoreResult;

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
/// [`CoreError::Invalid`](crate::error::CoreError::Invalid) when H or W is not divisible by `grid`.
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
mod tests;
