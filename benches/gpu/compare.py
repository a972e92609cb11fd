#!/usr/bin/env python3
"""Side-by-side table of rote's and PyTorch's figures from one GPU run.

Reads the JSON lines that benches/gpu/run-h100.sh writes ($OUT/rote.jsonl, $OUT/peers.jsonl),
pairs each rote benchmark with its peer, and prints a markdown table: rote time, peer time,
rote/peer speed ratio (> 1: rote faster) and the achieved FLOP/s or bytes/s against the card's
peak (H100 SXM5: 67 TFLOP/s FP32 without tensor cores, 3.35 TB/s HBM3).

    python3 benches/gpu/compare.py OUT/rote.jsonl OUT/peers.jsonl
"""
import json
import sys

PEAK_FP32 = 67e12
PEAK_BW = 3.35e12
MLP_MACS = 784 * 512 + 512 * 256 + 256 * 10


def lines(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


def main():
    rote = {r["bench"]: r.get("result", {}) for r in lines(sys.argv[1]) if "bench" in r}
    peers = {p["workload"]: p for p in lines(sys.argv[2]) if "workload" in p}
    rows = []
    z, pz = rote.get("zoo"), peers.get("zoo")
    if z:
        rate = z["batched_model_epochs_per_sec"]
        flops = rate * z["n_per_model"] * 6 * MLP_MACS
        rows.append(("zoo: %d MLPs x %d epochs (model-epochs/s)" % (z["models"], z["epochs"]),
                     z["batched_secs"], pz and pz["seconds"], rate, pz and pz["items_per_sec"],
                     "%.1f TFLOP/s = %.0f%% of FP32 peak" % (flops / 1e12, 100 * flops / PEAK_FP32)))
    d, pd = rote.get("ddim"), peers.get("ddim")
    if d:
        rows.append(("DDIM: %d images x %d steps (images/s)" % (d["samples"], d["steps"]),
                     d["secs"], pd and pd["seconds"], d["images_per_sec"], pd and pd["images_per_sec"],
                     "%.0f UNet evals/s (%d parameters)" % (d["evals_per_sec"], d["n_params"])))
    i, pi = rote.get("invert"), peers.get("invert")
    if i:
        macs = i["classes"] * i["shape"][0] * i["shape"][1] * i["shape"][2] * i["classes"]
        flops = i["steps_per_s"] * 6 * macs
        rows.append(("MI-FACE: %d steps x %d classes (steps/s)" % (i["steps"], i["classes"]),
                     i["seconds"], pi and pi["seconds"], i["steps_per_s"], pi and pi["steps_per_s"],
                     "%.2f TFLOP/s: launch-bound" % (flops / 1e12)))
    for key, name in (("tiled", "tiled-l2 %d x %d, full matrix back (pairs/s)"),
                      ("nn", "nearest neighbours %d x %d, top-10 (pairs/s)")):
        t, pt = rote.get(key), peers.get("tiled_l2" if key == "tiled" else "nn")
        if t and t.get("gpu_secs"):
            pairs = t["m"] * t["n"]
            moved = pairs * 4 + (t["m"] + t["n"]) * 784
            rows.append((name % (t["m"], t["n"]), t["gpu_secs"], pt and pt["seconds"],
                         pairs / t["gpu_secs"], pt and pt["pairs_per_sec"],
                         "%.1f GB/s moved = %.1f%% of HBM (identical to the CPU twin: %s)"
                         % (moved / t["gpu_secs"] / 1e9, 100 * moved / t["gpu_secs"] / PEAK_BW,
                            t.get("identical"))))
    e = rote.get("exposure")
    if e:
        h, v = e["hidden"], 74
        flops = e["candidates_per_sec"] * (8 * h * (32 + h) + 2 * h * v) / 9
        rows.append(("exposure: exact rank 10^%d, LSTM %d (candidates/s)" % (e["digits"], h),
                     e["exact_seconds"], None, e["candidates_per_sec"], None,
                     "%.2f TFLOP/s (no peer)" % (flops / 1e12)))
    print("| workload | rote s | PyTorch s | rote rate | PyTorch rate | rote/PyTorch | roofline |")
    print("|---|---|---|---|---|---|---|")
    for name, rs, ps, rr, pr, roof in rows:
        ratio = "%.2fx" % (rr / pr) if pr else "-"
        print("| %s | %.3f | %s | %.4g | %s | %s | %s |" % (
            name, rs, "%.3f" % ps if ps else "-", rr, "%.4g" % pr if pr else "-", ratio, roof))


if __name__ == "__main__":
    main()
