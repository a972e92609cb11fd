//! The Tabular view's side panel: the finding, the memorization ratio against epochs of every
//! model (with and without augmentation), the chosen model's figures, and fairness bars of a
//! classifier trained on the table.

use egui_plot::{Bar, BarChart, Corner, Legend, Line, Plot, PlotPoints};

use super::TabularView;
use crate::model::Family;
use crate::tabular::augment::Augment;
use crate::tabular::memorization::DistanceRule;
use crate::tabular::train::EpochRecord;
use crate::train::TrainConfig;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::tabular_jobs::{TabModel, TabularRequest};
use crate::ui::theme;

fn ratio_of(e: &EpochRecord, rule: DistanceRule) -> f64 {
    match rule {
        DistanceRule::Code => e.code.ratio,
        DistanceRule::Global => e.global.ratio,
    }
}

/// The last checkpoint's ratio of `m` under `rule`, and its epoch.
fn last_ratio(m: &TabModel, rule: DistanceRule) -> Option<(usize, f64)> {
    m.card.by_epoch.last().map(|e| (e.epoch, ratio_of(e, rule)))
}

/// An unaugmented model trained like `m` (same data, rows, epochs; the same seed preferred).
fn baseline_of<'a>(view: &'a TabularView, m: &TabModel) -> Option<&'a TabModel> {
    let c = &m.card.config;
    let like = |b: &&TabModel| {
        b.card.config.augment == Augment::None
            && b.card.config.data == c.data
            && b.card.config.rows == c.rows
            && b.card.config.epochs == c.epochs
    };
    let same_seed = view
        .models
        .iter()
        .filter(like)
        .find(|b| b.card.config.seed == c.seed);
    same_seed.or_else(|| view.models.iter().find(like))
}

/// The finding in one sentence.
pub fn finding(view: &TabularView) -> String {
    let rule = view.rule.0;
    let Some(m) = view.chosen_model() else {
        return "Choose a model".into();
    };
    let Some((epoch, r)) = last_ratio(m, rule) else {
        return format!("{}: no checkpoint was measured", m.id);
    };
    let own = format!(
        "{:.1} % of {}'s synthetic rows are memorized at epoch {epoch} (their nearest training row \
         is closer than a third of the next)",
        100.0 * r,
        m.id
    );
    if m.card.config.augment == Augment::None {
        let growth = m
            .card
            .by_epoch
            .first()
            .filter(|f| f.epoch < epoch)
            .map(|f| {
                format!(
                    ", up from {:.1} % at epoch {}",
                    100.0 * ratio_of(f, rule),
                    f.epoch
                )
            })
            .unwrap_or_default();
        return format!("{own}{growth}.");
    }
    match baseline_of(view, m).and_then(|b| last_ratio(b, rule).map(|x| (b, x))) {
        Some((b, (_, rb))) if rb > 0.0 => format!(
            "{}: {:.1} % memorized against {:.1} % without augmentation at epoch {epoch} ({:.2}x); \
             TSTR accuracy {:.1} % against {:.1} %.{}",
            m.card.config.augment.label(),
            100.0 * r,
            100.0 * rb,
            r / rb,
            100.0 * m.card.tstr_accuracy,
            100.0 * b.card.tstr_accuracy,
            paper_figure(&m.card.config.data, m.card.config.augment)
        ),
        _ => format!("{own}; train an unaugmented model with the same recipe to compare."),
    }
}

/// The paper's own reduction for TabDDPM on Adult (Fang et al., Table 1), for scale.
fn paper_figure(data: &str, augment: Augment) -> &'static str {
    match (data, augment) {
        ("adult", Augment::TabCutMix) => " The paper reports 0.89x for TabDDPM on Adult (Table 1).",
        ("adult", Augment::TabCutMixPlus) => " The paper reports 0.84x for TabDDPM on Adult (Table 1).",
        _ => "",
    }
}

/// The side panel.
pub fn side_ui(ui: &mut egui::Ui, view: &mut TabularView, ctx: &mut AppCtx<'_>) {
    ratio_plot_ui(ui, view);
    ui.separator();
    figures_ui(ui, view);
    ui.separator();
    fairness_ui(ui, view, ctx);
}

fn ratio_plot_ui(ui: &mut egui::Ui, view: &TabularView) {
    let rule = view.rule.0;
    ui.heading("Memorization ratio against epochs");
    ui.small(format!("distance: {}", rule.label()));
    let chosen = view.chosen.clone();
    Plot::new("tabular_ratio")
        .height(230.0)
        .legend(Legend::default().position(Corner::RightBottom))
        .x_axis_label("epoch")
        .y_axis_label("memorized synthetic rows (%)")
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |p| {
            for m in &view.models {
                let points: Vec<[f64; 2]> = m
                    .card
                    .by_epoch
                    .iter()
                    .map(|e| [e.epoch as f64, 100.0 * ratio_of(e, rule)])
                    .collect();
                let colour = match m.card.config.augment {
                    Augment::None => theme::SERIES[0],
                    Augment::TabCutMix => theme::SERIES[1],
                    Augment::TabCutMixPlus => theme::SERIES[2],
                };
                let width = if chosen.as_ref() == Some(&m.dir) { 3.0 } else { 1.5 };
                let name = format!("{} ({})", m.id, m.card.config.augment.label());
                p.line(
                    Line::new(name, PlotPoints::from(points))
                        .color(colour)
                        .width(width),
                );
            }
        });
}

fn figures_ui(ui: &mut egui::Ui, view: &TabularView) {
    let Some(m) = view.chosen_model() else {
        return;
    };
    let c = &m.card;
    ui.heading(&m.id);
    egui::Grid::new("tabular_figures")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            let mut row = |k: &str, v: String| {
                ui.label(k);
                ui.label(v);
                ui.end_row();
            };
            row("data", format!("{} ({})", c.config.data, c.data_source));
            row(
                "training rows",
                format!("{} (+{} augmented)", c.members.len(), c.augmented_rows),
            );
            if !c.planted.is_empty() {
                row(
                    "planted duplicates",
                    format!("{} rows x{}", c.planted.len(), c.config.dup_factor),
                );
            }
            row("augmentation", c.config.augment.label().to_string());
            row("epochs, seed", format!("{}, {}", c.config.epochs, c.config.seed));
            if let Some(e) = c.by_epoch.last() {
                row(
                    "ratio: code / global",
                    format!("{:.1} % / {:.1} %", 100.0 * e.code.ratio, 100.0 * e.global.ratio),
                );
                row("median DCR (code)", format!("{:.4}", e.code.median_dcr));
            }
            row(
                "TSTR (real-trained)",
                format!(
                    "{:.1} % ({:.1} %)",
                    100.0 * c.tstr_accuracy,
                    100.0 * c.trtr_accuracy
                ),
            );
            row("marginal fidelity", format!("{:.3}", c.quality.marginal_fidelity));
            row(
                "correlation difference",
                format!("{:.3}", c.quality.correlation_difference),
            );
        });
}

/// Classifiers of the study trained on a bundled table.
fn table_classifiers(ctx: &AppCtx<'_>) -> Vec<(String, std::path::PathBuf)> {
    ctx.models
        .iter()
        .filter(|m| {
            crate::data::bundled(&m.card.dataset.name)
                .is_some_and(|b| b.kind == crate::data::BundledKind::Table)
        })
        .map(|m| (m.id.clone(), m.dir.clone()))
        .collect()
}

fn fairness_ui(ui: &mut egui::Ui, view: &mut TabularView, ctx: &mut AppCtx<'_>) {
    ui.heading("Fairness of a classifier on the table");
    let classifiers = table_classifiers(ctx);
    if classifiers.is_empty() {
        ui.label("No classifier of this study was trained on a table.");
        let busy = ctx.jobs.running().iter().any(|j| j.kind == JobKind::Train);
        if ui
            .add_enabled(!busy, egui::Button::new("Train an MLP on Adult (5 epochs)"))
            .on_hover_text("rote train --family mlp --data adult --epochs 5")
            .clicked()
        {
            ctx.commands.push(Command::StartTraining(TrainConfig {
                family: Family::Mlp,
                data: "adult".into(),
                epochs: 5,
                id: "mlp-adult".into(),
                ..TrainConfig::default()
            }));
        }
        return;
    }
    if view
        .classifier
        .as_ref()
        .is_none_or(|c| !classifiers.iter().any(|(id, _)| id == c))
    {
        view.classifier = classifiers.first().map(|(id, _)| id.clone());
    }
    let Some(id) = view.classifier.clone() else {
        return;
    };
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("tabular_classifier")
            .selected_text(&id)
            .show_ui(ui, |ui| {
                for (c, _) in &classifiers {
                    ui.selectable_value(&mut view.classifier, Some(c.clone()), c.as_str());
                }
            });
        let busy = ctx
            .jobs
            .running()
            .iter()
            .any(|j| j.kind == JobKind::TabularFairness);
        let dir = classifiers.iter().find(|(c, _)| *c == id).map(|(_, d)| d.clone());
        if let Some(dir) = dir
            && ui
                .add_enabled(!busy, egui::Button::new("Measure"))
                .on_hover_text("Predictions on every row; the test split's rates per group of 'sex'")
                .clicked()
        {
            ctx.commands
                .push(Command::Tabular(Box::new(TabularRequest::Fairness(dir, None))));
        }
    });
    let Some((fid, f)) = view.fairness.clone() else {
        ui.label("Not measured yet: Measure above");
        return;
    };
    if fid != id {
        ui.label("Not measured yet: Measure above");
        return;
    }
    let r = &f.report;
    let positive = f.classes.last().map_or("", String::as_str);
    ui.label(
        egui::RichText::new(format!(
            "{} minus {}: statistical parity {:+.3}, equal opportunity {:+.3}, equalized odds {:.3} \
             ({} test rows, positive class '{positive}')",
            f.first,
            f.second,
            r.statistical_parity_difference,
            r.equal_opportunity_difference,
            r.equalized_odds_difference,
            f.rows
        ))
        .strong(),
    );
    let p = r.positive_class;
    let mut predicted = Vec::new();
    let mut tpr = Vec::new();
    for (k, g) in r.groups.iter().enumerate() {
        let x = k as f64 * 3.0;
        let rate = g.predicted_rate.get(p).copied().unwrap_or(0.0);
        predicted.push(
            Bar::new(x, rate)
                .name(format!("{}: predicted '{positive}'", g.group))
                .width(0.9)
                .fill(theme::SERIES[0]),
        );
        let t = g.true_positive_rate.get(p).copied().flatten().unwrap_or(0.0);
        tpr.push(
            Bar::new(x + 1.0, t)
                .name(format!("{}: true-positive rate", g.group))
                .width(0.9)
                .fill(theme::SERIES[1]),
        );
    }
    let names: Vec<String> = r.groups.iter().map(|g| g.group.clone()).collect();
    Plot::new("tabular_fairness")
        .height(170.0)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .x_axis_formatter(move |mark, _| {
            // Each group's name under its first bar (x = 3k, a whole number the axis marks).
            let k = (mark.value / 3.0).round();
            if (mark.value - 3.0 * k).abs() < 0.01 && k >= 0.0 {
                names.get(k as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, |pl| {
            pl.bar_chart(BarChart::new("predicted positive rate", predicted));
            pl.bar_chart(BarChart::new("true-positive rate", tpr));
        });
}
