//! The demo's defences: three variants of the demo zoo (its recipe, 16 models each): DP-SGD at
//! ε = 8, PGD adversarial training at ε = 0.1, and PGD-AT + DeMem-style; shipped with their
//! reports and the comparison (`results/defences.json`), so the Defences view opens on the
//! findings: under DP-SGD the planted mislabels the baseline memorizes are no longer memorized,
//! LiRA falls to chance and the audited ε stays under the accountant's, at a cost in accuracy;
//! adversarial training gains robust accuracy and also stops memorizing the mislabels.

use std::path::Path;

use super::demo_zoo_config;
use crate::defence::compare::{Defence, defences_report, dp_variant_id, report_path, save, train_variant};
use crate::defence::demem::{Adversarial, Demem};
use crate::defence::dp_sgd::DpSettings;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::zoo_report::results_dir;
use crate::study::{Study, copy_tree, write_atomic};
use crate::train::zoo::zoo_dir;

/// Models in each of the demo's defended variants.
pub const DEMO_DP_MODELS: u32 = 16;

/// DP-SGD settings of the demo variant.
pub fn demo_dp_settings() -> DpSettings {
    DpSettings {
        clip: 1.0,
        epsilon: Some(8.0),
        noise_multiplier: None,
        delta: 1e-5,
    }
}

/// The demo variant's zoo id.
pub fn demo_dp_zoo_id() -> String {
    dp_variant_id(&demo_zoo_config().id, &demo_dp_settings())
}

/// The demo's defences: DP-SGD, PGD-AT and PGD-AT + DeMem-style.
pub fn demo_defences() -> [Defence; 3] {
    [
        Defence::Dp(demo_dp_settings()),
        Defence::Adversarial(Adversarial::new(0.1, 3, None)),
        Defence::Adversarial(Adversarial::new(0.1, 3, Some(Demem::default()))),
    ]
}

/// Copies the shipped defended variants and the comparison into `study` (kept when present).
pub(super) fn copy_demo_defences(study: &Study, assets: &Path) -> CoreResult<()> {
    let base = demo_zoo_config().id;
    for defence in demo_defences() {
        let id = defence.variant_id(&base);
        for sub in ["zoos", "results"] {
            let src = assets.join(sub).join(&id);
            let dest = study.root.join(sub).join(&id);
            if src.is_dir() && !dest.exists() {
                copy_tree(&src, &dest)?;
            }
        }
    }
    let src = assets.join("results").join("defences.json");
    let dest = report_path(study);
    if src.is_file() && !dest.exists() {
        let bytes = std::fs::read(&src).map_err(|e| CoreError::io(&src, e))?;
        write_atomic(&dest, &bytes)?;
    }
    Ok(())
}

/// Trains the demo zoo's defended variants from scratch (tens of minutes on two cores),
/// compares, and with `update_assets` replaces the shipped files.
pub(super) fn rebuild_demo_defences(
    study: &Study,
    assets: &Path,
    update_assets: bool,
    ctx: &JobCtx<'_>,
) -> CoreResult<()> {
    let base = demo_zoo_config().id;
    let ids: Vec<String> = demo_defences().iter().map(|d| d.variant_id(&base)).collect();
    for id in &ids {
        for dir in [zoo_dir(study, id), results_dir(study, id)] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
            }
        }
    }
    for defence in demo_defences() {
        train_variant(study, &base, &defence, Some(DEMO_DP_MODELS), ctx)?;
    }
    let report = defences_report(study, ctx)?;
    let path = save(study, &report)?;
    if update_assets {
        for id in &ids {
            for (sub, src) in [("zoos", zoo_dir(study, id)), ("results", results_dir(study, id))] {
                let dest = assets.join(sub).join(id);
                if dest.exists() {
                    std::fs::remove_dir_all(&dest).map_err(|e| CoreError::io(&dest, e))?;
                }
                copy_tree(&src, &dest)?;
            }
        }
        let bytes = std::fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
        write_atomic(&assets.join("results").join("defences.json"), &bytes)?;
        // The baseline's LiRA report now carries its audited ε.
        let lira = results_dir(study, &base).join("mia-lira-online.json");
        let bytes = std::fs::read(&lira).map_err(|e| CoreError::io(&lira, e))?;
        write_atomic(
            &assets.join("results").join(&base).join("mia-lira-online.json"),
            &bytes,
        )?;
    }
    Ok(())
}
