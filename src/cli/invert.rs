//! `rote invert`: model inversion (MI-FACE and variants) on a classifier of a study.

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use crate::error::CoreResult;
use crate::invert::{
    EvalConfig, Init, InvertConfig, InvertOptions, Method, Objective, Process, invert_model,
};
use crate::job::{CancelToken, JobCtx};
use crate::model::Family;

/// PROCESS step choices on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcessArg {
    /// Identity (the paper's choice for softmax and MLP models).
    None,
    /// Non-local means (h 10, template 7, search 21) then an unsharp mask (amount 0.5).
    DenoiseSharpen,
    /// Gaussian blur, sigma 0.5.
    Blur,
}

/// Options of `rote invert`.
#[derive(Debug, clap::Args)]
pub struct InvertArgs {
    /// Model folder (STUDY/models/<id>).
    #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
    pub model: Option<PathBuf>,
    /// An ONNX image classifier to invert instead of a study's model (needs the `onnx` feature).
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// --onnx: image shape C,H,W (default: the graph input's static dims, or the --data images).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub input_shape: Option<Vec<usize>>,
    /// --onnx: per-channel mean subtracted from pixels in [0, 1] (one value or C, comma-separated).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub mean: Vec<f32>,
    /// --onnx: per-channel standard deviation the centred pixels are divided by.
    #[arg(long, value_delimiter = ',')]
    pub std: Vec<f32>,
    /// --onnx: the data set whose classes the model predicts (e.g. orl-faces): identify each
    /// inversion with the evaluation classifier.
    #[arg(long, requires = "onnx")]
    pub data: Option<String>,
    /// --onnx: output folder (default: <file stem>-inversion/ beside the file).
    #[arg(long, requires = "onnx")]
    pub out: Option<PathBuf>,
    /// Classes (people) to invert, comma-separated (default: every class).
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub class: Vec<usize>,
    /// Invert every class (the default when no --class is given).
    #[arg(long)]
    pub all: bool,
    /// Method: mi-face (MI-FACE's descent on -log p, blurred after each step, no early stop, 1000
    /// steps), mi-face-paper (exactly as published: 1 - p, alpha 5000, beta 100, gamma 0.99), tv
    /// (total-variation prior) or art (ART-compatible loop). With 40 classes the published MI-FACE
    /// stalls: p starts near 1/40, so its gamma rule (stop once p >= 0.01) ends every person at
    /// the first step.
    #[arg(long, value_enum, default_value_t = Method::MiFace)]
    pub method: Method,
    /// alpha: maximum gradient steps (default: 1000 mi-face, 5000 mi-face-paper, 500 tv, 10000 art).
    #[arg(long)]
    pub iters: Option<usize>,
    /// beta: stop after this many steps without improvement (0: never; default 100, mi-face 0).
    #[arg(long)]
    pub beta: Option<usize>,
    /// gamma: stop once the cost 1 - p is at most this (negative: never; mi-face-paper 0.99, which
    /// stops as soon as p >= 0.01; mi-face and tv: off; ART: its reversed threshold).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// lambda: step size (default 0.1).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// What the gradient differentiates (default: prob for mi-face-paper, log-prob otherwise).
    #[arg(long, value_enum)]
    pub objective: Option<Objective>,
    /// Start image (default: grey, art: zeros).
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// PROCESS step after each gradient step (default: blur for mi-face, none otherwise).
    #[arg(long, value_enum)]
    pub process: Option<ProcessArg>,
    /// Apply PROCESS every this many steps.
    #[arg(long, default_value_t = 1)]
    pub process_every: usize,
    /// tv: weight of the total-variation prior.
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// Seed (uniform start image).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluation classifier folder (default: train one on the held-out images, cached in the study).
    #[arg(long)]
    pub eval_model: Option<PathBuf>,
    /// Architecture of the evaluation classifier trained when none is given (mlp or cnn).
    #[arg(long, value_enum, default_value_t = Family::Mlp)]
    pub eval_family: Family,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write the inversions as one PNG grid (10 per row; green frame: identified).
    #[arg(long)]
    pub grid: Option<PathBuf>,
}

/// `rote invert`.
pub fn invert(args: InvertArgs, json: bool) -> CoreResult<()> {
    let mut config = InvertConfig::for_method(args.method);
    config.alpha = args.iters.unwrap_or(config.alpha);
    config.beta = args.beta.unwrap_or(config.beta);
    config.gamma = args.gamma.unwrap_or(config.gamma);
    config.lambda = args.lambda.unwrap_or(config.lambda);
    config.objective = args.objective.unwrap_or(config.objective);
    config.init = args.init.unwrap_or(config.init);
    config.tv_weight = args.tv_weight.unwrap_or(config.tv_weight);
    config.seed = args.seed;
    config.process_every = args.process_every;
    config.process = match args.process {
        None => config.process,
        Some(ProcessArg::None) => Process::None,
        Some(ProcessArg::DenoiseSharpen) => Process::DenoiseSharpen {
            h: 10.0,
            template: 7,
            search: 21,
            amount: 0.5,
        },
        Some(ProcessArg::Blur) => Process::Blur { sigma: 0.5 },
    };
    let mut eval = EvalConfig {
        family: args.eval_family,
        ..EvalConfig::default()
    };
    if args.eval_family == Family::Cnn {
        eval.widths = vec![8, 16, 16, 64];
    } else if args.eval_family == Family::Softmax {
        eval.widths = Vec::new();
    }
    if let Some(file) = &args.onnx {
        return super::invert_onnx::invert_onnx(file, &args, config, eval, json);
    }
    let args_grid = args.grid;
    let opts = InvertOptions {
        config,
        classes: if args.all || args.class.is_empty() {
            None
        } else {
            Some(args.class)
        },
        eval_model: args.eval_model,
        eval,
        device: args.device,
        merge: false,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let model = args.model.unwrap_or_default();
    let done = invert_model(&model, &opts, &ctx);
    sink.finish();
    let (r, path) = done?;
    if let Some(grid) = &args_grid {
        crate::invert::write_grid_png(&r, 10, grid)?;
    }
    if json {
        let classes: Vec<_> = r
            .classes
            .iter()
            .map(|c| {
                json!({
                    "class": c.class, "name": c.name, "eval_top1": c.eval_top1, "eval_rank": c.eval_rank,
                    "eval_top5": c.eval_top5, "eval_predicted": c.eval_predicted, "target_p": c.target_p,
                    "steps": c.steps, "stop": c.stop, "seconds": c.seconds, "distances": c.distances,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "model_id": r.model_id, "method": r.config.method.as_str(), "path": path,
                "eval_model": r.eval_model, "eval_top1": r.eval_top1, "eval_top5": r.eval_top5,
                "blank_top1": r.blank_top1, "start_top1": r.start_top1, "seconds": r.seconds, "classes": classes,
            })
        );
    } else {
        for c in &r.classes {
            println!(
                "{:>4} {:<6} rank {:>2} {} p_target {:.3} ssim(mean face) {:.3} steps {:>5} {:?}",
                c.class,
                c.name,
                c.eval_rank,
                if c.eval_top1 { "identified" } else { "          " },
                c.target_p,
                c.distances.ssim_mean_face,
                c.steps,
                c.stop
            );
        }
        println!(
            "{} on {}: evaluation classifier top-1 {:.3}, top-5 {:.3} of {} people ({:.1} s; blank image {:.3})\nwritten to {}",
            r.config.method.as_str(),
            r.model_id,
            r.eval_top1,
            r.eval_top5,
            r.classes.len(),
            r.seconds,
            r.blank_top1,
            path.display()
        );
    }
    Ok(())
}
