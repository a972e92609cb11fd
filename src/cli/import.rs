//! `rote import-diffusers`: a diffusers UNet2DModel into a study, with its training images.

use std::path::PathBuf;

use serde_json::json;

use super::commands::print;
use crate::error::CoreResult;

/// Options of `rote import-diffusers`.
#[derive(Debug, clap::Args)]
pub struct ImportDiffusersArgs {
    /// The diffusers folder (config.json, scheduler_config.json,
    /// diffusion_pytorch_model.safetensors).
    pub model: PathBuf,
    /// Its training images (any loader: image folder, NPY, CIFAR batches, IDX, a bundled name).
    #[arg(long)]
    pub train_data: String,
    /// Study folder (created when missing).
    #[arg(long)]
    pub study: PathBuf,
    /// Model id in the study (default: the folder's name).
    #[arg(long)]
    pub id: Option<String>,
}

/// `rote import-diffusers`.
pub fn import_diffusers(args: ImportDiffusersArgs, json: bool) -> CoreResult<()> {
    let study = crate::study::Study::open_or_create(&args.study)?;
    let card = crate::diffusion::import::import_diffusers(
        &args.model,
        &args.train_data,
        &study.root,
        args.id.as_deref(),
    )?;
    let dir = crate::diffusion::diffusion_dir(&study.root).join(&card.id);
    let value = json!({
        "model_id": card.id,
        "path": dir,
        "n_train": card.train_indices.len(),
        "n_duplicated": card.duplicated.len(),
        "n_params": card.n_params,
    });
    print(json, &value, || {
        format!(
            "imported {} into {}: {} training images ({} occur more than once), {} parameters\n\
             the Extraction, Inpainting and Membership views and `rote report` now include it",
            card.id,
            dir.display(),
            card.train_indices.len(),
            card.duplicated.len(),
            card.n_params
        )
    });
    Ok(())
}
