"""PyTorch peer of `rote bench invert`: MI-FACE gradient steps on a softmax regression of ORL faces.

Mirrors src/invert/bench.rs::bench_miface -> src/invert/miface.rs::descend:
  * model: softmax regression (one Linear 10304 -> 40, src/model: the MLP without hidden
    layers) on pixels / 255 standardised with the train split's channel mean and std;
    trained first (timed apart, like rote's train_seconds): AdamW lr 1e-3, betas (0.9, 0.999),
    eps 1e-8, no weight decay, batch 32, 20 epochs, on the 7-per-person train split (280 images);
  * inversion: all 40 classes at once, start image grey 0.5, cost c = 1 - p_label(x), step
    x <- clip(x - 0.1 * grad_x sum(c), 0, 1); alpha = --iters steps, beta 0 and gamma -1 (the
    stopping rules off, so every class runs all steps); every step reads p and the cost back to
    the host and keeps the best iterate per class (a masked where), as rote does;
  * rote's loop makes iters + 1 forward/backward passes (the last one scores the final iterate)
    and iters updates; the same here.
"""

import numpy as np
import torch
import torch.nn.functional as F

import common


def train_softmax(x, y, classes, dev, gen, epochs=20, bs=32, lr=1e-3):
    net = torch.nn.Linear(x.shape[1], classes).to(dev)
    bound = 1.0 / np.sqrt(x.shape[1])
    with torch.no_grad():  # PyTorch's default Linear init, drawn from our generator
        net.weight.copy_((torch.rand(net.weight.shape, generator=gen) * 2 - 1) * bound)
        net.bias.copy_((torch.rand(net.bias.shape, generator=gen) * 2 - 1) * bound)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    n = x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(dev)
        for lo in range(0, n, bs):
            idx = order[lo : lo + bs]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():  # rote evaluates every epoch
            acc = (net(x).argmax(1) == y).float().mean().item()
    return net, acc


def mi_face(net, mean, inv_std, shape, classes, alpha, lam, dev):
    b = len(classes)
    x = torch.full((b, *shape), 0.5, device=dev)
    best = x.clone()
    labels = torch.tensor(classes, device=dev).view(b, 1)
    best_cost = np.full(b, np.inf, dtype=np.float32)
    costs = []
    for i in range(alpha + 1):
        xv = x.detach().requires_grad_(True)
        logits = net(((xv - mean) * inv_std).flatten(1))
        log_p = F.log_softmax(logits, dim=-1).gather(1, labels).squeeze(1)
        p = log_p.exp()
        per = 1.0 - p
        (g,) = torch.autograd.grad(per.sum(), xv)
        p_h = p.detach().cpu().numpy()
        per.detach().cpu().numpy()  # rote reads both vectors back
        cost = 1.0 - p_h
        costs.append(cost)
        improved = cost < best_cost
        best_cost = np.where(improved, cost, best_cost)
        if improved.any():
            m = torch.from_numpy(improved).to(dev).view(b, 1, 1, 1)
            best = torch.where(m, x, best)
        if i == alpha:
            best.cpu()  # every class stops here: rote hands the best images out
            break
        x = (x - g * lam).clamp(0.0, 1.0).detach()
    return best, np.array(costs)


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=200, help="MI-FACE steps (rote default 200)")
    p.add_argument("--seed", type=int, default=0)
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)
    gen = torch.Generator().manual_seed(a.seed)

    px, labels = common.load_pair("orl-faces")
    shape = px.shape[1:]
    train_idx = common.stratified_train_indices(labels, 0.3, 0)
    mean, std = common.channel_stats(px, train_idx)
    mean_t = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
    inv_std_t = torch.tensor(1.0 / np.maximum(std, 1e-6), device=dev).view(1, -1, 1, 1)
    classes = int(labels.max()) + 1

    with common.Timer(dev) as tt:
        x = torch.from_numpy(px[train_idx].astype(np.float32) / 255.0).to(dev)
        xn = ((x - mean_t) * inv_std_t).flatten(1)
        y = torch.from_numpy(labels[train_idx]).to(dev)
        net, acc = train_softmax(xn, y, classes, dev, gen)
    net.requires_grad_(False)

    with common.Timer(dev) as t:
        _, costs = mi_face(net, mean_t, inv_std_t, shape, list(range(classes)), a.iters, 0.1, dev)
    common.emit(
        "invert",
        dev,
        t.seconds,
        a.iters / t.seconds,
        items="steps (each inverts all classes)",
        classes=classes,
        shape=list(shape),
        steps=a.iters,
        steps_per_s=a.iters / t.seconds,
        image_steps_per_s=a.iters * classes / t.seconds,
        train_seconds=tt.seconds,
        train_acc=acc,
        mean_final_cost=float(costs[-1].mean()),
        mirrors=f"rote bench invert --iters {a.iters} --device {a.device} --json",
    )


if __name__ == "__main__":
    main()
