//! Classifier models as explicit candle structs built from a `VarBuilder`, their cards
//! (`card.json`) and checkpoints (`weights.safetensors`).
//!
//! Parameter names (`fc1.weight`, `conv2.bias`, ...) are the checkpoint format; do not rename them.

mod card;
mod checkpoint;
mod cnn;
pub mod header;
mod init;
pub mod limits;
mod mlp;

pub use card::{DatasetRef, EpochRecord, Hyper, ModelCard, SampleScores, TrainMetrics};
pub use checkpoint::check_model_folder;
pub use checkpoint::{
    LoadedModel, check_dataset, fill_varmap, fill_varmap_from_bytes, load_model, load_weights, save_weights,
    save_weights_as,
};
pub(crate) use checkpoint::{refuse_pickled_data, sniff_pickle as refuse_pickle_file};
pub use cnn::Cnn;
pub use init::{seeded_init, seeded_uniform};
pub use mlp::Mlp;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{CoreError, CoreResult};

/// Model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Multi-layer perceptron on flattened pixels.
    Mlp,
    /// Small convolutional network (strided convolutions, no max-pool).
    Cnn,
    /// Softmax (multinomial logistic) regression: one linear layer `out` on the normalised pixels
    /// (the first target model of Fredrikson et al. 2015).
    Softmax,
}

impl Family {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
            Self::Softmax => "softmax",
        }
    }

    /// Refuses a family that cannot take `ds`: convolutions need images, and a table's rows are
    /// feature vectors (the MLP and softmax regression take them).
    pub fn check_data(self, ds: &crate::data::Dataset) -> crate::error::CoreResult<()> {
        if self == Self::Cnn && ds.is_tabular() {
            return Err(crate::error::CoreError::Invalid(format!(
                "{} is a table: a CNN needs images; use --family mlp or softmax (a tabular \
                 diffusion model is `rote train-tabular`)",
                ds.name
            )));
        }
        Ok(())
    }
}

/// The architecture of a classifier: everything needed to rebuild it before loading weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// Family.
    pub family: Family,
    /// Input channels, height, width.
    pub input: [usize; 3],
    /// Number of classes.
    pub n_classes: usize,
    /// Hidden widths (MLP), convolution channels (CNN) or nothing (softmax regression).
    pub widths: Vec<usize>,
    /// Per-channel mean subtracted from inputs in [0, 1] (empty: none). Part of the model, so
    /// attacks work in plain pixel space.
    #[serde(default)]
    pub input_mean: Vec<f32>,
    /// Per-channel standard deviation inputs are divided by (empty: none).
    #[serde(default)]
    pub input_std: Vec<f32>,
}

impl ModelSpec {
    /// The default architecture of `family` for images of `input` with `n_classes`: the
    /// Feldman-Zhang MLP 784-512-256-10, or a 3-layer strided CNN with a 128-unit head.
    pub fn default_for(family: Family, input: [usize; 3], n_classes: usize) -> Self {
        let widths = match family {
            Family::Mlp => vec![512, 256],
            Family::Cnn => vec![32, 64, 64, 128],
            Family::Softmax => Vec::new(),
        };
        Self {
            family,
            input,
            n_classes,
            widths,
            input_mean: Vec::new(),
            input_std: Vec::new(),
        }
    }
}

impl limits::Architecture for ModelSpec {
    fn kind(&self) -> &'static str {
        self.family.as_str()
    }

    fn check_sizes(&self) -> Result<(), String> {
        use limits::{CHANNELS, CLASSES, MAX_ACTIVATIONS, MLP_LAYERS, SIDE, WIDTH, all_in_range, in_range};
        let [c, h, w] = self.input;
        in_range("spec.input[0] (channels)", c, CHANNELS)?;
        in_range("spec.input[1] (height)", h, SIDE)?;
        in_range("spec.input[2] (width)", w, SIDE)?;
        in_range("spec.n_classes", self.n_classes, CLASSES)?;
        match self.family {
            Family::Mlp | Family::Softmax => all_in_range("spec.widths", &self.widths, MLP_LAYERS, WIDTH),
            Family::Cnn if self.widths.is_empty() => Ok(()),
            Family::Cnn => {
                all_in_range("spec.widths", &self.widths, 4..=4, WIDTH)?;
                limits::product(
                    "spec.widths[0] x height x width",
                    &[self.widths[0], h, w],
                    MAX_ACTIVATIONS,
                )
                .map(|_| ())
            }
        }
    }

    fn declare(&self, vb: VarBuilder<'_>) -> CoreResult<()> {
        Classifier::new(self, vb).map(|_| ())
    }

    fn size_fields(&self) -> Vec<(String, usize)> {
        let mut v = vec![("spec.n_classes".to_string(), self.n_classes)];
        for (k, name) in ["channels", "height", "width"].iter().enumerate() {
            v.push((format!("spec.input[{k}] ({name})"), self.input[k]));
        }
        v.extend(
            self.widths
                .iter()
                .enumerate()
                .map(|(k, &w)| (format!("spec.widths[{k}]"), w)),
        );
        v
    }

    fn with_size(&self, field: &str, value: usize) -> Option<Self> {
        let mut s = self.clone();
        if field == "spec.n_classes" {
            s.n_classes = value;
        } else if let Some(k) = field
            .strip_prefix("spec.input[")
            .and_then(|r| r.get(..1)?.parse::<usize>().ok())
        {
            *s.input.get_mut(k)? = value;
        } else {
            let k: usize = field
                .strip_prefix("spec.widths[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            *s.widths.get_mut(k)? = value;
        }
        Some(s)
    }
}

/// The pieces of a classifier whose logits are affine in its input (see
/// [`Classifier::affine_parts`]).
pub struct AffineParts {
    /// Weight (K, D).
    pub weight: Tensor,
    /// Bias (K).
    pub bias: Tensor,
    /// Per-channel input mean (empty: none).
    pub mean: Vec<f32>,
    /// Per-channel 1 / std (empty: none).
    pub inv_std: Vec<f32>,
}

/// A layer with parameters, as [`Classifier::forward_tapped`] shows it.
#[derive(Clone, Copy)]
pub enum Layer<'a> {
    /// `y = x W^T + b` on rows `x` (B, in).
    Linear(&'a candle_nn::Linear),
    /// A convolution on `x` (B, C, H, W) (its configuration says stride and padding).
    Conv(&'a candle_nn::Conv2d),
}

/// What a tapped forward pass calls with each parameterised layer, its input and its output
/// (before the activation); it returns the output the pass continues with.
pub type Tap<'t> = &'t mut dyn FnMut(Layer<'_>, &Tensor, Tensor) -> candle_core::Result<Tensor>;

/// A classifier of any family, with its fixed input normalisation.
pub struct Classifier {
    net: Net,
    norm: Option<(Tensor, Tensor)>,
}

enum Net {
    Mlp(Mlp),
    Cnn(Cnn),
}

impl Classifier {
    /// Builds the model described by `spec`, taking parameters from `vb`.
    pub fn new(spec: &ModelSpec, vb: VarBuilder<'_>) -> CoreResult<Self> {
        if spec.n_classes < 2 {
            return Err(CoreError::Invalid(format!(
                "a classifier needs at least 2 classes, got {}",
                spec.n_classes
            )));
        }
        let c = spec.input[0];
        let norm = if spec.input_mean.len() == c && spec.input_std.len() == c {
            let dev = vb.device();
            let mean = Tensor::from_vec(spec.input_mean.clone(), (1, c, 1, 1), dev)?.to_dtype(vb.dtype())?;
            let inv_std: Vec<f32> = spec.input_std.iter().map(|s| 1.0 / s.max(1e-6)).collect();
            Some((
                mean,
                Tensor::from_vec(inv_std, (1, c, 1, 1), dev)?.to_dtype(vb.dtype())?,
            ))
        } else {
            None
        };
        let net = match spec.family {
            Family::Mlp => Net::Mlp(Mlp::new(spec, vb)?),
            Family::Cnn => Net::Cnn(Cnn::new(spec, vb)?),
            // Softmax regression is the MLP without hidden layers (parameters `out.weight`/`out.bias`).
            Family::Softmax if spec.widths.is_empty() => Net::Mlp(Mlp::new(spec, vb)?),
            Family::Softmax => {
                return Err(CoreError::Invalid(format!(
                    "softmax regression has no hidden layers, but the spec lists widths {:?}",
                    spec.widths
                )));
            }
        };
        Ok(Self { net, norm })
    }

    /// For a model whose logits are affine in its input (softmax regression): the weight (K, D),
    /// the bias (K) and the per-channel input mean and 1/std (empty without normalisation).
    pub fn affine_parts(&self) -> CoreResult<Option<AffineParts>> {
        let Net::Mlp(m) = &self.net else {
            return Ok(None);
        };
        let Some((w, b)) = m.affine() else {
            return Ok(None);
        };
        let (mean, inv_std) = match &self.norm {
            Some((mean, inv_std)) => (
                mean.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                inv_std.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok(Some(AffineParts {
            weight: w.clone(),
            bias: b.clone(),
            mean,
            inv_std,
        }))
    }

    /// The classifier of `spec` with the parameters of `varmap` as plain tensors: a backward pass
    /// through it computes only the input's gradient (model inversion), not every parameter's too.
    pub fn frozen(spec: &ModelSpec, varmap: &VarMap, device: &Device) -> CoreResult<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
        let tensors: std::collections::HashMap<String, Tensor> = data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        drop(data);
        let dtype = tensors.values().next().map_or(DType::F32, Tensor::dtype);
        Self::new(spec, VarBuilder::from_tensors(tensors, dtype, device))
    }

    /// Logits for a batch of images, `(B, C, H, W)` in [0, 1].
    pub fn forward(&self, xs: &Tensor) -> CoreResult<Tensor> {
        self.forward_tapped(xs, &mut |_, _, y| Ok(y))
    }

    /// [`Classifier::forward`] with every parameterised layer, its input (normalised, padded)
    /// and its output (before the activation) shown to `tap`, which returns the output to
    /// continue with (per-sample gradients read the layers' inputs and output gradients).
    pub fn forward_tapped(&self, xs: &Tensor, tap: Tap<'_>) -> CoreResult<Tensor> {
        let xs = match &self.norm {
            Some((mean, inv_std)) => xs.broadcast_sub(mean)?.broadcast_mul(inv_std)?,
            None => xs.clone(),
        };
        Ok(match &self.net {
            Net::Mlp(m) => m.forward_tapped(&xs, tap)?,
            Net::Cnn(m) => m.forward_tapped(&xs, tap)?,
        })
    }
}

/// The candle device for `name` (`cpu` or `cuda`), with a clear error when CUDA is unavailable.
pub fn device(name: &str) -> CoreResult<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if cfg!(feature = "cuda") {
                Device::new_cuda(0).map_err(|e| {
                    CoreError::Invalid(format!("CUDA was requested but no CUDA device is usable: {e}"))
                })
            } else {
                Err(CoreError::Invalid(
                    "CUDA was requested but this build of rote has no CUDA support (rebuild with --features cuda)".into(),
                ))
            }
        }
        other => Err(CoreError::Invalid(format!(
            "unknown device '{other}' (cpu or cuda)"
        ))),
    }
}

/// Whether this build can use CUDA.
pub fn cuda_built() -> bool {
    cfg!(feature = "cuda")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};
    use candle_nn::VarMap;

    /// Input gradients of every layer type against central finite differences (in f64), so
    /// gradient-based attacks can trust them (candle's max-pool backward is known to be wrong,
    /// which is why no model here uses it).
    #[test]
    fn input_gradients_match_finite_differences() {
        for family in [Family::Mlp, Family::Cnn, Family::Softmax] {
            let mut spec = ModelSpec::default_for(family, [2, 6, 5], 3);
            spec.widths = match family {
                Family::Mlp => vec![7, 5],
                Family::Cnn => vec![3, 4, 4, 6],
                Family::Softmax => Vec::new(),
            };
            spec.input_mean = vec![0.2, 0.4];
            spec.input_std = vec![0.5, 0.25];
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
            let model = Classifier::new(&spec, vb).unwrap();
            seeded_init(&varmap, 7).unwrap();
            let x0: Vec<f64> = (0..2 * 6 * 5).map(|k| ((k * 37 % 17) as f64) / 17.0).collect();
            let weights = Tensor::new(&[[0.3f64, -1.2, 0.7]], &Device::Cpu).unwrap();
            let objective = |x: &Tensor| -> Tensor {
                let logits = model.forward(x).unwrap();
                let p = candle_nn::ops::log_softmax(&logits, 1).unwrap();
                p.broadcast_mul(&weights).unwrap().sum_all().unwrap()
            };
            let x = Var::from_vec(x0.clone(), (1, 2, 6, 5), &Device::Cpu).unwrap();
            let grads = objective(x.as_tensor()).backward().unwrap();
            let g = grads
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let eps = 1e-6;
            for k in [0, 7, 23, 31, 44, 59] {
                let mut xp = x0.clone();
                let mut xm = x0.clone();
                xp[k] += eps;
                xm[k] -= eps;
                let f = |v: Vec<f64>| {
                    objective(&Tensor::from_vec(v, (1, 2, 6, 5), &Device::Cpu).unwrap())
                        .to_scalar::<f64>()
                        .unwrap()
                };
                let fd = (f(xp) - f(xm)) / (2.0 * eps);
                assert!(
                    (fd - g[k]).abs() <= 1e-6 + 1e-4 * fd.abs(),
                    "{family:?} coordinate {k}: analytic {} vs numeric {fd}",
                    g[k]
                );
            }
        }
    }
}
