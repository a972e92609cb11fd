//! `rote sharpness`: the sharpness of a diffusion model's training images (Jeon et al.), with the
//! separation of duplicated from single images when they are known.

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::diffusion::sharpness::{SharpnessConfig, training_sharpness};
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};

/// Options of `rote sharpness`.
#[derive(Debug, clap::Args)]
pub struct SharpnessArgs {
    /// Diffusion model folder: rote's (STUDY/diffusion/ID) or a diffusers UNet2DModel.
    pub model: PathBuf,
    /// The model's training images (any loader: image folder, NPY, CIFAR batches, IDX, a
    /// bundled name); default: the data set a rote model's card names.
    #[arg(long)]
    pub train_data: Option<String>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Timestep (of T) at which the landscape is probed.
    #[arg(long, default_value_t = SharpnessConfig::default().t)]
    pub t: usize,
    /// Lanczos iterations per image.
    #[arg(long, default_value_t = SharpnessConfig::default().iterations)]
    pub iterations: usize,
    /// Images at most (every duplicated one, then a seeded choice of single ones).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// Seed of the noise and start vectors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Result file (default: next to the model's other results).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `rote sharpness`.
pub fn sharpness(args: SharpnessArgs, json: bool) -> CoreResult<()> {
    let (model, ds) =
        super::diffusion::open_with_data(&args.model, args.train_data.as_deref(), &args.device)?;
    let cfg = SharpnessConfig {
        t: args.t,
        iterations: args.iterations,
        seed: args.seed,
        ..SharpnessConfig::default()
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let report = training_sharpness(model.as_ref(), &args.model, &ds, &cfg, args.images, &ctx);
    sink.finish();
    let report = report?;
    let out = args.out.clone().unwrap_or_else(|| {
        super::diffusion::results_dir(&args.model, model.as_ref()).join(format!("sharpness-t{}.json", cfg.t))
    });
    crate::study::write_json_atomic(&out, &report)?;
    let images: Vec<serde_json::Value> = report
        .indices
        .iter()
        .zip(&report.rows)
        .map(|(i, r)| {
            json!({"index": i, "duplicated": report.duplicated.binary_search(i).is_ok(),
                   "sharpness": r.sharpness, "lambda_min": r.lambda_min, "mean_eig": r.mean_eig})
        })
        .collect();
    let value = json!({
        "model": report.model,
        "t": cfg.t,
        "n_images": report.rows.len(),
        "n_duplicated": report.duplicated.len(),
        "auc_duplicated": report.auc_duplicated,
        "mean_duplicated": report.mean_duplicated,
        "mean_single": report.mean_single,
        "solver": report.solver,
        "images": images,
        "report": out,
    });
    print(json, &value, || {
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let verdict = match report.auc_duplicated {
            Some(auc) => format!(
                "duplicated images are sharper than single ones with AUC {auc:.3} (mean sharpness {} vs {})",
                f(report.mean_duplicated),
                f(report.mean_single)
            ),
            None => "no duplicated training image is known, so there is no separation to show; the \
                     sharpest images are the likeliest memorized"
                .to_string(),
        };
        format!(
            "{}: sharpness at t = {} of {} training images ({} duplicated)\n{verdict}\nreport: {}",
            report.model,
            cfg.t,
            report.rows.len(),
            report.duplicated.len(),
            out.display()
        )
    });
    Ok(())
}
