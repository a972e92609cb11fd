//! Defences view: what a defence changes. The study's zoos side by side, each defended variant
//! under its baseline (`defence::compare`): a table of utility and every memorization measurement,
//! a privacy–utility plot (test accuracy against the chosen leakage measure), and a form that
//! trains a baseline's defended variant (DP-SGD, PGD adversarial training, DeMem) as a job.

use egui_plot::{Line, Plot, PlotPoints, Points, Text};

use crate::defence::compare::{DEMEM_NO_EFFECT, Defence, DefenceRow, DefencesReport, demem_comparisons};
use crate::defence::demem::{Adversarial, Demem};
use crate::defence::dp_sgd::DpSettings;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

/// The leakage measure on the plot's x axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Leakage {
    /// LiRA TPR at 0.1 % FPR.
    TprLowFpr,
    /// LiRA AUC.
    #[default]
    Auc,
    /// Audited ε lower bound.
    AuditedEpsilon,
    /// Mean mem.
    MeanMem,
}

impl Leakage {
    const ALL: [Self; 4] = [Self::Auc, Self::TprLowFpr, Self::AuditedEpsilon, Self::MeanMem];

    fn name(self) -> &'static str {
        match self {
            Self::TprLowFpr => "LiRA TPR @ 0.1% FPR",
            Self::Auc => "LiRA AUC",
            Self::AuditedEpsilon => "audited ε (lower bound)",
            Self::MeanMem => "mean mem",
        }
    }

    fn of(self, r: &DefenceRow) -> Option<f64> {
        match self {
            Self::TprLowFpr => Some(r.lira_tpr_at_0_1pct_fpr),
            Self::Auc => Some(r.lira_auc),
            Self::AuditedEpsilon => r.audited_epsilon,
            Self::MeanMem => Some(r.mem_mean),
        }
        .filter(|v| v.is_finite())
    }
}

/// The defence the form trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefenceKind {
    /// DP-SGD at a target ε.
    #[default]
    Dp,
    /// PGD adversarial training.
    PgdAt,
    /// PGD adversarial training with DeMem-style de-memorization.
    Demem,
}

impl DefenceKind {
    const ALL: [Self; 3] = [Self::Dp, Self::PgdAt, Self::Demem];

    fn name(self) -> &'static str {
        match self {
            Self::Dp => "DP-SGD",
            Self::PgdAt => "PGD adversarial training",
            Self::Demem => "PGD-AT + DeMem-style",
        }
    }
}

/// Defences view state.
pub struct DefencesView {
    /// The comparison shown (None: not read yet).
    pub report: Option<DefencesReport>,
    /// Whether a comparison was asked for since the study opened.
    pub requested: bool,
    /// The plot's x axis.
    pub leakage: Leakage,
    /// The baseline the form trains a variant of.
    pub baseline: Option<String>,
    /// The form's target ε.
    pub epsilon: f64,
    /// The form's clipping norm.
    pub clip: f64,
    /// The defence the form trains.
    pub kind: DefenceKind,
    /// The form's PGD radius ε.
    pub adv_epsilon: f64,
}

impl Default for DefencesView {
    fn default() -> Self {
        Self {
            report: None,
            requested: false,
            leakage: Leakage::default(),
            baseline: None,
            epsilon: 2.0,
            clip: 1.0,
            kind: DefenceKind::default(),
            adv_epsilon: 0.1,
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

impl DefencesView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.heading("Defences: what a defence changes");
        if ctx.study.is_none() {
            ui.label("Open a study first.");
            return;
        }
        let busy = ctx.jobs.is_running(JobKind::Defences);
        if self.report.is_none() && !self.requested && !busy {
            self.requested = true;
            ctx.commands.push(Command::MeasureDefences);
        }
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy, egui::Button::new("Measure again"))
                .on_hover_text("Re-read every zoo of the study and its reports")
                .clicked()
            {
                ctx.commands.push(Command::MeasureDefences);
            }
            for j in ctx.jobs.running().iter().filter(|j| j.kind == JobKind::Defences) {
                let p = j.handle.progress();
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 320.0, ctx.commands);
            }
        });
        let Some(report) = &self.report else {
            ui.label("Measuring the study's zoos…");
            return;
        };
        if report.rows.is_empty() && report.diffusion.is_empty() {
            ui.label(
                "This study has no zoo yet. A defence is compared with the same recipe without it: \
                 train a zoo in the Memorization view (Train zoo…), then its DP-SGD variant here.",
            );
            return;
        }
        let baselines: Vec<String> = report
            .rows
            .iter()
            .filter(|r| r.defence == "none" && r.variant_of.is_none())
            .map(|r| r.zoo.clone())
            .collect();
        let report = report.clone();
        self.form_ui(ui, ctx, &baselines, busy);
        for line in findings(&report) {
            ui.label(egui::RichText::new(line).strong());
        }
        ui.separator();
        table_ui(ui, &report);
        if !report.diffusion.is_empty() {
            ui.separator();
            diffusion_table_ui(ui, &report);
        }
        ui.separator();
        ui.horizontal(|ui| {
            let label = ui.label("Privacy–utility: test accuracy against");
            egui::ComboBox::from_id_salt("defence_leakage")
                .selected_text(self.leakage.name())
                .show_ui(ui, |ui| {
                    for l in Leakage::ALL {
                        ui.selectable_value(&mut self.leakage, l, l.name());
                    }
                })
                .response
                .labelled_by(label.id);
        });
        plot_ui(ui, &report, self.leakage);
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, baselines: &[String], busy: bool) {
        if baselines.is_empty() {
            return;
        }
        let chosen = self
            .baseline
            .clone()
            .filter(|b| baselines.contains(b))
            .unwrap_or_else(|| baselines[0].clone());
        let mut chosen_now = chosen.clone();
        ui.horizontal(|ui| {
            let label = ui.label("Train the");
            egui::ComboBox::from_id_salt("defence_kind")
                .selected_text(self.kind.name())
                .show_ui(ui, |ui| {
                    for k in DefenceKind::ALL {
                        ui.selectable_value(&mut self.kind, k, k.name());
                    }
                })
                .response
                .labelled_by(label.id);
            let label = ui.label("variant of");
            egui::ComboBox::from_id_salt("defence_baseline")
                .selected_text(&chosen_now)
                .show_ui(ui, |ui| {
                    for b in baselines {
                        ui.selectable_value(&mut chosen_now, b.clone(), b);
                    }
                })
                .response
                .labelled_by(label.id);
            let (defence, tip) = match self.kind {
                DefenceKind::Dp => {
                    let label = ui.label("at ε");
                    ui.add(
                        egui::DragValue::new(&mut self.epsilon)
                            .range(0.1..=64.0)
                            .speed(0.05),
                    )
                    .labelled_by(label.id);
                    let label = ui.label("(δ = 1e-5), clip C");
                    ui.add(
                        egui::DragValue::new(&mut self.clip)
                            .range(0.01..=100.0)
                            .speed(0.01),
                    )
                    .labelled_by(label.id);
                    let settings = DpSettings {
                        clip: self.clip,
                        epsilon: Some(self.epsilon),
                        noise_multiplier: None,
                        delta: 1e-5,
                    };
                    (
                        Defence::Dp(settings),
                        "The baseline's recipe, data and model count with DP-SGD (per-sample clipping, \
                         Gaussian noise calibrated by the RDP accountant, Poisson sampling); then its \
                         reports, and this table again. Tuning on private data is not accounted for.",
                    )
                }
                DefenceKind::PgdAt | DefenceKind::Demem => {
                    let label = ui.label("at PGD radius ε");
                    ui.add(
                        egui::DragValue::new(&mut self.adv_epsilon)
                            .range(0.01..=0.5)
                            .speed(0.005),
                    )
                    .labelled_by(label.id);
                    let demem = (self.kind == DefenceKind::Demem).then(Demem::default);
                    (
                        Defence::Adversarial(Adversarial::new(self.adv_epsilon, 3, demem)),
                        "The baseline's recipe, data and model count with PGD adversarial training \
                         (Madry et al. 2018, PGD-3 in training, PGD-20 for robust accuracy); DeMem-style \
                         adds a hinge that keeps the 10% highest-risk rows of each model from being \
                         fitted below a typical row's loss (spec 13 §B; the paper's exact penalty is not \
                         public). Then its reports, and this table again.",
                    )
                }
            };
            if ui
                .add_enabled(!busy, egui::Button::new("Train defended variant"))
                .on_hover_text(tip)
                .clicked()
            {
                ctx.commands.push(Command::TrainDefence {
                    baseline: chosen_now.clone(),
                    defence,
                });
            }
        });
        self.baseline = Some(chosen_now);
    }
}

/// One sentence per defended variant: what changed against its baseline.
fn findings(report: &DefencesReport) -> Vec<String> {
    let diffusion = report.diffusion.iter().filter_map(|v| {
        let b = report
            .diffusion
            .iter()
            .find(|b| Some(&b.model) == v.variant_of.as_ref())?;
        Some(format!(
            "{} ({}): {} of {} generations extracted instead of {}, planted duplicates extracted {} instead of {}",
            v.model,
            v.defence,
            v.n_extracted,
            v.samples,
            b.n_extracted,
            opt(v.planted_dup_extracted_frac, 2),
            opt(b.planted_dup_extracted_frac, 2)
        ))
    });
    report
        .rows
        .iter()
        .filter_map(|v| {
            let b = report.rows.iter().find(|b| Some(&b.zoo) == v.variant_of.as_ref())?;
            let recall = match (b.planted_recall, v.planted_recall) {
                (Some(x), Some(y)) => format!(", planted-mislabel recall {x:.2} to {y:.2}"),
                _ => String::new(),
            };
            let robust = v
                .robust_accuracy
                .map(|r| format!(", robust accuracy {:.1}%", 100.0 * r))
                .unwrap_or_default();
            Some(format!(
                "{} ({}): LiRA AUC {:.3} to {:.3}{recall}, mean mem {:.3} to {:.3}, at test accuracy {:.1}% to {:.1}%{robust}",
                v.zoo,
                v.defence,
                b.lira_auc,
                v.lira_auc,
                b.mem_mean,
                v.mem_mean,
                100.0 * b.test_accuracy,
                100.0 * v.test_accuracy
            ))
        })
        .chain(diffusion)
        .chain(demem_notes(report))
        .collect()
}

/// For a DeMem-style variant that did not lower LiRA against its PGD-AT sibling: why.
fn demem_notes(report: &DefencesReport) -> Vec<String> {
    demem_comparisons(&report.rows)
        .iter()
        .filter(|c| !c.lowered_lira())
        .map(|c| {
            format!(
                "{}: DeMem-style did not lower LiRA against {} (AUC {:.3} vs {:.3}): {DEMEM_NO_EFFECT}.",
                c.demem.zoo, c.pgd_at.zoo, c.demem.lira_auc, c.pgd_at.lira_auc
            )
        })
        .collect()
}

fn table_ui(ui: &mut egui::Ui, report: &DefencesReport) {
    use egui_extras::{Column, TableBuilder};
    let heads = [
        ("zoo", "Zoo id; a defended variant (>) sits under its baseline"),
        ("defence", "What was changed"),
        ("test acc", "Mean test-split accuracy of the zoo's models"),
        (
            "robust acc",
            "Mean test-split accuracy under PGD-20 (adversarially trained zoos; – when not measured)",
        ),
        ("LiRA AUC", "Area under LiRA's ROC (Carlini et al. 2022)"),
        ("TPR@0.1%", "LiRA's true-positive rate at 0.1% false positives"),
        (
            "audited ε ≥",
            "Lower bound on ε from LiRA's ROC: one-sided Clopper–Pearson, Bonferroni over thresholds, δ = 1e-5",
        ),
        (
            "DP ε",
            "The DP-SGD accountant's ε (RDP); the audited bound must not exceed it",
        ),
        (
            "mean mem",
            "Mean Feldman–Zhang memorization over the training split",
        ),
        ("planted recall", "Planted mislabels among the top mem scores"),
    ];
    TableBuilder::new(ui)
        .striped(true)
        .column(Column::auto().at_least(250.0))
        .column(Column::auto().at_least(200.0))
        .columns(Column::auto().at_least(70.0), heads.len() - 2)
        .header(22.0, |mut h| {
            for (name, tip) in heads {
                h.col(|ui| {
                    ui.strong(name).on_hover_text(tip);
                });
            }
        })
        .body(|mut body| {
            for r in &report.rows {
                body.row(20.0, |mut row| {
                    row.col(|ui| {
                        let name = if r.variant_of.is_some() {
                            format!("  > {}", r.zoo)
                        } else {
                            r.zoo.clone()
                        };
                        ui.label(name);
                    });
                    row.col(|ui| {
                        ui.label(&r.defence);
                    });
                    row.col(|ui| {
                        ui.label(format!("{:.1}%", 100.0 * r.test_accuracy));
                    });
                    row.col(|ui| {
                        ui.label(opt(r.robust_accuracy.map(|v| 100.0 * v), 1));
                    });
                    row.col(|ui| {
                        ui.label(format!("{:.3}", r.lira_auc));
                    });
                    row.col(|ui| {
                        ui.label(format!("{:.2}%", 100.0 * r.lira_tpr_at_0_1pct_fpr));
                    });
                    row.col(|ui| {
                        let over =
                            matches!((r.audited_epsilon, r.accountant_epsilon), (Some(a), Some(e)) if a > e);
                        let text = egui::RichText::new(opt(r.audited_epsilon, 2));
                        ui.label(if over { text.color(theme::ERROR) } else { text })
                            .on_hover_text(if over {
                                "exceeds the accountant's ε: the accountant or the training is wrong"
                            } else {
                                "a lower bound: the true ε is at least this"
                            });
                    });
                    row.col(|ui| {
                        ui.label(opt(r.accountant_epsilon, 2));
                    });
                    row.col(|ui| {
                        ui.label(format!("{:.3}", r.mem_mean));
                    });
                    row.col(|ui| {
                        ui.label(opt(r.planted_recall, 2));
                    });
                });
            }
        });
}

/// Diffusion models and their deduplicated variants: extraction (Carlini et al. 2023).
fn diffusion_table_ui(ui: &mut egui::Ui, report: &DefencesReport) {
    use egui_extras::{Column, TableBuilder};
    let heads = [
        (
            "diffusion model",
            "A deduplicated variant (>) sits under the model with its recipe",
        ),
        ("defence", "What was changed"),
        (
            "extracted",
            "Generations within the extraction threshold of a training image",
        ),
        ("planted dups", "Fraction of the planted duplicates extracted"),
        ("singles", "Fraction of the single training images extracted"),
        ("final loss", "Training loss at the end (utility proxy)"),
    ];
    ui.push_id("diffusion_defences", |ui| {
        TableBuilder::new(ui)
            .striped(true)
            .column(Column::auto().at_least(250.0))
            .column(Column::auto().at_least(200.0))
            .columns(Column::auto().at_least(70.0), heads.len() - 2)
            .header(22.0, |mut h| {
                for (name, tip) in heads {
                    h.col(|ui| {
                        ui.strong(name).on_hover_text(tip);
                    });
                }
            })
            .body(|mut body| {
                for r in &report.diffusion {
                    body.row(20.0, |mut row| {
                        row.col(|ui| {
                            ui.label(match r.variant_of {
                                Some(_) => format!("  > {}", r.model),
                                None => r.model.clone(),
                            });
                        });
                        row.col(|ui| {
                            ui.label(&r.defence);
                        });
                        row.col(|ui| {
                            ui.label(format!("{} of {}", r.n_extracted, r.samples));
                        });
                        row.col(|ui| {
                            ui.label(opt(r.planted_dup_extracted_frac, 2));
                        });
                        row.col(|ui| {
                            ui.label(opt(r.singleton_extracted_frac, 2));
                        });
                        row.col(|ui| {
                            ui.label(opt(r.final_loss, 4));
                        });
                    });
                }
            });
    });
}

fn plot_ui(ui: &mut egui::Ui, report: &DefencesReport, leakage: Leakage) {
    // Rates in percent.
    let scale = if leakage == Leakage::TprLowFpr { 100.0 } else { 1.0 };
    let point = |r: &DefenceRow| leakage.of(r).map(|x| [x * scale, 100.0 * r.test_accuracy]);
    let max_x = report
        .rows
        .iter()
        .filter_map(|r| point(r).map(|p| p[0]))
        .fold(0.0f64, f64::max);
    let x_name = if scale > 1.0 {
        format!("{} (%)", leakage.name())
    } else {
        leakage.name().to_string()
    };
    Plot::new("defences_tradeoff")
        .height(ui.available_height().max(220.0))
        .x_axis_label(x_name)
        .y_axis_label("test accuracy (%)")
        .include_y(0.0)
        .include_y(100.0)
        // AUC from chance (0.5); the others from 0.
        .include_x(if leakage == Leakage::Auc { 0.5 } else { 0.0 })
        .include_x(if leakage == Leakage::Auc {
            max_x + 0.05
        } else {
            max_x * 1.25 + 1e-9
        })
        .allow_scroll(false)
        .show(ui, |p| {
            for (k, r) in report.rows.iter().enumerate() {
                let Some(pt) = point(r) else { continue };
                let colour = theme::SERIES[k % theme::SERIES.len()];
                // A variant is joined to its baseline: the arrow of what the defence changed.
                if let Some(base) = r
                    .variant_of
                    .as_ref()
                    .and_then(|b| report.rows.iter().find(|x| &x.zoo == b))
                    .and_then(point)
                {
                    p.line(
                        Line::new(
                            format!("{} from its baseline", r.zoo),
                            PlotPoints::from(vec![base, pt]),
                        )
                        .color(colour),
                    );
                }
                p.points(
                    Points::new(r.zoo.clone(), PlotPoints::from(vec![pt]))
                        .radius(6.0)
                        .color(colour),
                );
                p.text(
                    Text::new(r.zoo.clone(), pt.into(), format!("  {}", r.zoo))
                        .anchor(egui::Align2::LEFT_CENTER),
                );
            }
        });
}
