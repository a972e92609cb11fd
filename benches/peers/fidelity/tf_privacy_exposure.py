#!/usr/bin/env python3
"""TF Privacy's exposure functions on fixed inputs: the fixture behind rote's `canary::exposure`.

Usage (in a venv outside the repo; tensorflow itself is not needed):
    pip install numpy scipy mpmath
    pip install --no-deps tensorflow-empirical-privacy==0.1.0
    python3 benches/peers/fidelity/tf_privacy_exposure.py > benches/peers/fidelity/tf_privacy_exposure.json

`tensorflow-empirical-privacy` 0.1.0 ships `tensorflow_privacy/privacy/privacy_tests/secret_sharer/
exposures.py`, byte-identical to `tensorflow/privacy` at 40d73ed (the last change to that file).
The package's `__init__` imports tensorflow, so this script loads `exposures.py` by its file path
(it imports only numpy and scipy) and calls `compute_exposure_interpolation` and
`compute_exposure_extrapolation` on:

* the literal inputs of TF Privacy's own `exposures_test.py::test_exposure_interpolation`, and a
  second set with ties, several keys and unsorted secrets;
* references drawn like `test_exposure_extrapolation` (skew-normal, shape 4, loc 0, scale 1), but
  seeded, 2,000 of them, rounded to 9 decimals before use so the JSON holds the exact inputs;
  TF Privacy's secrets there (2 and 5 draws), plus canaries far in the left tail, where the
  reference exposures are also computed by mpmath (the closed form in 400-digit arithmetic).

`src/canary/tf_privacy_vectors_tests.rs` reads the JSON.
"""

import importlib.util
import json
import os
import sys


def load_exposures():
    spec = importlib.util.find_spec("tensorflow_privacy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs: pip install --no-deps tensorflow-empirical-privacy==0.1.0")
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, "privacy", "privacy_tests", "secret_sharer", "exposures.py")
    if not os.path.exists(path):
        raise SystemExit(f"{path} missing: tensorflow-privacy >= 0.9 dropped privacy_tests; install "
                         "tensorflow-empirical-privacy (--no-deps)")
    m = importlib.util.spec_from_file_location("tfp_exposures", path)
    mod = importlib.util.module_from_spec(m)
    m.loader.exec_module(mod)
    return mod, path


def listed(d):
    return {str(k): [float(x) for x in v] for k, v in d.items()}


def mp_exposure(x, a, loc, scale, mp):
    """-log2 CDF of skewnorm(a, loc, scale) at x: Phi(z) - 2 T(z, a) in 400-digit arithmetic.

    In the left tail the two terms cancel to 1e-160 and beyond; 400 digits leave hundreds to
    spare. Owen's T is the smooth integral of exp(-z^2 (1 + t^2) / 2) / (1 + t^2) over [0, a]. A
    second evaluation at 500 digits must agree to 1e-15 bits.
    """

    def once(dps):
        mp.mp.dps = dps
        z = (mp.mpf(x) - loc) / scale
        owen_t = mp.quad(lambda t: mp.exp(-z * z * (1 + t * t) / 2) / (1 + t * t), [0, a]) / (2 * mp.pi)
        return -mp.log(mp.ncdf(z) - 2 * owen_t, 2)

    e1, e2 = once(400), once(500)
    if abs(e1 - e2) > 1e-15:
        raise SystemExit(f"mpmath evaluations disagree at {x}: {e1} vs {e2}")
    return float(e1)


def main():
    import mpmath as mp
    import numpy as np
    import scipy
    from scipy import stats

    exposures, path = load_exposures()

    # 1. TF Privacy's own interpolation test vector, literally.
    tf_test = {
        "perplexities": {"1": [0, 0.1], "2": [20.0], "5": [3.5], "8": [3.5]},
        "references": [float(x) for x in range(1, 17)],
    }
    tf_test["tf_privacy"] = listed(exposures.compute_exposure_interpolation(tf_test["perplexities"], tf_test["references"]))
    # ... and the expected values that test asserts (log2 16 = 4; 4 - log2 17; 4 - log2 4).
    tf_test["test_expected"] = {"1": [4.0, 4.0], "2": [4.0 - float(np.log2(17))], "5": [2.0], "8": [2.0]}

    # 2. Ties (references win), a secret between equal references, unsorted secrets, several keys.
    ties = {
        "perplexities": {"a": [4.5, 0.5, 1.0], "b": [10.0, 1.0], "c": [6.0]},
        "references": [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0],
    }
    ties["tf_privacy"] = listed(exposures.compute_exposure_interpolation(ties["perplexities"], ties["references"]))

    # 3. Extrapolation: TF Privacy's test distribution, seeded, with exact (rounded) inputs.
    params = (4, 0, 1)
    rng = np.random.default_rng(20260415)
    refs = np.round(stats.skewnorm.rvs(*params, size=2000, random_state=rng), 9)
    secrets = {
        "1": np.round(stats.skewnorm.rvs(*params, size=2, random_state=rng), 9).tolist(),
        "10": np.round(stats.skewnorm.rvs(*params, size=5, random_state=rng), 9).tolist(),
        # Left tail: far below every reference (what a memorized canary looks like).
        "tail": [-1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    }
    fit = [float(v) for v in stats.skewnorm.fit(refs)]
    extra = listed(exposures.compute_exposure_extrapolation(secrets, refs))
    nll = float(-np.sum(stats.skewnorm.logpdf(refs, *fit)) / len(refs))
    high_precision = {
        k: [mp_exposure(x, fit[0], fit[1], fit[2], mp) for x in v] for k, v in secrets.items()
    }
    doc = {
        "source": "benches/peers/fidelity/tf_privacy_exposure.py",
        "reference": "tensorflow/privacy tensorflow_privacy/privacy/privacy_tests/secret_sharer/exposures.py "
        "@ 40d73ed2407fc17089eef43bcaac7830f77bbaae (via tensorflow-empirical-privacy 0.1.0); "
        "test vector from exposures_test.py @ 438da5a09bf4b4393351fbd86ac0643982d5d1e3",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "mpmath": mp.__version__},
        "interpolation_tf_test": tf_test,
        "interpolation_ties": ties,
        "extrapolation": {
            "references": refs.tolist(),
            "perplexities": secrets,
            "scipy_fit": {"shape": fit[0], "loc": fit[1], "scale": fit[2], "mean_nll": nll},
            # Infinity (scipy's CDF underflowed to 0) is written as null.
            "tf_privacy": {k: [x if np.isfinite(x) else None for x in v] for k, v in extra.items()},
            "mpmath_at_scipy_fit": high_precision,
        },
    }
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
