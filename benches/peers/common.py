"""Shared helpers of the PyTorch peer benchmarks (see README.md in this folder).

Every peer prints exactly one JSON object on one line to stdout:
    {"workload": ..., "device": ..., "seconds": ..., "items_per_sec": ..., ...}
so a driver can read rote's `--json` figures and the peer's side by side. Progress and notes go
to stderr only.
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.path.join(REPO, "assets")


# ---------------------------------------------------------------------------------------------
# Data: IDX (gzip'd or plain), as src/data/idx.rs reads it.
# ---------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """An IDX file (gzip'd when the name ends in .gz) as a numpy array of its stored shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    code, ndim = raw[2], raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[code])
    n = int(np.prod(dims)) if dims else 1
    data = np.frombuffer(raw, dtype=dt, count=n, offset=4 + 4 * ndim)
    return data.reshape(dims).astype(dt.newbyteorder("=") if dt.itemsize > 1 else dt)


def load_pair(folder, images="images-idx3-ubyte.gz", labels="labels-idx1-ubyte.gz"):
    """(pixels u8 N x C x H x W, labels int64 N) of a bundled set folder under assets/."""
    x = read_idx(os.path.join(ASSETS, folder, images))
    y = read_idx(os.path.join(ASSETS, folder, labels)).astype(np.int64)
    if x.ndim == 3:  # N x H x W grey -> N x 1 x H x W (rote's Dataset layout, channel-major)
        x = x[:, None, :, :]
    return np.ascontiguousarray(x), y


def stratified_train_indices(labels, test_frac, seed=0):
    """Training-split indices of a seeded stratified split with rote's per-class sizes
    (n_test = round(class size * test_frac)). The members drawn differ from rote's (rote shuffles
    with ChaCha8 + rand's Fisher-Yates); only the sizes matter for timing."""
    rng = np.random.default_rng(seed)
    train = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        n_test = int(math.floor(len(members) * test_frac + 0.5))
        train.extend(members[n_test:].tolist())
    return np.array(sorted(train), dtype=np.int64)


def channel_stats(pixels_u8, indices, max_value=255.0):
    """Per-channel mean and std of pixels / max_value over `indices` (src/train/run.rs)."""
    x = pixels_u8[indices].astype(np.float64) / max_value  # N C H W
    c = x.shape[1]
    v = x.transpose(1, 0, 2, 3).reshape(c, -1)
    mean = v.mean(axis=1)
    std = np.maximum(np.sqrt(np.maximum((v * v).mean(axis=1) - mean * mean, 1e-12)), 1e-3)
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Device, timing, output.
# ---------------------------------------------------------------------------------------------


def add_device_arg(p):
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 matmuls/convs on CUDA (off by default: rote computes in full f32)",
    )


def pick_device(args):
    """torch.device for --device, with a clear error when CUDA is missing; sets threads and TF32."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("error: --device cuda but torch.cuda.is_available() is False")
        torch.backends.cuda.matmul.allow_tf32 = bool(args.tf32)
        torch.backends.cudnn.allow_tf32 = bool(args.tf32)
        return torch.device("cuda")
    return torch.device("cpu")


def device_name(dev):
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Timer:
    """`with Timer(dev) as t: ...` then t.seconds; synchronises the device at both ends."""

    def __init__(self, dev):
        self.dev = dev
        self.seconds = float("nan")

    def __enter__(self):
        sync(self.dev)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.dev)
        self.seconds = time.perf_counter() - self.t0
        return False


def emit(workload, dev, seconds, items_per_sec, **extra):
    """Prints the one-line JSON result to stdout."""
    out = {
        "workload": workload,
        "device": device_name(dev),
        "seconds": seconds,
        "items_per_sec": items_per_sec,
        "torch": torch.__version__,
    }
    out.update(extra)
    print(json.dumps(out), flush=True)


def note(*msg):
    print(*msg, file=sys.stderr, flush=True)


def parser(description):
    return argparse.ArgumentParser(description=description)
