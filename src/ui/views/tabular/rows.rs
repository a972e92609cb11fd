//! The Tabular view's memorized rows: each memorized synthetic row above its nearest training row,
//! closest pairs first; equal cells green, the training row marked when it was planted.

use egui_extras::{Column, TableBuilder};

use super::TabularView;
use crate::tabular::memorization::DistanceRule;
use crate::ui::theme;

/// Pairs shown at most (the CSV from `rote report` has all of them).
const SHOWN: usize = 500;

/// The rows table.
pub fn rows_ui(ui: &mut egui::Ui, view: &TabularView) {
    let Some(chosen) = view.chosen.as_ref() else {
        return;
    };
    let twins = match &view.twins {
        Some((dir, rule, t)) if dir == chosen && *rule == view.rule.0 => t.clone(),
        _ => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Measuring the memorized rows…");
            });
            return;
        }
    };
    ui.heading(format!(
        "Memorized synthetic rows beside their training twins: {} of {}",
        twins.rows.len(),
        twins.n_synthetic
    ));
    ui.small(format!(
        "{}; ratio {:.1} %, memorization AUC {:.3}. Green cells equal the training row's.",
        twins.rule.label(),
        100.0 * twins.summary.ratio,
        twins.summary.auc
    ));
    if twins.rule == DistanceRule::Code {
        ui.small(
            "The reference code's distance takes raw numeric differences (large-valued columns \
             such as fnlwgt dominate) min-max scaled per synthetic row, so the nearest row's \
             numeric part is 0 and d₁/d₂ can be 0 where some numbers differ. 'global min-max' \
             scales every column once: its twins agree in (nearly) every cell.",
        );
    }
    if twins.rows.is_empty() {
        ui.label(
            "No synthetic row is closer to one training row than a third of its distance to the \
             next: nothing is memorized by this rule. Train longer or on fewer rows, or plant \
             duplicates (rote train-tabular --plant-duplicates 10), to see copying.",
        );
        return;
    }
    let planted = twins.rows.iter().filter(|t| t.planted).count();
    if planted > 0 {
        ui.label(format!("{planted} of the twins are planted duplicates"));
    }
    let n = twins.rows.len().min(SHOWN);
    let mut table = TableBuilder::new(ui)
        .id_salt("tabular_rows")
        .striped(true)
        .resizable(true)
        .column(Column::auto().at_least(120.0))
        .column(Column::auto().at_least(48.0));
    for _ in &twins.header {
        table = table.column(Column::auto().at_least(56.0).clip(true));
    }
    table
        .header(22.0, |mut header| {
            header.col(|ui| {
                ui.strong("row");
            });
            header.col(|ui| {
                ui.strong("d₁/d₂");
            });
            for h in &twins.header {
                header.col(|ui| {
                    ui.strong(h);
                });
            }
        })
        .body(|body| {
            body.rows(20.0, 2 * n, |mut row| {
                let k = row.index();
                let t = &twins.rows[k / 2];
                let synthetic = k % 2 == 0;
                row.col(|ui| {
                    if synthetic {
                        ui.label(format!("synthetic #{}", t.synthetic_row));
                    } else if t.planted {
                        ui.colored_label(
                            theme::DUPLICATE,
                            format!("training #{} (planted)", t.training_row),
                        )
                        .on_hover_text("This training row was planted as a duplicate");
                    } else {
                        ui.weak(format!("training #{}", t.training_row));
                    }
                });
                row.col(|ui| {
                    if synthetic {
                        ui.label(format!("{:.3}", t.ratio));
                    }
                });
                for (a, b) in t.synthetic.iter().zip(&t.training) {
                    let cell = if synthetic { a } else { b };
                    row.col(|ui| {
                        if a == b {
                            ui.colored_label(theme::OK, cell);
                        } else {
                            ui.label(cell);
                        }
                    });
                }
            });
        });
}
