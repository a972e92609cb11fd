"""Opacus peer of `rote bench dp-zoo`: K MLPs 784-512-256-10 trained with DP-SGD, and the same loop without it.

Mirrors src/bench_dp.rs::bench_dp_zoo -> src/train/zoo_dp.rs, src/train/batched_mlp_dp.rs and
src/defence/dp_sgd.rs:
  * data: mnist10k (10,000 x 28x28 grey), pixels / 255, a seeded 80/20 stratified split; every
    model trains on its own seeded subset of m = round(0.7 x |train split|) = 5,600 samples;
    inputs standardised with one scalar mean and std (as zoo.py);
  * each model is a plain nn.Sequential (Linear 784-512, ReLU, Linear 512-256, ReLU, Linear
    256-10), PyTorch's default init; cross-entropy averaged over the batch;
  * SGD lr 0.1, momentum 0.9; batch 128 (DP: expected batch size);
  * DP run: `PrivacyEngine(accountant="rdp").make_private(..., noise_multiplier=1.0,
    max_grad_norm=1.0, poisson_sampling=True)`: Poisson batches with rate 1 / ceil(m / 128)
    (rote: 128 / m, 1 % larger), per-sample gradients by Opacus's hooks (`--grad-sample-mode
    ghost` for fast gradient clipping), flat clipping over all parameters, Gaussian noise of std
    sigma C, the sum divided by the expected batch size; as many steps per epoch as the plain
    loop (ceil(m / 128));
  * plain run: the same models, loader (a DataLoader over the model's rows, shuffled, batch 128)
    and optimiser without `make_private`;
  * after training, every model scores all 10,000 images in chunks of 256 (loss, margin,
    correctness read back to the host), as rote's scoring pass; --no-signals skips it.
Opacus wraps one module at a time, so the K models train one after another (rote trains them side
by side as stacked weights); the plain loop does the same, so plain / DP is Opacus's own DP cost.
Timed: each run from its first model's set-up to the end of its last model's scoring pass.
"""

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import common

DIMS = [784, 512, 256, 10]


def make_mlp(dev):
    layers = []
    for fan_in, out in zip(DIMS[:-1], DIMS[1:]):
        layers += [torch.nn.Linear(fan_in, out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).to(dev)


@torch.no_grad()
def scores(net, x, y, chunk=256):
    """rote's scoring pass for one model: per-sample loss, margin and correctness, to the host."""
    outs = []
    for lo in range(0, x.shape[0], chunk):
        logits = net(x[lo : lo + chunk])
        yb = y[lo : lo + chunk]
        idx = yb.unsqueeze(1)
        loss = F.cross_entropy(logits, yb, reduction="none")
        other = logits.scatter(1, idx, -1e30).amax(1)
        margin = logits.gather(1, idx).squeeze(1) - other
        outs.append((loss.cpu(), margin.cpu(), (logits.argmax(1) == yb).cpu()))
    return outs


def train_one(x, y, rows, dev, gen, epochs, dp, a, bs=128, lr=0.1, mom=0.9):
    """One model on `rows`; returns (steps, mean loss of the last epoch, epsilon or None)."""
    net = make_mlp(dev)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=mom)
    sub = torch.as_tensor(rows)
    loader = DataLoader(TensorDataset(x[sub], y[sub]), batch_size=bs, shuffle=True, generator=gen)
    criterion = torch.nn.CrossEntropyLoss()
    engine = None
    if dp:
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant="rdp")
        out = engine.make_private(
            module=net,
            optimizer=opt,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=a.noise,
            max_grad_norm=a.clip,
            poisson_sampling=True,
            grad_sample_mode=a.grad_sample_mode,
        )
        if a.grad_sample_mode == "ghost":
            net, opt, criterion, loader = out
        else:
            net, opt, loader = out
    steps = 0
    last = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for xb, yb in loader:
            if len(yb) == 0:
                continue  # an empty Poisson batch: nothing to clip (noise-only step skipped)
            loss = criterion(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            total += float(loss.item()) * len(yb)
            count += len(yb)
        last = total / max(count, 1)
        if not math.isfinite(last):
            raise SystemExit(f"training diverged (dp={dp})")
    if a.signals:
        scores(net, x, y)
    eps = engine.get_epsilon(a.delta) if engine is not None else None
    return steps, last, eps


def run(x, y, subsets, dev, seed, epochs, dp, a):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    steps, losses, eps = 0, [], None
    with common.Timer(dev) as t:
        for rows in subsets:
            s, last, eps = train_one(x, y, rows, dev, gen, epochs, dp, a)
            steps += s
            losses.append(last)
    return t.seconds, steps, float(np.mean(losses)), eps


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=16, help="K models (rote bench dp-zoo default 16)")
    p.add_argument("--epochs", type=int, default=2, help="epochs (rote bench dp-zoo default 2)")
    p.add_argument("--noise", type=float, default=1.0, help="noise multiplier sigma (rote --dp-noise)")
    p.add_argument("--clip", type=float, default=1.0, help="clipping norm C (rote --dp-clip)")
    p.add_argument("--delta", type=float, default=1e-5, help="delta of the reported epsilon")
    p.add_argument(
        "--grad-sample-mode",
        default="hooks",
        choices=["hooks", "ghost"],
        help="Opacus's per-sample gradients: hooks (materialised, the default) or ghost (fast gradient clipping)",
    )
    p.add_argument("--dp-only", action="store_true", help="skip the plain run")
    p.add_argument("--no-signals", dest="signals", action="store_false", help="skip the scoring pass")
    p.add_argument("--seed", type=int, default=0)
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)
    warnings.filterwarnings("ignore")  # Opacus's secure-mode and hook notices

    px, labels = common.load_pair("mnist10k")
    train_idx = common.stratified_train_indices(labels, 0.2, 0)
    m = int(math.floor(len(train_idx) * 0.7 + 0.5))
    rng = np.random.default_rng(a.seed)
    subsets = [np.sort(rng.permutation(train_idx)[:m]) for _ in range(a.models)]
    mean, std = common.channel_stats(px, train_idx)
    x = torch.from_numpy(px.reshape(len(px), -1).astype(np.float32) / 255.0)
    x = ((x - float(mean.mean())) / max(float(std.mean()), 1e-6)).to(dev)
    y = torch.from_numpy(labels).to(dev)

    me = a.models * a.epochs
    plain = None
    if not a.dp_only:
        plain = run(x, y, subsets, dev, a.seed, a.epochs, False, a)
        common.note(f"plain: {plain[0]:.2f} s, {me / plain[0]:.2f} model-epochs/s, loss {plain[2]:.3f}")
    dp_secs, dp_steps, dp_loss, eps = run(x, y, subsets, dev, a.seed + 1, a.epochs, True, a)
    common.note(f"opacus: {dp_secs:.2f} s, {me / dp_secs:.2f} model-epochs/s, loss {dp_loss:.3f}, eps {eps:.3f}")
    import opacus

    plain_secs = plain[0] if plain else None
    common.emit(
        "dp-zoo",
        dev,
        dp_secs,
        me / dp_secs,
        items="model-epochs (DP-SGD, Opacus)",
        opacus=opacus.__version__,
        grad_sample_mode=a.grad_sample_mode,
        models=a.models,
        epochs=a.epochs,
        n_per_model=m,
        noise_multiplier=a.noise,
        clip=a.clip,
        sample_rate=1.0 / math.ceil(m / 128),
        dp_steps=dp_steps,
        epsilon=eps,
        delta=a.delta,
        dp_final_loss_per_model=dp_loss,
        dp_secs=dp_secs,
        dp_model_epochs_per_sec=me / dp_secs,
        plain_secs=plain_secs,
        plain_items_per_sec=(me / plain_secs) if plain else None,
        plain_steps=plain[1] if plain else None,
        plain_final_loss_per_model=plain[2] if plain else None,
        dp_cost=(dp_secs / plain_secs) if plain else None,
        signals=a.signals,
        mirrors=f"rote bench dp-zoo --models {a.models} --epochs {a.epochs} "
        f"--dp-noise {a.noise} --dp-clip {a.clip} --json",
    )


if __name__ == "__main__":
    main()
