//! Model inversion: reconstruct the face of a person from a face classifier that knows their name.
//!
//! * [`miface`]: MI-FACE as published (Fredrikson, Jha, Ristenpart, *Model Inversion Attacks that
//!   Exploit Confidence Information and Basic Countermeasures*, ACM CCS 2015): gradient descent on
//!   c(x) = 1 - f_label(x), the paper's stopping rules alpha, beta, gamma and its PROCESS step,
//!   returning the argmin-cost iterate;
//! * [`affine`]: the CPU fast path for a softmax regression (normalisation folded into the
//!   weights, two gemms and one pass over the pixels a step), held to the autograd loop in tests;
//! * [`tv`]: the same descent on -log p_label(x) + tv_weight * TV(x) (Mahendran and Vedaldi 2015);
//! * [`art`]: an **ART-compatible** mode that reproduces IBM ART's `MIFace` loop (its stopping rule
//!   is the reverse of the paper's and it returns the last iterate);
//! * [`eval`]: identification of each inversion by an independently trained classifier (different
//!   architecture and seed, trained only on the held-out images of each person, augmented), plus
//!   pixel l2 and SSIM to the person's mean training face and to the nearest training image;
//! * [`metrics`]: SSIM (Wang et al. 2004), l2 and total variation on plain pixel buffers;
//! * [`process`]: the PROCESS step (non-local-means denoising and unsharp-mask sharpening, blur);
//! * [`grid`]: the "Invert all" grid as a PNG;
//! * [`run`]: the whole attack on a model folder, written to `STUDY/results/inversion/<id>/`.
//!
//! Every method optimises images in plain pixel space [0, 1] (clipped after each step); the
//! classifier's input normalisation sits inside the differentiated graph.

pub mod affine;
pub mod art;
pub mod bench;
mod descend_device;
pub mod eval;
pub mod grid;
pub mod metrics;
pub mod miface;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod process;
pub mod run;
pub mod tv;

pub use eval::{EvalConfig, Identification, identify, train_eval_classifier};
pub use grid::{grid_image, write_grid_png};
pub use run::{
    ClassReport, InversionReport, InvertOptions, invert_classes, invert_model, load_report, report_path,
};

use candle_core::Tensor;

use crate::error::CoreResult;
use crate::model::Classifier;

/// A classifier the inversion loops can differentiate: logits for a batch of images
/// `(B, C, H, W)` in plain pixel space [0, 1], with any input normalisation inside the graph so
/// the gradient reaches the pixels. Implemented by rote's [`Classifier`] and, with the `onnx`
/// feature, by [`onnx::OnnxClassifier`].
pub trait InvertTarget {
    /// Logits `(B, n_classes)` for `x`.
    fn logits(&self, x: &Tensor) -> CoreResult<Tensor>;

    /// The model as an affine head (softmax regression, normalisation folded in) for images of
    /// shape `input`, when its logits are affine in the pixels: the CPU loops then take
    /// [`affine`]'s one-pass step. None (the default): the generic autograd path.
    fn affine_head(&self, input: [usize; 3]) -> CoreResult<Option<affine::AffineHead>> {
        let _ = input;
        Ok(None)
    }
}

impl InvertTarget for Classifier {
    fn logits(&self, x: &Tensor) -> CoreResult<Tensor> {
        self.forward(x)
    }

    fn affine_head(&self, input: [usize; 3]) -> CoreResult<Option<affine::AffineHead>> {
        let Some(parts) = self.affine_parts()? else {
            return Ok(None);
        };
        Ok(Some(affine::AffineHead::new(
            &parts.weight,
            &parts.bias,
            input[0],
            &parts.mean,
            &parts.inv_std,
        )?))
    }
}

/// Inversion method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// MI-FACE's descent with settings that work on many-class models: -log p, a Gaussian blur
    /// (sigma 0.5) as PROCESS, no early stop, best iterate (the default). See
    /// [`PAPER_RULES_STALL`].
    MiFace,
    /// MI-FACE exactly as published (cost 1 - p, alpha 5000, beta 100, gamma 0.99, best iterate).
    MiFacePaper,
    /// Gradient descent on -log p + tv_weight * TV(x) (total-variation prior), best iterate.
    Tv,
    /// ART-compatible MIFace (ART 1.20.1 loop: reversed stopping rule, last iterate).
    Art,
}

/// Why the published MI-FACE settings fail on the demo's 40-person classifier, in one sentence
/// (shown by `--help`, the GUI and the report).
pub const PAPER_RULES_STALL: &str = "With 40 classes the published MI-FACE stalls: p starts near \
1/40, so its gamma = 0.99 rule (stop once 1 - p <= 0.99, i.e. p >= 0.01) ends every person at the \
first step, and the gradient of 1 - p vanishes where p is small; rote's mi-face descends -log p with \
a light blur as PROCESS and the early stops off (mi-face-paper keeps the published rules).";

impl Method {
    /// The name used on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MiFace => "mi-face",
            Self::MiFacePaper => "mi-face-paper",
            Self::Tv => "tv",
            Self::Art => "art",
        }
    }
}

/// What the gradient step differentiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The softmax probability of the label (the paper; ART with a Keras softmax output).
    Prob,
    /// Its logarithm (ART with a scikit-learn logistic regression).
    LogProb,
    /// The label's logit (ART with a PyTorch model that returns logits).
    Logit,
}

/// The starting image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// All zeros (black; the paper's x_0 and ART's default; gradients can vanish there).
    Zeros,
    /// All 0.5 (the spec's default for [0, 1] inputs).
    Grey,
    /// Seeded uniform noise in [0, 1].
    Uniform,
}

/// The PROCESS step applied after a gradient step (before clipping to [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Process {
    /// Identity (the paper's choice for softmax and MLP targets).
    None,
    /// Non-local-means denoising then unsharp-mask sharpening (the paper's DAE step).
    DenoiseSharpen {
        /// Filter strength h (in 0..255 grey levels, as OpenCV's fastNlMeans).
        h: f32,
        /// Template (patch) side, odd.
        template: usize,
        /// Search window side, odd.
        search: usize,
        /// Unsharp-mask amount (0: no sharpening).
        amount: f32,
    },
    /// Gaussian blur with this sigma (pixels).
    Blur {
        /// Standard deviation in pixels.
        sigma: f32,
    },
}

/// Hyper-parameters of an inversion. Defaults are the paper's (alpha 5000, beta 100,
/// gamma 0.99, lambda 0.1) with the spec's grey initialisation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct InvertConfig {
    /// Method.
    pub method: Method,
    /// What is differentiated (MI-FACE: `prob`; TV: always `log-prob`; ART: the estimator's output).
    pub objective: Objective,
    /// Starting image.
    pub init: Init,
    /// alpha: maximum number of gradient steps (ART: `max_iter`).
    pub alpha: usize,
    /// beta: stop when the cost has not improved on the last beta costs (ART: `window_length`).
    /// 0 disables the rule.
    pub beta: usize,
    /// gamma: stop once the cost is at most gamma (ART: `threshold`, with the reversed meaning).
    /// A negative value disables the rule.
    pub gamma: f64,
    /// lambda: step size (ART: `learning_rate`).
    pub lambda: f64,
    /// PROCESS step.
    pub process: Process,
    /// Apply PROCESS every this many steps (1: every step, as the paper).
    pub process_every: usize,
    /// TV method: weight of the total-variation prior.
    pub tv_weight: f64,
    /// TV method: exponent of TV_beta (2: squared gradients, 1: isotropic TV).
    pub tv_beta: f64,
    /// Seed of the uniform initialisation.
    pub seed: u64,
}

impl Default for InvertConfig {
    fn default() -> Self {
        Self {
            method: Method::MiFace,
            objective: Objective::Prob,
            init: Init::Grey,
            alpha: 5000,
            beta: 100,
            gamma: 0.99,
            lambda: 0.1,
            process: Process::None,
            process_every: 1,
            tv_weight: 0.05,
            tv_beta: 2.0,
            seed: 0,
        }
    }
}

impl InvertConfig {
    /// The defaults of `method`: the paper's values for `mi-face-paper`; for `mi-face` the same
    /// descent on -log p for 1000 steps, blurred (sigma 0.5) after each, with the beta and gamma
    /// rules off ([`PAPER_RULES_STALL`]); ART 1.20.1's constructor defaults
    /// (max_iter 10000, window 100, threshold 0.99, learning rate 0.1) and a black start for ART,
    /// and for TV 500 steps on -log p with the threshold off.
    pub fn for_method(method: Method) -> Self {
        let base = Self {
            method,
            ..Self::default()
        };
        match method {
            Method::MiFacePaper => base,
            Method::MiFace => Self {
                objective: Objective::LogProb,
                alpha: MIFACE_STEPS,
                beta: 0,
                gamma: -1.0,
                process: Process::Blur { sigma: 0.5 },
                ..base
            },
            Method::Art => Self {
                alpha: 10_000,
                init: Init::Zeros,
                objective: Objective::LogProb,
                ..base
            },
            Method::Tv => Self {
                alpha: 500,
                gamma: -1.0,
                objective: Objective::LogProb,
                ..base
            },
        }
    }
}

/// Gradient steps of the default `mi-face` (enough for the demo's 40 people: 35 identified).
pub const MIFACE_STEPS: usize = 1000;

/// Why an inversion stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// alpha steps were taken.
    MaxIters,
    /// beta rule: no improvement on the last beta costs.
    NoImprovement,
    /// gamma rule: cost at most gamma.
    Threshold,
    /// ART-compatible: the sample was inactive when the loop ended.
    ArtInactive,
}

/// One inverted image.
#[derive(Clone, Debug)]
pub struct Inversion {
    /// Target class.
    pub class: usize,
    /// The returned image (C x H x W in [0, 1]): the best iterate (paper) or the last (ART).
    pub image: Vec<f32>,
    /// The cost c(x) = 1 - p_label(x) of every iterate x_0, x_1, ... (TV: the regularised
    /// objective).
    pub costs: Vec<f32>,
    /// p_label of every iterate.
    pub probs: Vec<f32>,
    /// Index of the returned iterate.
    pub returned_iter: usize,
    /// Gradient steps taken.
    pub steps: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Seconds from the start of its batch until it stopped.
    pub seconds: f64,
}
