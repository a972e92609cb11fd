//! The demo's character LM with canaries and its exposure report (the Exposure view opens on it):
//! 100,000 characters of Austen with a 6-digit PIN inserted 0, 1, 2, 4, 8, 16 and 32 times and a
//! 9-digit account number inserted 0, 4 and 32 times.

use std::path::Path;

use super::common::copy_missing;
use crate::canary::card::{LmRecipe, lm_dir};
use crate::canary::report::{Estimate, ExposureOptions, measure_exposure, report_path};
use crate::canary::train::{LmConfig, train_lm_into_study};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::study::{Study, copy_tree, write_atomic, write_json_atomic};

/// The demo LM: the same as `rote train-lm --chars 100000 --val-chars 10000 --hidden 128
/// --epochs 15 --id lm-demo` (embedding 32, batch 32, windows of 64, Adam 2e-3, seed 0).
pub fn demo_lm_config() -> LmConfig {
    LmConfig {
        data: "austen".into(),
        chars: 100_000,
        val_chars: 10_000,
        formats: LmConfig::demo_formats(),
        embed: 32,
        hidden: 128,
        recipe: LmRecipe {
            epochs: 15,
            batch_size: 32,
            seq_len: 64,
            lr: 2e-3,
            seed: 0,
        },
        device: "cpu".into(),
        id: "lm-demo".into(),
    }
}

/// Copies the shipped LM and its report into `study` (what is already there is kept).
pub fn copy_demo_lm(study: &Study, assets: &Path) -> CoreResult<()> {
    for (src, dest) in [
        (lm_dir(assets), lm_dir(&study.root)),
        (
            assets.join("results").join("exposure"),
            study.root.join("results").join("exposure"),
        ),
    ] {
        copy_missing(&src, &dest)?;
    }
    Ok(())
}

/// Trains the demo LM into `study` (a cached one is kept), measures it, and with `assets`
/// replaces the shipped copies.
pub fn rebuild_demo_lm(study: &Study, assets: Option<&Path>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let cfg = demo_lm_config();
    let cmd = "rote demo --rebuild --lm --out STUDY";
    let (dir, _) = train_lm_into_study(&cfg, &study.root, cmd, false, ctx)?;
    let lm = crate::canary::card::CanaryLm::load(&dir, &crate::model::device("cpu")?)?;
    let report = measure_exposure(&lm, &ExposureOptions::default(), ctx)?;
    let path = report_path(&study.root, &cfg.id, Estimate::Both);
    write_json_atomic(&path, &report)?;
    if let Some(assets) = assets {
        let dest = lm_dir(assets).join(&cfg.id);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| crate::CoreError::io(&dest, e))?;
        }
        copy_tree(&dir, &dest)?;
        let bytes = std::fs::read(&path).map_err(|e| crate::CoreError::io(&path, e))?;
        let name = path.file_name().unwrap_or_default();
        write_atomic(&assets.join("results").join("exposure").join(name), &bytes)?;
    }
    Ok(())
}
