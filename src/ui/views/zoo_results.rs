//! What the zoo views share: the loaded reports of the study's zoo.

use std::sync::Arc;

use crate::data::Dataset;
use crate::measure::mia::MiaResult;
use crate::measure::zoo_report::MemorizationReport;

/// Prefix of the held-out-loss column; sorting by "mem · ZOO" breaks ties with
/// "held-out loss · ZOO", as `measure::memorization::mem_order` does.
pub const HELD_OUT_LOSS: &str = "held-out loss · ";

/// The reports of one zoo, loaded from `results/<zoo>/` or computed.
pub struct ZooResults {
    /// Zoo id.
    pub zoo: String,
    /// The data set as the zoo saw it (planted labels applied).
    pub data: Arc<Dataset>,
    /// Memorization and influence.
    pub memorization: MemorizationReport,
    /// One result per attack.
    pub mia: Vec<MiaResult>,
    /// Hash of the data set without planted labels (the one the Data view shows).
    pub source_hash: String,
    /// The DP-SGD guarantee of a zoo trained with it (`zoo.json`'s `dp`).
    pub dp: Option<crate::defence::dp_sgd::DpRecord>,
}

impl ZooResults {
    /// Whether sample `i` was planted.
    pub fn is_planted(&self, i: usize) -> bool {
        self.memorization.planted.binary_search(&i).is_ok()
    }
}

/// Draws a thumbnail of `ds[i]` at `size`, outlined when planted; returns the response.
pub fn thumb(
    ui: &mut egui::Ui,
    textures: &mut crate::ui::textures::TextureCache,
    ds: &Dataset,
    i: usize,
    size: f32,
    planted: bool,
) -> egui::Response {
    let cell = egui::vec2(size, size * ds.h as f32 / ds.w as f32);
    let resp = match textures.get(ui.ctx(), ds, i) {
        Some(tex) => ui.add(egui::Image::new((tex, cell)).sense(egui::Sense::click())),
        None => {
            let (rect, resp) = ui.allocate_exact_size(cell, egui::Sense::click());
            ui.painter().rect_filled(rect, 0.0, crate::ui::theme::PLACEHOLDER);
            resp
        }
    };
    if planted {
        ui.painter().rect_stroke(
            resp.rect.expand(1.0),
            0.0,
            egui::Stroke::new(2.0, crate::ui::theme::ERROR),
            egui::StrokeKind::Outside,
        );
    }
    resp
}

/// Zoo results plus the Data view columns they add.
pub struct LoadedZooResults {
    /// The results.
    pub results: ZooResults,
    /// Hash of the (unplanted) data set, whose Data view gains the columns.
    pub memorization_hash: String,
    /// "mem · zoo" and "vulnerability (attack) · zoo" columns.
    pub columns: crate::ui::jobs::ScoreColumns,
}

/// Loads the first zoo of `study` that has a saved memorization report (None when there is none).
pub fn load_zoo_results(
    study: &crate::study::Study,
    ctx: &crate::job::JobCtx<'_>,
) -> crate::CoreResult<Option<LoadedZooResults>> {
    use crate::measure::zoo_report::{load_report, results_dir};
    let zoos = study.root.join("zoos");
    let Ok(entries) = std::fs::read_dir(&zoos) else {
        return Ok(None);
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    ids.sort();
    for id in ids {
        ctx.checkpoint()?;
        let dir = results_dir(study, &id);
        let mp = dir.join("memorization.json");
        if !mp.is_file() {
            continue;
        }
        let memorization: MemorizationReport = load_report(&mp)?;
        let zoo = crate::train::zoo::Zoo::open(&zoos.join(&id))?;
        let ds = crate::data::load(&zoo.manifest.dataset.name)?;
        let data = Arc::new(crate::train::zoo::zoo_data(&ds, &zoo.dir, &zoo.manifest)?);
        let mut mia = Vec::new();
        for attack in crate::measure::mia::Attack::ALL {
            let p = dir.join(format!("mia-{}.json", attack.slug()));
            if p.is_file() {
                mia.push(load_report::<MiaResult>(&p)?);
            }
        }
        let mut columns: crate::ui::jobs::ScoreColumns =
            vec![(format!("mem · {id}"), Arc::new(memorization.mem.mem.clone()))];
        if !memorization.held_out_loss.is_empty() {
            columns.push((
                format!("{HELD_OUT_LOSS}{id}"),
                Arc::new(memorization.held_out_loss.clone()),
            ));
        }
        for r in &mia {
            columns.push((
                format!("vulnerability ({:?}) · {id}", r.attack),
                Arc::new(r.vulnerability.clone()),
            ));
        }
        return Ok(Some(LoadedZooResults {
            results: ZooResults {
                zoo: id,
                data,
                memorization,
                mia,
                source_hash: ds.hash.clone(),
                dp: zoo.manifest.config.dp.clone(),
            },
            memorization_hash: ds.hash.clone(),
            columns,
        }));
    }
    Ok(None)
}
