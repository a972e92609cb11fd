//! The Membership view's diffusion section: membership inference on diffusion models from the loss
//! at timestep t (`rote mia-diffusion`, Carlini et al. 2023). For the chosen report it draws TPR at
//! 1% FPR and AUC as functions of t (the paper's key figure) and the log-log ROC at one t (by
//! default the one with the best TPR at 1% FPR of the LOSS attack).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui_plot::{Corner, HLine, Legend, Line, LineStyle, Plot, PlotPoints, Points, VLine};

use super::privacy::log_roc_plot;
use crate::diffusion::mia::DiffusionMiaReport;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::measure::mia::{Attack, MiaResult};
use crate::measure::roc::Roc;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::theme;

/// A saved `mia-diffusion.json`.
pub struct LoadedDiffusionMia {
    /// Its folder under `results/diffusion/` (the first model's id).
    pub id: String,
    /// The file.
    pub source: PathBuf,
    /// The report.
    pub report: DiffusionMiaReport,
}

/// The diffusion MIA reports of a study, and the files that could not be read.
#[derive(Default)]
pub struct DiffusionMiaList {
    /// Reports, sorted by folder.
    pub reports: Vec<LoadedDiffusionMia>,
    /// One line per unreadable report.
    pub errors: Vec<String>,
}

/// Reads every `STUDY/results/diffusion/*/mia-diffusion{,-members}.json` (a broken file becomes an error line,
/// the others still load).
pub fn load_diffusion_mia(study_root: &Path, ctx: &JobCtx<'_>) -> CoreResult<DiffusionMiaList> {
    let mut out = DiffusionMiaList::default();
    let Ok(entries) = std::fs::read_dir(study_root.join("results").join("diffusion")) else {
        return Ok(out);
    };
    // A family's report, and one model's members against held-out images (`rote mia-diffusion
    // MODEL --heldout-data ...`).
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .flat_map(|e| {
            let id = e.file_name().to_string_lossy().to_string();
            [
                (id.clone(), e.path().join("mia-diffusion.json")),
                (
                    format!("{id} (members vs held out)"),
                    e.path().join("mia-diffusion-members.json"),
                ),
            ]
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    found.sort();
    for (id, source) in found {
        ctx.checkpoint()?;
        match read_report(&source) {
            Ok(report) => out.reports.push(LoadedDiffusionMia { id, source, report }),
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    Ok(out)
}

fn read_report(path: &Path) -> CoreResult<DiffusionMiaReport> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let r: DiffusionMiaReport = serde_json::from_str(&text)
        .map_err(|e| CoreError::format(path, format!("not a diffusion MIA report: {e}")))?;
    if r.per_t.is_empty() {
        return Err(CoreError::format(path, "the report has no timesteps"));
    }
    Ok(r)
}

/// The timestep whose LOSS attack has the best TPR at 1% FPR (ties: higher AUC, then smaller t).
pub fn best_t(r: &DiffusionMiaReport) -> Option<usize> {
    let mut best: Option<(usize, f64, f64)> = None;
    for (t, auc, tpr) in r.curve(Attack::Loss) {
        if best.is_none_or(|(_, a, p)| tpr > p || (tpr == p && auc > a)) {
            best = Some((t, auc, tpr));
        }
    }
    best.map(|b| b.0).or_else(|| r.per_t.first().map(|x| x.t))
}

/// State of the diffusion section.
#[derive(Default)]
pub struct DiffusionMiaView {
    /// The study's reports (None until read).
    pub list: Option<Arc<DiffusionMiaList>>,
    /// The report shown (its file).
    pub selected: Option<PathBuf>,
    /// Timestep of the ROC (None: [`best_t`]).
    pub t: Option<usize>,
}

impl DiffusionMiaView {
    /// Stores a fresh list, keeping the choice of report and t where they still exist.
    pub fn set_list(&mut self, list: DiffusionMiaList) {
        let list = Arc::new(list);
        self.selected = self
            .selected
            .take()
            .filter(|s| list.reports.iter().any(|r| &r.source == s))
            .or_else(|| list.reports.first().map(|r| r.source.clone()));
        self.list = Some(list);
        let keep_t = self
            .current()
            .zip(self.t)
            .is_some_and(|(r, t)| r.report.per_t.iter().any(|x| x.t == t));
        if !keep_t {
            self.t = None;
        }
    }

    /// Whether any report was read.
    pub fn has_reports(&self) -> bool {
        self.list.as_ref().is_some_and(|l| !l.reports.is_empty())
    }

    /// The report shown.
    pub fn current(&self) -> Option<&LoadedDiffusionMia> {
        let list = self.list.as_ref()?;
        let sel = self.selected.as_ref()?;
        list.reports.iter().find(|r| &r.source == sel)
    }

    /// Draws the section.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(list) = self.list.clone() else {
            ui.horizontal(|ui| {
                if ctx.jobs.is_running(JobKind::DiffusionMia) {
                    ui.spinner();
                }
                ui.label("Reading the diffusion MIA reports");
            });
            return;
        };
        ui.horizontal(|ui| {
            if !list.reports.is_empty() {
                self.report_combo(ui, &list);
            }
            if ui
                .button("Reload")
                .on_hover_text("Read the study's mia-diffusion.json files again")
                .clicked()
            {
                ctx.commands.push(Command::ReloadDiffusionMia);
            }
        });
        for e in &list.errors {
            ui.colored_label(theme::ERROR, e);
        }
        let Some(shown) = self.current() else {
            no_report_ui(ui, ctx);
            return;
        };
        let rep = &shown.report;
        let t = self
            .t
            .filter(|t| rep.per_t.iter().any(|x| x.t == *t))
            .or_else(|| best_t(rep));
        let mut picked = t;
        caption_ui(ui, rep, t);
        ui.horizontal_wrapped(|ui| {
            ui.label("ROC at:");
            for x in &rep.per_t {
                ui.selectable_value(&mut picked, Some(x.t), format!("t = {}", x.t));
            }
        });
        ui.columns(2, |cols| {
            cols[0].label("TPR @ 1% FPR (solid) and AUC (dashed) against the timestep t; click to pick t");
            if let Some(clicked) = t_curve_ui(&mut cols[0], rep, t) {
                picked = Some(clicked);
            }
            table_ui(&mut cols[0], rep);
            roc_ui(&mut cols[1], rep, t);
        });
        if picked != t {
            self.t = picked;
        }
    }

    fn report_combo(&mut self, ui: &mut egui::Ui, list: &DiffusionMiaList) {
        let l = ui.label("Report");
        let text = self
            .current()
            .map_or("choose a report".to_string(), |r| r.id.clone());
        egui::ComboBox::from_id_salt("diffusion_mia_report")
            .selected_text(text)
            .width(260.0)
            .show_ui(ui, |ui| {
                for r in &list.reports {
                    ui.selectable_value(&mut self.selected, Some(r.source.clone()), &r.id)
                        .on_hover_text(format!(
                            "{}: {} models, {} images",
                            r.source.display(),
                            r.report.models.len(),
                            r.report.pool.len()
                        ));
                }
            })
            .response
            .labelled_by(l.id);
    }
}

/// The attack `a` at timestep `t`.
fn attack_at(rep: &DiffusionMiaReport, t: usize, a: Attack) -> Option<&MiaResult> {
    let at = rep.per_t.iter().find(|x| x.t == t)?;
    at.attacks.iter().find(|r| r.attack == a)
}

/// The attacks present in the report, in `Attack::ALL` order.
fn attacks(rep: &DiffusionMiaReport) -> Vec<Attack> {
    Attack::ALL
        .into_iter()
        .filter(|a| rep.per_t.iter().any(|x| x.attacks.iter().any(|r| r.attack == *a)))
        .collect()
}

fn caption_ui(ui: &mut egui::Ui, rep: &DiffusionMiaReport, t: Option<usize>) {
    let c = &rep.config;
    ui.label(format!(
        "Models {}: {} images (the union of their training sets), loss at t averaged over {} noise draws \
         (seed {}).",
        rep.models.join(", "),
        rep.pool.len(),
        c.draws,
        c.seed
    ));
    let (Some(t), best) = (t, best_t(rep)) else { return };
    let Some(r) = attack_at(rep, t, Attack::Loss) else {
        ui.label(format!("No LOSS attack at t = {t}."));
        return;
    };
    let best = best.map_or(String::new(), |b| {
        format!("; the best TPR @ 1% FPR is at t = {b}")
    });
    ui.strong(format!(
        "LOSS attack at t = {t}: AUC {:.3}, TPR @ 1% FPR {:.3}, TPR @ 0.1% FPR {:.3} ({} scores from {} \
         target models){best}",
        r.auc, r.tpr_at_1pct_fpr, r.tpr_at_0_1pct_fpr, r.n_scores, r.n_targets
    ));
    let step = r.roc.fpr.iter().copied().filter(|f| *f > 0.0).fold(1.0, f64::min);
    if step > 0.01 {
        ui.label(format!(
            "Few non-members: the smallest nonzero FPR is {step:.3}, so TPR @ 1% FPR is the TPR at FPR 0."
        ));
    }
}

/// Draws the figures against t; returns the timestep nearest a click.
fn t_curve_ui(ui: &mut egui::Ui, rep: &DiffusionMiaReport, t: Option<usize>) -> Option<usize> {
    let resp = Plot::new("diffusion_mia_t")
        .height(280.0)
        .legend(Legend::default().position(Corner::RightTop))
        .x_axis_label("timestep t")
        .y_axis_label("rate")
        .include_x(0.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_boxed_zoom(false)
        .show(ui, |p| {
            p.hline(
                HLine::new("chance AUC", 0.5)
                    .color(egui::Color32::GRAY)
                    .style(LineStyle::dashed_loose()),
            );
            if let Some(t) = t {
                p.vline(VLine::new("chosen t", t as f64).color(theme::SELECTED));
            }
            for (k, a) in attacks(rep).into_iter().enumerate() {
                let colour = theme::SERIES[k % theme::SERIES.len()];
                let curve = rep.curve(a);
                let tpr: Vec<[f64; 2]> = curve.iter().map(|&(t, _, v)| [t as f64, v]).collect();
                let auc: Vec<[f64; 2]> = curve.iter().map(|&(t, v, _)| [t as f64, v]).collect();
                let name = format!("TPR @ 1% FPR, {a:?}");
                p.points(
                    Points::new(name.clone(), PlotPoints::from(tpr.clone()))
                        .radius(3.0)
                        .color(colour),
                );
                p.line(Line::new(name, PlotPoints::from(tpr)).color(colour));
                p.line(
                    Line::new(format!("AUC, {a:?}"), PlotPoints::from(auc))
                        .color(colour)
                        .style(LineStyle::dashed_loose()),
                );
            }
            p.pointer_coordinate()
        });
    let x = resp.inner?.x;
    if !resp.response.clicked() {
        return None;
    }
    rep.per_t
        .iter()
        .map(|r| r.t)
        .min_by(|a, b| (*a as f64 - x).abs().total_cmp(&(*b as f64 - x).abs()))
}

fn table_ui(ui: &mut egui::Ui, rep: &DiffusionMiaReport) {
    egui::ScrollArea::vertical()
        .id_salt("diffusion_mia_table")
        .show(ui, |ui| {
            egui::Grid::new("diffusion_mia_grid")
                .num_columns(5)
                .striped(true)
                .show(ui, |ui| {
                    for h in ["t", "Attack", "AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for x in &rep.per_t {
                        for r in &x.attacks {
                            ui.label(x.t.to_string());
                            ui.label(format!("{:?}", r.attack));
                            ui.label(format!("{:.4}", r.auc));
                            ui.label(format!("{:.4}", r.tpr_at_1pct_fpr));
                            ui.label(format!("{:.4}", r.tpr_at_0_1pct_fpr));
                            ui.end_row();
                        }
                    }
                });
        });
}

fn roc_ui(ui: &mut egui::Ui, rep: &DiffusionMiaReport, t: Option<usize>) {
    let Some(at) = t.and_then(|t| rep.per_t.iter().find(|x| x.t == t)) else {
        return;
    };
    ui.label(format!("ROC at t = {}, log-log (chance is the diagonal)", at.t));
    // The LOSS attack first, then any others run at this t.
    let mut shown: Vec<&MiaResult> = at.attacks.iter().collect();
    shown.sort_by_key(|r| r.attack != Attack::Loss);
    let curves: Vec<(String, &Roc)> = shown
        .iter()
        .map(|r| (format!("{:?} (AUC {:.3})", r.attack, r.auc), &r.roc))
        .collect();
    // Below one over the number of non-members an FPR cannot be measured: floor a decade lower.
    let step = shown
        .iter()
        .flat_map(|r| r.roc.fpr.iter().copied())
        .filter(|f| *f > 0.0)
        .fold(1.0, f64::min);
    let floor = 10f64.powf((step / 2.0).log10().floor()).clamp(1e-5, 0.1);
    log_roc_plot(ui, "diffusion_mia_roc", 320.0, floor, &curves);
}

/// What the section shows when the study has no diffusion MIA report.
fn no_report_ui(ui: &mut egui::Ui, ctx: &AppCtx<'_>) {
    ui.heading("No diffusion MIA reports in this study");
    ui.label(
        "The loss-at-t attack scores every image by the denoising loss of each model at a few \
         timesteps. Run it on two or more models trained on subsets of one pool (four or more add LiRA):",
    );
    let root = ctx
        .study
        .map_or("STUDY".to_string(), |s| s.root.display().to_string());
    let ids: Vec<String> = ctx
        .diffusion
        .map(|d| d.cards.iter().take(2).map(|c| c.id.clone()).collect())
        .filter(|v: &Vec<String>| v.len() == 2)
        .unwrap_or_else(|| vec!["MODEL_A".into(), "MODEL_B".into()]);
    let dirs: Vec<String> = ids.iter().map(|id| format!("{root}/diffusion/{id}")).collect();
    ui.code(format!("rote mia-diffusion {}", dirs.join(" ")));
    ui.label("then press Reload.");
}
