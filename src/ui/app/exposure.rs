//! The app's Exposure side: listing and opening character LMs, measuring exposure and running
//! the extraction search.

use std::path::PathBuf;

use super::App;
use crate::canary::extract::SearchResult;
use crate::canary::report::ExposureReport;
use crate::ui::exposure_jobs::{self as ej, ExtractRequest, LoadedExposure};
use crate::ui::jobs::{JobKind, JobResult};

impl App {
    /// Lists the study's character LMs and opens the chosen (or first) one.
    pub(super) fn list_exposure(&mut self) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let models = ej::list_lms(&root);
        let view = &mut self.exposure_view;
        view.loaded = None;
        view.last_search = None;
        view.chosen = view
            .chosen
            .take()
            .filter(|p| models.contains(p))
            .or_else(|| models.first().cloned());
        view.models = Some(models);
        if let Some(p) = view.chosen.clone() {
            self.open_exposure(p);
        }
    }

    /// Opens an LM and its saved report in a job.
    pub(super) fn open_exposure(&mut self, dir: PathBuf) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        self.exposure_view.chosen = Some(dir.clone());
        let label = format!("Opening {}", dir.display());
        self.spawn(JobKind::ExposureOpen, &label, move |_ctx| {
            Ok(JobResult::ExposureOpened(Box::new(ej::open_lm(&root, &dir)?)))
        });
    }

    /// Shows an opened LM (unless another was chosen since).
    pub(super) fn on_exposure(&mut self, loaded: LoadedExposure) {
        if self.exposure_view.chosen.as_ref() == Some(&loaded.dir) {
            self.exposure_view.open(loaded);
        }
    }

    /// Measures the exposure of an LM's canaries.
    pub(super) fn measure_exposure(&mut self, dir: PathBuf) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let device = self.settings.device.clone();
        let label = format!("Exposure of {}", dir.display());
        self.spawn(JobKind::ExposureMeasure, &label, move |ctx| {
            let r = ej::measure(&root, &dir, &device, ctx)?;
            Ok(JobResult::ExposureMeasured(dir, Box::new(r)))
        });
    }

    /// Shows a measured report.
    pub(super) fn on_exposure_measured(&mut self, dir: PathBuf, r: ExposureReport) {
        self.exposure_view.on_measured(&dir, r);
    }

    /// Starts the extraction search.
    pub(super) fn search_secret(&mut self, req: ExtractRequest) {
        let label = format!("Searching '{}'", req.prefix.trim_end());
        self.exposure_view.last_search = None;
        self.spawn(JobKind::SecretSearch, &label, move |ctx| {
            let r = ej::run_extract(&req, ctx)?;
            Ok(JobResult::SecretSearched(req.dir.clone(), Box::new(r)))
        });
    }

    /// Keeps a finished search.
    pub(super) fn on_secret_searched(&mut self, dir: PathBuf, r: SearchResult) {
        if self.exposure_view.chosen.as_ref() == Some(&dir) {
            self.exposure_view.last_search = Some(r);
        }
    }
}
