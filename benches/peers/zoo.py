"""PyTorch peer of `rote bench zoo`: K MLPs 784-512-256-10 trained together as stacked weights.

Mirrors src/bench.rs::bench_zoo -> src/train/zoo.rs::train_group_mlp and
src/train/batched_mlp.rs:
  * data: mnist10k (10,000 x 28x28 grey), pixels / 255, a seeded 80/20 stratified split;
    every model trains on its own seeded subset of round(0.7 x |train split|) samples;
  * inputs standardised with ONE scalar mean and std (the per-channel train-split statistics,
    averaged over channels: mnist has one);
  * layer l of all K models is a (K, in, out) weight and a (K, 1, out) bias; forward is
    x @ W + b (batched matmul), ReLU between layers;
  * init: PyTorch's default for Linear, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias;
  * loss: sum over models of each model's mean cross-entropy;
  * SGD, lr 0.1, momentum 0.9, no weight decay, no Nesterov (v <- 0.9 v + g; p <- p - 0.1 v);
  * batch 128 per model (the last batch of an epoch is short), a fresh shuffle per model and
    epoch; the loss is read back to the host every 5 steps (rote checks it is finite);
  * after training, rote scores every model on all 10,000 images in chunks of 256 (loss, margin,
    correctness read back to the host); --no-signals skips that here.
Timed: from the data upload to the end of the scoring pass (rote's `batched_secs` also includes
creating and writing a small temporary study folder, a few KB per model).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

import common

DIMS = [784, 512, 256, 10]


def init_stacked(k, dims, gen, dev):
    params = []
    for fan_in, out in zip(dims[:-1], dims[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(k, fan_in, out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(k, 1, out, generator=gen) * 2 - 1) * bound
        params += [w.to(dev).requires_grad_(), b.to(dev).requires_grad_()]
    return params


def forward(params, x, mean, inv_std):
    x = (x - mean) * inv_std
    n = len(params) // 2
    for l in range(n):
        x = torch.baddbmm(params[2 * l + 1], x, params[2 * l])
        if l < n - 1:
            x = torch.relu(x)
    return x


def stacked_ce(logits, labels):
    """Sum over models of each model's mean cross-entropy; logits (K, B, C), labels (K, B)."""
    log_p = F.log_softmax(logits, dim=-1)
    return -log_p.gather(2, labels.unsqueeze(2)).squeeze(2).mean(1).sum()


def scores(params, x, y, mean, inv_std, k, chunk=256):
    """rote's scoring pass: per-sample loss, margin and correctness of every model, to the host."""
    outs = []
    for lo in range(0, x.shape[0], chunk):
        xb = x[lo : lo + chunk].unsqueeze(0).expand(k, -1, -1)
        yb = y[lo : lo + chunk].unsqueeze(0).expand(k, -1)
        logits = forward(params, xb, mean, inv_std)
        log_p = F.log_softmax(logits, dim=-1)
        idx = yb.unsqueeze(2)
        loss = -log_p.gather(2, idx).squeeze(2)
        true_logit = logits.gather(2, idx)
        other = logits.scatter(2, idx, -1e30).amax(2, keepdim=True)
        margin = (true_logit - other).squeeze(2)
        correct = logits.argmax(-1) == yb
        outs.append((loss.cpu(), margin.cpu(), correct.cpu()))
    return outs


def train_batched(k, epochs, x_all, y_all, subsets, mean, inv_std, dev, gen, signals, bs=128, lr=0.1, mom=0.9):
    params = init_stacked(k, DIMS, gen, dev)
    opt = torch.optim.SGD(params, lr=lr, momentum=mom)
    subsets_t = torch.as_tensor(np.stack(subsets), device=dev)  # (K, m)
    m = subsets_t.shape[1]
    steps_per_epoch = -(-m // bs)
    d = x_all.shape[1]
    step = 0
    last = float("nan")
    for _ in range(epochs):
        perm = torch.argsort(torch.rand(k, m, generator=gen), dim=1).to(dev)
        order = subsets_t.gather(1, perm)  # (K, m) data-set indices, shuffled per model
        for b in range(steps_per_epoch):
            idx = order[:, b * bs : (b + 1) * bs]
            nb = idx.shape[1]
            xb = x_all.index_select(0, idx.reshape(-1)).view(k, nb, d)
            yb = y_all.index_select(0, idx.reshape(-1)).view(k, nb)
            loss = stacked_ce(forward(params, xb, mean, inv_std), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0 or step == epochs * steps_per_epoch:
                last = loss.item() / k
                if not math.isfinite(last):
                    raise SystemExit(f"zoo training diverged at step {step}")
    if signals:
        scores(params, x_all, y_all, mean, inv_std, k)
    return step, last


def train_sequential(k, epochs, x_all, y_all, subsets, mean, inv_std, dev, gen, bs=128, lr=0.1, mom=0.9):
    """The same K models one after another (plain nn.Linear MLPs), like rote's one-by-one run."""
    for j in range(k):
        layers = []
        for fan_in, out in zip(DIMS[:-1], DIMS[1:]):
            layers += [torch.nn.Linear(fan_in, out), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1]).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=mom)
        sub = torch.as_tensor(subsets[j], device=dev)
        for _ in range(epochs):
            order = sub[torch.randperm(len(sub), generator=gen).to(dev)]
            for lo in range(0, len(sub), bs):
                idx = order[lo : lo + bs]
                logits = net((x_all[idx] - mean) * inv_std)
                loss = F.cross_entropy(logits, y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            net((x_all - mean) * inv_std).argmax(1).cpu()


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=16, help="K models (rote default 16)")
    p.add_argument("--epochs", type=int, default=2, help="epochs (rote bench default 2)")
    p.add_argument("--no-signals", action="store_true", help="skip the final scoring pass")
    p.add_argument("--sequential", action="store_true", help="also train the K models one by one")
    p.add_argument("--seed", type=int, default=0)
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)
    gen = torch.Generator().manual_seed(a.seed)

    px, labels = common.load_pair("mnist10k")
    train_idx = common.stratified_train_indices(labels, 0.2, 0)
    m = int(math.floor(len(train_idx) * 0.7 + 0.5))
    rng = np.random.default_rng(a.seed)
    subsets = [np.sort(rng.permutation(train_idx)[:m]) for _ in range(a.models)]
    mean, std = common.channel_stats(px, train_idx)
    mean_s, inv_std_s = float(mean.mean()), 1.0 / max(float(std.mean()), 1e-6)
    x_host = torch.from_numpy(px.reshape(len(px), -1).astype(np.float32) / 255.0)
    y_host = torch.from_numpy(labels)

    with common.Timer(dev) as t:
        x_all, y_all = x_host.to(dev), y_host.to(dev)
        steps, last = train_batched(
            a.models, a.epochs, x_all, y_all, subsets, mean_s, inv_std_s, dev, gen, not a.no_signals
        )
    seq = None
    if a.sequential:
        with common.Timer(dev) as ts:
            train_sequential(a.models, a.epochs, x_all, y_all, subsets, mean_s, inv_std_s, dev, gen)
        seq = ts.seconds
    me = a.models * a.epochs
    common.emit(
        "zoo",
        dev,
        t.seconds,
        me / t.seconds,
        items="model-epochs",
        models=a.models,
        epochs=a.epochs,
        n_per_model=m,
        steps=steps,
        final_loss_per_model=last,
        signals=not a.no_signals,
        batched_model_epochs_per_sec=me / t.seconds,
        sequential_secs=seq,
        sequential_model_epochs_per_sec=(me / seq) if seq else None,
        mirrors=f"rote bench zoo --models {a.models} --epochs {a.epochs} --device {a.device} --json",
    )


if __name__ == "__main__":
    main()
