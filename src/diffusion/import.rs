//! Importing a diffusers UNet2DModel into a study with its training set, so the Extraction,
//! Inpainting and Membership views, the report and the pair attacks treat it like a model rote
//! trained: `STUDY/diffusion/<id>/` gets the diffusers files and a card (format "diffusers")
//! naming the data set, every image of it as a training image, and the images that occur more
//! than once byte for byte as its duplicates.

use std::path::Path;

use super::diffusers_sched::DiffusersScheduler;
use super::diffusers_unet::WEIGHTS;
use super::model::{DiffusionCard, DiffusionFormat, diffusion_dir};
use super::schedule::ScheduleKind;
use super::unet::UNetConfig;
use crate::error::{CoreError, CoreResult};
use crate::model::DatasetRef;

/// Imports the diffusers model in `src` trained on `train_data` (a bundled name or a path any
/// loader reads) into the study at `study_root` under `id` (default: the folder's name, made
/// unique). Everything is checked before anything is written; the folder appears whole or not at
/// all. Returns the card.
pub fn import_diffusers(
    src: &Path,
    train_data: &str,
    study_root: &Path,
    id: Option<&str>,
) -> CoreResult<DiffusionCard> {
    // Config, scheduler and the weights' header are checked; the weights themselves are only
    // copied (every job loads them later).
    if src.join("card.json").exists() {
        return Err(CoreError::format(
            src,
            "already belongs to a study (it has card.json); open that study instead",
        ));
    }
    let (cfg, weights) = super::diffusers_unet::check(src)?;
    let scheduler = DiffusersScheduler::read(src)?;
    let folder = src
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let ds = crate::data::load(train_data)?;
    super::extract::check_shape_of(&folder, [cfg.in_channels, cfg.sample_size, cfg.sample_size], &ds)?;
    let groups = super::extract::duplicate_groups(&ds);
    let dup_factor = groups.iter().map(Vec::len).max().unwrap_or(1);
    let mut duplicated: Vec<usize> = groups.into_iter().flatten().collect();
    duplicated.sort_unstable();
    let dir = diffusion_dir(study_root);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    let stem = id.map_or(folder, str::to_string);
    let stem = if stem.is_empty() {
        "diffusers".to_string()
    } else {
        stem
    };
    let id = crate::study::fresh_id(&dir, &stem);
    let base = cfg.block_out_channels.first().copied().unwrap_or(1).max(1);
    let name = if crate::data::bundled(train_data).is_some() {
        train_data.to_string()
    } else {
        Path::new(train_data)
            .canonicalize()
            .map_err(|e| CoreError::io(Path::new(train_data), e))?
            .to_string_lossy()
            .into_owned()
    };
    let n_params = crate::model::header::read_header(&weights)?
        .values()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    let card = DiffusionCard {
        id: id.clone(),
        format: DiffusionFormat::Diffusers,
        unet: UNetConfig {
            channels: cfg.in_channels,
            height: cfg.sample_size,
            width: cfg.sample_size,
            base,
            mults: cfg
                .block_out_channels
                .iter()
                .map(|&c| c.div_ceil(base).max(1))
                .collect(),
        },
        // Descriptive only: the model samples with its scheduler_config.json (linear or
        // scaled_linear betas).
        schedule: ScheduleKind::Linear,
        t_max: scheduler.num_train_timesteps,
        dataset: DatasetRef {
            name,
            source: ds.source.clone(),
            hash: ds.hash.clone(),
            n: ds.n,
        },
        train_indices: (0..ds.n as u32).collect(),
        duplicated: duplicated.iter().map(|&i| i as u32).collect(),
        dup_factor,
        steps: 0,
        batch_size: 0,
        lr: 0.0,
        seed: 0,
        final_loss: f64::NAN,
        loss_curve: Vec::new(),
        seconds: 0.0,
        n_params,
        device: String::new(),
        command: format!(
            "rote import-diffusers {} --train-data {train_data} --study {}",
            src.display(),
            study_root.display()
        ),
        rote_version: env!("CARGO_PKG_VERSION").into(),
        dedup: None,
    };
    let staging = dir.join(format!(".import-{id}"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
    }
    let copy = || -> CoreResult<()> {
        for f in ["config.json", "scheduler_config.json", WEIGHTS] {
            let from = src.join(f);
            let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
            crate::study::write_atomic(&staging.join(f), &bytes)?;
        }
        crate::study::write_json_atomic(&staging.join("card.json"), &card)
    };
    if let Err(e) = copy() {
        std::fs::remove_dir_all(&staging).ok();
        return Err(e);
    }
    let dest = dir.join(&id);
    std::fs::rename(&staging, &dest).map_err(|e| CoreError::io(&dest, e))?;
    Ok(card)
}
