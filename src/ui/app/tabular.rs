//! The app's Tabular side: listing the study's tabular models when it opens, and running the
//! Tabular view's jobs (memorized rows, training, fairness).

use super::App;
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::tabular_jobs::{self as tj, TabularDone, TabularRequest};
use crate::ui::toasts::Level;

impl App {
    /// Reads the study's tabular models and measures the chosen (or first) one's memorized rows.
    pub(super) fn list_tabular(&mut self) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let (models, bad) = tj::list(&root);
        for b in bad {
            self.toasts.push(Level::Error, b);
        }
        let view = &mut self.tabular_view;
        view.set_models(models);
        if let Some(req) = view.twins_request() {
            self.run_tabular(req);
        }
    }

    /// Starts a Tabular job.
    pub(super) fn run_tabular(&mut self, req: TabularRequest) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            self.toasts.push(Level::Error, "open a study first");
            return;
        };
        let kind = match req {
            TabularRequest::Twins(..) => JobKind::TabularTwins,
            TabularRequest::Train(_) => JobKind::TabularTrain,
            TabularRequest::Fairness(..) => JobKind::TabularFairness,
        };
        if let TabularRequest::Twins(dir, rule) = &req {
            self.tabular_view.asked = Some((dir.clone(), *rule));
        }
        self.tabular_view.error = None;
        let label = tj::label(&req);
        self.spawn(kind, &label, move |ctx| {
            Ok(JobResult::Tabular(Box::new(tj::run(&root, req, ctx)?)))
        });
    }

    pub(super) fn on_tabular(&mut self, done: TabularDone) {
        match done {
            TabularDone::Trained(dir) => {
                let id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                self.toasts.push(
                    Level::Ok,
                    format!("Tabular model {id} trained; its memorized rows follow"),
                );
                self.tabular_view.chosen = Some(dir);
                self.list_tabular();
            }
            other => self.tabular_view.on_done(other),
        }
    }
}
