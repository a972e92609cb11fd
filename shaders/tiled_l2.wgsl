// tiled_l2.wgsl — max over a grid of tiles of the exact squared-l2 distance between u8 images
// (the tiled distance of Carlini et al., "Extracting Training Data from Diffusion Models", 2023).
//
// Bindings (group 0):
//   0: a      storage, read        queries, m rows of `words` u32 in tile-major layout: tile after
//                                  tile, each tile's pixels (all channels) packed 4 per u32,
//                                  little-endian, and zero-padded to `tile_words` words
//   1: b      storage, read        references, n rows of `words` u32, same layout
//   2: out    storage, read_write  m x n u32: max over tiles of the sum over the tile's pixels of
//                                  (a - b)^2, exact integers (a tile holds at most 66052 pixels)
//   3: params uniform              { m, n, words, tile_words }; words = tiles * tile_words
// Workgroup: 16 x 16 threads, one output per thread; tiles of 16 rows x 16 words staged in
// workgroup memory (as in pairwise_l2.wgsl); a running sum is folded into the maximum every
// `tile_words` words. Dispatch ceil(n / 16) x ceil(m / 16).
// CPU twin: src/gpu/tiled_l2.rs `tiled_sq_l2_cpu` (same integers). The host repacks channel-major
// C x H x W rows into the tile-major layout (`TiledImages`).

struct Params {
    m: u32,
    n: u32,
    words: u32,
    tile_words: u32,
}

@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

const TILE: u32 = 16u;

var<workgroup> tile_a: array<array<u32, 16>, 16>;
var<workgroup> tile_b: array<array<u32, 16>, 16>;

fn sq_diff4(x: u32, y: u32) -> u32 {
    var acc = 0u;
    for (var s = 0u; s < 32u; s += 8u) {
        let d = i32((x >> s) & 0xffu) - i32((y >> s) & 0xffu);
        acc += u32(d * d);
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let col = wid.x * TILE + lid.x; // reference index
    let row = wid.y * TILE + lid.y; // query index
    let load_a = wid.y * TILE + lid.y;
    let load_b = wid.x * TILE + lid.y;
    var acc = 0u;  // sum over the current image tile
    var best = 0u; // max over finished image tiles
    var seen = 0u; // words of the current image tile summed so far
    let chunks = (params.words + TILE - 1u) / TILE;
    for (var c = 0u; c < chunks; c++) {
        let k = c * TILE + lid.x;
        var va = 0u;
        if (load_a < params.m && k < params.words) {
            va = a[load_a * params.words + k];
        }
        var vb = 0u;
        if (load_b < params.n && k < params.words) {
            vb = b[load_b * params.words + k];
        }
        tile_a[lid.y][lid.x] = va;
        tile_b[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk++) {
            acc += sq_diff4(tile_a[lid.y][kk], tile_b[lid.x][kk]);
            seen += 1u;
            if (seen == params.tile_words) {
                best = max(best, acc);
                acc = 0u;
                seen = 0u;
            }
        }
        workgroupBarrier();
    }
    // Words past the end load as zero, so `acc` holds 0 here unless the layout was inconsistent.
    best = max(best, acc);
    if (row < params.m && col < params.n) {
        out[row * params.n + col] = best;
    }
}
