"""PyTorch peer of `rote bench ddpm-train`: DDPM training steps (Ho et al. 2020, Algorithm 1).

Mirrors src/diffusion/bench.rs::bench_ddpm_train -> train.rs::train_one with rote's UNet (the
same module as ddim.py, layer for layer): a pool of 256 images of the data set (mnist10k:
the first 256 of a seeded shuffle; which ones does not matter for timing) in model range
[-1, 1]; every step a batch of --batch-size indices from a reshuffled epoch order, t uniform in
0..T-1 (T = 1000, linear betas), eps ~ N(0, 1) drawn on the host (rote's NormalStream) and
copied over, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss = mean((UNet(x_t, t) - eps)^2),
AdamW(lr 1e-3, weight decay 0, betas 0.9/0.999, eps 1e-8), the loss read back every step (rote
checks that it is finite). No warm-up and the timer starts at the first step, as in rote.
"""

import math
import os

import numpy as np
import torch

import common
from ddim import UNet, linear_alpha_bar, rote_init_

DATA = {"mnist10k": "mnist10k", "digits8x8": "digits8x8"}


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist10k", choices=sorted(DATA), help="bundled data set (rote default mnist10k)")
    p.add_argument("--base", type=int, default=32, help="UNet base width (rote default 32)")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps (rote bench default 20)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (rote default 32)")
    p.add_argument("--images", type=int, default=256, help="image pool (rote's bench uses 256)")
    p.add_argument("--seed", type=int, default=0)
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)
    gen = torch.Generator().manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    pixels, _ = common.load_pair(DATA[a.data])
    max_value = 16.0 if a.data == "digits8x8" else 255.0
    pool = rng.permutation(len(pixels))[: a.images]
    x_all = torch.from_numpy(pixels[pool].astype(np.float32) / max_value * 2.0 - 1.0).to(dev)
    _, c, h, w = x_all.shape

    net = UNet(c, h, w, a.base)
    rote_init_(net, gen)
    net = net.to(dev).train()
    n_params = sum(q.numel() for q in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
    abar = np.array(linear_alpha_bar(1000))
    sqrt_ab = np.sqrt(abar).astype(np.float32)
    sqrt_1mab = np.sqrt(1.0 - abar).astype(np.float32)

    order, cursor, loss_sum = np.array([], dtype=np.int64), 0, 0.0
    with common.Timer(dev) as tm:
        for _ in range(a.steps):
            batch = []
            while len(batch) < a.batch_size:
                if cursor >= len(order):
                    order, cursor = rng.permutation(len(x_all)), 0
                batch.append(order[cursor])
                cursor += 1
            b = len(batch)
            x0 = x_all[torch.as_tensor(batch, device=dev)]
            t = rng.integers(0, 1000, size=b)
            sa = torch.from_numpy(sqrt_ab[t]).to(dev).view(b, 1, 1, 1)
            sb = torch.from_numpy(sqrt_1mab[t]).to(dev).view(b, 1, 1, 1)
            eps = torch.from_numpy(rng.standard_normal((b, c, h, w), dtype=np.float32)).to(dev)
            xt = x0 * sa + eps * sb
            pred = net(xt, torch.from_numpy(t).to(dev))
            loss = ((pred - eps) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = loss.item()
            if not math.isfinite(lv):
                raise SystemExit(f"training diverged (loss {lv})")
            loss_sum += lv
    images = a.steps * a.batch_size
    common.emit(
        "ddpm-train",
        dev,
        tm.seconds,
        images / tm.seconds,
        items="training images",
        images_per_sec=images / tm.seconds,
        mirrors=f"rote bench ddpm-train --data {a.data} --base {a.base} --steps {a.steps} --batch-size {a.batch_size} --json",
        data=a.data,
        shape=[int(c), int(h), int(w)],
        base=a.base,
        mults=net.mults,
        n_params=n_params,
        steps=a.steps,
        batch_size=a.batch_size,
        mean_loss=loss_sum / max(a.steps, 1),
    )


if __name__ == "__main__":
    main()
