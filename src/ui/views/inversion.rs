//! Inversion view (Fredrikson, Jha, Ristenpart, CCS 2015, MI-FACE; total-variation and
//! ART-compatible variants): pick a face classifier and a person, press Run and watch the face
//! emerge with its cost curve; the result sits next to the person's training and held-out faces
//! and the evaluation classifier's verdict. "Invert all" fills the 40-person grid, which exports
//! as a PNG.

use std::collections::BTreeMap;

use egui_plot::{Line, Plot, PlotPoints};

use super::diffusion_common::{data_ui, image_ui, labelled_drag, rgba};
use crate::data::Dataset;
use crate::invert::{ClassReport, EvalConfig, InversionReport, InvertConfig, Method};
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::invert_jobs::{InvertRequest, LiveCell, LoadedInversion, METHODS};
use crate::ui::jobs::JobKind;
use crate::ui::theme;

mod grid;

/// Inversion view state.
pub struct InversionView {
    /// Chosen model id.
    pub model: Option<String>,
    /// The opened model (None while loading or when nothing is chosen).
    pub loaded: Option<LoadedInversion>,
    /// Method.
    pub method: Method,
    /// Hyper-parameters per method (steps are editable).
    pub configs: BTreeMap<&'static str, InvertConfig>,
    /// Selected person.
    pub person: usize,
    /// Stretch each displayed inversion to the full grey range (display only).
    pub stretch: bool,
    /// The evaluation classifier to train when the study has none cached.
    pub eval: EvalConfig,
    /// Frames written by a running job.
    pub live: LiveCell,
    live_seen: u64,
    live_tex: BTreeMap<usize, egui::TextureHandle>,
}

impl Default for InversionView {
    fn default() -> Self {
        Self {
            model: None,
            loaded: None,
            method: Method::Tv,
            configs: METHODS
                .iter()
                .map(|&m| (m.as_str(), InvertConfig::for_method(m)))
                .collect(),
            person: 0,
            stretch: true,
            eval: EvalConfig::default(),
            live: LiveCell::default(),
            live_seen: 0,
            live_tex: BTreeMap::new(),
        }
    }
}

/// Whether a study model can be inverted here (an image classifier).
fn invertible(card: &crate::model::ModelCard) -> bool {
    card.spec.n_classes > 1
}

impl InversionView {
    /// The hyper-parameters of the chosen method.
    pub fn config(&self) -> InvertConfig {
        self.configs
            .get(self.method.as_str())
            .cloned()
            .unwrap_or_else(|| InvertConfig::for_method(self.method))
    }

    /// The study model to open first: a model of the ORL faces, else any classifier.
    pub fn default_model(models: &[crate::study::StudyModel]) -> Option<String> {
        models
            .iter()
            .find(|m| m.card.dataset.name == "orl-faces")
            .or_else(|| models.iter().find(|m| invertible(&m.card)))
            .map(|m| m.id.clone())
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let running = ctx.jobs.is_running(JobKind::Invert);
        self.controls_ui(ui, ctx, running);
        ui.separator();
        let Some(loaded) = self.loaded.take() else {
            if self.model.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Opening the model and its saved inversions");
                });
            } else {
                ui.heading("No classifier in this study");
                ui.label("Train a face classifier, then pick it here:");
                ui.code(
                    "rote train --family softmax --data orl-faces --epochs 40 --batch-size 32 --out STUDY",
                );
            }
            return;
        };
        self.refresh_live(ui.ctx(), &loaded.data);
        let report = loaded.report(self.method);
        if let Some(r) = report {
            summary_ui(ui, r);
        } else if !running {
            ui.label(format!(
                "No saved {} inversion of {}: press Run or Invert all.",
                self.method.as_str(),
                loaded.model
            ));
        }
        let people = loaded.card.spec.n_classes.min(loaded.data.n_classes().max(1));
        self.person = self.person.min(people.saturating_sub(1));
        egui::Panel::left("inversion_people")
            .default_size(250.0)
            .show(ui, |ui| self.people_ui(ui, ctx, &loaded, people));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
                self.person_ui(ui, ctx, &loaded, report, running);
                ui.separator();
                self.grid_ui(ui, ctx, &loaded, report, people, running);
            });
        });
        self.loaded = Some(loaded);
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, running: bool) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Classifier");
            let before = self.model.clone();
            egui::ComboBox::from_id_salt("inversion_model")
                .selected_text(self.model.clone().unwrap_or_else(|| "choose a model".into()))
                .width(200.0)
                .show_ui(ui, |ui| {
                    for m in ctx.models.iter().filter(|m| invertible(&m.card)) {
                        ui.selectable_value(&mut self.model, Some(m.id.clone()), &m.id)
                            .on_hover_text(format!(
                                "{} on {}, {} classes, test acc {:.3}",
                                m.card.spec.family.as_str(),
                                m.card.dataset.name,
                                m.card.spec.n_classes,
                                m.card.metrics.test_acc
                            ));
                    }
                })
                .response
                .labelled_by(l.id);
            if self.model != before
                && let Some(id) = self.model.clone()
            {
                self.loaded = None;
                ctx.commands.push(Command::OpenInversion(id));
            }
            let l = ui.label("Method");
            egui::ComboBox::from_id_salt("inversion_method")
                .selected_text(method_label(self.method))
                .show_ui(ui, |ui| {
                    for m in METHODS {
                        let r = ui.selectable_value(&mut self.method, m, method_label(m));
                        if m == Method::MiFacePaper {
                            r.on_hover_text(crate::invert::PAPER_RULES_STALL);
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            let method = self.method.as_str();
            if let Some(cfg) = self.configs.get_mut(method) {
                labelled_drag(ui, "Max steps", &mut cfg.alpha, 1..=20_000)
                    .on_hover_text("alpha: the most gradient steps per person");
            }
            let ready = self.loaded.is_some() && !running;
            let name = self
                .loaded
                .as_ref()
                .and_then(|l| l.data.class_names.get(self.person).cloned())
                .unwrap_or_else(|| format!("class {}", self.person));
            if ui
                .add_enabled(ready, egui::Button::new(format!("Run on {name}")))
                .on_hover_text("Invert the selected person, showing each step")
                .clicked()
            {
                self.start(ctx, Some(vec![self.person]));
            }
            if ui
                .add_enabled(ready, egui::Button::new("Invert all"))
                .on_hover_text("Invert every person at once and fill the grid")
                .clicked()
            {
                self.start(ctx, None);
            }
            ui.checkbox(&mut self.stretch, "Stretch contrast").on_hover_text(
                "Display only: map each inversion's darkest pixel to black and brightest to white",
            );
            let has_report = self
                .loaded
                .as_ref()
                .is_some_and(|l| l.report(self.method).is_some());
            if ui
                .add_enabled(has_report, egui::Button::new("Export grid PNG..."))
                .clicked()
                && let Some(path) = rfd::FileDialog::new()
                    .set_title("Export the inversion grid")
                    .set_file_name(format!(
                        "{}-{}.png",
                        self.model.clone().unwrap_or_default(),
                        self.method.as_str()
                    ))
                    .save_file()
            {
                ctx.commands.push(Command::ExportInversionGrid(self.method, path));
            }
        });
    }

    fn start(&mut self, ctx: &mut AppCtx<'_>, classes: Option<Vec<usize>>) {
        let Some(loaded) = &self.loaded else { return };
        let Some(m) = ctx.models.iter().find(|m| m.id == loaded.model) else {
            return;
        };
        self.live_tex.clear();
        ctx.commands.push(Command::RunInversion(Box::new(InvertRequest {
            model_dir: m.dir.clone(),
            config: self.config(),
            classes,
            eval: self.eval.clone(),
            device: ctx.settings.device.clone(),
            live: self.live.clone(),
        })));
    }

    /// Uploads new live frames.
    fn refresh_live(&mut self, ctx: &egui::Context, ds: &Dataset) {
        let live = self.live.lock();
        if live.version == self.live_seen {
            return;
        }
        self.live_seen = live.version;
        for (&class, (_, bytes)) in &live.frames {
            let img = egui::ColorImage::from_rgba_unmultiplied(
                [ds.w, ds.h],
                &rgba(ds, &scale_to(ds, bytes, self.stretch), None),
            );
            match self.live_tex.get_mut(&class) {
                Some(t) => t.set(img, egui::TextureOptions::LINEAR),
                None => {
                    let t =
                        ctx.load_texture(format!("invert-live-{class}"), img, egui::TextureOptions::LINEAR);
                    self.live_tex.insert(class, t);
                }
            }
        }
    }

    fn people_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        loaded: &LoadedInversion,
        people: usize,
    ) {
        ui.label(format!("People ({people}); click one"));
        egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                for class in 0..people {
                    let Some(&first) = loaded.faces(class, true).first() else {
                        continue;
                    };
                    let name = loaded.data.class_names.get(class).cloned().unwrap_or_default();
                    let resp = data_ui(ui, ctx.textures, &loaded.data, first, 42.0)
                        .interact(egui::Sense::click())
                        .on_hover_text(format!("{name} (class {class})"));
                    if class == self.person {
                        ui.painter().rect_stroke(
                            resp.rect.expand(1.0),
                            0.0,
                            egui::Stroke::new(2.0, theme::SELECTED),
                            egui::StrokeKind::Outside,
                        );
                    }
                    if resp.clicked() {
                        self.person = class;
                    }
                }
            });
        });
    }

    /// A saved inversion, `width` wide; scaled (and stretched) only when its texture is uploaded.
    pub(super) fn saved_image_ui(
        &self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        loaded: &LoadedInversion,
        r: &InversionReport,
        c: &ClassReport,
        width: f32,
    ) -> egui::Response {
        let ds = &loaded.data;
        let key = format!(
            "inv-{}-{}-{}",
            loaded.serial,
            r.config.method.as_str(),
            self.stretch
        );
        let tex = ctx.textures.get_with(ui.ctx(), &key, c.class, [ds.w, ds.h], || {
            rgba(ds, &scale_to(ds, &c.image, self.stretch), None)
        });
        image_ui(ui, tex, ds, width)
    }

    fn person_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        loaded: &LoadedInversion,
        report: Option<&InversionReport>,
        running: bool,
    ) {
        let ds = &loaded.data;
        let class = self.person;
        let name = ds.class_names.get(class).cloned().unwrap_or_default();
        ui.heading(format!("{name} (class {class})"));
        let saved = report.and_then(|r| r.classes.iter().find(|c| c.class == class));
        let live_curve = self.live.lock().curves.get(&class).cloned();
        // The cost plot takes the room beside the image, and goes below it on a narrow panel.
        let beside = ui.available_width() - 184.0 - 3.0 * ui.spacing().item_spacing.x;
        let (layout, plot_w) = if beside >= 200.0 {
            (egui::Layout::left_to_right(egui::Align::Min), beside.min(320.0))
        } else {
            (
                egui::Layout::top_down(egui::Align::Min),
                ui.available_width().clamp(120.0, 320.0),
            )
        };
        ui.with_layout(layout, |ui| {
            ui.vertical(|ui| {
                let live = self.live_tex.get(&class).filter(|_| running);
                if let Some(t) = live {
                    image_ui(ui, Some(t.id()), ds, 184.0);
                    let step = self.live.lock().frames.get(&class).map_or(0, |f| f.0);
                    ui.label(format!("step {step} (running)"));
                } else if let (Some(c), Some(r)) = (saved, report) {
                    self.saved_image_ui(ui, ctx, loaded, r, c, 184.0);
                    ui.label(format!("returned step {} of {}", c.returned_iter, c.steps));
                } else {
                    image_ui(ui, None, ds, 184.0);
                    ui.label("not inverted yet");
                }
            });
            let curve = if running {
                live_curve
            } else {
                saved.map(|c| c.cost_curve.clone())
            };
            ui.vertical(|ui| {
                ui.label("Cost by step");
                Plot::new("inversion_cost")
                    .width(plot_w)
                    .height(200.0)
                    .allow_scroll(false)
                    .x_axis_label("step")
                    .include_y(0.0)
                    .show(ui, |plot| {
                        if let Some(pts) = curve {
                            plot.line(Line::new("cost", PlotPoints::from(pts)).color(theme::SERIES[0]));
                        }
                    });
            });
        });
        if let Some(c) = saved {
            verdict_ui(ui, ds, c);
        }
        for (train, title) in [
            (true, "Training faces (the classifier saw these)"),
            (false, "Held-out faces (never seen by the classifier)"),
        ] {
            ui.label(title);
            ui.horizontal_wrapped(|ui| {
                for i in loaded.faces(class, train) {
                    data_ui(ui, ctx.textures, ds, i, 72.0).on_hover_text(format!("#{i}"));
                }
            });
        }
    }
}

/// The report's pixel bytes (0..255) in the data set's value range, optionally stretched so the
/// darkest pixel is black and the brightest white (inversions are faint around mid-grey).
fn scale_to(ds: &Dataset, bytes: &[u8], stretch: bool) -> Vec<u8> {
    let max = u32::from(ds.max_value.max(1));
    let (lo, hi) = if stretch {
        let lo = bytes.iter().copied().min().unwrap_or(0);
        let hi = bytes.iter().copied().max().unwrap_or(255);
        (u32::from(lo), u32::from(hi.max(lo.saturating_add(1))))
    } else {
        (0, 255)
    };
    bytes
        .iter()
        .map(|&b| ((u32::from(b).clamp(lo, hi) - lo) * max + (hi - lo) / 2) / (hi - lo))
        .map(|v| v.min(max) as u8)
        .collect()
}

fn method_label(m: Method) -> &'static str {
    match m {
        Method::Tv => "TV prior (-log p + TV)",
        Method::MiFace => "MI-FACE (-log p, blur, no early stop)",
        Method::MiFacePaper => "MI-FACE (published rules)",
        Method::Art => "ART-compatible MIFace",
    }
}

fn summary_ui(ui: &mut egui::Ui, r: &InversionReport) {
    let hits = r.classes.iter().filter(|c| c.eval_top1).count();
    ui.label(format!(
        "{} on {}: the evaluation classifier identifies {hits} of {} inverted people (top-1 {:.3}, top-5 {:.3}; \
         a blank grey image: {:.3}); {:.1} s",
        method_label(r.config.method),
        r.model_id,
        r.classes.len(),
        r.eval_top1,
        r.eval_top5,
        r.blank_top1,
        r.seconds
    ));
    if r.config.method == Method::MiFacePaper {
        ui.colored_label(theme::SELECTED, crate::invert::PAPER_RULES_STALL);
    }
}

fn verdict_ui(ui: &mut egui::Ui, ds: &Dataset, c: &ClassReport) {
    let predicted = ds.class_names.get(c.eval_predicted).cloned().unwrap_or_default();
    let (text, colour) = if c.eval_top1 {
        (
            format!(
                "Identified: the evaluation classifier (trained only on held-out faces) says {predicted} (p {:.2})",
                c.eval_p_true
            ),
            theme::OK,
        )
    } else {
        (
            format!(
                "Not identified: the evaluation classifier says {predicted}; the true person is at rank {} (p {:.2})",
                c.eval_rank, c.eval_p_true
            ),
            theme::ERROR,
        )
    };
    ui.colored_label(colour, text);
    ui.label(format!(
        "target p(person) {:.3} | SSIM to the mean training face {:.3}, l2 {:.2} | nearest training image #{} \
         ({}), SSIM {:.3}",
        c.target_p,
        c.distances.ssim_mean_face,
        c.distances.l2_mean_face,
        c.distances.nearest_index,
        ds.class_names.get(c.distances.nearest_label).cloned().unwrap_or_default(),
        c.distances.ssim_nearest
    ));
}
