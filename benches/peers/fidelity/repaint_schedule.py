#!/usr/bin/env python3
"""RePaint's jump schedule from the official code: the fixture behind rote's `jump_schedule`.

Usage (the reference is not vendored; fetch it outside the repository first):
    git clone https://github.com/andreas128/RePaint /tmp/RePaint   # commit 8e2a055 was used
    python3 benches/peers/fidelity/repaint_schedule.py /tmp/RePaint/guided_diffusion/scheduler.py \
        > benches/peers/fidelity/repaint_schedule.json

Imports `get_schedule_jump` (what `gaussian_diffusion.py` calls with a config's
`schedule_jump_params`) and `get_schedule_jump_paper` from the given `scheduler.py` (it needs no
third-party package at import), evaluates them for a few parameter sets with `n_sample = 1` and the
second and third jump levels off (every released config), and writes, per set: the length, the
number of reverse (denoising) and undo (re-noising) transitions, the first and last entries, the
SHA-256 of the comma-joined decimal sequence, and the whole sequence when it is short.
`src/diffusion/inpaint_repaint_tests.rs` compares rote's `jump_schedule` with every field.
"""

import hashlib
import importlib.util
import json
import sys

# (t_T, jump_length, jump_n_sample): the paper's defaults (every released config), rote's defaults,
# no resampling, jump_length 1, a jump longer than the schedule, and odd sizes.
SETS = [
    (250, 10, 10),
    (50, 5, 3),
    (50, 5, 1),
    (1000, 10, 10),
    (20, 1, 3),
    (7, 10, 2),
    (23, 4, 5),
    (10, 3, 2),
    (1, 1, 5),
]
FULL_UP_TO = 200


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    spec = importlib.util.spec_from_file_location("repaint_scheduler", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    paper = mod.get_schedule_jump_paper()
    out = []
    for t_T, jl, jn in SETS:
        ts = mod.get_schedule_jump(t_T=t_T, n_sample=1, jump_length=jl, jump_n_sample=jn)
        if (t_T, jl, jn) == (250, 10, 10) and ts != paper:
            raise SystemExit("get_schedule_jump(250, 1, 10, 10) differs from get_schedule_jump_paper()")
        pairs = list(zip(ts[:-1], ts[1:]))
        row = {
            "t_T": t_T,
            "jump_length": jl,
            "jump_n_sample": jn,
            "len": len(ts),
            "reverse": sum(1 for a, b in pairs if b < a),
            "undo": sum(1 for a, b in pairs if b > a),
            "head": ts[:12],
            "tail": ts[-12:],
            "sha256": hashlib.sha256(",".join(str(t) for t in ts).encode()).hexdigest(),
        }
        if len(ts) <= FULL_UP_TO:
            row["full"] = ts
        out.append(row)
    doc = {
        "source": "benches/peers/fidelity/repaint_schedule.py",
        "reference": "andreas128/RePaint guided_diffusion/scheduler.py get_schedule_jump "
        "(n_sample=1, jump2/jump3 off); (250, 10, 10) also equals get_schedule_jump_paper()",
        "sets": out,
    }
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
