//! Models view: the study's model cards, their curves, a Train dialog with progress, ETA, Cancel
//! and live curves, and import of a model folder.

use std::path::Path;

use crate::data::{BundledKind, bundled_all};
use crate::error::{CoreError, CoreResult};
use crate::model::{Family, ModelCard, load_model};
use crate::study::{Study, StudyModel, write_atomic};
use crate::train::{OptimizerKind, TrainConfig};
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::widgets::{curves_ui, job_row_ui};

/// Models view state.
#[derive(Default)]
pub struct ModelsView {
    /// Selected model id.
    pub selected: Option<String>,
    /// Whether the Train dialog is open.
    pub train_open: bool,
    /// The Train dialog's settings.
    pub form: TrainConfig,
}

impl ModelsView {
    /// Selects the first model if none is selected.
    pub fn select_first(&mut self, models: &[StudyModel]) {
        if self
            .selected
            .as_ref()
            .is_none_or(|s| !models.iter().any(|m| &m.id == s))
        {
            self.selected = models.first().map(|m| m.id.clone());
        }
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        egui::Panel::left("model_list")
            .default_size(260.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui.button("Train…").clicked() {
                        self.train_open = true;
                        if let Some(cur) = ctx.current {
                            self.form.data = cur.to_string();
                        }
                    }
                    if ui
                        .button("Import…")
                        .on_hover_text("A folder with card.json and weights.safetensors")
                        .clicked()
                        && let Some(p) = rfd::FileDialog::new().pick_folder()
                    {
                        ctx.commands.push(Command::ImportModel(p));
                    }
                });
                ui.separator();
                if ctx.models.is_empty() {
                    ui.label("No models yet: press Train…");
                }
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for m in ctx.models {
                        let text = format!(
                            "{}\n{} · {} · test acc {:.3}",
                            m.id,
                            m.card.spec.family.as_str(),
                            m.card.dataset.name,
                            m.card.metrics.test_acc
                        );
                        if ui
                            .selectable_label(self.selected.as_deref() == Some(&m.id), text)
                            .clicked()
                        {
                            self.selected = Some(m.id.clone());
                        }
                    }
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let model = self
                .selected
                .as_ref()
                .and_then(|s| ctx.models.iter().find(|m| &m.id == s));
            match model {
                Some(m) => card_ui(ui, &m.card, &m.dir),
                None => {
                    ui.label("Select a model, or train one");
                }
            }
        });
        if self.train_open {
            self.train_dialog(ui.ctx(), ctx);
        }
    }

    fn train_dialog(&mut self, egui_ctx: &egui::Context, ctx: &mut AppCtx<'_>) {
        let mut open = self.train_open;
        let running = ctx.jobs.running().iter().find(|j| j.kind == JobKind::Train);
        egui::Window::new("Train a model")
            .open(&mut open)
            .default_width(640.0)
            .show(egui_ctx, |ui| {
                let f = &mut self.form;
                ui.add_enabled_ui(running.is_none(), |ui| {
                    egui::Grid::new("train_form").num_columns(2).show(ui, |ui| {
                        ui.label("Family");
                        ui.horizontal(|ui| {
                            ui.selectable_value(&mut f.family, Family::Mlp, "MLP");
                            ui.selectable_value(&mut f.family, Family::Cnn, "CNN");
                        });
                        ui.end_row();
                        ui.label("Data set");
                        egui::ComboBox::from_id_salt("train_data")
                            .selected_text(f.data.clone())
                            .show_ui(ui, |ui| {
                                for b in bundled_all().iter().filter(|b| b.kind == BundledKind::Images) {
                                    ui.selectable_value(&mut f.data, b.name.to_string(), b.name);
                                }
                                for k in ctx.datasets.keys().filter(|k| crate::data::bundled(k).is_none()) {
                                    ui.selectable_value(&mut f.data, k.clone(), k.as_str());
                                }
                            });
                        ui.end_row();
                        ui.label("Epochs");
                        ui.add(egui::DragValue::new(&mut f.epochs).range(1..=200));
                        ui.end_row();
                        ui.label("Batch size");
                        ui.add(egui::DragValue::new(&mut f.batch_size).range(1..=4096));
                        ui.end_row();
                        ui.label("Optimiser");
                        ui.horizontal(|ui| {
                            ui.selectable_value(&mut f.optimizer, OptimizerKind::Adamw, "AdamW");
                            ui.selectable_value(&mut f.optimizer, OptimizerKind::Sgd, "SGD + momentum");
                        });
                        ui.end_row();
                        ui.label("Learning rate");
                        ui.add(egui::DragValue::new(&mut f.lr).speed(1e-4).range(1e-6..=10.0));
                        ui.end_row();
                        ui.label("Subset ratio");
                        ui.add(egui::Slider::new(&mut f.subset_ratio, 0.05..=1.0));
                        ui.end_row();
                        ui.label("Seed");
                        ui.add(egui::DragValue::new(&mut f.seed));
                        ui.end_row();
                        ui.label("Device");
                        ui.label(ctx.settings.device.as_str())
                            .on_hover_text("Change it in Settings");
                        ui.end_row();
                    });
                });
                ui.separator();
                match running {
                    Some(job) => {
                        let p = job.handle.progress();
                        ui.horizontal(|ui| {
                            job_row_ui(
                                ui,
                                job.id,
                                &p,
                                job.handle.is_cancel_requested(),
                                420.0,
                                ctx.commands,
                            );
                        });
                        curves_ui(ui, "train_live", &job.series, 160.0);
                    }
                    None => {
                        let can_start = ctx.study.is_some();
                        if ui
                            .add_enabled(can_start, egui::Button::new("Start training"))
                            .clicked()
                        {
                            ctx.commands.push(Command::StartTraining(self.form.clone()));
                        }
                        if let Some(last) = ctx.last_training {
                            ui.label(&last.summary);
                            curves_ui(ui, "train_last", &last.series, 160.0);
                        }
                    }
                }
            });
        self.train_open = open;
    }
}

fn card_ui(ui: &mut egui::Ui, card: &ModelCard, dir: &Path) {
    ui.heading(&card.id);
    ui.label(dir.display().to_string());
    egui::Grid::new("card")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            let rows: Vec<(&str, String)> = vec![
                (
                    "Family",
                    format!(
                        "{} {:?} ({} parameters)",
                        card.spec.family.as_str(),
                        card.spec.widths,
                        card.n_params
                    ),
                ),
                (
                    "Data set",
                    format!(
                        "{} (hash {}, {} images)",
                        card.dataset.name, card.dataset.hash, card.dataset.n
                    ),
                ),
                (
                    "Trained on",
                    format!(
                        "{} samples (subset ratio {})",
                        card.metrics.n_train, card.hyper.subset_ratio
                    ),
                ),
                ("Train accuracy", format!("{:.4}", card.metrics.train_acc)),
                (
                    "Test accuracy",
                    format!("{:.4} on {} samples", card.metrics.test_acc, card.metrics.n_test),
                ),
                (
                    "Optimiser",
                    format!(
                        "{} lr {} batch {} momentum {} wd {}",
                        card.hyper.optimizer,
                        card.hyper.lr,
                        card.hyper.batch_size,
                        card.hyper.momentum,
                        card.hyper.weight_decay
                    ),
                ),
                ("Epochs · seed", format!("{} · {}", card.epochs, card.seed)),
                (
                    "Time · device",
                    format!("{:.1} s · {}", card.metrics.seconds, card.device),
                ),
                ("rote", card.rote_version.clone()),
            ];
            for (k, v) in rows {
                ui.label(k);
                ui.label(v);
                ui.end_row();
            }
        });
    ui.label(egui::RichText::new(&card.command).monospace().small())
        .on_hover_text("The command that reproduces this model");
    ui.separator();
    let mut series = std::collections::BTreeMap::new();
    series.insert("train loss".to_string(), card.loss_curve.clone());
    series.insert(
        "train acc".to_string(),
        card.history
            .iter()
            .map(|h| [h.epoch as f64, h.train_acc])
            .collect(),
    );
    series.insert(
        "test acc".to_string(),
        card.history
            .iter()
            .map(|h| [h.epoch as f64, h.test_acc])
            .collect(),
    );
    curves_ui(ui, &format!("card-{}", card.id), &series, 220.0);
}

/// Checks a model folder (card, weights, and the data set when it is bundled) and copies it into
/// the study under a fresh id.
pub fn import_model(study: &Study, src: &Path) -> CoreResult<String> {
    crate::model::check_model_folder(src)?;
    let card = ModelCard::load(&src.join("card.json"))?;
    let ds = crate::data::bundled(&card.dataset.name)
        .filter(|b| b.kind == BundledKind::Images)
        .map(|b| crate::data::load_bundled(b.name))
        .transpose()?;
    load_model(src, ds.as_ref(), &candle_core::Device::Cpu)?;
    let id = study.new_model_id(&card.id);
    let staging = study.staging_dir(&id)?;
    for f in ["card.json", "weights.safetensors", "scores.json"] {
        let from = src.join(f);
        if !from.exists() && f == "scores.json" {
            continue;
        }
        let bytes = std::fs::read(&from).map_err(|e| CoreError::io(&from, e))?;
        write_atomic(&staging.join(f), &bytes)?;
    }
    study.commit_model(&staging, &id)?;
    Ok(id)
}
