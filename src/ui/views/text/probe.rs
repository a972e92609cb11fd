//! The Text view's activation-probe panel (`rote lm-probe`, spec 11 §B): the finding, probe
//! accuracy per layer beside the logit-only baseline, and the layer × position heatmap of probe
//! probabilities over a memorized and a never-seen passage (the LayerMem heatmap's sibling:
//! rows are residual layers, embeddings on top; columns are token positions).

use crate::lm::probe_report::{HeatmapPassage, ProbeReport};
use crate::lm::trace::Site;
use crate::ui::widgets::{HeatmapData, heatmap_ui};

/// Draws the panel for a cached report; `key` names the report (texture cache).
pub fn probe_panel(ui: &mut egui::Ui, report: &ProbeReport, key: &str) {
    ui.label(egui::RichText::new(report.finding()).strong());
    ui.add_space(4.0);
    accuracy_bars(ui, report);
    ui.add_space(6.0);
    for (i, h) in report.heatmap.iter().enumerate() {
        passage_heatmap(ui, h, &format!("{key}-{i}"));
        ui.add_space(6.0);
    }
}

/// One bar per site, with the baseline and chance as lines.
fn accuracy_bars(ui: &mut egui::Ui, report: &ProbeReport) {
    use egui_plot::{Bar, BarChart, HLine, Legend, Plot};
    let bars: Vec<Bar> = report
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let colour = match p.site {
                Site::Residual => egui::Color32::from_rgb(70, 130, 200),
                Site::Mlp => egui::Color32::from_rgb(220, 140, 60),
            };
            Bar::new(i as f64, p.metrics.accuracy)
                .name(&p.name)
                .fill(colour)
                .width(0.7)
        })
        .collect();
    let names: Vec<String> = report.probes.iter().map(|p| p.name.clone()).collect();
    Plot::new("probe-accuracy")
        .height(170.0)
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
        .include_y(0.0)
        .include_y(1.3)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .y_axis_label("held-out accuracy")
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("probe accuracy per site", bars));
            plot.hline(
                HLine::new("logit-only baseline", report.logit_baseline.accuracy)
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
            plot.hline(HLine::new("chance", report.chance).style(egui_plot::LineStyle::dotted_dense()));
        });
}

/// Rows: residual layers; columns: the tokens each position predicts; hover names the token.
fn passage_heatmap(ui: &mut egui::Ui, h: &HeatmapPassage, key: &str) {
    let memorized = h.labels.iter().filter(|l| **l == Some(true)).count();
    ui.label(format!(
        "{} — {} ({} tokens labelled memorized). Probe P(memorized) per residual layer (rows; \
         residual 0 = the embeddings, residual l = after block l - 1) and token (columns):",
        h.source,
        if h.member {
            "planted often, memorized"
        } else {
            "never seen"
        },
        memorized
    ));
    let values: Vec<Vec<Option<f32>>> = h
        .probs
        .iter()
        .map(|row| row.iter().map(|&p| p.is_finite().then_some(p as f32)).collect())
        .collect();
    let width = (ui.available_width() - 90.0).max(200.0);
    let height = (values.len() as f32 * 18.0).max(50.0);
    let hit = ui
        .horizontal(|ui| {
            ui.vertical(|ui| {
                ui.spacing_mut().item_spacing.y = 0.0;
                for l in 0..values.len() {
                    let (rect, _) = ui.allocate_exact_size(
                        egui::vec2(80.0, height / values.len().max(1) as f32),
                        egui::Sense::hover(),
                    );
                    ui.painter().text(
                        rect.right_center(),
                        egui::Align2::RIGHT_CENTER,
                        format!("residual {l}"),
                        egui::FontId::proportional(12.0),
                        ui.visuals().text_color(),
                    );
                }
            });
            heatmap_ui(
                ui,
                &HeatmapData {
                    values: &values,
                    min: 0.0,
                    max: 1.0,
                    key,
                },
                egui::vec2(width, height),
            )
        })
        .inner;
    let line = hit.hovered.map_or_else(
        || "Hover a cell for its token.".to_string(),
        |(r, c)| {
            let token = h.tokens.get(c + 1).cloned().unwrap_or_default();
            let label = match h.labels.get(c) {
                Some(Some(true)) => "labelled memorized",
                Some(Some(false)) => "labelled not memorized",
                _ => "unlabelled",
            };
            let p = h
                .probs
                .get(r)
                .and_then(|row: &Vec<f64>| row.get(c).copied())
                .unwrap_or(f64::NAN);
            let layer = format!("residual {r}");
            format!(
                "token {} {token:?} at {layer}: P(memorized) = {p:.2} ({label})",
                c + 1
            )
        },
    );
    ui.weak(line);
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    use super::*;

    /// The shipped demo report (`rote lm-probe` on the demo GPT) drawn as the tab draws it.
    #[test]
    fn panel_states_the_finding_and_names_the_heatmap_passages() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/demo/results/lm/gpt-demo/probe-card.json");
        let report = crate::lm::study::load_probe_report(&path).unwrap();
        assert_eq!(report.heatmap.len(), 2);
        let finding = report.finding();
        let mut h = Harness::builder()
            .with_size(egui::vec2(1200.0, 800.0))
            .build_ui(move |ui| probe_panel(ui, &report, "test"));
        h.run();
        h.get_by_label(&finding);
        h.get_by_label_contains("planted often, memorized");
        h.get_by_label_contains("never seen");
    }
}
