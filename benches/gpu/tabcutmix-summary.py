#!/usr/bin/env python3
"""Summarise benches/gpu/tabcutmix-grid.sh's JSON lines: per regime and seed, the memorization
ratio (code and global rules) at each checkpoint without and with TabCutMix, the ratio of the
two at the last checkpoint, and TSTR. Standard library only."""
import json
import statistics
import sys
from collections import defaultdict

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = defaultdict(dict)
for r in runs:
    name = r["run"]
    regime, seed = name.split("-")[0], name.rsplit("-", 1)[1]
    aug = name[len(regime) + 1 : -(len(seed) + 1)]
    by[(regime, seed)][aug] = r
augments = sorted({a for pair in by.values() for a in pair if a != "none"})
for regime, aug in [(g, a) for g in sorted({k[0] for k in by}) for a in augments]:
    print(f"== regime {regime}, {aug} against none")
    print(f"seed | epochs | none code/global % | {aug} code/global % | ratio code / global | TSTR none / {aug} | TRTR")
    rc, rg, drop = [], [], []
    for (reg, seed), pair in sorted(by.items()):
        if reg != regime or "none" not in pair or aug not in pair:
            continue
        n, t = pair["none"], pair[aug]
        series = lambda r, k: "/".join(f"{100 * e[k]:.1f}" for e in r["by_epoch"])
        epochs = "/".join(str(e["epoch"]) for e in n["by_epoch"])
        div = lambda a, b: a / b if b else float("nan")
        c = div(t["memorization_ratio_code"], n["memorization_ratio_code"])
        g = div(t["memorization_ratio_global"], n["memorization_ratio_global"])
        rc.append(c)
        rg.append(g)
        drop.append(100 * (n["tstr_accuracy"] - t["tstr_accuracy"]))
        print(f"{seed} | {epochs} | {series(n, 'memorization_ratio_code')} ; {series(n, 'memorization_ratio_global')}"
              f" | {series(t, 'memorization_ratio_code')} ; {series(t, 'memorization_ratio_global')}"
              f" | {c:.2f}x / {g:.2f}x | {100 * n['tstr_accuracy']:.1f} / {100 * t['tstr_accuracy']:.1f}"
              f" | {100 * n['trtr_accuracy']:.1f}")
    if rc:
        print(f"mean over {len(rc)} seeds: code {statistics.mean(rc):.2f}x, global {statistics.mean(rg):.2f}x,"
              f" TSTR drop {statistics.mean(drop):.2f} points")
