//! The app's Defences side: comparing the study's zoos and training a defended variant.

use super::App;
use crate::defence::compare;
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::toasts::Level;

impl App {
    /// Reads the saved comparison (or measures it), after training `baseline`'s defended variant
    /// when one is given.
    pub(super) fn measure_defences(&mut self, train: Option<(String, compare::Defence)>) {
        let Some(study) = self.study.clone() else {
            self.toasts.push(Level::Error, "open a study first");
            return;
        };
        let label = match &train {
            Some((b, compare::Defence::Dp(s))) => format!(
                "Training the DP-SGD variant of {b} (ε = {})",
                s.epsilon.unwrap_or(f64::NAN)
            ),
            Some((b, compare::Defence::Adversarial(a))) => {
                format!("Training the {} variant of {b}", a.describe())
            }
            None => "Comparing the study's zoos".into(),
        };
        let fresh = train.is_some() || self.defences_view.report.is_some();
        self.spawn(JobKind::Defences, &label, move |ctx| {
            let trained = match &train {
                Some((baseline, defence)) => {
                    Some(compare::train_variant(&study, baseline, defence, None, ctx)?)
                }
                None => None,
            };
            let report = match compare::load(&study) {
                Ok(r) if !fresh => r,
                _ => {
                    let r = compare::defences_report(&study, ctx)?;
                    compare::save(&study, &r)?;
                    r
                }
            };
            Ok(JobResult::Defences(Box::new(report), trained))
        });
    }

    /// Shows a comparison.
    pub(super) fn on_defences(&mut self, report: compare::DefencesReport, trained: Option<String>) {
        if let Some(id) = trained {
            self.toasts
                .push(Level::Ok, format!("Trained {id}; its row is under its baseline"));
            self.load_zoo_results();
        }
        self.defences_view.report = Some(report);
    }
}
