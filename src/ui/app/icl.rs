//! The app's ICL side: reading the study's cached in-context learning sweeps and running the
//! default sweep as a job for the Text view's In-context learning tab.

use super::App;
use crate::ui::icl_jobs::{self, IclTask};
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::toasts::Level;

impl App {
    /// Starts an ICL job: read the cached sweeps (the tab forgets the old study's first when the
    /// default is asked for), or run the default sweep.
    pub(super) fn run_icl(&mut self, task: IclTask) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            self.toasts
                .push(Level::Error, "open a study before running the ICL sweep");
            return;
        };
        let panel = &mut self.text_view.icl;
        match task {
            IclTask::Open(file) => {
                if file.is_none() || panel.study.as_ref() != Some(&root) {
                    panel.reset(Some(root.clone()));
                }
                self.spawn(JobKind::IclOpen, "Reading the ICL sweeps", move |_| {
                    Ok(JobResult::Icl(Box::new(icl_jobs::open(&root, file)?)))
                });
            }
            IclTask::Run => {
                panel.error = None;
                panel.study = Some(root.clone());
                self.spawn(JobKind::IclSweep, "ICL sweep (K = 32 to 8192)", move |ctx| {
                    Ok(JobResult::Icl(Box::new(icl_jobs::run(&root, ctx)?)))
                });
            }
        }
    }
}
