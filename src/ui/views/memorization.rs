//! Memorization view (Feldman & Zhang 2020): histogram of mem over the training split, per-class
//! strips from typical (mem ~ 0) to memorized (mem ~ 1), the convergence of the estimates as the
//! zoo grew, and a sample detail with in/out accuracy, model counts and standard errors.

use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints};

use super::zoo_results::{ZooResults, thumb};
use crate::ui::app::AppCtx;
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

/// Settings of the Train zoo dialog.
#[derive(Clone, Debug)]
pub struct ZooForm {
    /// Models.
    pub models: u32,
    /// Subset ratio r.
    pub ratio: f64,
    /// Epochs per model.
    pub epochs: usize,
    /// Fraction of training labels to flip.
    pub plant: f64,
}

impl Default for ZooForm {
    fn default() -> Self {
        Self {
            models: 32,
            ratio: 0.7,
            epochs: 20,
            plant: 0.02,
        }
    }
}

/// Memorization view state.
#[derive(Default)]
pub struct MemorizationView {
    /// Selected training sample.
    pub selected: Option<usize>,
    /// The Train zoo dialog, when open.
    pub zoo_form: Option<ZooForm>,
}

/// Samples per class strip.
const STRIP: usize = 14;

impl MemorizationView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        self.zoo_dialog(ui.ctx(), ctx);
        if ui
            .button("Train zoo…")
            .on_hover_text("Train models on random subsets to estimate memorization")
            .clicked()
        {
            self.zoo_form.get_or_insert_with(ZooForm::default);
        }
        let Some(z) = ctx.zoo else {
            no_zoo_ui(ui, ctx);
            return;
        };
        let r = &z.memorization;
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("Zoo {}", r.zoo));
            ui.label(format!(
                "{} models · {} training samples · mean mem {:.3} · {} with mem >= {} · {} high-influence pairs",
                r.models, r.n_train, r.mem_mean, r.n_high_mem, r.thresholds.mem, r.n_pairs
            ));
            if let Some(rec) = r.planted_recall {
                ui.colored_label(
                    theme::ERROR,
                    format!("{} planted mislabels, {:.0}% among the top-{} mem", r.planted.len(), rec * 100.0, r.planted.len()),
                );
            }
        });
        ui.separator();
        egui::Panel::left("mem_plots").default_size(360.0).show(ui, |ui| {
            hist_ui(ui, z);
            ui.label("Convergence: mean |mem(K) - mem(all)| as the zoo grew");
            Plot::new("mem_convergence")
                .height(170.0)
                .x_axis_label("models K")
                .allow_scroll(false)
                .show(ui, |p| {
                    p.line(
                        Line::new("mean change", PlotPoints::from(r.convergence.clone()))
                            .color(theme::SERIES[1]),
                    );
                });
        });
        egui::Panel::right("mem_detail")
            .default_size(300.0)
            .show(ui, |ui| self.detail_ui(ui, ctx, z));
        egui::CentralPanel::default().show(ui, |ui| self.strips_ui(ui, ctx, z));
    }

    fn zoo_dialog(&mut self, egui_ctx: &egui::Context, ctx: &mut AppCtx<'_>) {
        let Some(form) = self.zoo_form.as_mut() else {
            return;
        };
        let mut open = true;
        let running = ctx
            .jobs
            .running()
            .iter()
            .find(|j| j.kind == crate::ui::jobs::JobKind::TrainZoo);
        let data = ctx.current.unwrap_or("mnist10k").to_string();
        egui::Window::new("Train a zoo")
            .open(&mut open)
            .default_width(560.0)
            .show(egui_ctx, |ui| {
                ui.add_enabled_ui(running.is_none(), |ui| {
                    egui::Grid::new("zoo_form").num_columns(2).show(ui, |ui| {
                        ui.label("Data set");
                        ui.label(data.as_str())
                            .on_hover_text("The Data view's current data set");
                        ui.end_row();
                        ui.label("Models");
                        ui.add(egui::DragValue::new(&mut form.models).range(2..=4000));
                        ui.end_row();
                        ui.label("Subset ratio");
                        ui.add(egui::Slider::new(&mut form.ratio, 0.1..=0.9));
                        ui.end_row();
                        ui.label("Epochs");
                        ui.add(egui::DragValue::new(&mut form.epochs).range(1..=100));
                        ui.end_row();
                        ui.label("Planted mislabels");
                        ui.add(egui::Slider::new(&mut form.plant, 0.0..=0.1));
                        ui.end_row();
                    });
                    ui.label("MLP 512-256, SGD momentum 0.9, lr 0.1, batch 128 (the Feldman-Zhang recipe; their demo ran 10 epochs)");
                });
                match running {
                    Some(job) => {
                        let p = job.handle.progress();
                        ui.horizontal(|ui| {
                            job_row_ui(
                                ui,
                                job.id,
                                &p,
                                job.handle.is_cancel_requested(),
                                380.0,
                                ctx.commands,
                            );
                        });
                        ui.label("Convergence while training: mean |mem(K) - mem(K - 8)|");
                        Plot::new("zoo_live")
                            .height(160.0)
                            .x_axis_label("models K")
                            .allow_scroll(false)
                            .show(ui, |p| {
                                if let Some(pts) = job.series.get("mem change") {
                                    p.line(
                                        Line::new("mem change", PlotPoints::from(pts.clone()))
                                            .color(theme::SERIES[1]),
                                    );
                                }
                                if let Some(pts) = job.series.get("mean mem") {
                                    p.line(
                                        Line::new("mean mem", PlotPoints::from(pts.clone()))
                                            .color(theme::SERIES[0]),
                                    );
                                }
                            });
                    }
                    None => {
                        if ui
                            .add_enabled(ctx.study.is_some(), egui::Button::new("Start zoo"))
                            .clicked()
                        {
                            let base = crate::train::zoo::ZooConfig::default();
                            let cfg = crate::train::zoo::ZooConfig {
                                id: format!(
                                    "zoo-mlp-{data}-e{}-r{}-p{}",
                                    form.epochs, form.ratio, form.plant
                                )
                                .replace(['/', '\\', ' '], "_"),
                                train: crate::train::TrainConfig {
                                    data: data.clone(),
                                    epochs: form.epochs,
                                    subset_ratio: form.ratio,
                                    ..base.train.clone()
                                },
                                plant_mislabel: form.plant,
                                ..base
                            };
                            ctx.commands
                                .push(crate::ui::command::Command::TrainZoo(Box::new(cfg), form.models));
                        }
                    }
                }
            });
        if !open {
            self.zoo_form = None;
        }
    }

    fn strips_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, z: &ZooResults) {
        ui.label("Per class, from typical (mem ~ 0, left) to memorized (mem ~ 1, right); planted samples outlined red");
        let ds = &z.data;
        let mem = &z.memorization.mem.mem;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (c, name) in ds.class_names.iter().enumerate() {
                let mut members: Vec<usize> = ds
                    .train_indices()
                    .into_iter()
                    .filter(|&i| ds.labels[i] as usize == c && mem[i].is_finite())
                    .collect();
                if members.is_empty() {
                    continue;
                }
                members.sort_by(|&a, &b| mem[a].total_cmp(&mem[b]).then(a.cmp(&b)));
                let picks: Vec<usize> = (0..STRIP.min(members.len()))
                    .map(|q| members[q * (members.len() - 1) / (STRIP - 1).max(1)])
                    .collect();
                ui.horizontal(|ui| {
                    ui.add_sized([70.0, 40.0], egui::Label::new(name.as_str()));
                    for i in picks {
                        let resp = thumb(ui, ctx.textures, ds, i, 40.0, z.is_planted(i))
                            .on_hover_text(format!("#{i} · mem {:.2}", mem[i]));
                        if resp.clicked() {
                            self.selected = Some(i);
                        }
                    }
                });
            }
        });
    }

    fn detail_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, z: &ZooResults) {
        let Some(i) = self.selected else {
            ui.label("Click a sample to see its estimate");
            return;
        };
        let m = &z.memorization.mem;
        ui.heading(format!("Sample #{i}"));
        thumb(ui, ctx.textures, &z.data, i, 120.0, z.is_planted(i));
        let label = z.data.labels[i] as usize;
        egui::Grid::new("mem_detail_grid")
            .num_columns(2)
            .striped(true)
            .show(ui, |ui| {
                ui.label("Label");
                ui.label(z.data.class_names[label].as_str());
                ui.end_row();
                if z.is_planted(i) {
                    ui.label("Planted");
                    ui.colored_label(theme::ERROR, "label flipped on purpose");
                    ui.end_row();
                }
                ui.label("mem");
                ui.label(format!("{:.3} ± {:.3}", m.mem[i], m.se[i]));
                ui.end_row();
                ui.label("Accuracy when in");
                ui.label(format!("{:.3} over {} models", m.p_in[i], m.n_in[i]));
                ui.end_row();
                ui.label("Accuracy when out");
                ui.label(format!("{:.3} over {} models", m.p_out[i], m.n_out[i]));
                ui.end_row();
            });
        let se = |p: f32, n: u32| {
            if n == 0 {
                0.0
            } else {
                f64::from((p * (1.0 - p) / n as f32).sqrt())
            }
        };
        let bars = vec![
            Bar::new(0.0, f64::from(m.p_in[i]))
                .name("in")
                .fill(theme::SERIES[1]),
            Bar::new(1.0, f64::from(m.p_out[i]))
                .name("out")
                .fill(theme::SERIES[0]),
        ];
        let whiskers = vec![
            [0.0, f64::from(m.p_in[i]) - se(m.p_in[i], m.n_in[i])],
            [0.0, f64::from(m.p_in[i]) + se(m.p_in[i], m.n_in[i])],
        ];
        let whiskers_out = vec![
            [1.0, f64::from(m.p_out[i]) - se(m.p_out[i], m.n_out[i])],
            [1.0, f64::from(m.p_out[i]) + se(m.p_out[i], m.n_out[i])],
        ];
        Plot::new("mem_inout")
            .height(150.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .show(ui, |p| {
                p.bar_chart(BarChart::new("accuracy", bars).width(0.6));
                p.line(
                    Line::new("± se (in)", PlotPoints::from(whiskers))
                        .color(theme::SELECTED)
                        .width(2.0),
                );
                p.line(
                    Line::new("± se (out)", PlotPoints::from(whiskers_out))
                        .color(theme::SELECTED)
                        .width(2.0),
                );
            });
    }
}

fn hist_ui(ui: &mut egui::Ui, z: &ZooResults) {
    let mem = &z.memorization.mem.mem;
    let bins = 20;
    let mut counts = vec![0u32; bins];
    let mut planted = vec![0u32; bins];
    for (i, &v) in mem.iter().enumerate() {
        if v.is_finite() {
            let b = (((v + 1.0) / 2.0 * bins as f32).floor() as usize).min(bins - 1);
            counts[b] += 1;
            if z.is_planted(i) {
                planted[b] += 1;
            }
        }
    }
    let width = 2.0 / bins as f64;
    let center = |b: usize| -1.0 + (b as f64 + 0.5) * width;
    let all: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(b, &c)| Bar::new(center(b), f64::from(c).max(0.1)))
        .collect();
    let pl: Vec<Bar> = planted
        .iter()
        .enumerate()
        .map(|(b, &c)| Bar::new(center(b), f64::from(c)))
        .collect();
    ui.label("Histogram of mem over the training split");
    Plot::new("mem_hist")
        .height(200.0)
        .x_axis_label("mem")
        .allow_scroll(false)
        .show(ui, |p| {
            p.bar_chart(
                BarChart::new("all", all)
                    .width(width * 0.9)
                    .color(theme::SERIES[1]),
            );
            if z.memorization.planted_recall.is_some() {
                p.bar_chart(
                    BarChart::new("planted", pl)
                        .width(width * 0.5)
                        .color(theme::ERROR),
                );
            }
        });
}

/// What the zoo views show when the study has no zoo results.
pub fn no_zoo_ui(ui: &mut egui::Ui, ctx: &AppCtx<'_>) {
    ui.heading("No zoo results in this study");
    ui.label(
        "Memorization, influence and membership inference come from a zoo of models trained on random \
         subsets. Train one and compute its results from the command line:",
    );
    let study = ctx
        .study
        .map_or("STUDY".to_string(), |s| s.root.display().to_string());
    ui.code(format!(
        "rote zoo --family mlp --data mnist10k --models 64 --subset-ratio 0.7 --epochs 20 --out {study}\n\
         rote memorization {study}\nrote mia {study} --attack lira"
    ));
    ui.label("then reopen the study, or press Train zoo… above.");
}
