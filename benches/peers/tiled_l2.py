"""PyTorch peer of `rote bench tiled` (and, with --mode nn, of `rote bench nn`) on MNIST-10k.

`rote bench tiled` (src/diffusion/bench.rs::bench_tiled, src/gpu/tiled_l2/) computes the m x n
matrix, between the first m and the first n mnist10k images, of Carlini et al.'s tiled distance:
    d(a, b) = max over the 4 x 4 grid of 7 x 7 tiles t of  sum_{p in t} (a_p - b_p)^2
on the raw u8 pixels (0..255, no scaling), exact integers (u32), the whole matrix back on the host.
The features here are exactly those: each image cut into 16 tiles of 49 pixels (row-major inside
a tile), as float32. Per tile, ||a||^2 + ||b||^2 - 2 a.b through one batched matmul (16 tiles x
queries x references), then the max over tiles. Every product and partial sum is an integer
below 2^24, so float32 (and TF32, whose 10-bit mantissa holds 0..255 exactly) gives the exact
integers; --verify checks rows against an int64 numpy reference. --method cdist uses
torch.cdist per tile instead (sqrt then square: not exact, the usual PyTorch idiom).

--mode nn mirrors `rote bench nn` (src/bench.rs::bench_nn): squared l2 over all 784 pixels and
the 10 nearest references of each query, the query itself skipped (i == j), queries in blocks of
1024; rote selects top-k on the host from the u32 block, here torch.topk on the device.

--topk K (tiled mode) adds a top-K-smallest search per row on the device (not in rote's tiled
bench, which stops at the matrix).

Timing: `seconds` runs from the host u8 images to the full result on the host (rote's gpu_secs
also includes repacking the images tile-major on the CPU, the upload and the read-back);
`device_seconds` sums the synchronised on-device compute of the chunks alone.
"""

import time

import numpy as np
import torch

import common

GRID = 4


def tile_major(u8, grid=GRID):
    """(N, C, H, W) u8 tensor -> (grid^2, N, C*th*tw) float32, tile t = ty*grid + tx."""
    n, c, h, w = u8.shape
    th, tw = h // grid, w // grid
    x = u8.view(n, c, grid, th, grid, tw).permute(2, 4, 0, 1, 3, 5)
    return x.reshape(grid * grid, n, c * th * tw).to(torch.float32).contiguous()


def tiled_block(a, b, b_norm, method):
    """(rows, n) int32 tiled distances for tile-major a (T, rows, P) against b (T, n, P)."""
    if method == "cdist":
        d = torch.cdist(a, b).square_()
    else:
        a_norm = a.square().sum(-1, keepdim=True)
        d = torch.baddbmm(b_norm.unsqueeze(1), a, b.transpose(1, 2), alpha=-2.0).add_(a_norm)
    return d.amax(0).round_().to(torch.int32)


def reference_rows(a_u8, b_u8, rows, grid=GRID, mode="tiled"):
    a = a_u8[rows].astype(np.int64)
    b = b_u8.astype(np.int64)
    if mode == "nn":
        return ((a[:, None] - b[None]) ** 2).reshape(len(rows), len(b), -1).sum(-1)
    m, c, h, w = a.shape
    th, tw = h // grid, w // grid
    diff = (a[:, None] - b[None]) ** 2  # rows, n, c, h, w
    diff = diff.reshape(len(rows), len(b), c, grid, th, grid, tw).sum(axis=(2, 4, 6))
    return diff.reshape(len(rows), len(b), -1).max(-1)


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=10_000, help="queries (rote default 10000)")
    p.add_argument("--n", type=int, default=10_000, help="references (rote default 10000)")
    p.add_argument("--mode", choices=["tiled", "nn"], default="tiled")
    p.add_argument("--method", choices=["mm", "cdist"], default="mm")
    p.add_argument("--block", type=int, default=1024, help="queries per chunk (rote nn uses 1024)")
    p.add_argument("--topk", type=int, default=0, help="tiled mode: also the K nearest per row")
    p.add_argument("--verify", type=int, default=4, help="rows checked against an exact int64 reference")
    p.add_argument("--warmup", type=int, default=1, help="untimed chunk computations first")
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)

    px, _ = common.load_pair("mnist10k")
    m, n = min(a.m, len(px)), min(a.n, len(px))
    a_u8, b_u8 = px[:m], px[:n]
    dim = int(np.prod(px.shape[1:]))
    k = 10 if a.mode == "nn" else a.topk

    def prepare(x_u8):
        t = torch.from_numpy(x_u8).to(dev)
        if a.mode == "nn":
            return t.reshape(1, len(x_u8), dim).to(torch.float32)
        return tile_major(t)

    def run(count_device):
        dev_s = 0.0
        A, B = prepare(a_u8), prepare(b_u8)
        b_norm = B.square().sum(-1)
        out = torch.empty((m, n), dtype=torch.int32).pin_memory() if dev.type == "cuda" else torch.empty((m, n), dtype=torch.int32)
        tops = []
        for lo in range(0, m, a.block):
            hi = min(lo + a.block, m)
            common.sync(dev)
            t0 = time.perf_counter()
            d = tiled_block(A[:, lo:hi], B, b_norm, a.method)
            if k > 0:
                dk = d.to(torch.int64)
                if a.mode == "nn":
                    rows = torch.arange(lo, hi, device=dev)
                    keep = rows < n
                    dk[keep, rows[keep]] = torch.iinfo(torch.int64).max  # skip i == j
                tops.append(torch.topk(dk, min(k, n), dim=1, largest=False))
            common.sync(dev)
            dev_s += time.perf_counter() - t0
            if a.mode == "nn":
                tops[-1] = (tops[-1].values.cpu(), tops[-1].indices.cpu())
            else:
                out[lo:hi].copy_(d, non_blocking=True)
                if k > 0:
                    tops[-1] = (tops[-1].values.cpu(), tops[-1].indices.cpu())
        common.sync(dev)
        return out, tops, dev_s

    for _ in range(a.warmup):
        A, B = prepare(a_u8[: min(a.block, m)]), prepare(b_u8)
        tiled_block(A, B, B.square().sum(-1), a.method)
        common.sync(dev)

    with common.Timer(dev) as t:
        out, tops, dev_s = run(True)

    verify = None
    if a.verify > 0:
        rows = np.linspace(0, m - 1, num=min(a.verify, m)).astype(np.int64)
        ref = reference_rows(a_u8, b_u8, rows, mode=a.mode)
        if a.mode == "nn":
            ref = ref.astype(np.int64)
            ref[np.arange(len(rows)), rows] = np.iinfo(np.int64).max
            got_v = torch.cat([v for v, _ in tops]).numpy()[rows]
            want_v = np.sort(ref, axis=1)[:, :k]
            verify = {"rows": len(rows), "topk_values_identical": bool((got_v == want_v).all())}
        else:
            got = out.numpy()[rows].astype(np.int64)
            verify = {"rows": len(rows), "identical": bool((got == ref).all()), "max_abs_diff": int(np.abs(got - ref).max())}
        common.note("verify:", verify)

    pairs = m * n
    bytes_min = (m + n) * dim + (m * n * 4 if a.mode == "tiled" else m * k * 16)
    common.emit(
        "tiled_l2" if a.mode == "tiled" else "nn",
        dev,
        t.seconds,
        pairs / t.seconds,
        items="pairs",
        m=m,
        n=n,
        dim=dim,
        grid=GRID if a.mode == "tiled" else None,
        method=a.method,
        block=a.block,
        topk=k,
        pairs_per_sec=pairs / t.seconds,
        device_seconds=dev_s,
        device_pairs_per_sec=pairs / dev_s,
        gsqdiff_per_sec=pairs * dim / t.seconds / 1e9,
        achieved_gbps=bytes_min / t.seconds / 1e9,
        device_achieved_gbps=bytes_min / dev_s / 1e9,
        gbps_counts="u8 inputs once + the int32 matrix once (nn: top-k values and indices)",
        verify=verify,
        mirrors=(f"rote bench tiled --m {m} --n {n} --json" if a.mode == "tiled" else f"rote bench nn --m {m} --n {n} --json"),
    )


if __name__ == "__main__":
    main()
