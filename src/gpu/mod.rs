//! GPU compute through wgpu: our own WGSL kernels from `shaders/`, each with a CPU twin that gives
//! the same numbers. Jobs use the GPU when an adapter exists and fall back to the twin otherwise.
//! (candle has no wgpu backend; model maths runs on candle, distances and neighbours run here.)

mod context;
mod matrix_kernel;
mod pairwise_l2;
mod tiled_l2;
mod topk_rows;

pub use context::{Gpu, GpuInfo, gpu, gpu_info};
pub use pairwise_l2::{
    Backend, Neighbour, PackedImages, nearest_neighbours, pairwise_sq_l2, pairwise_sq_l2_cpu,
    pairwise_sq_l2_gpu, top_k_rows,
};
pub use tiled_l2::{
    MAX_TILE_PIXELS, TiledImages, tile_geometry, tiled_sq_l2, tiled_sq_l2_cpu, tiled_sq_l2_cpu_packed,
    tiled_sq_l2_gpu, tiled_sq_l2_gpu_packed, tiled_sq_l2_packed, tiled_sq_l2_pair,
};
pub use topk_rows::{
    MAX_TOP_K, SkipColumn, TopK, pairwise_top_k, pairwise_top_k_cpu, pairwise_top_k_gpu,
    pairwise_top_k_gpu_tiled, tiled_top_k, tiled_top_k_cpu, tiled_top_k_gpu, tiled_top_k_gpu_tiled,
};
