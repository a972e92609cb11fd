//! The app's inversion side: opening a classifier's saved inversions, running inversions and
//! exporting the grid.

use std::path::Path;
use std::sync::Arc;

use super::App;
use crate::data::Dataset;
use crate::invert::{InversionReport, Method};
use crate::ui::invert_jobs::{self as vj, InvertRequest, LoadedInversion};
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::toasts::Level;
use crate::ui::views::InversionView;

impl App {
    /// Opens the view's model, or picks the study's first face classifier.
    pub(super) fn open_default_inversion(&mut self) {
        let view = &mut self.inversion_view;
        view.loaded = None;
        view.model = view
            .model
            .take()
            .filter(|id| self.models.iter().any(|m| &m.id == id))
            .or_else(|| InversionView::default_model(&self.models));
        if let Some(id) = view.model.clone() {
            self.open_inversion(id);
        }
    }

    /// Loads `model`'s data set and saved inversion reports in a job.
    pub(super) fn open_inversion(&mut self, model: String) {
        let Some(study) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let Some(card) = self.models.iter().find(|m| m.id == model).map(|m| m.card.clone()) else {
            self.toasts
                .push(Level::Error, format!("model {model} is not in this study"));
            return;
        };
        let known: Vec<Arc<Dataset>> = self.datasets.values().cloned().collect();
        self.spawn(
            JobKind::InvertOpen,
            &format!("Opening the inversions of {model}"),
            move |ctx| {
                let loaded = vj::open_inversion(&study, card, &known, ctx)?;
                Ok(JobResult::InversionOpened(Box::new(loaded)))
            },
        );
    }

    /// Shows an opened model (unless the user has since picked another).
    pub(super) fn on_inversion_opened(&mut self, loaded: LoadedInversion) {
        for e in &loaded.errors {
            self.toasts.push(Level::Error, e.clone());
        }
        if self.inversion_view.model.as_deref() == Some(loaded.model.as_str()) {
            self.inversion_view.loaded = Some(loaded);
        }
    }

    /// Starts an inversion job.
    pub(super) fn run_inversion(&mut self, req: InvertRequest) {
        let model = self.inversion_view.model.clone().unwrap_or_default();
        let who = match &req.classes {
            Some(c) if c.len() == 1 => format!("person {}", c[0]),
            Some(c) => format!("{} people", c.len()),
            None => "all people".into(),
        };
        let label = format!("Inverting {model} ({}, {who})", req.config.method.as_str());
        self.spawn(JobKind::Invert, &label, move |ctx| {
            let report = vj::run_inversion(&req, ctx)?;
            Ok(JobResult::Inverted(model, Box::new(report)))
        });
    }

    /// Stores a finished inversion's merged report in the view.
    pub(super) fn on_inverted(&mut self, model: String, report: InversionReport) {
        let hits = report.classes.iter().filter(|c| c.eval_top1).count();
        self.toasts.push(
            Level::Ok,
            format!(
                "{model}: {hits} of {} inversions identified by the evaluation classifier",
                report.classes.len()
            ),
        );
        if let Some(loaded) = self.inversion_view.loaded.as_mut().filter(|l| l.model == model) {
            loaded.reports.insert(report.config.method.as_str(), report);
            loaded.serial = vj::next_serial();
        }
    }

    /// Writes the open model's grid of `method` to `path`.
    pub(super) fn export_inversion_grid(&mut self, method: Method, path: &Path) {
        let Some(report) = self.inversion_view.loaded.as_ref().and_then(|l| l.report(method)) else {
            self.toasts
                .push(Level::Error, "no saved inversion to export for this method");
            return;
        };
        match crate::invert::write_grid_png(report, 10, path) {
            Ok(()) => self
                .toasts
                .push(Level::Ok, format!("Grid written to {}", path.display())),
            Err(e) => self.toasts.push(Level::Error, e.to_string()),
        }
    }
}
