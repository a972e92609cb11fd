//! Tabular view: what a tabular diffusion model memorized of its training table (Fang et al.,
//! spec 07 B), what TabCutMix changes, and the group fairness of a classifier on the table
//! (Pepin et al., spec 14).
//!
//! * the finding in one sentence: the chosen model's memorization ratio (d₁/d₂ < 1/3), beside an
//!   unaugmented model's at the same epochs when the study has both;
//! * the ratio against epochs for every tabular model of the study, with and without augmentation;
//! * the memorized synthetic rows, each beside its nearest training row (equal cells green,
//!   planted twins marked);
//! * fairness bars per group of a classifier trained on the table.
//!
//! Models come from `STUDY/tabular/` (written by `rote train-tabular` or the Train form here);
//! the rows are measured in a job, training runs as a job with progress, ETA and Cancel.

use std::path::PathBuf;
use std::sync::Arc;

use crate::measure::fairness_model::MeasuredFairness;
use crate::tabular::augment::Augment;
use crate::tabular::memorization::DistanceRule;
use crate::tabular::train::TabTrainConfig;
use crate::tabular::twins::Twins;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::tabular_jobs::{TabModel, TabularDone, TabularRequest};
use crate::ui::widgets::job_row_ui;

mod rows;
mod side;
#[cfg(test)]
mod tests;

/// The Train form.
#[derive(Clone, Debug)]
pub struct TrainForm {
    /// Augmentation.
    pub augment: Augment,
    /// Epochs.
    pub epochs: usize,
    /// Training rows.
    pub rows: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for TrainForm {
    fn default() -> Self {
        let d = TabTrainConfig::default();
        Self {
            augment: Augment::None,
            epochs: d.epochs,
            rows: d.rows,
            seed: d.seed,
        }
    }
}

/// Tabular view state.
#[derive(Default)]
pub struct TabularView {
    /// The study's tabular models.
    pub models: Vec<TabModel>,
    /// The chosen model's folder.
    pub chosen: Option<PathBuf>,
    /// The distance of the ratio and the rows (default: the reference code's, as the paper's
    /// numbers).
    pub rule: RuleChoice,
    /// The measured rows: (model folder, rule, rows).
    pub twins: Option<(PathBuf, DistanceRule, Arc<Twins>)>,
    /// The last rows asked for (not asked again while they are measured).
    pub asked: Option<(PathBuf, DistanceRule)>,
    /// The last failed job, said in the view.
    pub error: Option<String>,
    /// The Train form.
    pub form: TrainForm,
    /// The classifier whose fairness is shown (study model id).
    pub classifier: Option<String>,
    /// Its fairness, by classifier id.
    pub fairness: Option<(String, Arc<MeasuredFairness>)>,
}

/// [`DistanceRule`] with a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleChoice(pub DistanceRule);

impl Default for RuleChoice {
    fn default() -> Self {
        Self(DistanceRule::Code)
    }
}

fn is_tabular_job(kind: JobKind) -> bool {
    matches!(
        kind,
        JobKind::TabularTwins | JobKind::TabularTrain | JobKind::TabularFairness
    )
}

impl TabularView {
    /// New models (a study opened or a model trained): keeps the chosen one when it is still
    /// there, else picks the first unaugmented one.
    pub fn set_models(&mut self, models: Vec<TabModel>) {
        let keep = self
            .chosen
            .as_ref()
            .is_some_and(|c| models.iter().any(|m| &m.dir == c));
        if !keep {
            self.chosen = models
                .iter()
                .find(|m| m.card.config.augment == Augment::None)
                .or_else(|| models.first())
                .map(|m| m.dir.clone());
        }
        if self
            .twins
            .as_ref()
            .is_some_and(|(d, _, _)| !models.iter().any(|m| &m.dir == d))
        {
            self.twins = None;
        }
        self.models = models;
        self.asked = None;
    }

    /// The chosen model.
    pub fn chosen_model(&self) -> Option<&TabModel> {
        let c = self.chosen.as_ref()?;
        self.models.iter().find(|m| &m.dir == c)
    }

    /// The rows to measure, when the shown ones are not the chosen model's under the chosen rule
    /// and they have not been asked for yet.
    pub fn twins_request(&self) -> Option<TabularRequest> {
        let dir = self.chosen.clone()?;
        let want = (dir.clone(), self.rule.0);
        let shown = self.twins.as_ref().map(|(d, r, _)| (d.clone(), *r));
        if shown.as_ref() == Some(&want) || self.asked.as_ref() == Some(&want) {
            return None;
        }
        Some(TabularRequest::Twins(dir, self.rule.0))
    }

    /// A finished job.
    pub fn on_done(&mut self, done: TabularDone) {
        match done {
            TabularDone::Twins(dir, twins) => {
                let rule = twins.rule;
                self.twins = Some((dir, rule, Arc::from(twins)));
            }
            TabularDone::Fairness(id, measured) => {
                self.fairness = Some((id, Arc::from(measured)));
            }
            TabularDone::Trained(_) => {}
        }
    }

    /// A failed or crashed job: said in the view (and nothing asked again on its own).
    pub fn on_failed(&mut self, kind: JobKind, msg: String) {
        if is_tabular_job(kind) {
            self.error = Some(msg);
        }
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        if let Some(req) = self.twins_request().filter(|_| self.error.is_none()) {
            self.asked = match &req {
                TabularRequest::Twins(d, r) => Some((d.clone(), *r)),
                _ => None,
            };
            ctx.commands.push(Command::Tabular(Box::new(req)));
        }
        self.toolbar_ui(ui, ctx);
        self.jobs_ui(ui, ctx);
        if let Some(e) = &self.error {
            ui.colored_label(crate::ui::theme::ERROR, e);
        }
        if self.models.is_empty() {
            self.empty_ui(ui, ctx);
            return;
        }
        ui.label(egui::RichText::new(side::finding(self)).strong().size(15.0));
        ui.separator();
        egui::Panel::left("tabular_side")
            .default_size(430.0)
            .min_size(320.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| side::side_ui(ui, self, ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| rows::rows_ui(ui, self));
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Model");
            let text = self
                .chosen_model()
                .map_or_else(|| "none".to_string(), |m| m.id.clone());
            egui::ComboBox::from_id_salt("tabular_model")
                .selected_text(text)
                .width(320.0)
                .show_ui(ui, |ui| {
                    for m in &self.models {
                        let label = format!("{} ({})", m.id, m.card.config.augment.label());
                        if ui
                            .selectable_label(self.chosen.as_ref() == Some(&m.dir), label)
                            .clicked()
                        {
                            self.chosen = Some(m.dir.clone());
                            self.error = None;
                        }
                    }
                });
            ui.label("Distance");
            for rule in [DistanceRule::Code, DistanceRule::Global] {
                let name = match rule {
                    DistanceRule::Code => "reference code",
                    DistanceRule::Global => "global min-max",
                };
                if ui
                    .selectable_label(self.rule.0 == rule, name)
                    .on_hover_text(rule.label())
                    .clicked()
                {
                    self.rule = RuleChoice(rule);
                    self.error = None;
                }
            }
            ui.separator();
            ui.menu_button("Train a model…", |ui| self.form_ui(ui, ctx));
        });
        ui.separator();
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.label("A TabDDPM-style model on 2,000 rows of Adult");
        egui::Grid::new("tabular_form").num_columns(2).show(ui, |ui| {
            ui.label("Augmentation");
            egui::ComboBox::from_id_salt("tabular_augment")
                .selected_text(self.form.augment.label())
                .show_ui(ui, |ui| {
                    for a in [Augment::None, Augment::TabCutMix, Augment::TabCutMixPlus] {
                        ui.selectable_value(&mut self.form.augment, a, a.label());
                    }
                });
            ui.end_row();
            ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut self.form.epochs).range(4..=4000));
            ui.end_row();
            ui.label("Training rows");
            ui.add(egui::DragValue::new(&mut self.form.rows).range(100..=26_000));
            ui.end_row();
            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.form.seed));
            ui.end_row();
        });
        let busy = ctx.jobs.running().iter().any(|j| j.kind == JobKind::TabularTrain);
        if ui
            .add_enabled(!busy, egui::Button::new("Train"))
            .on_hover_text("About 3 minutes for the default recipe on two cores")
            .clicked()
        {
            let cfg = TabTrainConfig {
                augment: self.form.augment,
                epochs: self.form.epochs,
                rows: self.form.rows,
                seed: self.form.seed,
                ..TabTrainConfig::default()
            };
            ctx.commands
                .push(Command::Tabular(Box::new(TabularRequest::Train(Box::new(cfg)))));
            ui.close();
        }
    }

    fn jobs_ui(&self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        for j in ctx.jobs.running().iter().filter(|j| is_tabular_job(j.kind)) {
            let p = j.handle.progress();
            ui.horizontal(|ui| {
                ui.label(&j.label);
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 320.0, ctx.commands);
            });
        }
    }

    fn empty_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.heading("No tabular model in this study yet");
        ui.label(
            "Train one on the bundled Adult table, once without and once with TabCutMix, to see \
             how many synthetic rows copy a training row and what the augmentation changes. \
             From a terminal: rote train-tabular --data adult --augment tabcutmix --out STUDY",
        );
        ui.add_space(8.0);
        self.form_ui(ui, ctx);
    }
}
