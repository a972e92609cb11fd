//! The Text view's In-context learning tab (and the presentation's ICL slide): the cached sweep of
//! `rote icl` (Nguyen & Reddy, arXiv:2412.00104), generalization (ICL accuracy on new items) and
//! memorization (IWL accuracy on training items) against the task diversity K on a log axis, each
//! seed's runs as faint points, chance as a dashed line, the threshold K* as a vertical marker,
//! and the finding in one sentence. Without a cached sweep, a button runs the default one as a job
//! (progress, ETA, Cancel) and caches it where `rote icl --study` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::RichText;
use egui_plot::{
    GridInput, GridMark, HLine, HoverPosition, Line, LineStyle, Plot, PlotPoint, PlotPoints, Points, Text,
    VLine,
};

use crate::icl::cache::IclRecord;
use crate::icl::{finding, round_significant};
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::icl_jobs::{IclDone, IclTask};
use crate::ui::jobs::JobKind;
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

/// The ICL tab's state.
#[derive(Default)]
pub struct IclPanel {
    /// The study whose sweeps are shown.
    pub study: Option<PathBuf>,
    /// Its cached sweeps.
    pub files: Vec<PathBuf>,
    /// The sweep shown, with its file.
    pub shown: Option<(PathBuf, Arc<IclRecord>)>,
    /// Whether the study's cache has been read.
    pub listed: bool,
    /// The last failed ICL job, said in the tab.
    pub error: Option<String>,
}

/// Whether a job belongs to the ICL tab.
pub fn is_icl_job(kind: JobKind) -> bool {
    matches!(kind, JobKind::IclOpen | JobKind::IclSweep)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

impl IclPanel {
    /// Forgets what was shown (a new study is being read).
    pub fn reset(&mut self, study: Option<PathBuf>) {
        *self = Self {
            study,
            ..Self::default()
        };
    }

    /// Takes in a finished ICL job (ignored when another study was opened since).
    pub fn on_done(&mut self, done: IclDone) {
        if self.study.as_ref() != Some(&done.study) {
            return;
        }
        self.files = done.files;
        self.shown = done.shown;
        self.listed = true;
        self.error = None;
    }

    /// Says why an ICL job failed (or crashed).
    pub fn on_failed(&mut self, kind: JobKind, msg: String) {
        if is_icl_job(kind) {
            self.listed = true;
            self.error = Some(msg);
        }
    }

    /// Draws the tab.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        for j in ctx.jobs.running().iter().filter(|j| is_icl_job(j.kind)) {
            let p = j.handle.progress();
            ui.horizontal(|ui| {
                ui.label(&j.label);
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 320.0, ctx.commands);
            });
        }
        if let Some(e) = &self.error {
            ui.colored_label(theme::ERROR, e);
        }
        if !self.listed {
            if ctx.study.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the study's ICL sweeps");
                });
            } else {
                ui.label("Open a study to see its in-context learning sweep");
            }
            return;
        }
        let Some((path, record)) = self.shown.clone() else {
            self.empty_ui(ui, ctx);
            return;
        };
        if self.files.len() > 1 {
            ui.horizontal(|ui| {
                let l = ui.label("Sweep");
                let mut chosen = path.clone();
                egui::ComboBox::from_id_salt("icl_sweep_file")
                    .selected_text(file_name(&path))
                    .show_ui(ui, |ui| {
                        for f in &self.files {
                            ui.selectable_value(&mut chosen, f.clone(), file_name(f));
                        }
                    })
                    .response
                    .labelled_by(l.id);
                if chosen != path {
                    ctx.commands.push(Command::Icl(IclTask::Open(Some(chosen))));
                }
            });
        }
        sweep_ui(ui, &record);
    }

    /// No sweep cached: what the tab would show and the button that makes it.
    fn empty_ui(&self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let study = ctx
            .study
            .map_or("STUDY".to_string(), |s| s.root.display().to_string());
        ui.heading("No in-context learning sweep cached in this study");
        ui.label(
            "The sweep trains a one-layer attention model on K = 32 to 8192 items and measures, per \
             K, whether it answers from memory (training items, query absent from the context) or \
             reads the label from the context (new items): about one to two minutes on a CPU.",
        );
        let running = ctx.jobs.is_running(JobKind::IclSweep);
        if ui
            .add_enabled(!running, egui::Button::new("Run ICL sweep"))
            .on_hover_text("The default `rote icl` sweep (seed 0, 4 labels), cached in the study")
            .clicked()
        {
            ctx.commands.push(Command::Icl(IclTask::Run));
        }
        ui.label("or from a terminal:");
        ui.code(format!("rote icl --study {study}"));
    }
}

/// The sweep as the tab and the presentation's slide show it: the finding in a sentence, the
/// accuracies against K on a log axis, and the settings.
pub fn sweep_ui(ui: &mut egui::Ui, record: &IclRecord) {
    let sweep = &record.sweep;
    ui.add(egui::Label::new(RichText::new(finding(sweep)).strong().size(17.0)).wrap());
    ui.add_space(4.0);
    let gen_colour = theme::SERIES[0];
    let mem_colour = theme::SERIES[1];
    ui.horizontal_wrapped(|ui| {
        ui.colored_label(gen_colour, "— generalization: ICL accuracy on new items");
        ui.colored_label(mem_colour, "— memorization: IWL accuracy on training items");
        ui.colored_label(egui::Color32::GRAY, "- - chance");
        if let Some(k) = sweep.k_star {
            ui.colored_label(theme::SELECTED, format!("| K* ≈ {:.0}", round_significant(k, 2)));
        }
    });
    let log_k = |k: f64| k.max(1.0).log10();
    let (lo, hi) = (
        sweep.diversities.first().map_or(1.0, |&k| log_k(k as f64)),
        sweep.diversities.last().map_or(4.0, |&k| log_k(k as f64)),
    );
    let height = (ui.available_height() - 70.0).clamp(200.0, 520.0);
    Plot::new("icl_kinetics")
        .height(height)
        .x_axis_label("task diversity K (training items, log scale)")
        .y_axis_label("accuracy")
        .include_x(lo - 0.15)
        .include_x(hi + 0.15)
        .include_y(0.0)
        .include_y(1.08)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .x_grid_spacer(log_k_marks)
        .x_axis_formatter(|mark, _| format!("{:.0}", 10f64.powf(mark.value)))
        .label_formatter(|pos| match pos {
            HoverPosition::NearDataPoint {
                plot_name, position, ..
            } if !plot_name.is_empty() => Some(format!(
                "{plot_name}\nK = {:.0}, accuracy {:.2}",
                10f64.powf(position.x),
                position.y
            )),
            _ => None,
        })
        .show(ui, |p| {
            p.hline(
                HLine::new("chance", sweep.chance)
                    .color(egui::Color32::GRAY)
                    .style(LineStyle::dashed_loose()),
            );
            p.text(
                Text::new(
                    "chance label",
                    PlotPoint::new(lo - 0.1, sweep.chance),
                    format!("chance {:.2}", sweep.chance),
                )
                .anchor(egui::Align2::LEFT_TOP)
                .color(egui::Color32::GRAY),
            );
            if let Some(k) = sweep.k_star {
                p.vline(
                    VLine::new("K*", log_k(k))
                        .color(theme::SELECTED)
                        .style(LineStyle::dashed_dense())
                        .width(2.0),
                );
                p.text(
                    Text::new(
                        "K* label",
                        PlotPoint::new(log_k(k), 1.06),
                        format!(" K* ≈ {:.0}", round_significant(k, 2)),
                    )
                    .anchor(egui::Align2::LEFT_CENTER)
                    .color(theme::SELECTED),
                );
            }
            let seeds = |f: &dyn Fn(&crate::icl::IclRunResult) -> f64| -> Vec<[f64; 2]> {
                sweep.runs.iter().map(|r| [log_k(r.k as f64), f(r)]).collect()
            };
            for (name, colour, means, per_seed) in [
                (
                    "generalization (ICL, new items)",
                    gen_colour,
                    &sweep.generalization,
                    seeds(&|r| r.generalization),
                ),
                (
                    "memorization (IWL, training items)",
                    mem_colour,
                    &sweep.memorization,
                    seeds(&|r| r.memorization),
                ),
            ] {
                let pts: Vec<[f64; 2]> = sweep
                    .diversities
                    .iter()
                    .zip(means)
                    .map(|(&k, &v)| [log_k(k as f64), v])
                    .collect();
                p.points(
                    Points::new(format!("{name}, per seed"), PlotPoints::from(per_seed))
                        .radius(3.0)
                        .color(colour.gamma_multiply(0.35)),
                );
                p.line(
                    Line::new(name, PlotPoints::from(pts.clone()))
                        .color(colour)
                        .width(2.5),
                );
                p.points(Points::new(name, PlotPoints::from(pts)).radius(4.5).color(colour));
            }
        });
    let c = &record.config;
    ui.small(format!(
        "{} labels (chance {:.2}), {} context items, MLP width {}, {:?} lr {}, batch {}, at most {} \
         steps, {} seed(s); {:.0} s. After Nguyen & Reddy (arXiv:2412.00104), a small CPU version \
         of their setup (`rote icl`)",
        sweep.labels,
        sweep.chance,
        c.context,
        c.width,
        c.optimizer,
        c.lr,
        c.batch,
        c.steps,
        record.seeds.len(),
        record.seconds
    ));
}

/// Grid marks at K = 1, 2 and 5 times a power of ten, in log10 K; the powers drawn thicker.
fn log_k_marks(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let mut out = Vec::new();
    for e in (lo.floor().max(-1.0) as i32)..=(hi.ceil().min(9.0) as i32) {
        for (m, step_size) in [(1.0f64, 1.0), (2.0, 0.3), (5.0, 0.3)] {
            let value = f64::from(e) + m.log10();
            if (lo..=hi).contains(&value) {
                out.push(GridMark { value, step_size });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    use super::*;
    use crate::icl::{IclRunResult, default_sweep, summarize};

    fn run(k: usize, seed: u64, generalization: f64, memorization: f64) -> IclRunResult {
        IclRunResult {
            k,
            seed,
            generalization,
            memorization,
            steps: 2000,
            early_stopped: false,
            icl_trace: Vec::new(),
            final_loss: 0.1,
        }
    }

    /// A hand-made sweep: memorized at K = 32, in context from K = 2048, two seeds each.
    fn record() -> IclRecord {
        let mut cfg = default_sweep(0);
        cfg.diversities = vec![32, 512, 8192];
        cfg.seeds = vec![0, 1];
        let runs = vec![
            run(32, 0, 0.28, 1.0),
            run(32, 1, 0.26, 1.0),
            run(512, 0, 0.4, 0.7),
            run(512, 1, 0.5, 0.6),
            run(8192, 0, 0.99, 0.3),
            run(8192, 1, 0.99, 0.32),
        ];
        let sweep = summarize(&cfg.diversities, cfg.run.labels, runs);
        IclRecord::new(sweep, &cfg, 42.0)
    }

    #[test]
    fn panel_states_the_finding_of_the_sweep() {
        let record = record();
        let expected = finding(&record.sweep);
        assert!(
            expected.starts_with(
                "At K = 32 training items the transformer memorizes (IWL 1.00) and cannot learn \
                 in context (ICL 0.27, chance 0.25); from K ≈"
            ),
            "{expected}"
        );
        assert!(
            expected.ends_with("it learns in context (0.99 at K = 8192)"),
            "{expected}"
        );
        let mut h = Harness::builder()
            .with_size(egui::vec2(900.0, 600.0))
            .build_ui(move |ui| sweep_ui(ui, &record));
        h.run();
        h.get_by_label(&expected);
        h.get_by_label_contains("memorization: IWL accuracy on training items");
        h.get_by_label_contains("K* ≈");
        h.get_by_label_contains("2 seed(s); 42 s");
    }

    /// The Text view's tab on a study: nothing cached, so it offers the sweep; with the default
    /// sweep cached meanwhile (as `rote icl --study` would), Run ICL sweep reads it back.
    #[test]
    fn tab_offers_the_sweep_then_shows_the_cached_one() {
        use std::time::Duration;

        use crate::icl::cache::{save, sweep_path};
        use crate::ui::View;

        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("s");
        crate::study::Study::open_or_create(&study).unwrap();
        let mut h = crate::ui::test_support::harness(&study, View::Text, egui::vec2(1280.0, 800.0));
        h.run_steps(2);
        h.get_by_label("In-context learning").click();
        crate::ui::test_support::step_until(&mut h, "the ICL cache read", Duration::from_secs(60), |a| {
            a.text_view.icl.listed
        });
        h.get_by_label("No in-context learning sweep cached in this study");

        let cfg = default_sweep(0);
        let runs = cfg
            .diversities
            .iter()
            .zip([0.26, 0.3, 0.45, 0.9, 0.99])
            .map(|(&k, g)| run(k, 0, g, (1.3 - g).min(1.0)))
            .collect();
        let record = IclRecord::new(summarize(&cfg.diversities, cfg.run.labels, runs), &cfg, 60.0);
        save(&sweep_path(&study, &cfg), &record).unwrap();
        h.get_by_label("Run ICL sweep").click();
        crate::ui::test_support::step_until(&mut h, "the sweep", Duration::from_secs(60), |a| {
            a.text_view.icl.shown.is_some()
        });
        assert!(h.state().text_view.icl.error.is_none());
        h.get_by_label(&finding(&record.sweep));
    }

    #[test]
    fn log_marks_are_round_diversities() {
        let marks = log_k_marks(GridInput {
            bounds: (1.35, 4.0),
            base_step_size: 0.01,
        });
        let ks: Vec<i64> = marks.iter().map(|m| 10f64.powf(m.value).round() as i64).collect();
        assert_eq!(ks, vec![50, 100, 200, 500, 1000, 2000, 5000, 10000]);
    }
}
