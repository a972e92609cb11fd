//! Classifier models as explicit candle structs built from a `VarBuilder`, their cards
//! (`card.json`) and checkpoints (`weights.safetensors`).
//!
//! Parameter names (`fc1.weight`, `conv2.bias`, ...) are the checkpoint format; do not rename them.

mod card;
mod checkpoint;
mod cnn;
mod init;
mod mlp;

pub use card::{DatasetRef, EpochRecord, Hyper, ModelCard, SampleScores, TrainMetrics};
pub use checkpoint::{LoadedModel, check_dataset, load_model, load_weights, save_weights};
pub use cnn::Cnn;
pub use init::seeded_init;
pub use mlp::Mlp;

use candle_core::{Device, Module as _, Tensor};
use candle_nn::VarBuilder;

use crate::error::{CoreError, CoreResult};

/// Model family.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Multi-layer perceptron on flattened pixels.
    Mlp,
    /// Small convolutional network (strided convolutions, no max-pool).
    Cnn,
}

impl Family {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
        }
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
    /// Hidden widths (MLP) or convolution channels (CNN).
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
            let mean = Tensor::from_vec(spec.input_mean.clone(), (1, c, 1, 1), dev)?;
            let inv_std: Vec<f32> = spec.input_std.iter().map(|s| 1.0 / s.max(1e-6)).collect();
            Some((mean, Tensor::from_vec(inv_std, (1, c, 1, 1), dev)?))
        } else {
            None
        };
        let net = match spec.family {
            Family::Mlp => Net::Mlp(Mlp::new(spec, vb)?),
            Family::Cnn => Net::Cnn(Cnn::new(spec, vb)?),
        };
        Ok(Self { net, norm })
    }

    /// Logits for a batch of images, `(B, C, H, W)` in [0, 1].
    pub fn forward(&self, xs: &Tensor) -> CoreResult<Tensor> {
        let xs = match &self.norm {
            Some((mean, inv_std)) => xs.broadcast_sub(mean)?.broadcast_mul(inv_std)?,
            None => xs.clone(),
        };
        Ok(match &self.net {
            Net::Mlp(m) => m.forward(&xs)?,
            Net::Cnn(m) => m.forward(&xs)?,
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
                    CoreError::Invalid(format!(
                        "CUDA was requested but no CUDA device is usable: {e}"
                    ))
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
