//! The `config.json` of a diffusers `UNet2DModel` (`diffusers_unet.rs`): the fields rote reads,
//! every other feature refused by name (cross-attention blocks, class conditioning, Fourier time
//! embeddings, scale-shift norms), and the size checks of `model::limits` applied before
//! anything is allocated (the `Architecture` trait, as for rote's own model cards).

use std::path::Path;

use candle_nn::VarBuilder;
use serde_json::Value;

use super::diffusers_unet::DiffusersUnet;
use crate::error::{CoreError, CoreResult};
use crate::model::limits::{self, Architecture};

/// The parts of a diffusers `UNet2DModel` config.json that rote reads (every other field must
/// hold its default; the loader says which one does not).
#[derive(Clone, Debug, PartialEq)]
pub struct DiffusersUnetConfig {
    /// Side of the (square) images.
    pub sample_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Width of each level.
    pub block_out_channels: Vec<usize>,
    /// Whether each down block has attention (`AttnDownBlock2D`).
    pub down_attention: Vec<bool>,
    /// Whether each up block has attention (`AttnUpBlock2D`).
    pub up_attention: Vec<bool>,
    /// ResNet blocks per down block (up blocks have one more).
    pub layers_per_block: usize,
    /// Channels per attention head (None: one head).
    pub attention_head_dim: Option<usize>,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm groups of the mid block's attention (None: `norm_num_groups`).
    pub attn_norm_num_groups: Option<usize>,
    /// GroupNorm epsilon.
    pub norm_eps: f64,
    /// Padding of the downsampling convolution (0: pad right and bottom by one).
    pub downsample_padding: usize,
    /// cos before sin in the timestep embedding.
    pub flip_sin_to_cos: bool,
    /// Shift of the embedding's frequency denominator.
    pub freq_shift: f64,
    /// Output divisor of the mid block's resnets and attention.
    pub mid_block_scale_factor: f64,
    /// Whether the mid block is present.
    pub mid_block: bool,
    /// Whether the mid block has attention.
    pub add_attention: bool,
    /// Inputs mapped from [0, 1] to [-1, 1] first.
    pub center_input_sample: bool,
    /// Width of the time embedding (None: 4 x the first level's).
    pub time_embedding_dim: Option<usize>,
}

fn usize_field(v: &Value, key: &str, path: &Path) -> CoreResult<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| CoreError::format(path, format!("{key} must be a whole number, got {x}"))),
    }
}

fn need_usize(v: &Value, key: &str, default: Option<usize>, path: &Path) -> CoreResult<usize> {
    usize_field(v, key, path)?
        .or(default)
        .ok_or_else(|| CoreError::format(path, format!("{key} is missing")))
}

fn string_list(v: &Value, key: &str, path: &Path) -> CoreResult<Vec<String>> {
    let list = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| CoreError::format(path, format!("{key} must be a list of block names")))?;
    list.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| CoreError::format(path, format!("{key} holds {x}, not a block name")))
        })
        .collect()
}

/// `key` must be absent, null or `want` (a feature rote does not implement otherwise).
fn only(v: &Value, key: &str, want: &[&str], path: &Path) -> CoreResult<()> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if want.contains(&s.as_str()) => Ok(()),
        Some(x) => Err(CoreError::format(
            path,
            format!(
                "{key} is {x}; rote's UNet2DModel supports {}",
                if want.is_empty() {
                    "null".to_string()
                } else {
                    want.join(" or ")
                }
            ),
        )),
    }
}

/// `text` (the contents of `path`, which errors name) as JSON.
pub(super) fn parse_json(path: &Path, text: &str) -> CoreResult<Value> {
    serde_json::from_str(text).map_err(|e| CoreError::format(path, format!("not a JSON config: {e}")))
}

/// `dir/name` read and parsed as JSON, with its path.
pub(super) fn read_json(dir: &Path, name: &str) -> CoreResult<(std::path::PathBuf, Value)> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let v = parse_json(&path, &text)?;
    Ok((path, v))
}

impl DiffusersUnetConfig {
    /// Reads and checks `dir/config.json`.
    pub fn read(dir: &Path) -> CoreResult<Self> {
        let (path, v) = read_json(dir, "config.json")?;
        Self::from_value(&v, &path)
    }

    /// Parses `text` (the contents of `path`, which errors name).
    pub fn from_json(path: &Path, text: &str) -> CoreResult<Self> {
        Self::from_value(&parse_json(path, text)?, path)
    }

    /// The config in `v` (read from `path`, which errors name).
    pub fn from_value(v: &Value, path: &Path) -> CoreResult<Self> {
        only(v, "_class_name", &["UNet2DModel"], path)?;
        only(v, "time_embedding_type", &["positional"], path)?;
        only(v, "act_fn", &["silu"], path)?;
        only(v, "resnet_time_scale_shift", &["default"], path)?;
        only(v, "downsample_type", &["conv"], path)?;
        only(v, "upsample_type", &["conv"], path)?;
        only(v, "class_embed_type", &[], path)?;
        if usize_field(v, "num_class_embeds", path)?.is_some() {
            return Err(CoreError::format(
                path,
                "class-conditional UNets (num_class_embeds) are not supported",
            ));
        }
        let mid_block = match v.get("mid_block_type") {
            None => true,
            Some(Value::Null) => false,
            Some(Value::String(s)) if s == "UNetMidBlock2D" => true,
            Some(x) => {
                return Err(CoreError::format(
                    path,
                    format!("mid_block_type is {x}; rote supports UNetMidBlock2D or null"),
                ));
            }
        };
        let sample_size = match v.get("sample_size") {
            Some(Value::Array(a)) if a.len() == 2 && a[0] == a[1] => a[0].as_u64().map(|n| n as usize),
            Some(x) => x.as_u64().map(|n| n as usize),
            None => None,
        }
        .ok_or_else(|| CoreError::format(path, "sample_size must be one whole number (square images)"))?;
        let blocks = |key: &str, plain: &str, attn: &str| -> CoreResult<Vec<bool>> {
            string_list(v, key, path)?
                .iter()
                .map(|b| match b.as_str() {
                    s if s == plain => Ok(false),
                    s if s == attn => Ok(true),
                    other => Err(CoreError::format(
                        path,
                        format!("{key} holds {other}; rote supports {plain} and {attn}"),
                    )),
                })
                .collect()
        };
        let block_out_channels: Vec<usize> = v
            .get("block_out_channels")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect())
            .ok_or_else(|| CoreError::format(path, "block_out_channels must be a list of whole numbers"))?;
        let float = |key: &str, default: f64| -> CoreResult<f64> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_f64()
                    .ok_or_else(|| CoreError::format(path, format!("{key} must be a number, got {x}"))),
            }
        };
        let flag = |key: &str, default: bool| -> CoreResult<bool> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| CoreError::format(path, format!("{key} must be true or false, got {x}"))),
            }
        };
        let cfg = Self {
            sample_size,
            in_channels: need_usize(v, "in_channels", Some(3), path)?,
            out_channels: need_usize(v, "out_channels", Some(3), path)?,
            block_out_channels,
            down_attention: blocks("down_block_types", "DownBlock2D", "AttnDownBlock2D")?,
            up_attention: blocks("up_block_types", "UpBlock2D", "AttnUpBlock2D")?,
            layers_per_block: need_usize(v, "layers_per_block", Some(2), path)?,
            attention_head_dim: usize_field(v, "attention_head_dim", path)?,
            norm_num_groups: need_usize(v, "norm_num_groups", Some(32), path)?,
            attn_norm_num_groups: usize_field(v, "attn_norm_num_groups", path)?,
            norm_eps: float("norm_eps", 1e-5)?,
            downsample_padding: need_usize(v, "downsample_padding", Some(1), path)?,
            flip_sin_to_cos: flag("flip_sin_to_cos", true)?,
            freq_shift: float("freq_shift", 0.0)?,
            mid_block_scale_factor: float("mid_block_scale_factor", 1.0)?,
            mid_block,
            add_attention: flag("add_attention", true)?,
            center_input_sample: flag("center_input_sample", false)?,
            time_embedding_dim: usize_field(v, "time_embedding_dim", path)?,
        };
        cfg.check_sizes().map_err(|why| CoreError::format(path, why))?;
        Ok(cfg)
    }

    pub(crate) fn temb_dim(&self) -> usize {
        self.time_embedding_dim
            .unwrap_or(4 * self.block_out_channels.first().copied().unwrap_or(0))
    }
}

impl Architecture for DiffusersUnetConfig {
    fn kind(&self) -> &'static str {
        "diffusers UNet2DModel"
    }

    fn check_sizes(&self) -> Result<(), String> {
        limits::check_image("", self.in_channels, self.sample_size, self.sample_size)?;
        limits::in_range("out_channels", self.out_channels, limits::CHANNELS)?;
        limits::all_in_range(
            "block_out_channels",
            &self.block_out_channels,
            limits::LEVELS,
            limits::WIDTH,
        )?;
        let n = self.block_out_channels.len();
        if self.down_attention.len() != n || self.up_attention.len() != n {
            return Err(format!(
                "down_block_types and up_block_types need one entry per block_out_channels ({n})"
            ));
        }
        limits::in_range("layers_per_block", self.layers_per_block, 1..=16)?;
        limits::in_range("norm_num_groups", self.norm_num_groups, limits::WIDTH)?;
        limits::in_range("time_embedding_dim", self.temb_dim(), limits::WIDTH)?;
        let groups = [Some(self.norm_num_groups), self.attn_norm_num_groups];
        for &c in &self.block_out_channels {
            for g in groups.into_iter().flatten() {
                if g == 0 || c % g != 0 {
                    return Err(format!(
                        "norm_num_groups {g} does not divide block_out_channels {c}"
                    ));
                }
            }
            if let Some(d) = self.attention_head_dim
                && (d == 0 || c % d != 0)
            {
                return Err(format!(
                    "attention_head_dim {d} does not divide block_out_channels {c}"
                ));
            }
        }
        if !self.block_out_channels[0].is_multiple_of(2) {
            return Err("block_out_channels[0] must be even (the sinusoidal time embedding)".into());
        }
        let f = 1usize << (n - 1);
        if !self.sample_size.is_multiple_of(f) {
            return Err(format!(
                "sample_size {} does not halve {} times",
                self.sample_size,
                n - 1
            ));
        }
        Ok(())
    }

    fn declare(&self, vb: VarBuilder<'_>) -> CoreResult<()> {
        DiffusersUnet::new(self, vb).map(|_| ())
    }

    fn size_fields(&self) -> Vec<(String, usize)> {
        vec![
            ("layers_per_block".into(), self.layers_per_block),
            ("in_channels".into(), self.in_channels),
            ("out_channels".into(), self.out_channels),
        ]
    }

    fn with_size(&self, field: &str, value: usize) -> Option<Self> {
        let mut c = self.clone();
        match field {
            "layers_per_block" => c.layers_per_block = value,
            "in_channels" => c.in_channels = value,
            "out_channels" => c.out_channels = value,
            _ => return None,
        }
        Some(c)
    }
}
