//! Membership-inference view. The zoo section: ROC on log-log axes for each attack run on the zoo
//! (LOSS, LiRA online and offline, RMIA), with AUC and TPR at low FPR, and the samples most exposed
//! to LiRA. The diffusion section (`privacy_diffusion.rs`): the loss-at-t attack on diffusion models.

use egui_plot::{Corner, Legend, Line, Plot, PlotPoints, Points};

use super::memorization::no_zoo_ui;
use super::privacy_diffusion::DiffusionMiaView;
use super::zoo_results::thumb;
use crate::measure::mia::MiaResult;
use crate::measure::roc::{Roc, log_roc_points};
use crate::ui::app::AppCtx;
use crate::ui::theme;

/// The sections of the Membership view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipTab {
    /// Attacks on the study's zoo of classifiers.
    Zoo,
    /// The loss-at-t attack on the study's diffusion models.
    Diffusion,
}

/// MIA view state.
#[derive(Default)]
pub struct PrivacyView {
    /// The section shown (None: the zoo's, or the diffusion one when the study has no zoo results
    /// but has diffusion MIA reports).
    pub tab: Option<MembershipTab>,
    /// The diffusion section.
    pub diffusion: DiffusionMiaView,
}

/// Draws ROC curves on log-log axes from `floor` to 1, with the chance diagonal; points at the
/// floor (FPR or TPR of 0, clamped) are not measurements and are dropped. Curves with few points
/// are also marked point by point.
pub fn log_roc_plot(ui: &mut egui::Ui, id: &str, height: f32, floor: f64, curves: &[(String, &Roc)]) {
    let curves: Vec<(String, Vec<[f64; 2]>)> = curves
        .iter()
        .map(|(name, roc)| (name.clone(), log_roc_points(roc, floor, 400)))
        .collect();
    log_roc_plot_points(ui, id, height, floor, &curves);
}

/// [`log_roc_plot`] for curves already given as (FPR, TPR) points on linear scales.
pub fn log_roc_plot_points(
    ui: &mut egui::Ui,
    id: &str,
    height: f32,
    floor: f64,
    curves: &[(String, Vec<[f64; 2]>)],
) {
    let lo = floor.log10();
    Plot::new(id)
        .height(height)
        .legend(Legend::default().position(Corner::RightBottom))
        .x_axis_label("log10 FPR")
        .y_axis_label("log10 TPR")
        .include_x(lo)
        .include_y(lo)
        .include_x(0.0)
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |p| {
            p.line(
                Line::new("chance", PlotPoints::from(vec![[lo, lo], [0.0, 0.0]])).color(egui::Color32::GRAY),
            );
            for (k, (name, points)) in curves.iter().enumerate() {
                let pts: Vec<[f64; 2]> = points
                    .iter()
                    .filter(|[x, y]| *x > 1.5 * floor && *y > 1.5 * floor)
                    .map(|[x, y]| [x.log10(), y.log10()])
                    .collect();
                let colour = theme::SERIES[k % theme::SERIES.len()];
                if pts.len() < 40 {
                    p.points(
                        Points::new(name.clone(), PlotPoints::from(pts.clone()))
                            .radius(3.0)
                            .color(colour),
                    );
                }
                // No bands: egui_plot 0.38 merges points of one x into a band and fills between
                // bands, which paints a ROC's vertical steps as solid wedges.
                p.line(
                    Line::new(name.clone(), PlotPoints::from(pts))
                        .color(colour)
                        .allow_band(false),
                );
            }
        });
}

impl PrivacyView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let auto = if ctx.zoo.is_none() && self.diffusion.has_reports() {
            MembershipTab::Diffusion
        } else {
            MembershipTab::Zoo
        };
        let mut tab = self.tab.unwrap_or(auto);
        ui.horizontal(|ui| {
            ui.label("Attacks on:");
            let zoo = ui.selectable_value(&mut tab, MembershipTab::Zoo, "Classifier zoo");
            let diff = ui.selectable_value(&mut tab, MembershipTab::Diffusion, "Diffusion models");
            if zoo.clicked() || diff.clicked() {
                self.tab = Some(tab);
            }
        });
        ui.separator();
        match tab {
            MembershipTab::Zoo => zoo_ui(ui, ctx),
            MembershipTab::Diffusion => self.diffusion.ui(ui, ctx),
        }
    }
}

/// The audited ε lower bound of one attack (Clopper–Pearson over the pooled scores), with both
/// bounds' full statements on hover.
fn audit_cell_ui(ui: &mut egui::Ui, r: &MiaResult) {
    let Some(b) = &r.epsilon_lower_bound else {
        ui.label("—").on_hover_text("Rerun the attack to audit ε");
        return;
    };
    let mut hover = b.summary();
    if let Some(one) = &r.epsilon_one_run {
        hover.push('\n');
        hover.push_str(&one.summary());
    }
    ui.label(format!("{:.2}", b.epsilon)).on_hover_text(hover);
}

fn zoo_ui(ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
    let Some(z) = ctx.zoo else {
        no_zoo_ui(ui, ctx);
        return;
    };
    if z.mia.is_empty() {
        ui.label("No attack results yet: run `rote mia STUDY --attack lira` (or loss, lira-offline, rmia).");
        return;
    }
    egui::Panel::left("roc").default_size(520.0).show(ui, |ui| {
        egui::Grid::new("mia_table")
            .num_columns(5)
            .striped(true)
            .show(ui, |ui| {
                for h in ["Attack", "AUC", "TPR @ 0.1% FPR", "TPR @ 1% FPR", "Audited ε ≥"] {
                    ui.strong(h);
                }
                ui.end_row();
                for r in &z.mia {
                    ui.label(format!("{:?}", r.attack));
                    ui.label(format!("{:.4}", r.auc));
                    ui.label(format!("{:.4}", r.tpr_at_0_1pct_fpr));
                    ui.label(format!("{:.4}", r.tpr_at_1pct_fpr));
                    audit_cell_ui(ui, r);
                    ui.end_row();
                }
            });
        ui.label("ROC, log-log (chance is the diagonal)");
        let curves: Vec<(String, &Roc)> = z
            .mia
            .iter()
            .map(|r| (format!("{:?} (AUC {:.3})", r.attack, r.auc), &r.roc))
            .collect();
        log_roc_plot(ui, "mia_roc", 380.0, 1e-5, &curves);
        for r in &z.mia {
            if let Some(b) = &r.epsilon_lower_bound {
                ui.small(format!("{:?}: {}", r.attack, b.summary()));
            }
        }
        if let Some(dp) = &z.dp {
            let worst = z
                .mia
                .iter()
                .filter_map(|r| r.epsilon_lower_bound.as_ref().map(|b| b.epsilon))
                .fold(0.0f64, f64::max);
            let text = format!(
                "DP-SGD accountant: ε = {:.2} at δ = {:.0e} (σ = {:.2}, C = {}, q = {:.4}, {} steps); \
                 the audited bounds above must not exceed it (largest: {worst:.2})",
                dp.epsilon, dp.delta, dp.noise_multiplier, dp.clip, dp.sample_rate, dp.steps
            );
            let colour = if worst > dp.epsilon {
                theme::ERROR
            } else {
                theme::OK
            };
            ui.label(egui::RichText::new(text).color(colour));
        }
    });
    egui::CentralPanel::default().show(ui, |ui| {
        let r = z
            .mia
            .iter()
            .find(|r| format!("{:?}", r.attack).starts_with("Lira"))
            .unwrap_or(&z.mia[0]);
        ui.label(format!(
            "Most exposed samples under {:?} (per-sample AUC across target models)",
            r.attack
        ));
        let mut order: Vec<usize> = (0..r.vulnerability.len())
            .filter(|&i| r.vulnerability[i].is_finite())
            .collect();
        order.sort_by(|&a, &b| r.vulnerability[b].total_cmp(&r.vulnerability[a]).then(a.cmp(&b)));
        let mem = &z.memorization.mem.mem;
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                for &i in order.iter().take(60) {
                    thumb(ui, ctx.textures, &z.data, i, 56.0, z.is_planted(i)).on_hover_text(format!(
                        "#{i} · {} · vulnerability {:.2} · mem {:.2}",
                        z.data.class_names[z.data.labels[i] as usize],
                        r.vulnerability[i],
                        mem.get(i).copied().unwrap_or(f32::NAN)
                    ));
                }
            });
        });
    });
}
