//! diffusers' UNet2DModel read by rote against diffusers' own outputs: two tiny checkpoints made by
//! `tests/fixtures/make_diffusers_fixtures.py` (diffusers 0.42.1, seeded random weights) with an
//! input batch, timesteps and the model's output. `dummy`: the layout of diffusers' CPU test UNet
//! with its defaults (downsample_padding 1, flip_sin_to_cos, freq_shift 0, two attention heads);
//! `cifar`: google/ddpm-cifar10-32's block layout at a small width (three levels, two layers per
//! block, attention in the middle level, one head, downsample_padding 0, freq_shift 1, norm_eps
//! 1e-6, random GroupNorm affine parameters).

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::path::{Path, PathBuf};

use candle_core::Device;
use rote::diffusion::diffusers_unet;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusers")
        .join(name)
}

#[test]
fn outputs_match_diffusers() {
    for name in ["cifar", "dummy"] {
        let dir = fixture(name);
        let unet = diffusers_unet::load(&dir, &Device::Cpu).unwrap();
        let expected =
            candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
        let eps = unet.forward(&expected["x"], &expected["t"]).unwrap();
        let want = &expected["eps"];
        assert_eq!(eps.dims(), want.dims(), "{name}");
        let diff = max_diff(&eps, want);
        let scale = max_diff(want, &want.zeros_like().unwrap());
        assert!(scale > 0.1, "{name}: a vacuous fixture");
        assert!(
            diff <= 1e-4,
            "{name}: max |rote - diffusers| = {diff} (output scale {scale})"
        );
    }
}

#[test]
fn broken_folders_name_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A pickle only: refused with the conversion.
    std::fs::copy(fixture("dummy").join("config.json"), d.join("config.json")).unwrap();
    std::fs::write(d.join("diffusion_pytorch_model.bin"), b"PK\x03\x04 not really").unwrap();
    let e = diffusers_unet::load(d, &Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("diffusion_pytorch_model.bin") && e.contains("save_pretrained"),
        "{e}"
    );
    // Weights of another model: one line naming the weights file.
    std::fs::remove_file(d.join("diffusion_pytorch_model.bin")).unwrap();
    std::fs::copy(
        fixture("cifar").join(diffusers_unet::WEIGHTS),
        d.join(diffusers_unet::WEIGHTS),
    )
    .unwrap();
    let e = diffusers_unet::load(d, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains(diffusers_unet::WEIGHTS) && !e.contains('\n'), "{e}");
    // An unsupported block type and absurd sizes: the config named.
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("dummy").join("config.json")).unwrap())
            .unwrap();
    cfg["down_block_types"][1] = "CrossAttnDownBlock2D".into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = diffusers_unet::load(d, &Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("config.json") && e.contains("CrossAttnDownBlock2D"),
        "{e}"
    );
    cfg["down_block_types"][1] = "AttnDownBlock2D".into();
    cfg["block_out_channels"][0] = 1_000_000_000u64.into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = diffusers_unet::load(d, &Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("config.json") && e.contains("block_out_channels[0]"),
        "{e}"
    );
}

fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// DDIM (10 steps, eta 0, clip_sample, set_alpha_to_one, steps_offset 1) and one ancestral DDPM
/// step with diffusers' own variance noise, from the same x_T, against diffusers' schedulers.
#[test]
fn schedulers_step_as_diffusers_does() {
    use rote::diffusion::diffusers_sched::{DiffusersScheduler, SchedulerKind};
    let dir = fixture("cifar");
    let unet = diffusers_unet::load(&dir, &Device::Cpu).unwrap();
    let want = candle_core::safetensors::load(dir.join("samples.safetensors"), &Device::Cpu).unwrap();
    let ddim = DiffusersScheduler::read(&dir).unwrap();
    assert_eq!(ddim.kind, SchedulerKind::Ddim);
    let ac = candle_core::Tensor::new(ddim.alphas_cumprod.as_slice(), &Device::Cpu).unwrap();
    assert!(max_diff(&ac, &want["alphas_cumprod"]) <= 1e-6);
    let ts = ddim.timesteps(10);
    let want_ts: Vec<usize> = want["timesteps"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&t| t as usize)
        .collect();
    assert_eq!(ts, want_ts);
    let mut x = want["x_T"].clone();
    for &t in &ts {
        let tt = candle_core::Tensor::new(&[t as f32, t as f32], &Device::Cpu).unwrap();
        x = ddim
            .ddim_step(&unet.forward(&x, &tt).unwrap(), t, &x, 10)
            .unwrap();
    }
    let d = max_diff(&x, &want["ddim"]);
    assert!(d <= 2e-4, "DDIM samples differ by {d}");
    // DDPMScheduler from the same config.
    let ddpm = DiffusersScheduler {
        kind: SchedulerKind::Ddpm,
        ..ddim.clone()
    };
    let want_ts: Vec<usize> = want["ddpm_timesteps"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&t| t as usize)
        .collect();
    assert_eq!(ddpm.timesteps(10), want_ts);
    let t = want["ddpm_t"].to_vec1::<f32>().unwrap()[0] as usize;
    let x_t = &want["x_T"];
    let tt = candle_core::Tensor::new(&[t as f32, t as f32], &Device::Cpu).unwrap();
    let out = ddpm
        .ddpm_step(&unet.forward(x_t, &tt).unwrap(), t, x_t, 10, &want["ddpm_noise"])
        .unwrap();
    let d = max_diff(&out, &want["ddpm_step"]);
    assert!(d <= 1e-4, "DDPM step differs by {d}");
}

/// `rote sample` with diffusers' x_T gives diffusers' DDIM samples; a seeded run is reproducible;
/// a noise file of the wrong shape is one error naming it.
#[test]
fn rote_sample_writes_diffusers_samples() {
    let dir = fixture("cifar");
    let want = candle_core::safetensors::load(dir.join("samples.safetensors"), &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let x_t = &want["x_T"];
    let bytes: Vec<u8> = x_t
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let noise = tmp.path().join("x_T.npy");
    std::fs::write(&noise, rote::data::npy_bytes("<f4", x_t.dims(), &bytes)).unwrap();
    let run = |extra: &[&str], out: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rote"))
            .arg("sample")
            .arg(&dir)
            .args(["--steps", "10", "--json", "--out"])
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let read = |p: &Path| {
        let (shape, v) = rote::data::parse_npy_f32_array(p, &std::fs::read(p).unwrap()).unwrap();
        candle_core::Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let out = tmp.path().join("s.npy");
    let o = run(&["--noise", noise.to_str().unwrap()], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = max_diff(&read(&out), &want["ddim"]);
    assert!(d <= 2e-4, "rote sample differs from diffusers' DDIM by {d}");
    // Seeded, ancestral: the shape asked for, the same file twice.
    let (a, b) = (tmp.path().join("a.npy"), tmp.path().join("b.npy"));
    for p in [&a, &b] {
        let o = run(&["--sampler", "ancestral", "--samples", "3", "--seed", "4"], p);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(read(&a).dims(), &[3, 3, 16, 16]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Noise of the wrong shape.
    let bad = tmp.path().join("bad.npy");
    std::fs::write(
        &bad,
        rote::data::npy_bytes("<f4", &[1, 3, 8, 8], &vec![0u8; 3 * 64 * 4]),
    )
    .unwrap();
    let o = run(&["--noise", bad.to_str().unwrap()], &tmp.path().join("c.npy"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad.npy") && err.contains("3 x 16 x 16"),
        "{err}"
    );
}
