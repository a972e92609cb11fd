//! The demo study: MNIST-10k and a pre-trained MLP whose card records exactly which digits it saw.
//!
//! `rote demo --out STUDY` copies the shipped weights from `assets/demo/` (seconds);
//! `rote demo --rebuild --out STUDY` retrains them from scratch with the recorded configuration
//! and seed, which is how the shipped files were made.

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{ModelCard, check_dataset};
use crate::paths::assets_dir;
use crate::study::{Study, write_atomic, write_json_atomic};
use crate::train::{TrainConfig, train_into_study};

/// The demo models' training configurations.
pub fn demo_configs() -> Vec<TrainConfig> {
    vec![TrainConfig {
        id: "mlp-mnist10k-demo".into(),
        ..TrainConfig::default()
    }]
}

/// Where the shipped demo models live.
pub fn demo_assets_dir() -> PathBuf {
    assets_dir().join("demo")
}

const MODEL_FILES: [&str; 3] = ["card.json", "weights.safetensors", "scores.json"];

/// Writes the demo study at `out` from the shipped weights. Models already present are kept.
pub fn write_demo(out: &Path) -> CoreResult<Study> {
    let mut study = Study::open_or_create(out)?;
    if study.manifest.description.is_empty() {
        study.manifest.name = "demo".into();
        study.manifest.description = "MNIST-10k with a pre-trained MLP (3 epochs, seed 0)".into();
        study.save_manifest()?;
    }
    for cfg in demo_configs() {
        let src = demo_assets_dir().join(&cfg.id);
        if study.models_dir().join(&cfg.id).join("card.json").is_file() {
            continue;
        }
        let card = ModelCard::load(&src.join("card.json"))?;
        let staging = study.staging_dir(&cfg.id)?;
        for f in MODEL_FILES {
            let from = src.join(f);
            let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
            write_atomic(&staging.join(f), &bytes)?;
        }
        study.commit_model(&staging, &cfg.id)?;
        study.add_dataset(&card.dataset.name)?;
    }
    Ok(study)
}

/// Retrains every demo model into `out` (replacing any already there). With `update_assets`,
/// the results also replace the shipped files in `assets/demo/`.
pub fn rebuild_demo(out: &Path, update_assets: bool, ctx: &JobCtx<'_>) -> CoreResult<Study> {
    let mut study = Study::open_or_create(out)?;
    study.manifest.name = "demo".into();
    study.manifest.description = "MNIST-10k with a pre-trained MLP (3 epochs, seed 0)".into();
    study.save_manifest()?;
    for cfg in demo_configs() {
        let existing = study.models_dir().join(&cfg.id);
        if existing.exists() {
            std::fs::remove_dir_all(&existing).map_err(|e| CoreError::io(&existing, e))?;
        }
        let ds = crate::data::load(&cfg.data)?;
        let outcome = train_into_study(&cfg, &ds, &mut study, ctx)?;
        let mut card = outcome.card.clone();
        card.command = format!(
            "rote demo --rebuild --out STUDY  (trains: {})",
            cfg.command("STUDY")
        );
        write_json_atomic(&study.models_dir().join(&card.id).join("card.json"), &card)?;
        if update_assets {
            let dest = demo_assets_dir().join(&cfg.id);
            for f in MODEL_FILES {
                let from = study.models_dir().join(&outcome.card.id).join(f);
                let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
                write_atomic(&dest.join(f), &bytes)?;
            }
        }
    }
    Ok(study)
}

/// Checks that a shipped demo card still matches the bundled data (used by tests and `demo`).
pub fn verify_demo_card(card: &ModelCard, ds: &Dataset) -> CoreResult<()> {
    check_dataset(card, ds)
}
