#!/usr/bin/env python3
"""Reference Feldman-Zhang memorization on mnist10k, computed by the *official* estimator.

This script does not contain the estimator. It imports the authors' file
(google-research/heldout-influence-estimation, mnist-example/mnist_infl_mem.py) from the path
given with --official and runs its `estimate_infl_mem()` unmodified. Only the surroundings are
replaced at run time:

  * data: a stand-in `tensorflow_datasets` module whose `load` hands the official loader our
    mnist10k IDX files (train = all 10,000 rows; test = the same 10,000 rows, only needed because
    the official code also estimates influence on a test set);
  * K: the official loop runs `tqdm(range(n_runs))` with n_runs = 2000; the stand-in `tqdm` stops
    that iterable after --k items (and prints progress);
  * imports moved since 2021: `jax.experimental.{stax,optimizers}` now live in
    `jax.example_libraries` (same code), `from jax.config import config` is re-exported;
    matplotlib (used only by the plotting helper, which is not called) is stubbed out;
  * subsets (only when needed): `numpy.random.RandomState` seen by the official module is a
    subclass that records the subset each model draws; with --subsets it compares that draw with
    the file's row and, only if they differ, returns the file's row instead (the RNG still
    advances exactly as in the official draw, so the batch order stream is unchanged); with
    --draw-subsets-seed it always returns a freshly drawn subset.

Outputs in --out: mem.npy (float32, n=10,000, the official `memorization`), summary.json,
runs.npz (bit-packed masks and train correctness per model, subsets, seeds).
"""
import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mnist10k"
DEFAULT_SUBSETS = REPO_ROOT.parent / "shared" / "data" / "fz" / "subsets_K32.npy"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_idx_gz(path):
    raw = gzip.open(path, "rb").read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not a u8 IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    arr = np.frombuffer(raw, dtype=np.uint8, offset=off)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size {arr.size} != {dims}")
    return arr.reshape(dims)


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit_of(path):
    try:
        out = subprocess.run(["git", "-C", str(Path(path).parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except Exception:
        return None


def source_constant(src, name):
    """Reads `name = <number>` from the official source, for the summary (not executed)."""
    m = re.search(rf"^\s*{name}\s*=\s*([0-9.]+)\s*$", src, re.M)
    return float(m.group(1)) if m else None


class _SubsetPolicy:
    """Decides what the official `rng.choice(...)` subset draw returns, per model."""

    def __init__(self, mode, subsets, seed_offset):
        self.mode = mode              # "as_drawn" | "file" | "drawn_elsewhere"
        self.subsets = subsets        # (K, m) int array or None
        self.seed_offset = seed_offset
        self.drawn = {}               # model index -> subset the official code drew
        self.used = {}                # model index -> subset actually used
        self.matched = {}             # model index -> official draw == file row (order too)


def make_random_state_class(policy):
    base = np.random.RandomState

    class RecordingRandomState(base):
        def __init__(self, seed=None):
            super().__init__(seed)
            self._model = None if seed is None else int(seed) - policy.seed_offset
            self._first = True

        def choice(self, a, size=None, replace=True, p=None):
            out = super().choice(a, size=size, replace=replace, p=p)
            if not self._first or self._model is None:
                return out
            self._first = False
            k = self._model
            policy.drawn[k] = np.asarray(out).copy()
            if policy.subsets is None:
                policy.used[k] = policy.drawn[k]
                return out
            want = np.asarray(policy.subsets[k])
            if replace or size != want.shape[0]:
                raise RuntimeError(f"unexpected subset draw: a={a} size={size} replace={replace}")
            same = np.array_equal(np.asarray(out), want)
            policy.matched[k] = bool(same)
            if same and policy.mode == "file":
                policy.used[k] = policy.drawn[k]
                return out
            policy.used[k] = want.copy()
            return want.astype(np.asarray(out).dtype, copy=True)

    return RecordingRandomState


class _NprProxy(types.ModuleType):
    """numpy.random as the official module sees it, with RandomState swapped."""

    def __init__(self, rs_class):
        super().__init__("numpy.random")
        self.RandomState = rs_class

    def __getattr__(self, name):
        return getattr(np.random, name)


def install_import_shims(images, labels, k_models, test_rows):
    # --- data: stand-in tensorflow_datasets --------------------------------------------------
    tfds = types.ModuleType("tensorflow_datasets")

    def load(name=None, batch_size=None, as_dataset_kwargs=None, **kw):
        if name != "mnist" or batch_size != -1:
            raise RuntimeError(f"stand-in tfds.load got unexpected arguments {name!r} {batch_size!r}")
        img = images[..., None]  # tfds MNIST images are (N, 28, 28, 1) uint8
        lab = labels.astype(np.int64)
        return {"train": {"image": img, "label": lab},
                "test": {"image": img[:test_rows], "label": lab[:test_rows]}}

    tfds.load = load
    tfds.as_numpy = lambda x: x
    sys.modules["tensorflow_datasets"] = tfds

    # --- K: stand-in tqdm that stops the official run loop after k_models --------------------
    tq = types.ModuleType("tqdm")

    def tqdm(iterable, desc=None, **kw):
        t0 = time.time()
        for i, item in enumerate(iterable):
            if i >= k_models:
                break
            yield item
            log(f"[{desc}] model {i + 1}/{k_models} done, {time.time() - t0:.1f} s")

    tq.tqdm = tqdm
    sys.modules["tqdm"] = tq

    # --- matplotlib: only used by the plotting helper, which we never call -------------------
    mpl = types.ModuleType("matplotlib")
    plt = types.ModuleType("matplotlib.pyplot")
    mpl.pyplot = plt
    sys.modules.setdefault("matplotlib", mpl)
    sys.modules.setdefault("matplotlib.pyplot", plt)

    # --- JAX import paths that moved since 2021 ---------------------------------------------
    import jax
    import jax.experimental
    try:
        import jax.experimental.stax  # noqa: F401  (old JAX)
        import jax.experimental.optimizers  # noqa: F401
    except ImportError:
        from jax.example_libraries import optimizers, stax
        sys.modules["jax.experimental.stax"] = stax
        sys.modules["jax.experimental.optimizers"] = optimizers
        jax.experimental.stax = stax
        jax.experimental.optimizers = optimizers
    try:
        from jax.config import config  # noqa: F401
    except ImportError:
        cfg = types.ModuleType("jax.config")
        cfg.config = jax.config
        sys.modules["jax.config"] = cfg

    # numpy >= 1.24 removed np.bool, numpy 2 brought it back; the official code uses it.
    if not hasattr(np, "bool"):
        np.bool = np.bool_


def pearson(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="path to mnist-example/mnist_infl_mem.py")
    ap.add_argument("--official-commit", default=None,
                    help="git commit the official file came from (recorded in summary.json)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with mnist10k IDX files")
    ap.add_argument("--subsets", default=str(DEFAULT_SUBSETS),
                    help="(K, 7000) int npy of subsets to compare with / enforce; 'none' to skip")
    ap.add_argument("--draw-subsets-seed", type=int, default=None,
                    help="instead of --subsets: draw K fresh subsets of 7000/10000 rows with "
                         "numpy.random.default_rng(SEED) and use them")
    ap.add_argument("--model-seed-offset", type=int, default=0,
                    help="model k is run with official seed k + OFFSET (init + batch order)")
    ap.add_argument("--k", type=int, default=32, help="number of models")
    ap.add_argument("--test-rows", type=int, default=10000,
                    help="test set handed to the official code = first N rows of mnist10k")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--compare", nargs="*", default=[],
                    help="other mem .npy files to report Pearson against")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    images = read_idx_gz(data / "images-idx3-ubyte.gz")
    labels = read_idx_gz(data / "labels-idx1-ubyte.gz")
    n = images.shape[0]
    assert images.shape == (n, 28, 28) and labels.shape == (n,), (images.shape, labels.shape)
    log(f"mnist10k: {images.shape}, labels {np.bincount(labels).tolist()}")

    official_src = Path(args.official).read_text()
    m_sub = int(n * 0.7)
    if args.draw_subsets_seed is not None:
        rng = np.random.default_rng(args.draw_subsets_seed)
        subsets = np.stack([rng.choice(n, size=m_sub, replace=False) for _ in range(args.k)])
        subsets = subsets.astype(np.int32)
        mode, subsets_src = "drawn_elsewhere", f"numpy.random.default_rng({args.draw_subsets_seed})"
    elif args.subsets and args.subsets.lower() != "none":
        subsets = np.load(args.subsets)
        if subsets.shape[0] < args.k:
            raise SystemExit(f"{args.subsets} has only {subsets.shape[0]} subsets")
        subsets = subsets[: args.k]
        mode, subsets_src = "file", str(args.subsets)
    else:
        subsets, mode, subsets_src = None, "as_drawn", "official draw"
    policy = _SubsetPolicy(mode, subsets, args.model_seed_offset)

    install_import_shims(images, labels, args.k, args.test_rows)
    import jax

    log(f"importing official estimator {args.official} (jax {jax.__version__})")
    spec = importlib.util.spec_from_file_location("mnist_infl_mem_official", args.official)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # runs its module-level load_mnist() through the stand-in tfds

    # The subset draw inside subset_train goes through this RandomState.
    mod.npr = _NprProxy(make_random_state_class(policy))

    # Record what each official subset_train call returns (and optionally shift the seed).
    official_subset_train = mod.subset_train
    records = []

    def recording_subset_train(seed, subset_ratio):
        t0 = time.time()
        ret = official_subset_train(seed + args.model_seed_offset, subset_ratio)
        records.append(dict(seed=seed + args.model_seed_offset, seconds=time.time() - t0,
                            mask=ret[0].copy(), train_correct=np.asarray(ret[1]).copy()))
        return ret

    mod.subset_train = recording_subset_train

    t0 = time.time()
    est = mod.estimate_infl_mem()
    total_s = time.time() - t0

    mem = np.asarray(est["memorization"], dtype=np.float32)
    infl = np.asarray(est["influence"])
    assert mem.shape == (n,), mem.shape
    np.save(out / "mem.npy", mem)

    K = len(records)
    mask = np.stack([r["mask"] for r in records])
    corr = np.stack([r["train_correct"] for r in records]).astype(bool)
    in_acc = np.array([corr[k][mask[k]].mean() for k in range(K)])
    out_acc = np.array([corr[k][~mask[k]].mean() for k in range(K)])
    n_in = mask.sum(0)
    n_out = K - n_in
    # self-check: the same masked means, recomputed here
    mine = (np.where(mask, corr, 0).sum(0) / np.maximum(n_in, 1e-10)
            - np.where(~mask, corr, 0).sum(0) / np.maximum(n_out, 1e-10))
    diag = np.diag(infl[:, : args.test_rows]) if args.test_rows == n else None

    used = np.stack([policy.used[k] for k in range(K)]).astype(np.int32)
    drawn = np.stack([policy.drawn[k] for k in range(K)]).astype(np.int32)
    for k in range(K):
        want = np.zeros(n, bool)
        want[used[k]] = True
        assert np.array_equal(want, mask[k]), f"model {k}: mask differs from the subset used"
    np.savez_compressed(out / "runs.npz", mask=np.packbits(mask, axis=1),
                        train_correct=np.packbits(corr, axis=1), n=n,
                        subsets=used, official_draw=drawn,
                        seeds=np.array([r["seed"] for r in records]))

    matched = [policy.matched.get(k) for k in range(K)]
    summary = {
        "what": "Feldman-Zhang mem on mnist10k by the official JAX estimator (estimate_infl_mem)",
        "K": K,
        "n": int(n),
        "subset_size": int(used.shape[1]),
        "epochs": source_constant(official_src, "num_epochs"),
        "subset_ratio": source_constant(official_src, "subset_ratio"),
        "batch_size": source_constant(official_src, "batch_size"),
        "step_size": source_constant(official_src, "step_size"),
        "momentum": source_constant(official_src, "momentum_mass"),
        "test_set": f"first {args.test_rows} rows of mnist10k (same rows as the training pool)",
        "subsets_source": subsets_src,
        "subsets_policy": mode,
        "model_seeds": [r["seed"] for r in records],
        "official_draw_matched_subsets_file": (all(matched) if mode == "file" else None),
        "official_draw_matched_per_model": (matched if mode == "file" else None),
        "mem_mean": float(mem.mean()),
        "mem_median": float(np.median(mem)),
        "mem_std": float(mem.std()),
        "mem_min": float(mem.min()),
        "mem_max": float(mem.max()),
        "frac_mem_ge_0.25": float((mem >= 0.25).mean()),
        "frac_mem_ge_0.5": float((mem >= 0.5).mean()),
        "train_acc_in_subset_mean": float(in_acc.mean()),
        "train_acc_in_subset_min": float(in_acc.min()),
        "train_acc_out_of_subset_mean": float(out_acc.mean()),
        "train_acc_out_of_subset_min": float(out_acc.min()),
        "train_acc_out_of_subset_max": float(out_acc.max()),
        "n_in_min": int(n_in.min()), "n_in_max": int(n_in.max()),
        "n_out_min": int(n_out.min()), "n_out_max": int(n_out.max()),
        "rows_with_n_out_0": int((n_out == 0).sum()),
        "selfcheck_max_abs_diff_vs_recomputed": float(np.abs(mine - mem).max()),
        "selfcheck_max_abs_diff_infl_diag_vs_mem": (None if diag is None
                                                    else float(np.abs(diag - mem).max())),
        "seconds_total": total_s,
        "seconds_per_model_mean": float(np.mean([r["seconds"] for r in records])),
        "seconds_per_model_first": float(records[0]["seconds"]),
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(__import__("jaxlib"), "__version__", None),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "official_file": "google-research/heldout-influence-estimation mnist-example/mnist_infl_mem.py",
        "official_file_sha256": sha256_file(args.official),
        "official_commit": args.official_commit or git_commit_of(args.official),
        "mem_npy_sha256": sha256_file(out / "mem.npy"),
        "data_sha256": {f: sha256_file(data / f) for f in
                        ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")},
    }
    cmp = {}
    for other in args.compare:
        o = np.load(other)
        cmp[other] = {"pearson": pearson(mem, o), "max_abs_diff": float(np.abs(mem - o).max())}
    if cmp:
        summary["compare"] = cmp
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("K", "mem_mean", "train_acc_in_subset_mean",
                                               "train_acc_out_of_subset_mean", "seconds_total",
                                               "official_draw_matched_subsets_file")}))


if __name__ == "__main__":
    main()
