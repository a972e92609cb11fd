//! diffusers' `UNet2DModel` (the DDPM denoiser of Ho et al. 2020 as diffusers ships it, e.g.
//! `google/ddpm-cifar10-32`), read from a diffusers folder: `config.json` and
//! `diffusion_pytorch_model.safetensors`. Our own candle module, in the forward order of diffusers'
//! `unet_2d.py` (`../shared/specs/09-model-formats.md` section 3):
//!
//! 1. `Timesteps`: freq_k = exp(-ln(10^4) k / (C0/2 - freq_shift)), [sin, cos] of t·freq (swapped
//!    with `flip_sin_to_cos`); `time_embedding` = linear_2(SiLU(linear_1(.))), 4·C0 wide.
//! 2. `conv_in`; the skip stack starts with its output.
//! 3. Down blocks: `layers_per_block` x (ResnetBlock2D, then attention in `AttnDownBlock2D`), each
//!    output pushed; then (not the last block) a 3x3 stride-2 convolution (`downsample_padding` 0:
//!    pad right and bottom by one first), pushed too.
//! 4. Mid block: resnet, attention, resnet (`mid_block_scale_factor` divides their outputs).
//! 5. Up blocks: `layers_per_block + 1` x (concatenate the last skip on channels, resnet,
//!    attention in `AttnUpBlock2D`); then (not the last block) nearest 2x and a 3x3 convolution.
//! 6. `conv_norm_out`, SiLU, `conv_out`.
//!
//! ResnetBlock2D: h = conv1(SiLU(norm1 x)) + time_emb_proj(SiLU emb); h = conv2(SiLU(norm2 h));
//! out = (shortcut(x) + h) / output_scale_factor, the shortcut a 1x1 convolution when the widths
//! differ. Attention: GroupNorm, q/k/v projections, softmax(q kᵀ / sqrt(d)) v per head (heads =
//! C / attention_head_dim, one head of C when it is null), `to_out.0`, plus the residual. The
//! legacy names `query`/`key`/`value`/`proj_attn` are read as `to_q`/`to_k`/`to_v`/`to_out.0`,
//! as diffusers renames them at load. Tested against diffusers' own outputs
//! (`tests/diffusers_interop.rs`, fixtures made by `tests/fixtures/make_diffusers_fixtures.py`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, VarBuilder, conv2d, group_norm, linear};

pub use super::diffusers_config::DiffusersUnetConfig;
use crate::error::{CoreError, CoreResult};
use crate::model::limits::Architecture;

/// The weights file diffusers writes.
pub const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

/// A convolution; on the CPU the 3x3 stride-1 padding-1 and the 1x1 ones run through rote's
/// fused kernels (`cpu_kernels.rs`: cache-sized groups of images, one GEMM each), the
/// stride-2 downsampler through candle's conv2d.
struct Conv {
    conv: Conv2d,
    fast: Option<usize>,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match (self.fast, self.conv.bias()) {
            (Some(3), Some(b)) if x.device().is_cpu() => {
                super::cpu_kernels::conv3x3(x, self.conv.weight(), b, None)
            }
            (Some(1), Some(b)) if x.device().is_cpu() => {
                super::cpu_kernels::conv1x1(x, self.conv.weight(), b)
            }
            _ => self.conv.forward(x),
        }
    }
}

/// 3x3 convolution with padding 1 (stride 1), or the stride-2 downsampler.
fn conv3(
    cin: usize,
    cout: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder<'_>,
) -> candle_core::Result<Conv> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    Ok(Conv {
        conv: conv2d(cin, cout, 3, cfg, vb)?,
        fast: (stride == 1 && padding == 1).then_some(3),
    })
}

/// 1x1 convolution.
fn conv1(cin: usize, cout: usize, vb: VarBuilder<'_>) -> candle_core::Result<Conv> {
    Ok(Conv {
        conv: conv2d(cin, cout, 1, Conv2dConfig::default(), vb)?,
        fast: Some(1),
    })
}

/// GroupNorm, with SiLU after it when asked; on the CPU in f32 the fused op of `fused_norm.rs`
/// (with its own backward), elsewhere candle's.
struct Norm {
    gn: GroupNorm,
    weight: Tensor,
    bias: Tensor,
    op: super::fused_norm::GroupNormSilu,
}

impl Norm {
    fn new(groups: usize, ch: usize, eps: f64, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        Ok(Self {
            gn: group_norm(groups, ch, eps, vb.clone())?,
            weight: vb.get(ch, "weight")?,
            bias: vb.get(ch, "bias")?,
            op: super::fused_norm::GroupNormSilu {
                groups,
                eps: eps as f32,
                silu: false,
            },
        })
    }

    fn forward(&self, x: &Tensor, silu: bool) -> candle_core::Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == DType::F32 {
            let op = super::fused_norm::GroupNormSilu { silu, ..self.op };
            return super::fused_norm::group_norm_silu_tracked(x, &self.weight, &self.bias, op);
        }
        let y = self.gn.forward(x)?;
        if silu { y.silu() } else { Ok(y) }
    }
}

struct Resnet {
    norm1: Norm,
    conv1: Conv,
    time_emb_proj: Linear,
    norm2: Norm,
    conv2: Conv,
    shortcut: Option<Conv>,
    scale: f64,
}

impl Resnet {
    fn new(
        cin: usize,
        cout: usize,
        c: &DiffusersUnetConfig,
        scale: f64,
        vb: VarBuilder<'_>,
    ) -> candle_core::Result<Self> {
        let g = c.norm_num_groups;
        let shortcut = if cin == cout {
            None
        } else {
            Some(conv1(cin, cout, vb.pp("conv_shortcut"))?)
        };
        Ok(Self {
            norm1: Norm::new(g, cin, c.norm_eps, vb.pp("norm1"))?,
            conv1: conv3(cin, cout, 1, 1, vb.pp("conv1"))?,
            time_emb_proj: linear(c.temb_dim(), cout, vb.pp("time_emb_proj"))?,
            norm2: Norm::new(g, cout, c.norm_eps, vb.pp("norm2"))?,
            conv2: conv3(cout, cout, 1, 1, vb.pp("conv2"))?,
            shortcut,
            scale,
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x, true)?)?;
        let t = self
            .time_emb_proj
            .forward(&emb.silu()?)?
            .unsqueeze(2)?
            .unsqueeze(3)?;
        let h = h.broadcast_add(&t)?;
        let h = self.conv2.forward(&self.norm2.forward(&h, true)?)?;
        let s = match &self.shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        let out = (s + h)?;
        if self.scale == 1.0 {
            Ok(out)
        } else {
            out / self.scale
        }
    }
}

struct Attention {
    norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(
        ch: usize,
        head_dim: usize,
        groups: usize,
        c: &DiffusersUnetConfig,
        scale: f64,
        vb: VarBuilder<'_>,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            norm: Norm::new(groups, ch, c.norm_eps, vb.pp("group_norm"))?,
            q: linear(ch, ch, vb.pp("to_q"))?,
            k: linear(ch, ch, vb.pp("to_k"))?,
            v: linear(ch, ch, vb.pp("to_v"))?,
            out: linear(ch, ch, vb.pp("to_out.0"))?,
            heads: (ch / head_dim.max(1)).max(1),
            scale,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let d = c / self.heads;
        // Contiguous before the projections: candle 0.11.1's Linear on a (B, HW, C) view of a
        // (B, C, HW) tensor gives wrong rows beyond the first image (found against diffusers'
        // outputs; a 2 x 3 x 4 case differs by 13).
        let hs = self
            .norm
            .forward(x, false)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, h * w, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q.forward(&hs)?)?;
        let k = split(self.k.forward(&hs)?)?;
        let v = split(self.v.forward(&hs)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let o = p.matmul(&v)?.transpose(1, 2)?.reshape((b, h * w, c))?;
        let o = self.out.forward(&o)?.transpose(1, 2)?.reshape((b, c, h, w))?;
        let out = (o + x)?;
        if self.scale == 1.0 {
            Ok(out)
        } else {
            out / self.scale
        }
    }
}

/// A down or up block: resnets, each followed by attention in the Attn* kinds, and the
/// resampling convolution when not the last block.
struct Block {
    resnets: Vec<Resnet>,
    attentions: Vec<Attention>,
    resample: Option<Conv>,
}

/// diffusers' `UNet2DModel`.
pub struct DiffusersUnet {
    cfg: DiffusersUnetConfig,
    linear_1: Linear,
    linear_2: Linear,
    conv_in: Conv,
    down: Vec<Block>,
    mid: Option<(Resnet, Option<Attention>, Resnet)>,
    up: Vec<Block>,
    norm_out: Norm,
    conv_out: Conv,
}

impl DiffusersUnet {
    /// Builds the model of `cfg` on `vb` (diffusers' parameter names).
    pub fn new(cfg: &DiffusersUnetConfig, vb: VarBuilder<'_>) -> CoreResult<Self> {
        let c = cfg;
        let boc = &c.block_out_channels;
        let n = boc.len();
        let c0 = boc[0];
        let head = |ch: usize| c.attention_head_dim.unwrap_or(ch);
        let mut down = Vec::with_capacity(n);
        let mut ch = c0;
        for (i, &out) in boc.iter().enumerate() {
            let vbb = vb.pp(format!("down_blocks.{i}"));
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..c.layers_per_block {
                let cin = if j == 0 { ch } else { out };
                resnets.push(Resnet::new(cin, out, c, 1.0, vbb.pp(format!("resnets.{j}")))?);
                if c.down_attention[i] {
                    attentions.push(Attention::new(
                        out,
                        head(out),
                        c.norm_num_groups,
                        c,
                        1.0,
                        vbb.pp(format!("attentions.{j}")),
                    )?);
                }
            }
            let resample = if i + 1 < n {
                Some(conv3(
                    out,
                    out,
                    2,
                    c.downsample_padding,
                    vbb.pp("downsamplers.0.conv"),
                )?)
            } else {
                None
            };
            down.push(Block {
                resnets,
                attentions,
                resample,
            });
            ch = out;
        }
        let last = boc[n - 1];
        let mid = if c.mid_block {
            let vbm = vb.pp("mid_block");
            let s = c.mid_block_scale_factor;
            let groups = c.attn_norm_num_groups.unwrap_or(c.norm_num_groups);
            Some((
                Resnet::new(last, last, c, s, vbm.pp("resnets.0"))?,
                if c.add_attention {
                    Some(Attention::new(
                        last,
                        head(last),
                        groups,
                        c,
                        s,
                        vbm.pp("attentions.0"),
                    )?)
                } else {
                    None
                },
                Resnet::new(last, last, c, s, vbm.pp("resnets.1"))?,
            ))
        } else {
            None
        };
        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out = rev[0];
        for i in 0..n {
            let prev = out;
            out = rev[i];
            let input = rev[(i + 1).min(n - 1)];
            let vbu = vb.pp(format!("up_blocks.{i}"));
            let layers = c.layers_per_block + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers {
                let skip = if j == layers - 1 { input } else { out };
                let cin = if j == 0 { prev } else { out };
                resnets.push(Resnet::new(
                    cin + skip,
                    out,
                    c,
                    1.0,
                    vbu.pp(format!("resnets.{j}")),
                )?);
                if c.up_attention[i] {
                    attentions.push(Attention::new(
                        out,
                        head(out),
                        c.norm_num_groups,
                        c,
                        1.0,
                        vbu.pp(format!("attentions.{j}")),
                    )?);
                }
            }
            let resample = if i + 1 < n {
                Some(conv3(out, out, 1, 1, vbu.pp("upsamplers.0.conv"))?)
            } else {
                None
            };
            up.push(Block {
                resnets,
                attentions,
                resample,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            linear_1: linear(c0, c.temb_dim(), vb.pp("time_embedding.linear_1"))?,
            linear_2: linear(c.temb_dim(), c.temb_dim(), vb.pp("time_embedding.linear_2"))?,
            conv_in: conv3(c.in_channels, c0, 1, 1, vb.pp("conv_in"))?,
            down,
            mid,
            up,
            norm_out: Norm::new(c.norm_num_groups, c0, c.norm_eps, vb.pp("conv_norm_out"))?,
            conv_out: conv3(c0, c.out_channels, 1, 1, vb.pp("conv_out"))?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DiffusersUnetConfig {
        &self.cfg
    }

    /// The sinusoidal embedding of timesteps `t` (B) as diffusers' `Timesteps`.
    fn time_proj(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let dim = self.cfg.block_out_channels[0];
        let half = dim / 2;
        let denom = half as f64 - self.cfg.freq_shift;
        let freqs: Vec<f32> = (0..half)
            .map(|k| (-(10_000f64.ln()) * k as f64 / denom).exp() as f32)
            .collect();
        let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
        let args = t.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        if self.cfg.flip_sin_to_cos {
            Tensor::cat(&[cos, sin], 1)
        } else {
            Tensor::cat(&[sin, cos], 1)
        }
    }

    /// The model's output (the predicted noise, or v) for images `x` (B x C x S x S) at
    /// timesteps `t` (B, any numeric dtype).
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        let emb = self.time_proj(t)?.to_dtype(x.dtype())?;
        let emb = self.linear_2.forward(&self.linear_1.forward(&emb)?.silu()?)?;
        let x = if self.cfg.center_input_sample {
            ((x * 2.0)? - 1.0)?
        } else {
            x.clone()
        };
        let mut h = self.conv_in.forward(&x)?;
        let mut skips = vec![h.clone()];
        for block in &self.down {
            for (j, r) in block.resnets.iter().enumerate() {
                h = r.forward(&h, &emb)?;
                if let Some(a) = block.attentions.get(j) {
                    h = a.forward(&h)?;
                }
                skips.push(h.clone());
            }
            if let Some(conv) = &block.resample {
                if self.cfg.downsample_padding == 0 {
                    h = h.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
                }
                h = conv.forward(&h)?;
                skips.push(h.clone());
            }
        }
        if let Some((r1, attn, r2)) = &self.mid {
            h = r1.forward(&h, &emb)?;
            if let Some(a) = attn {
                h = a.forward(&h)?;
            }
            h = r2.forward(&h, &emb)?;
        }
        for block in &self.up {
            for (j, r) in block.resnets.iter().enumerate() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("UNet2DModel: skip stack underflow".into()))?;
                h = r.forward(&Tensor::cat(&[&h, &skip], 1)?, &emb)?;
                if let Some(a) = block.attentions.get(j) {
                    h = a.forward(&h)?;
                }
            }
            if let Some(conv) = &block.resample {
                let (b, c, hh, ww) = h.dims4()?;
                let up = h
                    .reshape((b, c, hh, 1, ww, 1))?
                    .broadcast_as((b, c, hh, 2, ww, 2))?
                    .reshape((b, c, hh * 2, ww * 2))?;
                h = conv.forward(&up)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward(&h, true)?)
    }
}

/// diffusers' legacy attention names, as its loader renames them.
fn modern_name(name: &str) -> String {
    for (old, new) in [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ] {
        if name.contains(".attentions.") && name.contains(old) {
            return name.replacen(old, new, 1);
        }
    }
    name.to_string()
}

/// The weights file of a diffusers folder, refusing pickles with conversion advice.
fn weights_path(dir: &Path) -> CoreResult<PathBuf> {
    let st = dir.join(WEIGHTS);
    if st.is_file() {
        return Ok(st);
    }
    let bin = dir.join("diffusion_pytorch_model.bin");
    if bin.is_file() {
        return Err(CoreError::format(
            &bin,
            "is a PyTorch pickle; rote never loads pickles because they can run code. Convert it once \
             with diffusers: UNet2DModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)",
        ));
    }
    Err(CoreError::format(
        &st,
        "is missing (a diffusers UNet2DModel folder holds config.json and this file)",
    ))
}

/// Checks the diffusers `UNet2DModel` in `dir` without loading it: config.json, then every
/// tensor's name and shape from the safetensors header. Returns the config and weights path.
pub fn check(dir: &Path) -> CoreResult<(DiffusersUnetConfig, PathBuf)> {
    let cfg = DiffusersUnetConfig::read(dir)?;
    let weights = weights_path(dir)?;
    let header = crate::model::header::read_header(&weights)?;
    let header: std::collections::BTreeMap<String, _> =
        header.into_iter().map(|(k, v)| (modern_name(&k), v)).collect();
    let expected = crate::model::header::expected_shapes(&cfg)
        .map_err(|why| CoreError::format(dir.join("config.json"), why))?;
    let problems = crate::model::header::compare(&expected, &header);
    if !problems.is_empty() {
        return Err(CoreError::format(
            &weights,
            crate::model::header::summarise(&problems, cfg.kind(), None),
        ));
    }
    Ok((cfg, weights))
}

/// Reads the diffusers `UNet2DModel` in `dir` onto `device`: config.json checked first, then
/// every tensor's name and shape from the safetensors header, then the weights.
pub fn load(dir: &Path, device: &Device) -> CoreResult<DiffusersUnet> {
    let (cfg, weights) = check(dir)?;
    let loaded = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| CoreError::format(&weights, format!("not a readable safetensors file: {e}")))?;
    let mut tensors = HashMap::with_capacity(loaded.len());
    for (name, t) in loaded {
        let t = t.to_dtype(DType::F32)?.to_device(device)?;
        tensors.insert(modern_name(&name), t);
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    DiffusersUnet::new(&cfg, vb)
        .map_err(|e| CoreError::format(&weights, format!("cannot build the UNet2DModel: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_attention_names_are_renamed() {
        assert_eq!(
            modern_name("mid_block.attentions.0.query.weight"),
            "mid_block.attentions.0.to_q.weight"
        );
        assert_eq!(
            modern_name("down_blocks.1.attentions.0.proj_attn.bias"),
            "down_blocks.1.attentions.0.to_out.0.bias"
        );
        assert_eq!(
            modern_name("down_blocks.0.resnets.0.conv1.weight"),
            "down_blocks.0.resnets.0.conv1.weight"
        );
    }
}
