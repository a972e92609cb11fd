//! Extraction view (Carlini et al., USENIX Security 2023): every generation of a diffusion model
//! beside its nearest training image, most copied first, with a live threshold on the relative
//! l2 (the extracted counts follow it without rerunning), cliques of near-identical generations,
//! and the planted duplicates tagged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::diffusion_common::{
    bytes_ui, data_ui, import_diffusers_button, labelled_drag, model_combo, no_models_ui, tag,
};
use crate::measure::extraction::Criterion;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::diffusion_jobs::LoadedExtraction;
use crate::ui::jobs::JobKind;
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

/// Which list the view shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExtractionTab {
    /// One row per generation, most copied first.
    #[default]
    Generations,
    /// One row per clique of near-identical generations.
    Cliques,
}

/// An extraction as the view draws it.
pub struct ShownExtraction {
    /// The run, generations and data set.
    pub ex: LoadedExtraction,
    /// Report rows by score, lowest (most copied) first.
    pub order: Vec<usize>,
    /// Texture-cache key of the generations.
    key: String,
}

/// Counts at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractionCounts {
    /// Generations with score <= delta.
    pub extracted: usize,
    /// Distinct training images they extract.
    pub unique: usize,
    /// Planted duplicates among those.
    pub duplicates: usize,
}

impl ShownExtraction {
    /// Counts at threshold `delta` (computed from the rows' scores, no rerun).
    pub fn counts(&self, delta: f64) -> ExtractionCounts {
        let run = &self.ex.run;
        let mut images = BTreeSet::new();
        let mut extracted = 0;
        for r in &run.report.rows {
            if f64::from(r.score) <= delta {
                extracted += 1;
                images.insert(r.nearest);
            }
        }
        let duplicates = images.iter().filter(|&&row| self.is_duplicate(row)).count();
        ExtractionCounts {
            extracted,
            unique: images.len(),
            duplicates,
        }
    }

    /// Data-set index of training row `row`.
    fn data_index(&self, row: usize) -> usize {
        self.ex.run.train_rows.get(row).copied().unwrap_or(row)
    }

    fn is_duplicate(&self, row: usize) -> bool {
        self.ex.run.duplicated.contains(&self.data_index(row))
    }

    fn generation(&self, g: usize) -> &[u8] {
        let len = self.ex.data.image_len();
        self.ex.gens.get(g * len..(g + 1) * len).unwrap_or(&[])
    }
}

/// Extraction view state.
pub struct ExtractionView {
    /// Selected model.
    pub model: Option<String>,
    /// Threshold on the criterion's score (relative l2 by default).
    pub delta: f64,
    /// Generations for a new run.
    pub samples: usize,
    /// Seed for a new run.
    pub seed: u64,
    /// List shown.
    pub tab: ExtractionTab,
    /// Thumbnail width in points.
    pub thumb: f32,
    /// Extractions by model id: `None` when the model has no saved extraction; absent while
    /// loading.
    pub loaded: BTreeMap<String, Option<Arc<ShownExtraction>>>,
    loads: usize,
}

impl Default for ExtractionView {
    fn default() -> Self {
        Self {
            model: None,
            delta: 1.0 / 3.0,
            samples: 256,
            seed: 0,
            tab: ExtractionTab::default(),
            thumb: 64.0,
            loaded: BTreeMap::new(),
            loads: 0,
        }
    }
}

impl ExtractionView {
    /// Stores an opened or computed extraction of `model` (None: the model has none saved).
    pub fn set_result(&mut self, model: String, ex: Option<LoadedExtraction>) {
        self.loads += 1;
        let shown = ex.map(|ex| {
            let rows = &ex.run.report.rows;
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by(|&a, &b| rows[a].score.total_cmp(&rows[b].score).then(a.cmp(&b)));
            if self.model.as_deref() == Some(model.as_str()) || self.model.is_none() {
                self.delta = ex.run.report.config.delta;
            }
            Arc::new(ShownExtraction {
                order,
                key: format!("gen-{model}-{}", self.loads),
                ex,
            })
        });
        self.loaded.insert(model, shown);
    }

    /// The shown extraction of the selected model.
    pub fn current(&self) -> Option<&Arc<ShownExtraction>> {
        self.model
            .as_ref()
            .and_then(|m| self.loaded.get(m))
            .and_then(Option::as_ref)
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(models) = ctx.diffusion else {
            ui.spinner();
            return;
        };
        if models.cards.is_empty() {
            no_models_ui(ui, ctx.study);
            import_diffusers_button(ui, ctx.commands);
            return;
        }
        for e in &models.errors {
            ui.colored_label(theme::ERROR, e);
        }
        let running = ctx.jobs.running().iter().find(|j| j.kind == JobKind::Extract);
        ui.horizontal_wrapped(|ui| {
            if model_combo(ui, "Model", &models.cards, &mut self.model)
                && let Some(m) = &self.model
                && !self.loaded.contains_key(m)
            {
                ctx.commands.push(Command::OpenExtraction(m.clone()));
            }
            ui.separator();
            ui.add_enabled_ui(running.is_none(), |ui| {
                labelled_drag(ui, "Generations", &mut self.samples, 8..=20000);
                labelled_drag(ui, "Seed", &mut self.seed, 0..=u64::MAX);
                if ui
                    .button("Run extraction")
                    .on_hover_text("Sample the model (DDIM, 50 steps) and score every generation")
                    .clicked()
                    && let Some(m) = &self.model
                {
                    ctx.commands.push(Command::RunExtraction {
                        model: m.clone(),
                        samples: self.samples,
                        seed: self.seed,
                    });
                }
            });
            if let Some(j) = running {
                let p = j.handle.progress();
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 260.0, ctx.commands);
            }
            ui.separator();
            import_diffusers_button(ui, ctx.commands);
        });
        let Some(model) = self.model.clone() else {
            return;
        };
        let shown = match self.loaded.get(&model) {
            None => {
                if ctx.jobs.is_running(JobKind::DiffusionOpen) {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Opening the saved extraction");
                    });
                } else if ui.button("Open the saved extraction").clicked() {
                    ctx.commands.push(Command::OpenExtraction(model));
                }
                return;
            }
            Some(None) => {
                ui.label(format!(
                    "No saved extraction for {model}: press Run extraction, or run `rote extract \
                     STUDY/diffusion/{model} --samples 256`."
                ));
                return;
            }
            Some(Some(s)) => s.clone(),
        };
        ui.separator();
        self.summary_ui(ui, &shown);
        sharpness_ui(ui, &shown, &model, running.is_some(), ctx.commands);
        ui.separator();
        match self.tab {
            ExtractionTab::Generations => self.rows_ui(ui, ctx, &shown),
            ExtractionTab::Cliques => self.cliques_ui(ui, ctx, &shown),
        }
    }

    fn summary_ui(&mut self, ui: &mut egui::Ui, s: &ShownExtraction) {
        let run = &s.ex.run;
        let rep = &run.report;
        let file =
            s.ex.source
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().to_string());
        ui.label(format!(
            "{} generations ({}, seed {}) from {file}; distances on {}",
            rep.summary.n_samples,
            run.sampler.label(),
            run.seed,
            rep.backend
        ));
        let what = match rep.config.criterion {
            Criterion::Relative => "Threshold delta on the relative l2",
            Criterion::Absolute => "Threshold delta on the l2 distance",
        };
        ui.horizontal_wrapped(|ui| {
            let l = ui.label(what);
            // Relative l2 reaches 1/alpha = 2 for a generation no nearer its nearest image than the
            // others; let the slider cover every score.
            let hi = rep
                .rows
                .iter()
                .map(|r| f64::from(r.score))
                .filter(|v| v.is_finite())
                .fold(1.0f64, f64::max);
            ui.add(egui::Slider::new(&mut self.delta, 0.0..=hi).fixed_decimals(3))
                .labelled_by(l.id);
            if ui.small_button("Reset").clicked() {
                self.delta = rep.config.delta;
            }
        });
        let c = s.counts(self.delta);
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!(
                "{} of {} generations extracted",
                c.extracted, rep.summary.n_samples
            ));
            ui.label("·");
            ui.strong(format!(
                "{} unique training images extracted (of {})",
                c.unique, rep.summary.n_train_unique
            ));
            if !run.duplicated.is_empty() {
                ui.label("·");
                ui.colored_label(
                    theme::DUPLICATE,
                    format!(
                        "{} of {} planted duplicates extracted",
                        c.duplicates,
                        run.duplicated.len()
                    ),
                );
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut self.tab, ExtractionTab::Generations, "Generations");
            ui.selectable_value(
                &mut self.tab,
                ExtractionTab::Cliques,
                format!("Cliques ({})", rep.cliques.len()),
            );
            ui.separator();
            let l = ui.label("Zoom");
            ui.add(egui::Slider::new(&mut self.thumb, 32.0..=192.0).show_value(false))
                .labelled_by(l.id);
        });
    }

    fn tags_ui(&self, ui: &mut egui::Ui, s: &ShownExtraction, row: usize, extracted: bool) {
        if extracted {
            tag(ui, "extracted", theme::ERROR);
        }
        if s.is_duplicate(row) {
            tag(ui, &format!("dup x{}", s.ex.dup_factor), theme::DUPLICATE);
        }
    }

    fn rows_ui(&self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, s: &ShownExtraction) {
        let ds = s.ex.data.clone();
        let rows = &s.ex.run.report.rows;
        let w = self.thumb;
        let row_h = (w * ds.h as f32 / ds.w as f32).max(44.0);
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show_rows(ui, row_h, s.order.len(), |ui, range| {
                for &k in &s.order[range] {
                    let r = &rows[k];
                    let idx = s.data_index(r.nearest);
                    let extracted = f64::from(r.score) <= self.delta;
                    ui.horizontal(|ui| {
                        ui.set_min_height(row_h);
                        bytes_ui(
                            ui,
                            ctx.textures,
                            &s.key,
                            r.generation,
                            &ds,
                            s.generation(r.generation),
                            None,
                            w,
                        )
                        .on_hover_text(format!("generation {}", r.generation));
                        ui.label("->");
                        data_ui(ui, ctx.textures, &ds, idx, w)
                            .on_hover_text(format!("training image #{idx}"));
                        ui.vertical(|ui| {
                            ui.horizontal(|ui| {
                                ui.label(format!(
                                    "generation {} -> training #{idx} ({})",
                                    r.generation,
                                    ds.labels
                                        .get(idx)
                                        .and_then(|&l| ds.class_names.get(l as usize))
                                        .map_or("?", String::as_str)
                                ));
                                self.tags_ui(ui, s, r.nearest, extracted);
                            });
                            let sharp =
                                s.ex.run
                                    .sharpness
                                    .as_ref()
                                    .and_then(|g| g.values.get(r.generation))
                                    .map_or(String::new(), |v| format!(" · sharpness {v:.3}"));
                            ui.label(format!(
                                "l2 {:.4} · tiled l2 {:.4} · relative l2 {:.3}{sharp}",
                                r.l2, r.tiled_l2, r.rel_l2
                            ));
                        });
                    });
                }
            });
    }

    fn cliques_ui(&self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, s: &ShownExtraction) {
        let rep = &s.ex.run.report;
        if rep.cliques.is_empty() {
            let k = rep.config.cliques.as_ref().map_or(0, |c| c.k_min);
            ui.label(format!(
                "No clique of {k} or more near-identical generations (more generations make them likelier)."
            ));
            return;
        }
        let ds = s.ex.data.clone();
        let w = self.thumb * 0.75;
        egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
            for (n, c) in rep.cliques.iter().enumerate() {
                let extracted = c
                    .members
                    .iter()
                    .filter(|&&g| rep.rows.get(g).is_some_and(|r| f64::from(r.score) <= self.delta))
                    .count();
                ui.horizontal(|ui| {
                    ui.strong(format!("Clique {}", n + 1));
                    ui.label(format!(
                        "{} generations · max tiled l2 {:.3} · {extracted} extracted at this threshold",
                        c.size, c.max_tiled_l2
                    ));
                    if let Some(row) = c.nearest_train {
                        self.tags_ui(ui, s, row, false);
                    }
                });
                ui.horizontal_wrapped(|ui| {
                    for &g in c.members.iter().take(16) {
                        bytes_ui(ui, ctx.textures, &s.key, g, &ds, s.generation(g), None, w)
                            .on_hover_text(format!("generation {g}"));
                    }
                    if c.members.len() > 16 {
                        ui.label(format!("+{} more", c.members.len() - 16));
                    }
                    if let Some(row) = c.nearest_train {
                        let idx = s.data_index(row);
                        ui.label("->");
                        data_ui(ui, ctx.textures, &ds, idx, w).on_hover_text(format!(
                            "nearest training image #{idx}: l2 {:.4}, relative l2 {:.3}",
                            c.nearest_l2.unwrap_or(f32::NAN),
                            c.nearest_rel_l2.unwrap_or(f32::NAN)
                        ));
                    }
                });
                ui.separator();
            }
        });
    }
}

/// The sharpness line (Jeon et al.): extracted generations against the others, or the button
/// that measures it.
fn sharpness_ui(
    ui: &mut egui::Ui,
    s: &ShownExtraction,
    model: &str,
    running: bool,
    commands: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| match &s.ex.run.sharpness {
        Some(g) => {
            let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
            ui.label(format!("Sharpness at t = {} (Jeon et al.):", g.config.t))
                .on_hover_text(crate::diffusion::sharpness::SOLVER);
            ui.colored_label(
                theme::ERROR,
                format!("extracted generations {}", f(g.mean_extracted)),
            );
            ui.label(format!(
                "vs the others {} · AUC {}",
                f(g.mean_other),
                f(g.auc_extracted)
            ));
        }
        None => {
            ui.label("Sharpness (Jeon et al.) not measured for these generations.");
            if ui
                .add_enabled(!running, egui::Button::new("Measure sharpness"))
                .on_hover_text(
                    "The fraction of the probability landscape's curvature directions that are \
                         sharp at each generation: memorized images sit on sharp peaks",
                )
                .clicked()
            {
                commands.push(Command::MeasureSharpness(model.to_string()));
            }
        }
    });
}
