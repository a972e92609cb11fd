//! Model inversion of ONNX image classifiers (feature `onnx`, through `candle-onnx`).
//!
//! [`OnnxClassifier::load`] reads a `.onnx` file and checks, before anything runs, that every
//! operator of its graph is one whose candle implementation is differentiable with respect to the
//! input ([`SUPPORTED_OPS`]: Gemm, MatMul, Conv, BatchNormalization (inference), MaxPool and
//! AveragePool with stride = kernel and no padding, Relu, LeakyRelu, Sigmoid, Tanh, element-wise
//! arithmetic, Flatten/Reshape/Transpose/Squeeze/Unsqueeze/Concat, Softmax with an `axis`, ...).
//! Anything else (GlobalAveragePool, LayerNormalization, Softmax without `axis` inside the graph,
//! a pool whose input is not a multiple of its kernel, ...) is an error naming every offending
//! operator and the file, e.g. `net.onnx: unsupported ONNX operators: GlobalAveragePool, Erf`.
//!
//! The graph's single image input is `(N, C, H, W)` or flat `(N, C*H*W)`, float or double. Its
//! shape comes from the declared dimensions when they are static, from [`OnnxOptions`] (the
//! command line) otherwise, and the options win. A static batch dimension of 1 is evaluated one
//! image at a time. A final `Softmax`/`LogSoftmax` producing the first graph output is cut off and
//! its input used as the logits (candle's `Softmax` without `axis` has no backward); otherwise the
//! first output is taken as logits. The input normalisation `(x - mean) / std` (per channel, from
//! the options or the file's metadata properties `input_mean`/`input_std`, comma-separated) sits
//! inside the differentiated graph, so images are optimised in pixel space [0, 1] like rote's own
//! classifiers, and every method of [`super::Method`] runs unchanged through [`InvertTarget`].
//!
//! Initializers are decoded once at load time and passed to `candle_onnx::simple_eval` as inputs
//! (it would otherwise re-decode every weight on every call). candle-onnx fixes constants to the
//! CPU, so ONNX models always run on the CPU.
//!
//! [`invert_onnx`] is `rote invert --onnx`: invert the classes, write PNGs and a JSON report with
//! the cost curves and target probabilities, and with a data set (`--data`) identify each
//! inversion with the independent evaluation classifier as [`super::run::invert_model`] does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_onnx::onnx::{self, ModelProto};
use prost::Message as _;
use sha2::Digest as _;

use super::eval::{
    EvalConfig, FaceDistances, Identification, face_distances, identify, load_eval, save_eval,
};
use super::{InvertConfig, InvertTarget, StopReason, invert_classes};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::study::{write_atomic, write_json_atomic};

/// Operators whose candle-onnx implementation was checked (in candle-onnx 0.11's `eval.rs` and
/// candle's backprop) to build differentiable candle ops, or to only compute shapes and constants.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Exp",
    "Flatten",
    "Gather",
    "Gemm",
    "Identity",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pow",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// ONNX `TensorProto.DataType` codes of the inputs accepted.
const ONNX_FLOAT: i32 = 1;
const ONNX_DOUBLE: i32 = 11;

/// How to read an ONNX classifier's input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxOptions {
    /// Image shape C, H, W (overrides the graph's declared dimensions).
    pub input_shape: Option<[usize; 3]>,
    /// Shape used when neither the option nor the graph gives one (e.g. the data set's).
    pub fallback_shape: Option<[usize; 3]>,
    /// Per-channel mean subtracted from pixels in [0, 1] (one value: every channel; empty: the
    /// file's `input_mean` metadata, or none).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (as `mean`; metadata key `input_std`).
    pub std: Vec<f32>,
}

/// What the graph's first output was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Logits (used as they are).
    Logits,
    /// A final Softmax, cut off: its input is used.
    Softmax,
    /// A final LogSoftmax, cut off: its input is used.
    LogSoftmax,
}

/// An ONNX image classifier prepared for differentiation (see the module documentation).
pub struct OnnxClassifier {
    path: PathBuf,
    /// The graph without initializers, its only output the logits.
    model: ModelProto,
    /// The initializers, decoded once.
    weights: HashMap<String, Tensor>,
    input_name: String,
    logits_name: String,
    /// Rank of the graph input (2: flat, 4: images).
    input_rank: usize,
    input_dtype: DType,
    /// Evaluate one image at a time (static batch 1, or a graph that only runs with batch 1).
    per_image: bool,
    shape: [usize; 3],
    n_classes: usize,
    norm: Option<(Tensor, Tensor)>,
    mean: Vec<f32>,
    std: Vec<f32>,
    output: OutputKind,
}

/// The most values (C x H x W) one input image may have: a sane cap before the blank test image
/// is allocated.
const MAX_INPUT_VALUES: usize = 1 << 24;

fn fmt_err(path: &Path, msg: impl std::fmt::Display) -> CoreError {
    CoreError::format(path, msg.to_string())
}

/// Reads and decodes an ONNX file.
pub fn read_model(path: &Path) -> CoreResult<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    parse_model(path, &bytes)
}

/// Decodes the bytes of an ONNX file; `path` only names the file in errors.
pub fn parse_model(path: &Path, bytes: &[u8]) -> CoreResult<ModelProto> {
    ModelProto::decode(bytes).map_err(|e| fmt_err(path, format!("not an ONNX model: {e}")))
}

/// Encodes `model` and writes it to `path` atomically (tests and tools build graphs with it).
pub fn write_model(path: &Path, model: &ModelProto) -> CoreResult<()> {
    write_atomic(path, &model.encode_to_vec())
}

fn parse_floats(s: &str) -> Option<Vec<f32>> {
    s.split(',').map(|t| t.trim().parse::<f32>().ok()).collect()
}

/// `v` per channel: one value for every channel, or exactly `c` values.
fn per_channel(path: &Path, what: &str, v: &[f32], c: usize) -> CoreResult<Vec<f32>> {
    match v.len() {
        1 => Ok(vec![v[0]; c]),
        n if n == c => Ok(v.to_vec()),
        n => Err(fmt_err(
            path,
            format!("{what} has {n} values but the input has {c} channels (give 1 or {c})"),
        )),
    }
}

impl OnnxClassifier {
    /// Loads `path`, checks its operators and input, and runs one forward and backward pass on a
    /// blank image to make sure the gradient reaches the pixels.
    pub fn load(path: &Path, opts: &OnnxOptions) -> CoreResult<Self> {
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_bytes(path, &bytes, opts)
    }

    /// [`OnnxClassifier::load`] from the bytes of an ONNX file; `path` only names the file in
    /// errors.
    pub fn from_bytes(path: &Path, bytes: &[u8], opts: &OnnxOptions) -> CoreResult<Self> {
        let mut model = parse_model(path, bytes)?;
        let graph = model
            .graph
            .as_mut()
            .ok_or_else(|| fmt_err(path, "the ONNX file holds no graph"))?;
        let first_out = graph
            .output
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| fmt_err(path, "the graph has no output"))?;
        // Cut a final Softmax / LogSoftmax off: its input is the logits.
        let mut output = OutputKind::Logits;
        let mut logits_name = first_out.clone();
        if let Some(k) = graph
            .node
            .iter()
            .position(|n| n.output.first() == Some(&first_out))
        {
            let node = &graph.node[k];
            let kind = match node.op_type.as_str() {
                "Softmax" => Some(OutputKind::Softmax),
                "LogSoftmax" => Some(OutputKind::LogSoftmax),
                _ => None,
            };
            let used_elsewhere = graph.node.iter().any(|n| n.input.contains(&first_out));
            if let (Some(kind), Some(input), false) = (kind, node.input.first(), used_elsewhere) {
                output = kind;
                logits_name = input.clone();
                graph.node.remove(k);
            }
        }
        graph.output = vec![onnx::ValueInfoProto {
            name: logits_name.clone(),
            ..Default::default()
        }];
        let bad = unsupported_ops(graph);
        if !bad.is_empty() {
            return Err(fmt_err(
                path,
                format!(
                    "unsupported ONNX operators: {} (inversion needs operators with a gradient: {})",
                    bad.join(", "),
                    SUPPORTED_OPS.join(", ")
                ),
            ));
        }
        if let Some(problem) = arity_problem(graph) {
            return Err(fmt_err(path, problem));
        }
        // Decode the initializers once; the graph keeps only the nodes.
        let mut weights = HashMap::new();
        for t in std::mem::take(&mut graph.initializer) {
            // candle-onnx may panic on a malformed tensor: an error on the file, as in eval_graph.
            let decoded = std::panic::catch_unwind(|| candle_onnx::eval::get_tensor(&t, &t.name));
            let tensor = match decoded {
                Ok(r) => r.map_err(|e| fmt_err(path, format!("initializer '{}': {e}", t.name)))?,
                Err(_) => {
                    return Err(fmt_err(
                        path,
                        format!("initializer '{}' cannot be decoded", t.name),
                    ));
                }
            };
            weights.insert(t.name.clone(), tensor);
        }
        let inputs: Vec<&onnx::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !weights.contains_key(&i.name))
            .collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(fmt_err(
                path,
                format!("expected one image input, the graph has {names:?}"),
            ));
        };
        let input_name = input.name.clone();
        let (elem, dims) =
            dims_of(input).ok_or_else(|| fmt_err(path, format!("input '{input_name}' is not a tensor")))?;
        let input_dtype = match elem {
            ONNX_FLOAT => DType::F32,
            ONNX_DOUBLE => DType::F64,
            other => {
                return Err(fmt_err(
                    path,
                    format!(
                        "input '{input_name}' has element type {other}: only float and double images can be inverted"
                    ),
                ));
            }
        };
        // No declared shape at all: assume (N, C, H, W).
        let input_rank = if dims.is_empty() { 4 } else { dims.len() };
        let declared = match dims.as_slice() {
            [_, Some(c), Some(h), Some(w)] => Some([*c, *h, *w]),
            [] | [_, _, _, _] | [_, _] => None,
            _ => {
                return Err(fmt_err(
                    path,
                    format!(
                        "input '{input_name}' has rank {input_rank}: expected (N, C, H, W) or flat (N, C*H*W)"
                    ),
                ));
            }
        };
        let shape = opts
            .input_shape
            .or(declared)
            .or(opts.fallback_shape)
            .ok_or_else(|| {
                fmt_err(
                    path,
                    format!(
                        "the input '{input_name}' does not declare its image shape: give --input-shape C,H,W"
                    ),
                )
            })?;
        if shape.contains(&0) {
            return Err(fmt_err(
                path,
                format!("input shape {shape:?} has a zero dimension"),
            ));
        }
        if shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none_or(|n| n > MAX_INPUT_VALUES)
        {
            return Err(fmt_err(
                path,
                format!("input shape {shape:?} is too large (at most {MAX_INPUT_VALUES} values an image)"),
            ));
        }
        let static_ok = match dims.as_slice() {
            [_, c, h, w] => [c, h, w].iter().zip(shape).all(|(d, s)| d.is_none_or(|d| d == s)),
            [_, Some(flat)] => *flat == shape.iter().product::<usize>(),
            _ => true,
        };
        if !static_ok {
            return Err(fmt_err(
                path,
                format!("input shape {shape:?} does not match the graph's declared input {dims:?}"),
            ));
        }
        let per_image = match dims.first().copied().flatten() {
            None => false,
            Some(1) => true,
            Some(n) => {
                return Err(fmt_err(
                    path,
                    format!(
                        "the graph has a fixed batch size of {n}: export it with batch 1 or a dynamic batch axis"
                    ),
                ));
            }
        };
        // Normalisation: options first, then the file's metadata.
        let meta = |key: &str| {
            model
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .and_then(|p| parse_floats(&p.value))
        };
        let mean = if opts.mean.is_empty() {
            meta("input_mean").unwrap_or_default()
        } else {
            opts.mean.clone()
        };
        let std = if opts.std.is_empty() {
            meta("input_std").unwrap_or_default()
        } else {
            opts.std.clone()
        };
        let c = shape[0];
        let (mean, std) = match (mean.is_empty(), std.is_empty()) {
            (true, true) => (Vec::new(), Vec::new()),
            (false, true) => (per_channel(path, "mean", &mean, c)?, vec![1.0; c]),
            (true, false) => (vec![0.0; c], per_channel(path, "std", &std, c)?),
            (false, false) => (
                per_channel(path, "mean", &mean, c)?,
                per_channel(path, "std", &std, c)?,
            ),
        };
        if std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(fmt_err(path, format!("std {std:?} must be positive")));
        }
        let norm = if mean.is_empty() {
            None
        } else {
            let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
            Some((
                Tensor::from_vec(mean.clone(), (1, c, 1, 1), &Device::Cpu)?,
                Tensor::from_vec(inv, (1, c, 1, 1), &Device::Cpu)?,
            ))
        };
        let mut clf = Self {
            path: path.to_path_buf(),
            model,
            weights,
            input_name,
            logits_name,
            input_rank,
            input_dtype,
            per_image,
            shape,
            n_classes: 0,
            norm,
            mean,
            std,
            output,
        };
        clf.check_pools()?;
        clf.probe()?;
        Ok(clf)
    }

    /// Runs the graph once on blank images with every pool's input as an extra output, and
    /// refuses pools whose input is not a multiple of the kernel (candle's pooling gradient is
    /// wrong there).
    fn check_pools(&self) -> CoreResult<()> {
        let Some(graph) = self.model.graph.as_ref() else {
            return Ok(());
        };
        let pools: Vec<(&onnx::NodeProto, &str)> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "MaxPool" || n.op_type == "AveragePool")
            .filter_map(|n| n.input.first().map(|i| (n, i.as_str())))
            .collect();
        if pools.is_empty() {
            return Ok(());
        }
        let mut probe = self.model.clone();
        if let Some(g) = probe.graph.as_mut() {
            for (_, name) in &pools {
                g.output.push(onnx::ValueInfoProto {
                    name: (*name).to_string(),
                    ..Default::default()
                });
            }
        }
        let [c, h, w] = self.shape;
        let x = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu)?;
        let values = self.eval_graph(&probe, &self.to_input(&x)?)?;
        let mut bad = Vec::new();
        for (node, name) in pools {
            let kernel = attr_ints(node, "kernel_shape").unwrap_or_default();
            if let (Some(t), [kh, kw]) = (values.get(name), kernel)
                && let [.., ih, iw] = t.dims()
                && (*kh <= 0 || *kw <= 0 || ih % *kh as usize != 0 || iw % *kw as usize != 0)
            {
                bad.push(format!(
                    "{} '{}' (input {ih}x{iw} is not a multiple of its kernel {kh}x{kw}: candle's gradient is wrong there)",
                    node.op_type, node.name
                ));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(fmt_err(
                &self.path,
                format!("unsupported ONNX operators: {}", bad.join(", ")),
            ))
        }
    }

    /// One forward and backward pass on blank images: the logits are (B, K) with K >= 2 and the
    /// gradient reaches the input. A graph that only runs with batch 1 (a reshape to a fixed
    /// batch) is switched to per-image evaluation.
    fn probe(&mut self) -> CoreResult<()> {
        let [c, h, w] = self.shape;
        let x = Tensor::full(0.5f32, (2, c, h, w), &Device::Cpu)?;
        if !self.per_image && self.logits(&x).is_err() {
            self.per_image = true;
        }
        let var = Var::from_tensor(&x)?;
        let logits = self.logits(var.as_tensor())?;
        let k = match logits.dims() {
            [2, k] if *k >= 2 => *k,
            d => {
                return Err(fmt_err(
                    &self.path,
                    format!(
                        "output '{}' has shape {d:?} for 2 images: expected (2, classes) logits",
                        self.logits_name
                    ),
                ));
            }
        };
        let obj = candle_nn::ops::log_softmax(&logits, D::Minus1)?
            .narrow(1, 0, 1)?
            .sum_all()?;
        let grads = obj.backward()?;
        if grads.get(var.as_tensor()).is_none() {
            return Err(fmt_err(
                &self.path,
                "no gradient reaches the input through this graph (an operator without a backward pass)",
            ));
        }
        self.n_classes = k;
        Ok(())
    }

    /// The graph input for images `(B, C, H, W)`: normalised, in the input's rank and dtype.
    fn to_input(&self, x: &Tensor) -> CoreResult<Tensor> {
        let x = match &self.norm {
            Some((mean, inv_std)) => x.broadcast_sub(mean)?.broadcast_mul(inv_std)?,
            None => x.clone(),
        };
        let x = if self.input_rank == 2 {
            x.flatten_from(1)?
        } else {
            x
        };
        Ok(x.to_dtype(self.input_dtype)?)
    }

    fn eval_graph(&self, model: &ModelProto, input: &Tensor) -> CoreResult<HashMap<String, Tensor>> {
        let mut inputs = self.weights.clone();
        inputs.insert(self.input_name.clone(), input.clone());
        // candle-onnx panics on some malformed graphs: report that as an error on the file.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            candle_onnx::simple_eval(model, inputs)
        }));
        match run {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(fmt_err(&self.path, format!("evaluating the graph: {e}"))),
            Err(_) => Err(fmt_err(&self.path, "candle-onnx panicked evaluating the graph")),
        }
    }

    fn logits_of(&self, input: &Tensor) -> CoreResult<Tensor> {
        let mut out = self.eval_graph(&self.model, input)?;
        let logits = out
            .remove(&self.logits_name)
            .ok_or_else(|| fmt_err(&self.path, format!("no output '{}'", self.logits_name)))?;
        Ok(logits.to_dtype(DType::F32)?.flatten_from(1)?)
    }

    /// Image shape C, H, W.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of classes (width of the logits).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The per-channel normalisation applied (empty: none).
    pub fn normalisation(&self) -> (&[f32], &[f32]) {
        (&self.mean, &self.std)
    }

    /// What the graph's first output was.
    pub fn output_kind(&self) -> OutputKind {
        self.output
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl InvertTarget for OnnxClassifier {
    fn logits(&self, x: &Tensor) -> CoreResult<Tensor> {
        let x = x.to_device(&Device::Cpu)?;
        let input = self.to_input(&x)?;
        if !self.per_image || input.dim(0)? == 1 {
            return self.logits_of(&input);
        }
        let rows = (0..input.dim(0)?)
            .map(|i| self.logits_of(&input.narrow(0, i, 1)?))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
}

mod checks;
mod run;
pub use checks::unsupported_ops;
use checks::{arity_problem, attr_ints, dims_of};
pub use run::{
    OnnxClassReport, OnnxIdentification, OnnxInversionReport, OnnxInvertOptions, default_out_dir, invert_onnx,
};

#[cfg(test)]
mod fuzz_tests;
