#!/usr/bin/env python3
"""IBM ART 1.20.1's MIFace on tiny fixed logistic models: the fixture behind rote's `art` mode.

Usage (from the repository root, in a venv outside the repo):
    pip install adversarial-robustness-toolbox==1.20.1 numpy scikit-learn
    python3 benches/peers/fidelity/art_miface.py > benches/peers/fidelity/art_miface.json

Each case is a scikit-learn `LogisticRegression` whose `coef_` / `intercept_` the script sets from
a seeded generator (values rounded to float32, so rote's f32 weights are the same numbers),
wrapped by ART's `ScikitlearnLogisticRegression` with `preprocessing=(mean, std)` and
`clip_values=(0, 1)`: ART sees `softmax(W ((x - mean) / std) + b)`, rote's softmax regression with
its input normalisation. `MIFace(max_iter, window_length, threshold, learning_rate).infer(x0, y)`
runs on every class at once; the JSON keeps the weights, the settings, the start and ART's
returned images and the cost of every sample after every step. `src/invert/art_parity_tests.rs` runs `rote`'s `art_miface` on the same numbers.

Cases:
* 4 classes (multinomial): ART's class gradient is the gradient of log p(label)
  (rote `--objective log-prob`), from a grey and from a black start;
* 2 classes (binary): scikit-learn keeps one coefficient row and ART's gradient is
  (-1)^(c+1) p0 p1 w, the gradient of p(label) (rote `--objective prob` with rows [0, w], [0, b]).

Nothing is downloaded; the output is deterministic for a given ART / scikit-learn / numpy.
"""

import json
import sys
import warnings

import numpy as np


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def art_run(coef, intercept, n_classes, mean, std, x0, labels, max_iter, window, threshold, lr):
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.coef_ = coef
    model.intercept_ = intercept
    model.classes_ = np.arange(n_classes)
    model.n_features_in_ = coef.shape[1]
    est = ScikitlearnLogisticRegression(model=model, clip_values=(0.0, 1.0), preprocessing=(mean, std))
    # The wrapped model must be rote's function: softmax of W ((x - mean)/std) + b.
    probe = np.random.default_rng(1).random((5, coef.shape[1]))
    z = (probe - mean) / std
    if n_classes == 2:
        p1 = 1.0 / (1.0 + np.exp(-(z @ coef[0] + intercept[0])))
        direct = np.stack([1.0 - p1, p1], axis=1)
    else:
        logits = z @ coef.T + intercept
        e = np.exp(logits - logits.max(1, keepdims=True))
        direct = e / e.sum(1, keepdims=True)
    got = est.predict(probe.astype(np.float32))
    if not np.allclose(got, direct, atol=1e-6):
        raise SystemExit(f"wrapped model differs from the direct softmax by {np.abs(got - direct).max():.2e}")
    attack = MIFace(
        est,
        max_iter=max_iter,
        window_length=window,
        threshold=threshold,
        learning_rate=lr,
        batch_size=len(labels),
        verbose=False,
    )
    # Record the cost of every sample after every step: MIFace calls predict on the whole batch
    # once per iteration (a paused sample's cost repeats).
    costs = []
    predict = est.predict

    def recording_predict(x, *args, **kwargs):
        out = predict(x, *args, **kwargs)
        costs.append((1.0 - out[np.arange(len(labels)), labels]).tolist())
        return out

    est.predict = recording_predict
    out = attack.infer(x0.astype(np.float32), np.asarray(labels))
    est.predict = predict
    p = est.predict(out)[np.arange(len(labels)), labels]
    return out, p, costs


def case(name, seed, n_classes, side, init, bias_scale, max_iter, window, threshold, lr, mean=0.3, std=0.5):
    rng = np.random.default_rng(seed)
    n_px = side * side
    rows = 1 if n_classes == 2 else n_classes
    coef = f32(rng.normal(0.0, 1.0, (rows, n_px)))
    intercept = f32(rng.normal(0.0, bias_scale, rows))
    labels = list(range(n_classes))
    x0 = np.full((n_classes, n_px), 0.5 if init == "grey" else 0.0)
    out, p, costs = art_run(coef, intercept, n_classes, mean, std, x0, labels, max_iter, window, threshold, lr)
    if n_classes == 2:  # rote's two-row softmax with the same sigmoid: rows [0, w], biases [0, b]
        w_rote = np.vstack([np.zeros(n_px), coef[0]])
        b_rote = np.array([0.0, intercept[0]])
        objective = "prob"
    else:
        w_rote, b_rote, objective = coef, intercept, "log-prob"
    return {
        "name": name,
        "input": [1, side, side],
        "n_classes": n_classes,
        "weight": w_rote.tolist(),
        "bias": b_rote.tolist(),
        "input_mean": [mean],
        "input_std": [std],
        "init": init,
        "objective": objective,
        "max_iter": max_iter,
        "window_length": window,
        "threshold": threshold,
        "learning_rate": lr,
        "labels": labels,
        "art_images": [[float(v) for v in row] for row in out.reshape(n_classes, -1)],
        "art_p_label": [float(v) for v in p],
        # art_costs[i][k]: 1 - p(label) of sample k after step i + 1.
        "art_costs": costs,
        "paused_steps": [sum(1 for i in range(1, len(costs)) if costs[i][k] == costs[i - 1][k]) for k in labels],
    }


def main():
    try:
        import art
        import sklearn
    except ImportError as e:
        print(f"needs: pip install adversarial-robustness-toolbox==1.20.1 numpy scikit-learn ({e})", file=sys.stderr)
        sys.exit(2)
    warnings.simplefilter("ignore")
    cases = [
        # Grey start, every class keeps going (p(label) >= 0.01 almost at once): the last iterate
        # after max_iter steps.
        case("multinomial-grey", 11, 4, 4, "grey", 1.0, 40, 10, 0.99, 0.1),
        # Black start with large biases: classes with p(label) < 0.01 pause after one step and
        # resume when their constant cost fills the window (window 3 makes that happen).
        case("multinomial-zeros-pausing", 12, 4, 4, "zeros", 6.0, 25, 3, 0.99, 0.05),
        # A low threshold: nearly every step is a pause/resume decision by the window rule.
        case("multinomial-threshold-0.2", 13, 4, 4, "grey", 2.0, 30, 4, 0.2, 0.2),
        # Binary scikit-learn model: gradient of p, not log p.
        case("binary-grey", 14, 2, 4, "grey", 1.0, 30, 10, 0.99, 0.5),
    ]
    doc = {
        "source": "benches/peers/fidelity/art_miface.py",
        "reference": "IBM ART art/attacks/inference/model_inversion/mi_face.py (MIFace.infer), "
        "art/estimators/classification/scikitlearn.py (ScikitlearnLogisticRegression.class_gradient)",
        "versions": {"art": art.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__},
        "cases": cases,
    }
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
