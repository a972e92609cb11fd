//! The demo's tabular models: a TabDDPM-style model on 2,000 Adult rows (400 epochs, seed 0),
//! once without augmentation and once with TabCutMix, shipped as their cards and final synthetic
//! rows (no weights: the Tabular view and `rote tab-memorization` measure the rows, they do not
//! sample), so the Tabular view opens on the finding. Made by
//! `rote train-tabular --data adult --augment none|tabcutmix --seed 0 --out STUDY`, then
//! `card.json` and `samples.csv` of each copied to `assets/demo/tabular/<id>/`.

use std::path::Path;

use crate::error::CoreResult;
use crate::study::{Study, copy_tree};
use crate::tabular::train::tabular_dir;

/// Copies the shipped tabular models into `study` (kept when present).
pub(super) fn copy_demo_tabular(study: &Study, assets: &Path) -> CoreResult<()> {
    let src = assets.join("tabular");
    let Ok(entries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for e in entries.filter_map(Result::ok) {
        let from = e.path();
        if !from.join("card.json").is_file() {
            continue;
        }
        let dest = tabular_dir(&study.root).join(e.file_name());
        if !dest.exists() {
            copy_tree(&from, &dest)?;
        }
    }
    Ok(())
}
