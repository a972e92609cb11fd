//! The demo study: MNIST-10k, a pre-trained MLP whose card records exactly which digits it saw,
//! and a zoo of 64 MLPs (Feldman-Zhang recipe, r = 0.7, 2% planted mislabels) with its
//! memorization, influence and membership-inference results.
//!
//! `rote demo --out STUDY` copies the shipped files from `assets/demo/` (well under a second);
//! `rote demo --rebuild --out STUDY` retrains the models from scratch with the recorded
//! configuration and seed (add `--zoo` to retrain the zoo too, minutes on a laptop), which is how
//! the shipped files were made.

pub mod canary;
mod common;
pub mod defences;
pub mod diffusion;
pub mod gpt;
pub mod inversion;
pub mod ssl;
mod tabular;

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::model::{ModelCard, check_dataset};
use crate::paths::assets_dir;
use crate::study::{Study, copy_tree, write_atomic, write_json_atomic};
use crate::train::zoo::ZooConfig;
use crate::train::{TrainConfig, train_into_study};

pub use common::DEMO_FACE_MODEL;

/// The demo models' training configurations.
pub fn demo_configs() -> Vec<TrainConfig> {
    vec![
        TrainConfig {
            id: "mlp-mnist10k-demo".into(),
            ..TrainConfig::default()
        },
        TrainConfig {
            id: DEMO_FACE_MODEL.into(),
            family: crate::model::Family::Softmax,
            data: "orl-faces".into(),
            epochs: 40,
            batch_size: 32,
            ..TrainConfig::default()
        },
    ]
}

/// The demo zoo's configuration (the same as `rote zoo --data mnist10k --models 64 --epochs 40
/// --seed 7 --plant-mislabel 0.02 --plant-seed 3 --init uniform --id zoo-mnist-demo`; it was
/// trained before Glorot-normal became the zoos' default).
pub fn demo_zoo_config() -> ZooConfig {
    let base = ZooConfig::default();
    ZooConfig {
        id: "zoo-mnist-demo".into(),
        train: TrainConfig {
            data: "mnist10k".into(),
            epochs: 40,
            seed: 7,
            ..base.train.clone()
        },
        plant_mislabel: 0.02,
        plant_seed: 3,
        init: crate::train::zoo::MlpInit::Uniform,
        ..base
    }
}

/// Models in the demo zoo.
pub const DEMO_ZOO_MODELS: u32 = 64;

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
    let zoo_id = demo_zoo_config().id;
    for sub in ["zoos", "results"] {
        let src = demo_assets_dir().join(sub).join(&zoo_id);
        let dest = study.root.join(sub).join(&zoo_id);
        if src.is_dir() && !dest.exists() {
            copy_tree(&src, &dest)?;
        }
    }
    diffusion::copy_demo_diffusion(&study, &demo_assets_dir())?;
    inversion::copy_demo_inversion(&study, &demo_assets_dir())?;
    ssl::copy_demo_ssl(&study, &demo_assets_dir())?;
    canary::copy_demo_lm(&study, &demo_assets_dir())?;
    defences::copy_demo_defences(&study, &demo_assets_dir())?;
    tabular::copy_demo_tabular(&study, &demo_assets_dir())?;
    // The demo GPT's extraction, membership and probe reports, so the Text view opens on them.
    common::copy_missing(
        &crate::lm::study::results_dir(&demo_assets_dir(), "gpt-demo"),
        &crate::lm::study::results_dir(&study.root, "gpt-demo"),
    )?;
    // The ICL sweep (`rote icl --study assets/demo`), so the Text view's ICL tab and the last
    // slide open on it.
    common::copy_missing(
        &crate::icl::cache::results_dir(&demo_assets_dir()),
        &crate::icl::cache::results_dir(&study.root),
    )?;
    Ok(study)
}

/// What `rote demo --rebuild` retrains besides the demo classifiers and the inversion grid.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rebuild {
    /// The demo zoo and its results.
    pub zoo: bool,
    /// The demo diffusion models and their attack reports.
    pub diffusion: bool,
    /// The SSL encoder pair and its LayerMem report.
    pub ssl: bool,
    /// The character LM with canaries and its exposure report.
    pub lm: bool,
    /// The demo GPT with planted passages and canaries.
    pub gpt: bool,
    /// Replace the shipped files in `assets/demo/` with the results.
    pub update_assets: bool,
}

/// Retrains every demo model into `out` (replacing any already there), and what `what` asks for.
pub fn rebuild_demo(out: &Path, what: Rebuild, ctx: &JobCtx<'_>) -> CoreResult<Study> {
    let update_assets = what.update_assets;
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
    let assets = demo_assets_dir();
    inversion::rebuild_demo_inversion(&study, update_assets.then_some(assets.as_path()), ctx)?;
    if what.zoo {
        rebuild_demo_zoo(&study, update_assets, ctx)?;
        defences::rebuild_demo_defences(&study, &demo_assets_dir(), update_assets, ctx)?;
    }
    if what.ssl {
        let (cfg, mcfg) = ssl::demo_ssl_config();
        ssl::rebuild_demo_ssl(
            &study,
            &cfg,
            &mcfg,
            update_assets.then_some(assets.as_path()),
            ctx,
        )?;
    }
    if what.lm {
        canary::rebuild_demo_lm(&study, update_assets.then_some(assets.as_path()), ctx)?;
    }
    if what.gpt {
        gpt::rebuild_demo_gpt(&study, update_assets.then_some(assets.as_path()), ctx)?;
    }
    if what.diffusion {
        diffusion::rebuild_demo_diffusion(&study, update_assets.then_some(assets.as_path()), ctx)?;
    }
    Ok(study)
}

/// Trains the demo zoo into `study` from scratch and computes its results.
fn rebuild_demo_zoo(study: &Study, update_assets: bool, ctx: &JobCtx<'_>) -> CoreResult<()> {
    use crate::measure::zoo_report::results_dir;
    let cfg = demo_zoo_config();
    for sub in ["zoos", "results"] {
        let dir = study.root.join(sub).join(&cfg.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
        }
    }
    let ds = crate::data::load(&cfg.train.data)?;
    crate::measure::zoo_report::train_zoo_with_reports(&cfg, &ds, study, DEMO_ZOO_MODELS, 32, ctx)?;
    if update_assets {
        for (sub, src) in [
            ("zoos", crate::train::zoo::zoo_dir(study, &cfg.id)),
            ("results", results_dir(study, &cfg.id)),
        ] {
            let dest = demo_assets_dir().join(sub).join(&cfg.id);
            if dest.exists() {
                std::fs::remove_dir_all(&dest).map_err(|e| CoreError::io(&dest, e))?;
            }
            copy_tree(&src, &dest)?;
        }
    }
    Ok(())
}

/// Checks that a shipped demo card still matches the bundled data (used by tests and `demo`).
pub fn verify_demo_card(card: &ModelCard, ds: &Dataset) -> CoreResult<()> {
    check_dataset(card, ds)
}
