// pairwise_l2.wgsl — exact squared-l2 distances between two sets of u8 images.
//
// Bindings (group 0):
//   0: a      storage, read        queries, m rows of `words` u32 (4 pixels packed per u32, little-endian)
//   1: b      storage, read        references, n rows of `words` u32
//   2: out    storage, read_write  m x n u32: sum over pixels of (a - b)^2, exact integers
//   3: params uniform              { m, n, words, _pad }
// Workgroup: 16 x 16 threads, one output per thread; tiles of 16 rows x 16 words staged in
// workgroup memory. Dispatch ceil(n / 16) x ceil(m / 16).
// CPU twin: src/gpu/pairwise_l2.rs `pairwise_sq_l2_cpu` (same integers, so same neighbours).

struct Params {
    m: u32,
    n: u32,
    words: u32,
    _pad: u32,
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
    var acc = 0u;
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
        }
        workgroupBarrier();
    }
    if (row < params.m && col < params.n) {
        out[row * params.n + col] = acc;
    }
}
