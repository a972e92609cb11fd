"""PyTorch peer of `rote bench ddim`: deterministic DDIM sampling (eta 0) with rote's UNet.

Mirrors src/diffusion/bench.rs::bench_ddim -> sample.rs::generate_tensor / ddim_step and the
UNet of src/diffusion/unet.rs, layer for layer and with the same parameter names, so weights
that rote saves (`STUDY/diffusion/<id>/weights.safetensors`, e.g. the demo models in
assets/demo/diffusion/*/) load with --weights (F16 or F32 files; computed in F32).

UNet (UNetConfig::for_image): levels mults = [1, 2, 2] when H and W are multiples of 4 and
H >= 16, else [1, 2]; temb_dim = 4 * base; sinusoidal embedding of the integer timestep
(cat[cos, sin], `base` features, freqs exp(-ln(10000) i / (base/2))) -> time.l1 -> SiLU ->
time.l2; conv_in 3x3; per level a ResBlock (GroupNorm -> SiLU -> conv3x3, + Linear(SiLU(temb)),
GroupNorm -> SiLU -> conv3x3, + 1x1 skip when widths differ), then 2x2 average pooling and a
3x3 conv between levels; mid ResBlock; up ResBlocks on cat[h, skip] with nearest-neighbour 2x
upsampling and a 3x3 conv between levels; GroupNorm -> SiLU -> conv_out 3x3. GroupNorm groups:
the largest of 8, 4, 2, 1 dividing the width, eps 1e-5. No attention.

Sampler: linear betas 1e-4..0.02 over T = 1000, respaced to --steps kept timesteps
(round((i+1) T / steps) - 1) with alpha-bars kept; at each step the x0 prediction is clipped to
[-1, 1] and eps recomputed from it (guided-diffusion's clip_denoised); eta 0. Batches of 256.
Like rote, fresh noise for every step is drawn even though eta 0 never uses it (--noise).
"""

import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import common


# ---------------------------------------------------------------------------------------------
# UNet (src/diffusion/unet.rs)
# ---------------------------------------------------------------------------------------------


def groups(ch):
    return next(g for g in (8, 4, 2, 1) if ch % g == 0)


def mults_for(h, w):
    return [1, 2, 2] if (h % 4 == 0 and w % 4 == 0 and h >= 16) else [1, 2]


def conv3(i, o):
    return nn.Conv2d(i, o, 3, padding=1)


class ResBlock(nn.Module):
    def __init__(self, in_c, out_c, temb_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups(in_c), in_c, eps=1e-5)
        self.conv1 = conv3(in_c, out_c)
        self.temb = nn.Linear(temb_dim, out_c)
        self.norm2 = nn.GroupNorm(groups(out_c), out_c, eps=1e-5)
        self.conv2 = conv3(out_c, out_c)
        self.skip = nn.Conv2d(in_c, out_c, 1) if in_c != out_c else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Time(nn.Module):
    def __init__(self, b, temb_dim):
        super().__init__()
        self.l1 = nn.Linear(b, temb_dim)
        self.l2 = nn.Linear(temb_dim, temb_dim)


def timestep_embedding(t, dim):
    half = dim // 2
    i = torch.arange(half, device=t.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(10000.0) * i / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class UNet(nn.Module):
    """rote's UNet; state_dict keys equal the names candle's VarBuilder gives (down0.conv1.weight,
    time.l1.bias, upsample1.weight, ...)."""

    def __init__(self, channels, height, width, base, mults=None):
        super().__init__()
        self.mults = list(mults or mults_for(height, width))
        f = 1 << (len(self.mults) - 1)
        if height % f or width % f:
            raise ValueError(f"a {len(self.mults)}-level UNet needs sides divisible by {f}")
        self.base = b = base
        temb_dim = 4 * b
        self.time = Time(b, temb_dim)
        self.conv_in = conv3(channels, b)
        ch, skips = b, []
        self.down_names, self.downsample_names = [], []
        for l, m in enumerate(self.mults):
            out = b * m
            self.add_module(f"down{l}", ResBlock(ch, out, temb_dim))
            self.down_names.append(f"down{l}")
            ch = out
            skips.append(ch)
            if l + 1 < len(self.mults):
                self.add_module(f"downsample{l}", conv3(ch, ch))
                self.downsample_names.append(f"downsample{l}")
        self.mid = ResBlock(ch, ch, temb_dim)
        self.up_names, self.upsample_names = [], []
        for l in reversed(range(len(self.mults))):
            out = b * self.mults[l]
            self.add_module(f"up{l}", ResBlock(ch + skips[l], out, temb_dim))
            self.up_names.append(f"up{l}")
            ch = out
            if l > 0:
                self.add_module(f"upsample{l}", conv3(ch, ch))
                self.upsample_names.append(f"upsample{l}")
        self.norm_out = nn.GroupNorm(groups(ch), ch, eps=1e-5)
        self.conv_out = conv3(ch, channels)

    def forward(self, x, t):
        temb = timestep_embedding(t, self.base).to(x.dtype)
        temb = self.time.l2(F.silu(self.time.l1(temb)))
        temb_act = F.silu(temb)  # every ResBlock applies SiLU to temb before its Linear
        h = self.conv_in(x)
        skips = []
        for l, name in enumerate(self.down_names):
            h = getattr(self, name)(h, temb_act)
            skips.append(h)
            if l < len(self.downsample_names):
                h = getattr(self, self.downsample_names[l])(F.avg_pool2d(h, 2))
        h = self.mid(h, temb_act)
        for k, name in enumerate(self.up_names):
            h = getattr(self, name)(torch.cat([h, skips.pop()], dim=1), temb_act)
            if k < len(self.upsample_names):
                h = getattr(self, self.upsample_names[k])(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def rote_init_(net, gen):
    """Same distributions as rote's crate::model::seeded_init (values differ: rote draws them
    with ChaCha8 keyed by SHA-256(seed:name)): U(+-1/sqrt(fan_in)) for weights of 2+ dims and
    their layer's bias, 1 / 0 for GroupNorm gains / biases."""
    sd = dict(net.named_parameters())
    for name, p in sd.items():
        layer = name.rsplit(".", 1)[0]
        w = sd.get(layer + ".weight")
        with torch.no_grad():
            if w is not None and w.dim() == 1:
                p.fill_(1.0 if name.endswith(".weight") else 0.0)
                continue
            fan_in = max(int(np.prod(w.shape[1:])), 1)
            bound = 1.0 / math.sqrt(fan_in)
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)


def load_rote_weights(net, path):
    from safetensors.torch import load_file

    sd = {k: v.to(torch.float32) for k, v in load_file(path).items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing}, unexpected {unexpected}")


# ---------------------------------------------------------------------------------------------
# Schedule and DDIM step (schedule.rs, sample.rs)
# ---------------------------------------------------------------------------------------------


def linear_alpha_bar(t_max=1000):
    lo, hi = 1e-4, 0.02
    betas = [lo + (hi - lo) * i / (max(t_max, 2) - 1) for i in range(t_max)]
    ab, acc = [], 1.0
    for b in betas:
        acc *= 1.0 - b
        ab.append(acc)
    return ab


def respaced(alpha_bar, steps):
    n = len(alpha_bar)
    steps = min(max(steps, 1), n)
    keep = []
    for i in range(steps):
        k = int(math.floor((i + 1) * n / steps + 0.5)) - 1
        if not keep or keep[-1] != k:
            keep.append(k)
    return keep, [alpha_bar[k] for k in keep]


@torch.no_grad()
def ddim_sample(net, x, timesteps, alpha_bars, noise_fn=None):
    """Deterministic DDIM (eta 0) from x_T = x over the respaced steps, newest first."""
    b = x.shape[0]
    for i in reversed(range(len(timesteps))):
        if noise_fn is not None:
            noise_fn()  # rote draws a step's noise even when eta 0 does not use it
        t = torch.full((b,), timesteps[i], device=x.device, dtype=torch.int64)
        eps = net(x, t)
        ab = alpha_bars[i]
        ab_prev = alpha_bars[i - 1] if i > 0 else 1.0
        x0 = ((x - eps * math.sqrt(1.0 - ab)) / math.sqrt(ab)).clamp(-1.0, 1.0)
        eps = (x - x0 * math.sqrt(ab)) / math.sqrt(1.0 - ab)
        dir_ = math.sqrt(max(1.0 - ab_prev, 0.0))
        x = x0 * math.sqrt(ab_prev) + eps * dir_
    return x


# ---------------------------------------------------------------------------------------------
# rote's noise: NormalStream (src/diffusion/model.rs) = ChaCha8Rng::seed_from_u64(seed) with
# set_stream(j) per image, Box-Muller on pairs of rand's f64 (53-bit) uniforms. Used only for the
# --check-generations parity check (bit-exact initial noise).
# ---------------------------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def _pcg32_seed(state):
    mul, inc = 6364136223846793005, 11634580027462260723
    words = []
    for _ in range(8):
        state = (state * mul + inc) & 0xFFFFFFFFFFFFFFFF
        xs = (((state >> 18) ^ state) >> 27) & M32
        rot = state >> 59
        words.append(((xs >> rot) | (xs << ((32 - rot) & 31))) & M32)
    return words


def chacha8_words(seed, streams, n_blocks):
    """u32 output words (len(streams), 16 * n_blocks) of rand_chacha's ChaCha8Rng, vectorised."""
    key = np.array(_pcg32_seed(seed), dtype=np.uint32)
    s = len(streams)
    out = np.empty((s, 16 * n_blocks), dtype=np.uint32)
    streams = np.asarray(streams, dtype=np.uint64)
    const = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)

    def rotl(v, c):
        return (v << np.uint32(c)) | (v >> np.uint32(32 - c))

    def qr(x, a, b, c, d):
        x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 16)
        x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 12)
        x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 8)
        x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 7)

    with np.errstate(over="ignore"):
        for blk in range(n_blocks):
            init = np.empty((16, s), dtype=np.uint32)
            init[0:4] = const[:, None]
            init[4:12] = key[:, None]
            init[12] = blk & M32
            init[13] = blk >> 32
            init[14] = (streams & np.uint64(M32)).astype(np.uint32)
            init[15] = (streams >> np.uint64(32)).astype(np.uint32)
            x = init.copy()
            for _ in range(4):  # 8 rounds = 4 double rounds
                qr(x, 0, 4, 8, 12); qr(x, 1, 5, 9, 13); qr(x, 2, 6, 10, 14); qr(x, 3, 7, 11, 15)
                qr(x, 0, 5, 10, 15); qr(x, 1, 6, 11, 12); qr(x, 2, 7, 8, 13); qr(x, 3, 4, 9, 14)
            out[:, 16 * blk : 16 * (blk + 1)] = (x + init).T
    return out


def rote_initial_noise(seed, first, count, img_len):
    """The first img_len normals of NormalStream(seed, j) for j in first..first+count."""
    n_u64 = img_len + (img_len % 2)  # two f64 per pair
    blocks = -(-(2 * n_u64) // 16)
    w = chacha8_words(seed, list(range(first, first + count)), blocks).astype(np.uint64)
    u64 = w[:, 0 : 2 * n_u64 : 2] | (w[:, 1 : 2 * n_u64 : 2] << np.uint64(32))
    f = (u64 >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    u1 = np.maximum(f[:, 0::2], 1e-300)
    u2 = f[:, 1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    th = 2.0 * math.pi * u2
    z = np.empty((count, n_u64), dtype=np.float32)
    z[:, 0::2] = (r * np.cos(th)).astype(np.float32)
    z[:, 1::2] = (r * np.sin(th)).astype(np.float32)
    return z[:, :img_len]


def check_generations(net, model_dir, dev, limit=256):
    """Regenerates rote's cached generations (model_dir/generations/ddimSeE0-sS-nN.u8) with the
    same initial noise and compares the bytes; returns a dict of agreement figures."""
    import glob
    import json
    import re

    card = json.load(open(os.path.join(model_dir, "card.json")))
    u = card["unet"]
    shape = (u["channels"], u["height"], u["width"])
    max_value = 16 if card["dataset"]["name"] == "digits8x8" else 255
    files = sorted(glob.glob(os.path.join(model_dir, "generations", "ddim*e0-s*-n*.u8")))
    if not files:
        return {"reference": None}
    path = files[0]
    steps, seed, n = map(int, re.search(r"ddim(\d+)e0-s(\d+)-n(\d+)\.u8$", path).groups())
    ref = np.fromfile(path, dtype=np.uint8).reshape(n, *shape)
    n = min(n, limit) if limit > 0 else n  # image j uses noise stream j: any prefix is comparable
    ref = ref[:n]
    img_len = int(np.prod(shape))
    z = rote_initial_noise(seed, 0, n, img_len).reshape(n, *shape)
    keep, abar = respaced(linear_alpha_bar(card["t_max"]), steps)
    x = torch.from_numpy(z).to(dev)
    out = ddim_sample(net, x, keep, abar)
    got = ((out.clamp(-1, 1) + 1) / 2 * max_value).round().to(torch.uint8).cpu().numpy()
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    return {
        "reference": os.path.relpath(path, common.REPO),
        "images": n,
        "pixels_equal_frac": float((diff == 0).mean()),
        "images_equal_frac": float((diff.reshape(n, -1).max(1) == 0).mean()),
        "max_abs_diff_levels": int(diff.max()),
        "max_value": max_value,
    }


# ---------------------------------------------------------------------------------------------


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=256, help="images (rote default 256)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (rote default 50)")
    p.add_argument("--base", type=int, default=32, help="UNet base width (rote default 32)")
    p.add_argument("--side", type=int, default=28, help="grey square image side (rote default 28)")
    p.add_argument("--batch", type=int, default=256, help="images per batch (rote uses 256)")
    p.add_argument("--weights", help="rote UNet weights.safetensors (shape taken from card.json beside it)")
    p.add_argument(
        "--noise",
        choices=["device", "host", "none"],
        default="device",
        help="per-step noise like rote draws (and ignores at eta 0): torch.randn on the device, "
        "numpy normals on the host copied over (closest to rote), or none",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed UNet forwards first (rote does none)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (cuDNN tuning)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (not rote-like)")
    p.add_argument("--check", action="store_true", help="with --weights: regenerate rote's cached generations and compare")
    p.add_argument("--check-images", type=int, default=256, help="--check: compare the first N cached images (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    common.add_device_arg(p)
    a = p.parse_args()
    dev = common.pick_device(a)
    gen = torch.Generator().manual_seed(a.seed)

    channels, h, w, mults = 1, a.side, a.side, None
    if a.weights:
        import json

        card_path = os.path.join(os.path.dirname(a.weights), "card.json")
        if os.path.exists(card_path):
            u = json.load(open(card_path))["unet"]
            channels, h, w, a.base, mults = u["channels"], u["height"], u["width"], u["base"], u["mults"]
            common.note(f"UNet from {card_path}: {channels}x{h}x{w}, base {a.base}, mults {mults}")
    net = UNet(channels, h, w, a.base, mults)
    if a.weights:
        load_rote_weights(net, a.weights)
    else:
        rote_init_(net, gen)
    net = net.to(dev).eval()
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in net.parameters())
    check = None
    if a.check:
        if not a.weights:
            raise SystemExit("--check needs --weights of a model folder with generations/")
        t0 = time.perf_counter()
        check = check_generations(net, os.path.dirname(a.weights), dev, a.check_images)
        check["seconds"] = time.perf_counter() - t0
        common.note("parity check:", check)
    fwd = torch.compile(net) if a.compile else net

    keep, abar = respaced(linear_alpha_bar(1000), a.steps)
    shape = (channels, h, w)
    with torch.no_grad():
        for _ in range(a.warmup):
            xw = torch.randn(min(a.batch, a.samples), *shape, device=dev)
            fwd(xw, torch.full((xw.shape[0],), keep[-1], device=dev))
    common.sync(dev)

    def noise_fn_for(nb):
        if a.noise == "device":
            return lambda: torch.randn(nb, *shape, device=dev)
        if a.noise == "host":
            rng = np.random.default_rng(a.seed)
            return lambda: torch.from_numpy(rng.standard_normal((nb, *shape), dtype=np.float32)).to(dev)
        return None

    with common.Timer(dev) as t:
        outs = []
        for start in range(0, a.samples, a.batch):
            nb = min(a.batch, a.samples - start)
            x = torch.randn(nb, *shape, device=dev, generator=None)
            if a.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outs.append(ddim_sample(fwd, x, keep, abar, noise_fn_for(nb)))
        total = torch.cat(outs).sum().item()  # rote ends with sum_all().to_vec0()
    evals = a.samples * len(keep)
    common.emit(
        "ddim",
        dev,
        t.seconds,
        a.samples / t.seconds,
        items="images",
        images_per_sec=a.samples / t.seconds,
        evals_per_sec=evals / t.seconds,
        shape=list(shape),
        base=a.base,
        mults=net.mults,
        n_params=n_params,
        samples=a.samples,
        steps=len(keep),
        batch=a.batch,
        noise=a.noise,
        warmup=a.warmup,
        weights=a.weights,
        check=check,
        finite=math.isfinite(total),
        mirrors=None if a.weights else f"rote bench ddim --samples {a.samples} --steps {a.steps} --base {a.base} --side {a.side} --device {a.device} --json",
    )


if __name__ == "__main__":
    main()
