//! The architecture of a card against the header of its weights file, before anything is
//! allocated. [`expected_shapes`] runs the model's own constructor on a recording backend (every
//! parameter is a zero-stride broadcast of one scalar, so nothing of its size exists), which
//! gives the exact `name -> shape` map the loader will ask for; [`read_header`] reads the 8-byte
//! length and the JSON header of `weights.safetensors` (every tensor's dtype, shape and data
//! offsets, checked against the file's length) without reading the data. [`check_weights`]
//! compares the two and summarises any difference in one line: how many tensors differ, the first
//! one or two, and the one card field that explains them all when there is one ("the card says
//! unet.base 64; the weights were trained at unet.base 32"). The full list goes to the log
//! (`log::info!`, shown by `rote --verbose`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::limits::{Architecture, MAX_HEADER, MAX_PARAMS};
use crate::error::{CoreError, CoreResult};

type Shapes = BTreeMap<String, Vec<usize>>;

/// Records the name and shape of every parameter a constructor asks for.
struct Probe(Arc<Mutex<Shapes>>);

impl SimpleBackend for Probe {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(name.to_string(), s.dims().to_vec());
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "parameter '{name}' requested without a shape"
        )))
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Every parameter `arch`'s constructor declares, with its shape, after checking the sizes and
/// that the parameters number at most [`MAX_PARAMS`]. Allocates nothing of the model's size.
pub fn expected_shapes<A: Architecture>(arch: &A) -> Result<Shapes, String> {
    arch.check_sizes()?;
    let shapes = Arc::new(Mutex::new(Shapes::new()));
    let vb = VarBuilder::from_backend(Box::new(Probe(shapes.clone())), DType::F32, Device::Cpu);
    arch.declare(vb)
        .map_err(|e| format!("the card's {} cannot be built: {e}", arch.kind()))?;
    let shapes = shapes
        .lock()
        .map(|m| m.clone())
        .map_err(|_| "shape probe lock poisoned".to_string())?;
    let mut total = 0usize;
    for dims in shapes.values() {
        total = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| total.checked_add(n))
            .filter(|&t| t <= MAX_PARAMS)
            .ok_or_else(|| {
                format!(
                    "the card's {} has more than {MAX_PARAMS} parameters, rote's limit",
                    arch.kind()
                )
            })?;
    }
    Ok(shapes)
}

/// One tensor of a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorHeader {
    /// dtype as written (`F32`, `F16`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

fn dtype_bytes(dtype: &str) -> Option<usize> {
    match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "U8" | "I8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
        _ => None,
    }
}

/// Parses the header of a safetensors file from its first bytes (`head`, at least the 8-byte
/// length and the header) and the file's length: every tensor's dtype and shape, each tensor's
/// data inside the file and of its shape's size. `path` names the file in errors.
pub fn parse_header(path: &Path, head: &[u8], file_len: u64) -> CoreResult<BTreeMap<String, TensorHeader>> {
    let bad = |why: String| CoreError::format(path, format!("not a readable safetensors file: {why}"));
    let Some((len, rest)) = head.split_first_chunk::<8>() else {
        return Err(bad(format!("{file_len} bytes, too short for a header")));
    };
    let n = u64::from_le_bytes(*len);
    let data_len = file_len.checked_sub(8).and_then(|l| l.checked_sub(n));
    let (Some(data_len), true) = (data_len, n <= MAX_HEADER) else {
        return Err(bad(format!(
            "header length {n} does not fit the file of {file_len} bytes"
        )));
    };
    let text = rest.get(..n as usize).ok_or_else(|| {
        bad(format!(
            "header length {n} does not fit the file of {file_len} bytes"
        ))
    })?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|e| bad(format!("the header is not JSON: {e}")))?;
    let mut out = BTreeMap::new();
    let mut end = 0u64;
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let info: RawInfo = serde_json::from_value(v).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        let size = dtype_bytes(&info.dtype)
            .ok_or_else(|| bad(format!("tensor '{name}' has unknown dtype {}", info.dtype)))?;
        let bytes = info
            .shape
            .iter()
            .try_fold(size, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                bad(format!(
                    "tensor '{name}' has an impossible shape {:?}",
                    info.shape
                ))
            })?;
        let [s, e] = info.data_offsets;
        if e < s || e - s != bytes {
            return Err(bad(format!(
                "tensor '{name}' has offsets {s}..{e} for {bytes} bytes of data"
            )));
        }
        end = end.max(e as u64);
        out.insert(
            name,
            TensorHeader {
                dtype: info.dtype,
                shape: info.shape,
            },
        );
    }
    if end > data_len {
        return Err(bad(format!(
            "truncated: the header describes {end} bytes of tensor data, the file holds {data_len}"
        )));
    }
    Ok(out)
}

/// Reads only the header of a safetensors file (refusing PyTorch pickles), see [`parse_header`].
pub fn read_header(path: &Path) -> CoreResult<BTreeMap<String, TensorHeader>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let file_len = f.metadata().map_err(|e| CoreError::io(path, e))?.len();
    let mut head = Vec::new();
    let mut r = f.take(8);
    r.read_to_end(&mut head).map_err(|e| CoreError::io(path, e))?;
    super::checkpoint::refuse_pickle(path, &head)?;
    if let Some(len) = head.first_chunk::<8>() {
        let n = u64::from_le_bytes(*len);
        if n <= MAX_HEADER && n.saturating_add(8) <= file_len {
            r.into_inner()
                .take(n)
                .read_to_end(&mut head)
                .map_err(|e| CoreError::io(path, e))?;
        }
    }
    parse_header(path, &head, file_len)
}

/// One difference between the architecture and the weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The architecture needs a tensor the weights lack.
    Missing(String),
    /// The weights hold a tensor the architecture does not have.
    Unexpected(String),
    /// A tensor has another shape.
    Shape {
        /// Tensor name.
        name: String,
        /// In the weights.
        found: Vec<usize>,
        /// What the card's architecture needs.
        needed: Vec<usize>,
    },
    /// Anything else about one tensor (NaN values, ...), as a phrase.
    Other(String),
}

impl Problem {
    fn long(&self, kind: &str) -> String {
        match self {
            Self::Missing(n) => format!("missing tensor '{n}'"),
            Self::Unexpected(n) => format!("unexpected tensor '{n}'"),
            Self::Shape { name, found, needed } => format!(
                "tensor '{name}' has shape {found:?}, the {kind} architecture in the card needs {needed:?}"
            ),
            Self::Other(s) => s.clone(),
        }
    }

    fn short(&self) -> String {
        let cut = |n: &str| match n.char_indices().nth(40) {
            Some((i, _)) => format!("{}...", &n[..i]),
            None => n.to_string(),
        };
        match self {
            Self::Missing(n) => format!("'{}' missing", cut(n)),
            Self::Unexpected(n) => format!("'{}' unexpected", cut(n)),
            Self::Shape { name, found, needed } => format!("'{}' is {found:?}, needs {needed:?}", cut(name)),
            Self::Other(s) => s.chars().take(80).collect(),
        }
    }
}

/// The differences between `expected` and the header's tensors, in name order.
pub fn compare(expected: &Shapes, header: &BTreeMap<String, TensorHeader>) -> Vec<Problem> {
    let mut out = Vec::new();
    for (name, needed) in expected {
        match header.get(name) {
            None => out.push(Problem::Missing(name.clone())),
            Some(t) if &t.shape != needed => out.push(Problem::Shape {
                name: name.clone(),
                found: t.shape.clone(),
                needed: needed.clone(),
            }),
            Some(_) => {}
        }
    }
    for name in header.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(Problem::Unexpected(name.clone()));
    }
    out
}

/// One line for `problems` (never empty): one or two in full, else how many, the first one or
/// two, and `cause` when given. The full list goes to the log (`rote --verbose`).
pub fn summarise(problems: &[Problem], kind: &str, cause: Option<&str>) -> String {
    let mut line = match problems {
        [one] => one.long(kind),
        [a, b] if cause.is_none() => format!("{}; {}", a.long(kind), b.long(kind)),
        _ => {
            for p in problems {
                log::info!("weights vs the card's {kind}: {}", p.long(kind));
            }
            let shown = if cause.is_some() { 1 } else { 2 };
            let examples: Vec<String> = problems.iter().take(shown).map(Problem::short).collect();
            format!(
                "{} tensors do not match the card's {kind} (e.g. {}; --verbose lists all)",
                problems.len(),
                examples.join("; ")
            )
        }
    };
    if let Some(c) = cause {
        line.push_str(": ");
        line.push_str(c);
    }
    line
}

/// The one size field of `arch` that, changed to a size found in the header, makes every
/// tensor match: "the card says F V; the weights were trained at F W".
pub fn explain<A: Architecture>(arch: &A, header: &BTreeMap<String, TensorHeader>) -> Option<String> {
    let mut candidates = BTreeSet::new();
    for t in header.values() {
        for &d in &t.shape {
            candidates.insert(d);
            if d.is_multiple_of(4) {
                // A UNet's time embedding is 4 x base, an LSTM's gates 4 x hidden.
                candidates.insert(d / 4);
            }
        }
    }
    let candidates: Vec<usize> = candidates.into_iter().take(64).collect();
    for (field, value) in arch.size_fields() {
        for &c in candidates.iter().filter(|&&c| c != value) {
            let Some(other) = arch.with_size(&field, c) else {
                break;
            };
            if expected_shapes(&other).is_ok_and(|s| compare(&s, header).is_empty()) {
                return Some(format!(
                    "the card says {field} {value}; the weights were trained at {field} {c}"
                ));
            }
        }
    }
    None
}

/// Checks the architecture of the card at `card` against the header of `weights`, before the
/// model is built: sizes and parameter count (an error naming the card), then every tensor's
/// name and shape (an error naming the weights file, summarised in one line).
pub fn check_weights<A: Architecture>(arch: &A, card: &Path, weights: &Path) -> CoreResult<()> {
    let header = read_header(weights)?;
    check_against(arch, card, weights, &header)
}

/// The load path of [`check_weights`] and the loaders from the bytes of a weights file, for
/// fuzzing and tests: the header against the architecture, then the model built and its values
/// read and checked (`fill_varmap_from_bytes`). `card` and `weights` only name files in errors.
pub fn load_arch_from_bytes<A: Architecture>(
    arch: &A,
    card: &Path,
    weights: &Path,
    bytes: &[u8],
) -> CoreResult<candle_nn::VarMap> {
    super::checkpoint::refuse_pickle(weights, bytes)?;
    let header = parse_header(weights, bytes, bytes.len() as u64)?;
    check_against(arch, card, weights, &header)?;
    let varmap = candle_nn::VarMap::new();
    arch.declare(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    super::fill_varmap_from_bytes(&varmap, weights, bytes, arch.kind(), &Device::Cpu)?;
    Ok(varmap)
}

fn check_against<A: Architecture>(
    arch: &A,
    card: &Path,
    weights: &Path,
    header: &BTreeMap<String, TensorHeader>,
) -> CoreResult<()> {
    let expected = expected_shapes(arch).map_err(|why| CoreError::format(card, why))?;
    let problems = compare(&expected, header);
    if problems.is_empty() {
        return Ok(());
    }
    let cause = if problems.len() > 1 {
        explain(arch, header)
    } else {
        None
    };
    Err(CoreError::format(
        weights,
        summarise(&problems, arch.kind(), cause.as_deref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(tensors: &[(&str, &[usize])], data: usize) -> Vec<u8> {
        let mut map = serde_json::Map::new();
        let mut off = 0;
        for (name, shape) in tensors {
            let n: usize = shape.iter().product::<usize>() * 4;
            map.insert(
                (*name).into(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}),
            );
            off += n;
        }
        let text = serde_json::to_vec(&map).unwrap();
        let mut b = (text.len() as u64).to_le_bytes().to_vec();
        b.extend(text);
        b.extend(std::iter::repeat_n(0u8, data.min(off)));
        b
    }

    #[test]
    fn headers_are_checked_against_the_file_length() {
        let p = Path::new("w.safetensors");
        let b = header_bytes(&[("a", &[2, 3]), ("b", &[4])], usize::MAX);
        let h = parse_header(p, &b, b.len() as u64).unwrap();
        assert_eq!(h["a"].shape, vec![2, 3]);
        let cut = header_bytes(&[("a", &[2, 3]), ("b", &[4])], 10);
        let e = parse_header(p, &cut, cut.len() as u64).unwrap_err().to_string();
        assert!(
            e.contains("truncated: the header describes 40 bytes of tensor data, the file holds 10"),
            "{e}"
        );
        let mut huge = (1u64 << 40).to_le_bytes().to_vec();
        huge.extend(b"{}");
        let e = parse_header(p, &huge, 10).unwrap_err().to_string();
        assert!(e.contains("does not fit the file"), "{e}");
        let mut absurd =
            b"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}"
                .to_vec();
        let mut b = (absurd.len() as u64).to_le_bytes().to_vec();
        b.append(&mut absurd);
        let e = parse_header(p, &b, b.len() as u64).unwrap_err().to_string();
        assert!(e.contains("impossible shape"), "{e}");
    }

    #[test]
    fn many_differences_are_summarised_in_one_short_line() {
        let problems: Vec<Problem> = (0..72)
            .map(|k| Problem::Shape {
                name: format!("down{k}.conv1.weight"),
                found: vec![32, 32, 3, 3],
                needed: vec![64, 64, 3, 3],
            })
            .collect();
        let line = summarise(
            &problems,
            "UNet",
            Some("the card says unet.base 64; the weights were trained at unet.base 32"),
        );
        assert!(line.len() < 200, "{} chars: {line}", line.len());
        assert!(
            line.starts_with("72 tensors do not match the card's UNet"),
            "{line}"
        );
        assert_eq!(
            summarise(&problems[..1], "UNet", None).matches("tensor").count(),
            1
        );
    }

    /// The real loaders' path from bytes: a UNet card at base 8 over weights trained at base 4
    /// is one line naming the field, and the same card at base 4 loads.
    #[test]
    fn a_card_field_that_explains_every_difference_is_named() {
        use crate::diffusion::UNetConfig;
        let trained = UNetConfig::for_image(1, 8, 8, 4);
        let varmap = candle_nn::VarMap::new();
        trained
            .declare(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("weights.safetensors");
        crate::model::save_weights(&varmap, &w).unwrap();
        let bytes = std::fs::read(&w).unwrap();
        let card = Path::new("card.json");
        assert!(
            load_arch_from_bytes(&trained, card, &w, &bytes).is_ok(),
            "the trained card loads"
        );
        let wider = UNetConfig::for_image(1, 8, 8, 8);
        let e = load_arch_from_bytes(&wider, card, &w, &bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("the card says unet.base 8; the weights were trained at unet.base 4"),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
        assert_eq!(e, check_weights(&wider, card, &w).unwrap_err().to_string());
    }

    /// Sizes in range whose product is too large are refused by counting, not allocating.
    #[test]
    fn too_many_parameters_are_refused_before_allocating() {
        let lm = crate::canary::lm::LmArch {
            vocab: 65_536,
            embed: 65_536,
            hidden: 65_536,
        };
        let e = expected_shapes(&lm).unwrap_err();
        assert!(e.contains("more than 134217728 parameters"), "{e}");
        let huge = crate::diffusion::UNetConfig {
            channels: 3,
            height: 4096,
            width: 4096,
            base: 65_536,
            mults: vec![1, 2],
        };
        assert!(
            expected_shapes(&huge)
                .unwrap_err()
                .contains("exceeds rote's limit")
        );
    }
}
