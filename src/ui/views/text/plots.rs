//! The Text view's side panel: the finding (exact-match fraction per insertion count) and the
//! membership ROC per attack on log–log axes.

use egui_plot::{Bar, BarChart, Plot};

use crate::lm::extract_report::{LmExtractReport, headline};
use crate::lm::mia_report::{LmMiaReport, finding_lines};
use crate::ui::text_jobs::LoadedText;
use crate::ui::theme;
use crate::ui::views::privacy::log_roc_plot_points;

/// How a group of insertions is named.
pub fn group_label(insertions: u32) -> String {
    match insertions {
        0 => "held out".into(),
        n => format!("{n}x"),
    }
}

/// The side panel: extraction by insertions, then membership inference.
pub fn side_ui(ui: &mut egui::Ui, loaded: &LoadedText) {
    ui.heading("Extraction");
    match &loaded.extract {
        Some(r) => groups_ui(ui, r),
        None => {
            ui.label("Not measured yet: Run extraction above");
        }
    }
    ui.separator();
    ui.heading("Membership inference");
    match &loaded.mia {
        Some(r) => mia_ui(ui, r),
        None if loaded.card.is_some() => {
            ui.label("Not measured yet: Run membership inference above");
        }
        None => {
            ui.label(
                "Needs known members and non-members: the card's passages, or `rote lm-mia MODEL \
                 --members FILE --nonmembers FILE`",
            );
        }
    }
}

/// The finding in a sentence, the exact-match fraction per insertion count as bars and a table.
fn groups_ui(ui: &mut egui::Ui, r: &LmExtractReport) {
    ui.label(egui::RichText::new(headline(r)).strong());
    if !r.skipped.is_empty() {
        ui.small(format!(
            "{} documents shorter than {} tokens left out",
            r.skipped.len(),
            r.options.prefix_tokens + r.options.suffix_tokens
        ));
    }
    if r.groups.is_empty() {
        return;
    }
    let labels: Vec<String> = r.groups.iter().map(|g| group_label(g.insertions)).collect();
    let bars: Vec<Bar> = r
        .groups
        .iter()
        .enumerate()
        .map(|(k, g)| {
            Bar::new(k as f64, g.figures.exact_frac)
                .name(format!("{}: {}/{}", labels[k], g.figures.exact, g.figures.n))
                .fill(theme::SERIES[0])
                .width(0.6)
        })
        .collect();
    let axis = labels.clone();
    Plot::new("text_groups")
        .height(150.0)
        .y_axis_label("exact-match fraction")
        .x_axis_label("insertions")
        .include_y(0.0)
        .include_y(1.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .x_axis_formatter(move |mark, _| {
            let k = mark.value.round();
            if (mark.value - k).abs() > 1e-6 || k < 0.0 {
                return String::new();
            }
            axis.get(k as usize).cloned().unwrap_or_default()
        })
        .show(ui, |p| p.bar_chart(BarChart::new("exact match", bars)));
    egui::Grid::new("text_groups_table").striped(true).show(ui, |ui| {
        for h in ["Times planted", "Exact", "Token match", "Longest run"] {
            ui.strong(h);
        }
        ui.end_row();
        for (g, label) in r.groups.iter().zip(&labels).rev() {
            ui.label(label);
            ui.label(format!("{}/{}", g.figures.exact, g.figures.n));
            ui.label(format!("{:.2}", g.figures.token_match));
            ui.label(g.figures.longest_match.to_string());
            ui.end_row();
        }
    });
}

/// Named curves of (FPR, TPR) points.
pub type Curves = Vec<(String, Vec<[f64; 2]>)>;

/// The ROC points of every attack, zero rates clamped to 1/n so they stay on the log axes, and
/// the floor of the plot's axes.
pub fn roc_curves(r: &LmMiaReport) -> (f64, Curves) {
    let (n_mem, n_non) = (r.n_members.max(1) as f64, r.n_nonmembers.max(1) as f64);
    let floor = 0.5 / n_mem.max(n_non);
    let curves = r
        .attacks
        .iter()
        .map(|a| {
            let mut pts: Vec<[f64; 2]> = a
                .roc
                .fpr
                .iter()
                .zip(&a.roc.tpr)
                .map(|(&f, &t)| [f.max(1.0 / n_non), t.max(1.0 / n_mem)])
                .collect();
            // Clamping repeats points; a path through repeated points draws spikes at the joins.
            pts.dedup();
            (
                format!(
                    "{} AUC {:.2} [{:.2}, {:.2}]",
                    a.attack, a.auc, a.auc_ci[0], a.auc_ci[1]
                ),
                pts,
            )
        })
        .collect();
    (floor, curves)
}

fn mia_ui(ui: &mut egui::Ui, r: &LmMiaReport) {
    ui.label(format!(
        "{} planted passages (members) against {} held out; ROC on log–log axes, zero rates shown at 1/n",
        r.n_members, r.n_nonmembers
    ));
    let (floor, curves) = roc_curves(r);
    log_roc_plot_points(ui, "text_roc", 260.0, floor, &curves);
    egui::Grid::new("text_attacks").striped(true).show(ui, |ui| {
        for h in ["Attack", "AUC", "95% CI", "TPR @ 1% FPR", "TPR @ 0.1% FPR"] {
            ui.strong(h);
        }
        ui.end_row();
        for a in &r.attacks {
            ui.label(&a.attack);
            ui.label(format!("{:.3}", a.auc));
            ui.label(format!("{:.2}-{:.2}", a.auc_ci[0], a.auc_ci[1]));
            ui.label(format!("{:.2}", a.tpr_at_1pct_fpr));
            ui.label(format!("{:.2}", a.tpr_at_0_1pct_fpr));
            ui.end_row();
        }
    });
    if let Some(last) = finding_lines(r).last().filter(|_| r.n_nonmembers < 1000) {
        ui.small(last);
    }
    if !r.by_insertions.is_empty() {
        ui.label("AUC per planted group against the held-out passages");
        egui::Grid::new("text_mia_groups").striped(true).show(ui, |ui| {
            ui.strong("Times planted");
            for (name, _) in &r.by_insertions[0].auc {
                ui.strong(name);
            }
            ui.end_row();
            for g in &r.by_insertions {
                ui.label(format!("{} ({} passages)", group_label(g.insertions), g.n));
                for (_, auc) in &g.auc {
                    ui.label(format!("{auc:.2}"));
                }
                ui.end_row();
            }
        });
    }
}
