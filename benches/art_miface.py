#!/usr/bin/env python3
"""IBM ART's MIFace on the weights of a rote softmax-regression model, timed like `rote bench invert`.

Usage:
    python3 benches/art_miface.py STUDY/models/<id> [--iters 200] [--init grey] [--json]
    python3 benches/art_miface.py STUDY/models/<id> --check   # accuracy of the rebuilt model on ORL

The model folder is one written by `rote train --family softmax --data orl-faces ...` (the one
`rote bench invert` trains internally is not saved; train one with the same settings:
`rote train --family softmax --data orl-faces --epochs 20 --batch-size 32 --out STUDY`).

What is rebuilt: rote's softmax regression is `logits = W ((x - mean) / std) + b` with x in [0, 1]
(C x H x W flattened, row-major, the order of the `out.weight` columns), W = `out.weight`
(classes x pixels), b = `out.bias`, mean/std from `card.json` (`spec.input_mean`, `spec.input_std`,
one per channel). It becomes a scikit-learn `LogisticRegression` with `coef_ = W`,
`intercept_ = b`, wrapped by ART's `ScikitlearnLogisticRegression` with
`preprocessing=(mean, std)` and `clip_values=(0, 1)`, so ART sees exactly rote's function.

What is timed: `MIFace(max_iter=iters, window_length=100, threshold=1.0, learning_rate=0.1,
batch_size=40)`. `infer` on all classes at once from a grey (0.5) start, the settings of
`rote bench invert` (every image takes every step: rote disables beta and gamma, ART's
threshold 1.0 keeps every sample active, as ART's own MNIST notebook does). One ART step is one
`class_gradient` plus one `predict` on the batch, as one rote step is one forward and backward.

Not identical: ART's scikit-learn estimator differentiates log p(label) (`W_c - p W`), while
`rote bench invert` differentiates p (MI-FACE's cost 1 - p); the per-step work is the same order
(one 40 x 10304 matrix product each way). `rote invert --method art --objective log-prob` is the
rote loop that follows ART's step exactly.

Needs: python3, numpy, scikit-learn, adversarial-robustness-toolbox. Exits with status 2 and a
one-line message when they are missing. Nothing is downloaded.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

MISSING = "ART not installed: pip install adversarial-robustness-toolbox scikit-learn"


def read_safetensors(path):
    """Tensors of a safetensors file as {name: (dtype, shape, bytes)} (stdlib only)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = (meta["dtype"], tuple(meta["shape"]), data[start:end])
    return out


def load_softmax(model_dir, np):
    """(W, b, mean, std, shape, card) of a rote softmax model folder."""
    with open(os.path.join(model_dir, "card.json")) as f:
        card = json.load(f)
    spec = card["spec"]
    if spec.get("family") != "softmax" or spec.get("widths"):
        raise SystemExit(
            f"{model_dir}: family {spec.get('family')!r} with widths {spec.get('widths')}: "
            "this script rebuilds softmax regression only (rote train --family softmax)"
        )
    tensors = read_safetensors(os.path.join(model_dir, "weights.safetensors"))
    for name in ("out.weight", "out.bias"):
        if name not in tensors:
            raise SystemExit(f"{model_dir}: no tensor {name!r} (found {sorted(tensors)})")
        if tensors[name][0] != "F32":
            raise SystemExit(f"{model_dir}: {name} is {tensors[name][0]}, expected F32")
    _, wshape, wbytes = tensors["out.weight"]
    _, bshape, bbytes = tensors["out.bias"]
    w = np.frombuffer(wbytes, dtype="<f4").reshape(wshape).astype(np.float64)
    b = np.frombuffer(bbytes, dtype="<f4").reshape(bshape).astype(np.float64)
    c, h, wd = spec["input"]
    if w.shape != (spec["n_classes"], c * h * wd):
        raise SystemExit(f"{model_dir}: out.weight is {w.shape}, card says {spec['n_classes']} x {c * h * wd}")
    mean = spec.get("input_mean") or [0.0] * c
    std = spec.get("input_std") or [1.0] * c
    # Per-channel constants expanded to one value per flattened pixel (C-major layout).
    mean_px = np.repeat(np.asarray(mean, dtype=np.float64), h * wd)
    std_px = np.repeat(np.maximum(np.asarray(std, dtype=np.float64), 1e-6), h * wd)
    return w, b, mean_px, std_px, (c, h, wd), card


def read_idx(path, np):
    with gzip.open(path, "rb") as f:
        blob = f.read()
    ndim = blob[3]
    dims = struct.unpack(">" + "I" * ndim, blob[4 : 4 + 4 * ndim])
    return np.frombuffer(blob[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="rote model folder (STUDY/models/<id>) of a softmax regression")
    ap.add_argument("--iters", type=int, default=200, help="MIFace max_iter (rote bench invert: --iters, default 200)")
    ap.add_argument("--window-length", type=int, default=100)
    ap.add_argument("--threshold", type=float, default=1.0, help="1.0 keeps every sample active (all iters run)")
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--init", choices=["grey", "zeros"], default="grey")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--check", action="store_true", help="print the rebuilt model's accuracy on assets/orl-faces")
    args = ap.parse_args()

    try:
        import numpy as np
        import sklearn  # noqa: F401
        from sklearn.linear_model import LogisticRegression
        from art.attacks.inference.model_inversion import MIFace
        from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression
    except ImportError as e:
        print(f"{MISSING} ({e})", file=sys.stderr)
        sys.exit(2)

    w, b, mean_px, std_px, shape, card = load_softmax(args.model, np)
    n_classes, n_px = w.shape

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # old scikit-learn defaulted to one-vs-rest; newer ones dropped the parameter
            lr = LogisticRegression(multi_class="multinomial")
        except TypeError:
            lr = LogisticRegression()
    lr.coef_ = w
    lr.intercept_ = b
    lr.classes_ = np.arange(n_classes)
    lr.n_features_in_ = n_px
    # One channel (ORL): scalar mean/std, the simplest form ART's preprocessing accepts.
    if shape[0] == 1:
        preprocessing = (float(mean_px[0]), float(std_px[0]))
    else:
        preprocessing = (mean_px, std_px)
    est = ScikitlearnLogisticRegression(model=lr, clip_values=(0.0, 1.0), preprocessing=preprocessing)

    # The wrapped model must be rote's function: compare with a direct softmax on a few inputs.
    rng = np.random.default_rng(0)
    probe = rng.random((4, n_px))
    z = ((probe - mean_px) / std_px) @ w.T + b
    z = np.exp(z - z.max(1, keepdims=True))
    direct = z / z.sum(1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = est.predict(probe.astype(np.float32))
    if not np.allclose(wrapped, direct, atol=1e-4):
        raise SystemExit(
            f"the ART-wrapped model differs from rote's softmax by {np.abs(wrapped - direct).max():.2e} "
            "(scikit-learn's predict_proba is not multinomial here?)"
        )

    if args.check:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "orl-faces")
        x = read_idx(os.path.join(root, "images-idx3-ubyte.gz"), np).reshape(-1, n_px) / 255.0
        y = read_idx(os.path.join(root, "labels-idx1-ubyte.gz"), np).astype(int)
        pred = est.predict(x).argmax(1)
        train = np.zeros(len(y), dtype=bool)
        train[np.asarray(card["train_indices"], dtype=int)] = True
        print(
            f"rebuilt model: train acc {np.mean(pred[train] == y[train]):.4f}, "
            f"held-out acc {np.mean(pred[~train] == y[~train]):.4f} "
            f"(rote's card: train {card.get('train_acc', 'n/a')}, test {card.get('test_acc', 'n/a')})"
        )

    labels = np.arange(n_classes)
    x0 = np.full((n_classes, n_px), 0.5 if args.init == "grey" else 0.0, dtype=np.float32)
    attack = MIFace(
        est,
        max_iter=args.iters,
        window_length=args.window_length,
        threshold=float(args.threshold),
        learning_rate=float(args.learning_rate),
        batch_size=n_classes,
        verbose=False,
    )
    t0 = time.perf_counter()
    out = attack.infer(x0, labels)
    seconds = time.perf_counter() - t0
    p = est.predict(out)[labels, labels]
    r = {
        "bench": "art-miface",
        "model": os.path.abspath(args.model),
        "device": "cpu (numpy)",
        "classes": int(n_classes),
        "shape": list(shape),
        "steps": args.iters,
        "seconds": seconds,
        "steps_per_s": args.iters / seconds,
        "image_steps_per_s": args.iters * n_classes / seconds,
        "mean_p_label": float(p.mean()),
        "numpy_threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"ART MIFace on softmax regression ({n_classes} classes, {shape[0]}x{shape[1]}x{shape[2]}), "
            f"cpu: {args.iters} steps in {seconds:.2f} s = {r['steps_per_s']:.1f} steps/s "
            f"({r['image_steps_per_s']:.0f} image-steps/s; mean p(label) {r['mean_p_label']:.3f})"
        )


if __name__ == "__main__":
    main()
