//! diffusers' UNet2DModel read by rote against diffusers' own outputs: two tiny checkpoints made by
//! `tests/fixtures/make_diffusers_fixtures.py` (diffusers 0.42.1, seeded random weights) with an
//! input batch, timesteps and the model's output. `dummy`: the layout of diffusers' CPU test UNet
//! with its defaults (downsample_padding 1, flip_sin_to_cos, freq_shift 0, two attention heads);
//! `cifar`: google/ddpm-cifar10-32's block layout at a small width (three levels, two layers per
//! block, attention in the middle level, one head, downsample_padding 0, freq_shift 1, norm_eps
//! 1e-6, random GroupNorm affine parameters).

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
        let diff = (&eps - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let scale = want
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
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
