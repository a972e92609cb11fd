//! A Hugging Face model folder: `config.json` (checked dimension by dimension before anything is
//! allocated), `model.safetensors` or a sharded `model.safetensors.index.json` (every expected
//! tensor's shape compared with the safetensors headers before the weights are read), and the
//! refusal of PyTorch pickles (`pytorch_model.bin`, `*.pt`, `*.pth`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use super::{CausalLm, gpt2, llama, neox};
use crate::error::{CoreError, CoreResult};

/// Largest safetensors header read (the safetensors crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Largest total parameter count accepted from a config (2^36, far beyond any model rote can run).
const MAX_PARAMS: usize = 1 << 36;

/// A parsed and checked `config.json`.
#[derive(Debug, Clone)]
pub enum HfConfig {
    /// `model_type: gpt2`.
    Gpt2(gpt2::Gpt2Config),
    /// `model_type: gpt_neox`.
    NeoX(neox::NeoXConfig),
    /// `model_type: llama` or `qwen2`.
    Llama(llama::LlamaConfig),
}

impl HfConfig {
    /// Reads and checks `dir/config.json`.
    pub fn read(dir: &Path) -> CoreResult<Self> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(CoreError::format(
                dir,
                "no config.json: not a Hugging Face model folder (expected config.json, model.safetensors, tokenizer.json)",
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| CoreError::format(&path, format!("not valid JSON: {e}")))?;
        Self::from_value(&v, &path)
    }

    /// Checks a parsed `config.json` (`path` names it in errors).
    pub fn from_value(v: &Value, path: &Path) -> CoreResult<Self> {
        let model_type = v.get("model_type").and_then(Value::as_str).ok_or_else(|| {
            CoreError::format(path, "has no \"model_type\" (gpt2, gpt_neox, llama or qwen2)")
        })?;
        let cfg = match model_type {
            "gpt2" => Self::Gpt2(gpt2::Gpt2Config::from_json(v, path)?),
            "gpt_neox" => Self::NeoX(neox::NeoXConfig::from_json(v, path)?),
            "llama" | "qwen2" => Self::Llama(llama::LlamaConfig::from_json(v, model_type, path)?),
            other => {
                return Err(CoreError::format(
                    path,
                    format!(
                        "model_type '{other}' is not supported (rote reads gpt2, gpt_neox, llama and qwen2)"
                    ),
                ));
            }
        };
        // Every expected tensor's element count, with checked products, before any allocation.
        let mut total = 0usize;
        for (name, shape) in cfg.expected(&|_| false) {
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| total.checked_add(n))
                .filter(|&t| t <= MAX_PARAMS);
            total = n.ok_or_else(|| {
                CoreError::format(
                    path,
                    format!("the sizes imply more than 2^36 parameters (at {name})"),
                )
            })?;
        }
        Ok(cfg)
    }

    /// The family name as `config.json` spells it.
    pub fn model_type(&self) -> &str {
        match self {
            Self::Gpt2(_) => "gpt2",
            Self::NeoX(_) => "gpt_neox",
            Self::Llama(c) => &c.model_type,
        }
    }

    /// Every tensor the model reads, with its shape; `has` says whether the weights hold a name
    /// (GPT-2's optional `transformer.` prefix, an untied head stored anyway).
    pub(crate) fn expected(&self, has: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<usize>)> {
        match self {
            Self::Gpt2(c) => c.expected(has),
            Self::NeoX(c) => c.expected(has),
            Self::Llama(c) => c.expected(has),
        }
    }
}

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    file: PathBuf,
}

/// Checks a Hugging Face model folder without reading its weights: `config.json` field by field
/// and every expected tensor's shape and dtype against the safetensors headers. For listings.
pub fn check_folder(dir: &Path) -> CoreResult<HfConfig> {
    Ok(checked_headers(dir)?.0)
}

type Checked = (
    HfConfig,
    HashMap<String, HeaderEntry>,
    Vec<(String, Vec<usize>)>,
    PathBuf,
);

fn checked_headers(dir: &Path) -> CoreResult<Checked> {
    let cfg = HfConfig::read(dir)?;
    let files = weight_files(dir)?;
    let mut header: HashMap<String, HeaderEntry> = HashMap::new();
    for f in &files {
        header.extend(read_header(f)?);
    }
    let expected = cfg.expected(&|n| header.contains_key(n));
    let weights_name = files
        .first()
        .cloned()
        .unwrap_or_else(|| dir.join("model.safetensors"));
    for (name, shape) in &expected {
        let Some(e) = header.get(name) else {
            return Err(CoreError::format(
                &weights_name,
                format!("has no tensor '{name}' (config.json implies shape {shape:?})"),
            ));
        };
        if &e.shape != shape {
            return Err(CoreError::format(
                &e.file,
                format!(
                    "tensor '{name}' has shape {:?} but config.json implies {shape:?}",
                    e.shape
                ),
            ));
        }
        if !matches!(e.dtype.as_str(), "F32" | "F16" | "BF16") {
            return Err(CoreError::format(
                &e.file,
                format!(
                    "tensor '{name}' is {}; rote reads F32, F16 and BF16 weights",
                    e.dtype
                ),
            ));
        }
    }
    Ok((cfg, header, expected, weights_name))
}

/// Reads a Hugging Face causal LM from `dir` onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> CoreResult<Box<dyn CausalLm>> {
    let (cfg, header, expected, weights_name) = checked_headers(dir)?;
    // Only now read the weights: the shapes are known to be what the config says.
    let mut by_file: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    for (name, _) in &expected {
        if let Some(e) = header.get(name) {
            by_file.entry(e.file.as_path()).or_default().push(name);
        }
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (file, names) in by_file {
        let mut loaded = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| CoreError::format(file, format!("not a readable safetensors file: {e}")))?;
        for name in names {
            let t = loaded
                .remove(name)
                .ok_or_else(|| CoreError::format(file, format!("tensor '{name}' could not be read")))?;
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            check_finite(&t, name, file)?;
            tensors.insert(name.to_string(), t);
        }
    }
    build(&cfg, tensors, &|n| header.contains_key(n), device).map_err(|e| {
        CoreError::format(
            &weights_name,
            format!("cannot build the {} model: {e}", cfg.model_type()),
        )
    })
}

/// Builds the model `cfg` describes from named f32 `tensors` on `device`; `has` says which names
/// the weights hold (GPT-2's optional prefix, an untied head stored anyway).
pub(crate) fn build(
    cfg: &HfConfig,
    tensors: HashMap<String, Tensor>,
    has: &dyn Fn(&str) -> bool,
    device: &Device,
) -> candle_core::Result<Box<dyn CausalLm>> {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    Ok(match cfg {
        HfConfig::Gpt2(c) => Box::new(gpt2::Gpt2::new(c, vb, has)?),
        HfConfig::NeoX(c) => Box::new(neox::NeoX::new(c, vb, has)?),
        HfConfig::Llama(c) => Box::new(llama::Llama::new(c, vb, has)?),
    })
}

fn check_finite(t: &Tensor, name: &str, file: &Path) -> CoreResult<()> {
    let s = t.flatten_all()?.abs()?.max(0)?.to_scalar::<f32>()?;
    if !s.is_finite() {
        return Err(CoreError::format(
            file,
            format!("tensor '{name}' holds NaN or infinite values"),
        ));
    }
    Ok(())
}

/// The safetensors files of `dir`: `model.safetensors`, or the shards a
/// `model.safetensors.index.json` names. PyTorch pickles are refused with the advice to convert.
fn weight_files(dir: &Path) -> CoreResult<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| CoreError::io(&index, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| CoreError::format(&index, format!("not valid JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| CoreError::format(&index, "has no \"weight_map\" object"))?;
        let mut names: Vec<&str> = Vec::new();
        for f in map.values() {
            let f = f
                .as_str()
                .ok_or_else(|| CoreError::format(&index, "a weight_map entry is not a file name"))?;
            if f.contains('/') || f.contains('\\') || f.starts_with('.') || !f.ends_with(".safetensors") {
                return Err(CoreError::format(
                    &index,
                    format!("shard '{f}' is not a .safetensors file name inside the folder"),
                ));
            }
            if !names.contains(&f) {
                names.push(f);
            }
        }
        names.sort_unstable();
        let files: Vec<PathBuf> = names.iter().map(|f| dir.join(f)).collect();
        if let Some(missing) = files.iter().find(|p| !p.is_file()) {
            return Err(CoreError::format(
                &index,
                format!("names shard {} which is missing", missing.display()),
            ));
        }
        return Ok(files);
    }
    let mut torch: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CoreError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            name.ends_with(".bin")
                || name.ends_with(".pt")
                || name.ends_with(".pth")
                || name == "pytorch_model.bin.index.json"
        })
        .collect();
    torch.sort();
    const ADVICE: &str = "for a Hugging Face model folder, load the model in Python and call \
                          model.save_pretrained(dir, safe_serialization=True) to write the model.safetensors rote reads";
    for p in &torch {
        if p.is_file() && !p.to_string_lossy().ends_with(".json") {
            crate::model::refuse_pickle_file(p).map_err(|e| match e {
                CoreError::Format { path, msg } => CoreError::Format {
                    path,
                    msg: format!("{msg}; {ADVICE}"),
                },
                other => other,
            })?;
        }
    }
    if let Some(p) = torch.first() {
        return Err(CoreError::format(
            p,
            format!(
                "is PyTorch weights and the folder has no model.safetensors; rote reads only safetensors: {ADVICE}"
            ),
        ));
    }
    Err(CoreError::format(
        dir,
        "has no model.safetensors (nor model.safetensors.index.json for a sharded model)",
    ))
}

/// Names, dtypes and shapes in the header of a safetensors file, checked against its length.
fn read_header(path: &Path) -> CoreResult<Vec<(String, HeaderEntry)>> {
    let mut f = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let file_len = f.metadata().map_err(|e| CoreError::io(path, e))?.len();
    let mut len8 = [0u8; 8];
    f.read_exact(&mut len8)
        .map_err(|_| CoreError::format(path, "too short for a safetensors file"))?;
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        return Err(CoreError::format(
            path,
            format!("not a safetensors file (header length {n})"),
        ));
    }
    let mut buf = Vec::new();
    f.take(n)
        .read_to_end(&mut buf)
        .map_err(|e| CoreError::io(path, e))?;
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| CoreError::format(path, format!("not a safetensors file (header: {e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| CoreError::format(path, "not a safetensors file (header is not an object)"))?;
    let data_len = file_len - 8 - n;
    let mut out = Vec::with_capacity(obj.len());
    for (name, e) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| {
            CoreError::format(path, format!("tensor '{name}': {what} in the safetensors header"))
        };
        let dtype = e
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?;
        let shape: Vec<usize> = e
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a bad shape"))?;
        let offs: Vec<u64> = e
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let elem = match dtype {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let bytes = shape
            .iter()
            .try_fold(elem as u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| bad("a shape too large"))?;
        match offs.as_slice() {
            [a, b] if a <= b && *b <= data_len && b - a == bytes => {}
            _ => return Err(bad("data offsets that do not match the shape or the file length")),
        }
        out.push((
            name.clone(),
            HeaderEntry {
                dtype: dtype.to_string(),
                shape,
                file: path.to_path_buf(),
            },
        ));
    }
    Ok(out)
}

/// Reads a `usize` field of `config.json`, checked to lie in `lo..=hi`; `default` when absent or
/// null (`None`: the field is required).
pub(crate) fn dim(
    v: &Value,
    key: &str,
    default: Option<usize>,
    lo: usize,
    hi: usize,
    path: &Path,
) -> CoreResult<usize> {
    let x = match v.get(key) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| CoreError::format(path, format!("has no \"{key}\"")))?
        }
        Some(x) => x
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| CoreError::format(path, format!("\"{key}\" is {x}, not a whole number")))?,
    };
    if x < lo || x > hi {
        return Err(CoreError::format(
            path,
            format!("\"{key}\" is {x}, outside {lo}..={hi}"),
        ));
    }
    Ok(x)
}

/// A float field of `config.json` (finite and positive), `default` when absent.
pub(crate) fn float(v: &Value, key: &str, default: f64, path: &Path) -> CoreResult<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| CoreError::format(path, format!("\"{key}\" is {x}, not a positive number"))),
    }
}

/// A boolean field of `config.json`, `default` when absent.
pub(crate) fn flag(v: &Value, key: &str, default: bool, path: &Path) -> CoreResult<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_bool()
            .ok_or_else(|| CoreError::format(path, format!("\"{key}\" is {x}, not true or false"))),
    }
}

/// The activation named by `key` (default `default`).
pub(crate) fn act(v: &Value, key: &str, default: &str, path: &Path) -> CoreResult<super::layers::Act> {
    let name = v.get(key).and_then(Value::as_str).unwrap_or(default);
    super::layers::Act::parse(name).ok_or_else(|| {
        CoreError::format(
            path,
            format!("\"{key}\" '{name}' is not an activation rote implements"),
        )
    })
}

/// RoPE base and the fraction of each head rotated, from transformers 5's `rope_parameters` or the
/// older top-level fields (`rope_theta`, `rotary_emb_base`, `rotary_pct`, `partial_rotary_factor`);
/// scaled RoPE variants are refused.
pub(crate) fn rope(v: &Value, base_default: f64, pct_default: f64, path: &Path) -> CoreResult<(f64, f64)> {
    let params = v.get("rope_parameters").filter(|p| p.is_object());
    let scaling = v.get("rope_scaling").filter(|p| p.is_object());
    for p in [params, scaling].into_iter().flatten() {
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        if kind != "default" {
            return Err(CoreError::format(
                path,
                format!("RoPE type '{kind}' is not supported (only default RoPE)"),
            ));
        }
    }
    let pick = |keys: &[&str], default: f64| -> CoreResult<f64> {
        for src in [params, Some(v)].into_iter().flatten() {
            for k in keys {
                if src.get(*k).is_some_and(|x| !x.is_null()) {
                    return float(src, k, default, path);
                }
            }
        }
        Ok(default)
    };
    let base = pick(&["rope_theta", "rotary_emb_base"], base_default)?;
    let pct = pick(&["partial_rotary_factor", "rotary_pct"], pct_default)?;
    if pct > 1.0 {
        return Err(CoreError::format(
            path,
            format!("the rotary fraction {pct} is above 1"),
        ));
    }
    Ok((base, pct))
}
