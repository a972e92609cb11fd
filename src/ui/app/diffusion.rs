//! The app's diffusion side: reading the study's diffusion models and MIA reports, and starting the
//! jobs that open or run extractions and inpaintings.

use std::sync::Arc;

use super::App;
use crate::data::Dataset;
use crate::diffusion::DiffusionCard;
use crate::ui::diffusion_jobs::{self as dj, DiffusionModels};
use crate::ui::inpaint_jobs::{self as ij, InpaintRequest};
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::toasts::Level;

impl App {
    /// Reads the open study's diffusion models (and their data sets) in a job.
    pub(super) fn load_diffusion(&mut self) {
        self.diffusion = None;
        let Some(study) = self.study.clone() else { return };
        let known: Vec<Arc<Dataset>> = self.datasets.values().cloned().collect();
        self.spawn(JobKind::DiffusionList, "Reading diffusion models", move |ctx| {
            let models = dj::load_models(&study.root, &known, ctx)?;
            Ok(JobResult::DiffusionModels(Box::new(models)))
        });
    }

    /// Reads the open study's diffusion MIA reports (`mia-diffusion.json`) in a job.
    pub(super) fn load_diffusion_mia(&mut self) {
        self.privacy_view.diffusion.list = None;
        let Some(study) = self.study.clone() else { return };
        self.spawn(
            JobKind::DiffusionMia,
            "Reading diffusion MIA reports",
            move |ctx| {
                let list = crate::ui::views::load_diffusion_mia(&study.root, ctx)?;
                Ok(JobResult::DiffusionMia(Box::new(list)))
            },
        );
    }

    /// Stores the diffusion MIA reports in the Membership view; unreadable ones become toasts.
    pub(super) fn on_diffusion_mia(&mut self, list: crate::ui::views::DiffusionMiaList) {
        for e in &list.errors {
            self.toasts.push(Level::Error, e.clone());
        }
        self.privacy_view.diffusion.set_list(list);
    }

    /// Stores the models, picks defaults in the views and opens their saved reports.
    pub(super) fn on_diffusion_models(&mut self, models: DiffusionModels) {
        for e in &models.errors {
            self.toasts.push(Level::Error, e.clone());
        }
        let models = Arc::new(models);
        self.diffusion = Some(models.clone());
        let view = &mut self.extraction_view;
        view.loaded.clear();
        view.model = view
            .model
            .take()
            .filter(|id| models.card(id).is_some())
            .or_else(|| {
                // The demo's extraction model when the study has it, else the first.
                let demo = crate::demo::diffusion::DUP_MODEL;
                models
                    .card(demo)
                    .map(|_| demo.to_string())
                    .or_else(|| models.cards.first().map(|c| c.id.clone()))
            });
        if let Some(id) = view.model.clone() {
            self.open_extraction(id);
        }
        self.inpainting_view.reports.clear();
        self.inpainting_view.last = None;
        self.inpainting_view
            .choose_pair(models.default_pair(), &models.cards);
        if let Some((a, b)) = self.inpainting_view.pair() {
            self.open_inpaint_report(a, b);
        }
    }

    /// Stores an extraction in the view (and says what a run found).
    pub(super) fn on_extraction(
        &mut self,
        model: String,
        ex: Option<Box<dj::LoadedExtraction>>,
        computed: bool,
    ) {
        if let Some(ex) = &ex
            && computed
        {
            let s = &ex.run.report.summary;
            self.toasts.push(
                Level::Ok,
                format!(
                    "{model}: {} of {} generations are extractions of {} training images",
                    s.n_extracted, s.n_samples, s.unique_train_extracted
                ),
            );
        }
        self.extraction_view.set_result(model, ex.map(|b| *b));
    }

    /// The study root, the card of `model` and its data set, or a toast saying what is missing.
    fn diffusion_model(&mut self, model: &str) -> Option<(std::path::PathBuf, DiffusionCard, Arc<Dataset>)> {
        let found = self
            .study
            .as_ref()
            .zip(self.diffusion.as_ref())
            .and_then(|(s, m)| Some((s.root.clone(), m.card(model)?.clone(), m.data(model)?.clone())));
        if found.is_none() {
            self.toasts.push(
                Level::Error,
                format!("diffusion model {model} or its data set is not available"),
            );
        }
        found
    }

    /// Opens the newest saved extraction of `model`.
    pub(super) fn open_extraction(&mut self, model: String) {
        let Some((root, card, ds)) = self.diffusion_model(&model) else {
            return;
        };
        let label = format!("Opening the extraction of {model}");
        self.spawn(JobKind::DiffusionOpen, &label, move |ctx| {
            let ex = dj::open_extraction(&root, &card, ds, ctx)?;
            Ok(JobResult::Extraction {
                model,
                ex: ex.map(Box::new),
                computed: false,
            })
        });
    }

    /// Samples `model` and scores the generations; the report is saved like `rote extract`'s.
    pub(super) fn run_extraction(&mut self, model: String, samples: usize, seed: u64) {
        let Some((root, card, ds)) = self.diffusion_model(&model) else {
            return;
        };
        let compute = dj::Compute {
            wgpu: self.settings.use_gpu_kernels,
            device: self.settings.device.clone(),
        };
        let label = format!("Extraction from {model} ({samples} generations)");
        self.spawn(JobKind::Extract, &label, move |ctx| {
            let ex = dj::run_and_save_extraction(&root, &card, ds, samples, seed, &compute, ctx)?;
            Ok(JobResult::Extraction {
                model,
                ex: Some(Box::new(ex)),
                computed: true,
            })
        });
    }

    /// Measures the sharpness of the shown extraction's generations and saves it with the run.
    pub(super) fn measure_sharpness(&mut self, model: String) {
        let Some(root) = self.study.as_ref().map(|s| s.root.clone()) else {
            return;
        };
        let Some(shown) = self.extraction_view.loaded.get(&model).and_then(Option::as_ref) else {
            self.toasts
                .push(Level::Error, format!("open an extraction of {model} first"));
            return;
        };
        let ex = shown.ex.clone();
        let device = self.settings.device.clone();
        let label = format!("Sharpness of {model}'s generations");
        self.spawn(JobKind::Extract, &label, move |ctx| {
            let ex = dj::measure_and_save_sharpness(&root, ex, &device, ctx)?;
            Ok(JobResult::Extraction {
                model,
                ex: Some(Box::new(ex)),
                computed: false,
            })
        });
    }

    /// Opens the saved inpainting attack report of `a` and `b`.
    pub(super) fn open_inpaint_report(&mut self, a: String, b: String) {
        let Some((root, _, ds)) = self.diffusion_model(&a) else {
            return;
        };
        let label = format!("Opening the inpainting report of {a} and {b}");
        self.spawn(JobKind::DiffusionOpen, &label, move |_| {
            let r = ij::open_inpaint_report(&root, &a, &b, ds)?;
            Ok(JobResult::InpaintReport(a, b, r.map(Box::new)))
        });
    }

    /// Inpaints one image (live previews) or runs the attack on a batch.
    pub(super) fn inpaint(&mut self, req: InpaintRequest, batch: bool) {
        let Some((root, _, ds)) = self.diffusion_model(&req.a) else {
            return;
        };
        let device = self.settings.device.clone();
        let label = if batch {
            format!(
                "Inpainting attack, {} and {} ({} images)",
                req.a, req.b, req.count
            )
        } else {
            format!("Inpainting #{} with {} and {}", req.image, req.a, req.b)
        };
        self.spawn(JobKind::Inpaint, &label, move |ctx| {
            if batch {
                let r = ij::inpaint_batch(&root, &req, ds, &device, ctx)?;
                Ok(JobResult::InpaintReport(
                    req.a.clone(),
                    req.b.clone(),
                    Some(Box::new(r)),
                ))
            } else {
                let one = ij::inpaint_one(&root, &req, ds, &device, ctx)?;
                Ok(JobResult::Inpainted(Box::new(one)))
            }
        });
    }
}
