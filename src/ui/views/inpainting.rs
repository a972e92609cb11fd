//! Inpainting view (Carlini et al. 2023, section 4; RePaint, Lugmayr et al. 2022): hide part of a
//! training image and let the model that trained on it (IN) and one that did not (OUT) complete
//! it, denoising live; in batch mode, the attack's ROC over many images.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::diffusion_common::{labelled_drag, model_combo, no_models_ui};
use super::inpaint_report::report_ui;

mod single;
use crate::diffusion::DiffusionCard;
use crate::diffusion::inpaint::{InpaintConfig, InpaintMethod, MaskKind};
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::inpaint_jobs::{InpaintOne, InpaintRequest, LiveCell, LoadedInpaint};
use crate::ui::jobs::JobKind;
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

const MASKS: [(MaskKind, &str); 6] = [
    (MaskKind::Left, "left"),
    (MaskKind::Right, "right"),
    (MaskKind::Top, "top"),
    (MaskKind::Bottom, "bottom"),
    (MaskKind::Center, "center"),
    (MaskKind::Random, "random"),
];

/// One image or the attack over many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InpaintMode {
    /// One image, denoising live.
    #[default]
    Single,
    /// The attack on a batch, with its ROC.
    Batch,
}

/// Inpainting view state.
pub struct InpaintingView {
    /// Model A.
    pub a: Option<String>,
    /// Model B.
    pub b: Option<String>,
    /// Hidden region.
    pub mask: MaskKind,
    /// Image to complete.
    pub image: usize,
    /// Mode.
    pub mode: InpaintMode,
    /// Method and schedule.
    pub cfg: InpaintConfig,
    /// Completions per image and model (best of N).
    pub samples: usize,
    /// Images in batch mode.
    pub count: usize,
    /// Seed.
    pub seed: u64,
    /// Last single-image result.
    pub last: Option<InpaintOne>,
    /// Attack reports by (A, B): `None` when none is saved; absent while loading.
    pub reports: BTreeMap<(String, String), Option<Arc<LoadedInpaint>>>,
    /// Frames written by a running job.
    pub live: LiveCell,
    live_seen: u64,
    live_tex: [Option<egui::TextureHandle>; 2],
    results: usize,
}

impl Default for InpaintingView {
    fn default() -> Self {
        Self {
            a: None,
            b: None,
            mask: MaskKind::Right,
            image: 0,
            mode: InpaintMode::default(),
            cfg: InpaintConfig::default(),
            samples: 4,
            count: 16,
            seed: 0,
            last: None,
            reports: BTreeMap::new(),
            live: LiveCell::default(),
            live_seen: 0,
            live_tex: [None, None],
            results: 0,
        }
    }
}

/// Whether `card` trained on image `i`.
fn trained_on(card: &DiffusionCard, i: usize) -> bool {
    u32::try_from(i).is_ok_and(|i| card.train_indices.binary_search(&i).is_ok())
}

impl InpaintingView {
    /// Picks the default pair (called when the study's models are read); returns the pair.
    pub fn choose_pair(&mut self, pair: Option<(String, String)>, cards: &[DiffusionCard]) {
        let known = |m: &Option<String>| m.as_ref().is_some_and(|id| cards.iter().any(|c| &c.id == id));
        if known(&self.a) && known(&self.b) {
            return;
        }
        (self.a, self.b) = match pair {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        self.image = self.candidates(cards).first().map_or(0, |c| c.0);
    }

    /// The selected pair.
    pub fn pair(&self) -> Option<(String, String)> {
        Some((self.a.clone()?, self.b.clone()?))
    }

    /// Stores a finished single-image result.
    pub fn set_single(&mut self, one: InpaintOne) {
        self.results += 1;
        self.last = Some(one);
    }

    fn cards<'a>(&self, cards: &'a [DiffusionCard]) -> Option<(&'a DiffusionCard, &'a DiffusionCard)> {
        let (a, b) = self.pair()?;
        Some((
            cards.iter().find(|c| c.id == a)?,
            cards.iter().find(|c| c.id == b)?,
        ))
    }

    /// Images exactly one of the two models trained on, with whether it was A.
    fn candidates(&self, cards: &[DiffusionCard]) -> Vec<(usize, bool)> {
        let Some((a, b)) = self.cards(cards) else {
            return Vec::new();
        };
        let mut out: Vec<(usize, bool)> = a
            .train_indices
            .iter()
            .filter(|i| b.train_indices.binary_search(i).is_err())
            .map(|&i| (i as usize, true))
            .chain(
                b.train_indices
                    .iter()
                    .filter(|i| a.train_indices.binary_search(i).is_err())
                    .map(|&i| (i as usize, false)),
            )
            .collect();
        out.sort_unstable();
        out
    }

    fn request(&self) -> Option<InpaintRequest> {
        let (a, b) = self.pair()?;
        Some(InpaintRequest {
            a,
            b,
            mask: self.mask,
            image: self.image,
            count: self.count,
            cfg: self.cfg.clone(),
            samples: self.samples,
            seed: self.seed,
            live: self.live.clone(),
        })
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(models) = ctx.diffusion else {
            ui.spinner();
            return;
        };
        if models.cards.is_empty() {
            no_models_ui(ui, ctx.study);
            return;
        }
        let cards = &models.cards;
        self.controls_ui(ui, ctx, cards);
        members_ui(ui, ctx.textures, models);
        let Some((a, b)) = self.cards(cards) else {
            ui.label(
                "Choose two models trained on the same data set (one trained on an image, one not), \
                 or attack one model's members against images it did not train on: rote inpaint \
                 --in-model STUDY/diffusion/ID --heldout-data PATH.",
            );
            return;
        };
        let (Some(ds), Some(_)) = (models.data(&a.id).cloned(), models.data(&b.id)) else {
            ui.colored_label(theme::ERROR, "The models' data set could not be loaded.");
            return;
        };
        if a.dataset.hash != b.dataset.hash {
            ui.colored_label(
                theme::ERROR,
                "The two models were trained on different data sets.",
            );
            return;
        }
        let shared = a
            .train_indices
            .iter()
            .filter(|i| b.train_indices.binary_search(i).is_ok())
            .count();
        if shared > 0 {
            ui.label(format!(
                "{shared} images are in both training sets; only images one model trained on are attacked."
            ));
        }
        ui.separator();
        match self.mode {
            InpaintMode::Single => self.single_ui(ui, ctx, &ds, a, b),
            InpaintMode::Batch => {
                let key = (a.id.clone(), b.id.clone());
                match self.reports.get(&key) {
                    None if ctx.jobs.is_running(JobKind::DiffusionOpen) => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("Looking for a saved attack report");
                        });
                    }
                    None => {
                        if ui.button("Open the saved attack report").clicked() {
                            ctx.commands.push(Command::OpenInpaintReport(key.0, key.1));
                        }
                    }
                    Some(None) => {
                        ui.label(format!(
                            "No saved attack report for {} and {}: press Run attack, or run `rote inpaint \
                             --in-model STUDY/diffusion/{} --out-model STUDY/diffusion/{}`.",
                            key.0, key.1, key.0, key.1
                        ));
                    }
                    Some(Some(r)) => report_ui(ui, ctx.textures, r),
                }
            }
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, cards: &[DiffusionCard]) {
        let running = ctx.jobs.running().iter().find(|j| j.kind == JobKind::Inpaint);
        ui.horizontal_wrapped(|ui| {
            let mut changed = model_combo(ui, "Model A", cards, &mut self.a);
            changed |= model_combo(ui, "Model B", cards, &mut self.b);
            if changed {
                self.image = self.candidates(cards).first().map_or(0, |c| c.0);
            }
            if let Some(pair) = self.pair()
                && !self.reports.contains_key(&pair)
                && changed
            {
                ctx.commands.push(Command::OpenInpaintReport(pair.0, pair.1));
            }
            ui.separator();
            ui.selectable_value(&mut self.mode, InpaintMode::Single, "One image");
            ui.selectable_value(&mut self.mode, InpaintMode::Batch, "Batch (ROC)");
        });
        ui.add_enabled_ui(running.is_none(), |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label("Hidden");
                for (m, name) in MASKS {
                    ui.selectable_value(&mut self.mask, m, name);
                }
                ui.separator();
                ui.selectable_value(&mut self.cfg.method, InpaintMethod::Repaint, "RePaint");
                ui.selectable_value(&mut self.cfg.method, InpaintMethod::Replace, "Replacement");
                labelled_drag(ui, "Steps", &mut self.cfg.steps, 5..=1000);
                if self.cfg.method == InpaintMethod::Repaint {
                    labelled_drag(ui, "Resamplings", &mut self.cfg.jump_n_sample, 1..=20);
                }
                labelled_drag(ui, "Best of", &mut self.samples, 1..=64);
                labelled_drag(ui, "Seed", &mut self.seed, 0..=u64::MAX);
                if self.mode == InpaintMode::Batch {
                    ui.separator();
                    labelled_drag(ui, "Images", &mut self.count, 2..=4096);
                    if ui
                        .button("Run attack")
                        .on_hover_text("Inpaint images balanced between A and B; saves the report")
                        .clicked()
                        && let Some(req) = self.request()
                    {
                        ctx.commands.push(Command::InpaintBatch(Box::new(req)));
                    }
                }
            });
        });
        if let Some(j) = running {
            ui.horizontal(|ui| {
                ui.label(&j.label);
                let p = j.handle.progress();
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 320.0, ctx.commands);
            });
        }
    }
}

/// Saved one-model attacks (members against held-out images, from `rote inpaint --in-model M
/// --heldout-data ...`), one collapsible line each with the figures and the best completions.
fn members_ui(
    ui: &mut egui::Ui,
    textures: &mut crate::ui::textures::TextureCache,
    models: &crate::ui::diffusion_jobs::DiffusionModels,
) {
    for (id, r) in &models.member_inpaints {
        let Some(ds) = models.data(id) else { continue };
        if [ds.c, ds.h, ds.w] != r.shape {
            continue;
        }
        egui::CollapsingHeader::new(format!(
            "{id}, one model: members vs held out · AUC {:.3} · TPR@1%FPR {:.3}",
            r.auc, r.tpr_at_1pct_fpr
        ))
        .id_salt(("members", id))
        .default_open(true)
        .show(ui, |ui| {
            ui.label(format!(
                "Mean hidden-region error: members {:.4}, held out {:.4} ({:?}, {} steps, best of {}).",
                r.mean_err_member, r.mean_err_heldout, r.config.method, r.config.steps, r.samples
            ));
            for member in [true, false] {
                ui.horizontal_wrapped(|ui| {
                    ui.label(if member { "members" } else { "held out" });
                    for (k, row) in r
                        .rows
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.member == member)
                        .take(12)
                    {
                        super::diffusion_common::bytes_ui(
                            ui,
                            textures,
                            &format!("members-{id}"),
                            k,
                            ds,
                            &row.completion,
                            None,
                            48.0,
                        )
                        .on_hover_text(format!("image #{}: error {:.4}", row.index, row.err));
                    }
                });
            }
        });
    }
}
