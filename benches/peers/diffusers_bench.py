"""PyTorch/diffusers peer of `rote bench diffusers MODEL`: DDIM sampling of a diffusers
UNet2DModel folder with its DDIMScheduler loop (as DDIMPipeline runs it, eta 0), then the
sharpness of the first --images samples (Jeon et al.; src/diffusion/sharpness.rs):

  x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps at t = 50; operator A v = -sigma_t (J v + J^T v) / 2
  with J = d eps / dx: J v by central differences (step 1e-2) as rote does, J^T v by reverse mode
  (torch.func.vjp); --jvp exact uses torch.func.jvp instead (the official code's choice), which is
  one forward-mode pass; Lanczos with full reorthogonalisation, --iterations steps, all images
  in one batch.

Needs torch and diffusers (`pip install torch diffusers`). --make DIR writes a random model with
google/ddpm-cifar10-32's configuration there first (35.7M parameters, seeded), so both sides can
time the same weights:

    python benches/peers/diffusers_bench.py --make /tmp/cifar-full
    RAYON_NUM_THREADS=2 target/release/rote bench diffusers /tmp/cifar-full --json
    python benches/peers/diffusers_bench.py --model /tmp/cifar-full --threads 2
"""

import argparse
import json
import sys
import time

import torch


def make(dir_):
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=2,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        norm_eps=1e-6,
    )
    unet.save_pretrained(dir_, safe_serialization=True)
    DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(dir_)
    print(f"wrote {dir_}", file=sys.stderr)


def eps_fn(unet, sched, t):
    ab = sched.alphas_cumprod[t].item()
    kind = sched.config.prediction_type

    def f(x):
        tt = torch.full((x.shape[0],), float(t))
        out = unet(x, tt).sample
        if kind == "epsilon":
            return out
        if kind == "v_prediction":
            return ab**0.5 * out + (1 - ab) ** 0.5 * x
        return (x - ab**0.5 * out) / (1 - ab) ** 0.5

    return f, (1 - ab) ** 0.5


def lanczos(apply, v0, m):
    b, d = v0.shape
    q = [v0 / v0.norm(dim=1, keepdim=True)]
    alphas, betas = [], []
    for k in range(m):
        w = apply(q[k])
        a = (w * q[k]).sum(1)
        alphas.append(a)
        for _ in range(2):
            for qj in q:
                w = w - (w * qj).sum(1, keepdim=True) * qj
        beta = w.norm(dim=1)
        if k + 1 < m:
            betas.append(beta)
            q.append(w / beta[:, None])
    return alphas, betas


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--make")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--jvp", choices=["fd", "exact"], default="fd")
    a = ap.parse_args()
    if a.make:
        make(a.make)
        if not a.model:
            return
    if a.threads:
        torch.set_num_threads(a.threads)
    from diffusers import DDIMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(a.model).eval()
    sched = DDIMScheduler.from_pretrained(a.model)
    c, s = unet.config.in_channels, unet.config.sample_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.samples, c, s, s, generator=g)
    with torch.no_grad():
        unet(x[:1], torch.tensor([500.0]))
        sched.set_timesteps(a.steps)
        start = time.perf_counter()
        for t in sched.timesteps:
            out = unet(x, t).sample
            x = sched.step(out, t, x).prev_sample
        ddim = time.perf_counter() - start

    k = min(a.images, a.samples)
    x0 = x[:k].clamp(-1, 1)
    t = 50
    f, sigma = eps_fn(unet, sched, t)
    ab = sched.alphas_cumprod[t].item()
    xt = ab**0.5 * x0 + sigma * torch.randn(x0.shape, generator=g)
    d = c * s * s
    h = 1e-2

    def apply(v):
        v4 = v.reshape(xt.shape)
        if a.jvp == "exact":
            # Forward-mode AD is not implemented for the fused CPU attention kernel (the
            # official code switches SDP backends too, spec 07's pitfall): the math backend.
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel(SDPBackend.MATH):
                _, jv = torch.func.jvp(f, (xt,), (v4,))
        else:
            with torch.no_grad():
                jv = (f(xt + h * v4) - f(xt - h * v4)) / (2 * h)
        _, vjp = torch.func.vjp(f, xt)
        (jtv,) = vjp(v4)
        return (-sigma / 2 * (jv + jtv)).reshape(k, d).detach()

    v0 = torch.randint(0, 2, (k, d), generator=g).float() * 2 - 1
    start = time.perf_counter()
    lanczos(apply, v0, a.iterations)
    sharp = time.perf_counter() - start
    print(
        json.dumps(
            {
                "workload": "diffusers",
                "device": "cpu",
                "seconds": ddim,
                "items_per_sec": a.samples * a.steps / ddim,
                "ddim_seconds": ddim,
                "evals_per_sec": a.samples * a.steps / ddim,
                "sharpness_seconds_per_image": sharp / k,
                "jvp": a.jvp,
                "threads": torch.get_num_threads(),
                "mirrors": f"rote bench diffusers {a.model} --samples {a.samples} --steps {a.steps} "
                f"--images {a.images} --iterations {a.iterations} --json",
            }
        )
    )


if __name__ == "__main__":
    main()
