//! The app's Text side: listing a study's Hugging Face LMs, opening one with its documents and
//! cached reports, and running extraction, membership inference and token scoring as jobs.

use super::App;
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::text_jobs::{self as tj, TextDone, TextOutcome, TextRequest, TextTask};
use crate::ui::toasts::Level;

impl App {
    /// Lists the study's HF language models and opens the chosen (or first) one.
    pub(super) fn list_text(&mut self) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let models = tj::list_hf_models(&root);
        let view = &mut self.text_view;
        let chosen = view
            .chosen
            .take()
            .filter(|p| models.contains(p))
            .or_else(|| models.first().cloned());
        view.reset(chosen.clone());
        view.models = Some(models);
        if let Some(dir) = chosen {
            self.run_text(TextRequest {
                dir,
                source: None,
                task: TextTask::Open,
            });
        }
    }

    /// Starts a Text job.
    pub(super) fn run_text(&mut self, req: TextRequest) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            self.toasts
                .push(Level::Error, "open a study before measuring a language model");
            return;
        };
        let TextRequest { dir, source, task } = req;
        let name = tj::model_id(&dir);
        if let TextTask::Open = task {
            self.text_view.chosen = Some(dir.clone());
            self.text_view.error = None;
            self.spawn(JobKind::TextOpen, &format!("Opening {name}"), move |_| {
                let loaded = tj::open(&root, &dir, source.clone())?;
                Ok(JobResult::Text(Box::new(TextDone {
                    dir,
                    source,
                    model: None,
                    outcome: TextOutcome::Opened(Box::new(loaded)),
                })))
            });
            return;
        }
        // The other tasks work on the opened model's documents.
        let Some(loaded) = self.text_view.loaded.clone().filter(|l| l.dir == dir) else {
            return;
        };
        let Some(src) = loaded.source.clone() else {
            return;
        };
        let cached = self.text_view.model.clone();
        let device = self.settings.device.clone();
        self.text_view.error = None;
        let (kind, label, work) = match task {
            TextTask::Extract => (
                JobKind::TextExtract,
                format!("Extraction on {name}"),
                Work::Extract,
            ),
            TextTask::Mia => (
                JobKind::TextMia,
                format!("Membership inference on {name}"),
                Work::Mia,
            ),
            TextTask::Probe => (
                JobKind::TextProbe,
                format!("Activation probes on {name}"),
                Work::Probe,
            ),
            TextTask::Tokens(i) => (
                JobKind::TextTokens,
                format!("Token log-probs of document {i}"),
                Work::Tokens(i),
            ),
            TextTask::Open => return,
        };
        self.spawn(kind, &label, move |ctx| {
            ctx.progress("load model", 0, 1);
            let lm = tj::model(&dir, cached, &device)?;
            ctx.checkpoint()?;
            let outcome = match work {
                Work::Extract => {
                    TextOutcome::Extracted(Box::new(tj::run_extraction(&root, &lm, &src, &loaded.docs, ctx)?))
                }
                Work::Mia => TextOutcome::Mia(Box::new(tj::run_mia(&root, &lm, &src, &loaded.docs, ctx)?)),
                Work::Probe => {
                    TextOutcome::Probe(Box::new(tj::run_probe(&root, &lm, &src, &loaded.docs, ctx)?))
                }
                Work::Tokens(i) => {
                    let text = loaded.docs.get(i).map(|d| d.text.as_str()).unwrap_or_default();
                    TextOutcome::Tokens(i, tj::token_strip(&lm, text, ctx)?)
                }
            };
            Ok(JobResult::Text(Box::new(TextDone {
                dir,
                source: Some(src),
                model: Some(lm),
                outcome,
            })))
        });
    }

    /// Takes in a finished Text job.
    pub(super) fn on_text(&mut self, done: TextDone) {
        self.text_view.on_done(done);
    }
}

/// What a job does with an opened model.
enum Work {
    Extract,
    Mia,
    Probe,
    Tokens(usize),
}
