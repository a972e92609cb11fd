// topk_rows.wgsl — the k smallest entries of each row of a u32 distance matrix, kept on the device.
//
// Bindings (group 0):
//   0: dist       storage, read        rows x cols u32, row-major (the matrix a distance kernel wrote)
//   1: skip_cols  storage, read        rows u32: the global column each row must not return
//                                      (0xffffffff: none), e.g. the query's own image
//   2: out        storage, read_write  rows x k pairs (distance, global column), ascending by
//                                      (distance, column); slots beyond the row's candidates hold
//                                      (0xffffffff, 0xffffffff)
//   3: params     uniform              { rows, cols, k (1..=MAX_K), col0 } (global column = col0 + j)
// Workgroup: 64 threads, one workgroup per row; dispatch rows x 1 x 1 (rows <= 65535). Thread t
// scans columns t, t + 64, ... keeping a sorted private top-k, then k rounds of a workgroup
// min-reduction over the threads' list heads (ties broken by the smaller column) emit the result.
// MAX_K is 32 here; the host also compiles a copy with the MAX_K line set to 64 for 32 < k <= 64
// (src/gpu/topk_rows.rs), so that small k keep short private lists.
// Used on the output of pairwise_l2.wgsl and of tiled_l2.wgsl, in the same submission.
// CPU twin: src/gpu/pairwise_l2.rs `top_k_rows` (same k entries, same order and ties, same skip).

struct Params {
    rows: u32,
    cols: u32,
    k: u32,
    col0: u32,
}

@group(0) @binding(0) var<storage, read> dist: array<u32>;
@group(0) @binding(1) var<storage, read> skip_cols: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

const WG: u32 = 64u;
const MAX_K: u32 = 32u;
const NONE: u32 = 0xffffffffu;

var<workgroup> red_d: array<u32, 64>;
var<workgroup> red_i: array<u32, 64>;

// (d0, i0) before (d1, i1): smaller distance, then smaller column.
fn before(d0: u32, i0: u32, d1: u32, i1: u32) -> bool {
    return d0 < d1 || (d0 == d1 && i0 < i1);
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row = wid.x;
    if (row >= params.rows) {
        return;
    }
    let k = clamp(params.k, 1u, MAX_K);
    var ld: array<u32, MAX_K>;
    var li: array<u32, MAX_K>;
    var count = 0u;
    let skip = skip_cols[row];
    let base = row * params.cols;
    // Private top-k, sorted by (distance, column). Columns only grow along a thread's scan, so a
    // new entry goes after every kept entry of equal distance, and one tying the k-th is dropped.
    for (var j = lid; j < params.cols; j += WG) {
        let col = params.col0 + j;
        if (col == skip) {
            continue;
        }
        let d = dist[base + j];
        if (count == k && d >= ld[k - 1u]) {
            continue;
        }
        var p = min(count, k - 1u);
        loop {
            if (p == 0u || ld[p - 1u] <= d) {
                break;
            }
            ld[p] = ld[p - 1u];
            li[p] = li[p - 1u];
            p -= 1u;
        }
        ld[p] = d;
        li[p] = col;
        count = min(count + 1u, k);
    }
    // k rounds: the smallest head wins; its owner (columns are unique) moves to its next entry.
    var head = 0u;
    for (var r = 0u; r < k; r++) {
        var hd = NONE;
        var hi = NONE;
        if (head < count) {
            hd = ld[head];
            hi = li[head];
        }
        red_d[lid] = hd;
        red_i[lid] = hi;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if (lid < s) {
                let od = red_d[lid + s];
                let oi = red_i[lid + s];
                if (before(od, oi, red_d[lid], red_i[lid])) {
                    red_d[lid] = od;
                    red_i[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        let wd = red_d[0];
        let wi = red_i[0];
        if (lid == 0u) {
            out[(row * k + r) * 2u] = wd;
            out[(row * k + r) * 2u + 1u] = wi;
        }
        if (wi != NONE && wi == hi) {
            head += 1u;
        }
        // Everyone has read the winner before the next round overwrites the reduction arrays.
        workgroupBarrier();
    }
}
