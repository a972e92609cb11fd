//! The app's Layers side: listing and opening LayerMem reports, and drill-downs.

use std::path::PathBuf;
use std::sync::Arc;

use super::App;
use crate::data::Dataset;
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::layer_jobs::{self as lj, Drill, DrillRequest, LoadedLayers};

impl App {
    /// Lists the study's LayerMem reports and opens the first (or the one already chosen).
    pub(super) fn list_layers(&mut self) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let reports = lj::list_reports(&root);
        let view = &mut self.layers_view;
        view.loaded = None;
        view.selected = None;
        view.drill = None;
        view.chosen = view
            .chosen
            .take()
            .filter(|p| reports.contains(p))
            .or_else(|| reports.first().cloned());
        view.reports = Some(reports);
        if let Some(p) = view.chosen.clone() {
            self.open_layers(p);
        }
    }

    /// Opens a LayerMem report in a job.
    pub(super) fn open_layers(&mut self, path: PathBuf) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let known: Vec<Arc<Dataset>> = self.datasets.values().cloned().collect();
        let label = format!("Opening {}", path.display());
        self.spawn(JobKind::LayersOpen, &label, move |ctx| {
            let loaded = lj::open_layers(&root, &path, &known, ctx)?;
            Ok(JobResult::Layers(Box::new(loaded)))
        });
    }

    /// Shows an opened report (unless another was chosen since).
    pub(super) fn on_layers(&mut self, loaded: LoadedLayers) {
        if self.layers_view.chosen.as_ref() == Some(&loaded.path) {
            self.layers_view.loaded = Some(Arc::new(loaded));
        }
    }

    /// Starts a drill-down job.
    pub(super) fn drill_layers(&mut self, req: DrillRequest) {
        let label = format!("Candidate {} in f and g", req.position);
        self.spawn(JobKind::LayersDrill, &label, move |ctx| {
            Ok(JobResult::LayersDrill(Box::new(lj::drill(&req, ctx)?)))
        });
    }

    /// Shows a drill-down (unless another candidate was selected since).
    pub(super) fn on_layers_drill(&mut self, d: Drill) {
        if self.layers_view.selected == Some(d.position) {
            self.layers_view.drill = Some(d);
        }
    }
}
