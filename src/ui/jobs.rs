//! The app's running jobs: started from commands, drained in `App::logic` within a time budget,
//! shown in the status bar with progress, ETA and a Cancel button.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::diffusion_jobs::{DiffusionModels, LoadedExtraction};
use super::inpaint_jobs::{InpaintOne, LoadedInpaint};
use crate::data::Dataset;
use crate::error::CoreResult;
use crate::gpu::{Backend, GpuInfo, Neighbour};
use crate::job::{JobCtx, JobEvent, JobHandle, JobOutcome, spawn_job};
use crate::model::ModelCard;
use crate::study::{Study, StudyModel};

/// What kind of job; kinds marked single run one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Opening or writing a study.
    Study,
    /// Loading a data set.
    LoadDataset,
    /// Training a model (single).
    Train,
    /// Neighbour search for the detail panel.
    Neighbours,
    /// Reading per-sample scores of the study's models.
    Scores,
    /// Importing a model folder.
    Import,
    /// Probing the GPU adapter.
    Probe,
    /// Writing the study's report (single).
    Report,
    /// Reading zoo results.
    Zoo,
    /// Comparing the study's zoos or training a defended variant (single).
    Defences,
    /// Training a zoo (single).
    TrainZoo,
    /// Reading the study's diffusion models.
    DiffusionList,
    /// Opening a saved extraction or inpainting report.
    DiffusionOpen,
    /// Sampling a diffusion model and scoring extractions (single).
    Extract,
    /// Inpainting one image or a batch (single).
    Inpaint,
    /// Reading the study's diffusion MIA reports.
    DiffusionMia,
    /// Opening a classifier's saved inversions.
    InvertOpen,
    /// Model inversion (single).
    Invert,
    /// Opening a LayerMem report.
    LayersOpen,
    /// A Layers view drill-down.
    LayersDrill,
    /// Opening a character LM and its exposure report.
    ExposureOpen,
    /// Measuring exposure (single).
    ExposureMeasure,
    /// The secret extraction search (single).
    SecretSearch,
    /// Opening an HF language model in the Text view (documents, cached reports).
    TextOpen,
    /// Greedy extraction over a document set (single).
    TextExtract,
    /// Membership inference over a document set (single).
    TextMia,
    /// Activation probes of memorized tokens (single).
    TextProbe,
    /// The token strip of one document.
    TextTokens,
    /// The memorized rows of a tabular model.
    TabularTwins,
    /// Training a tabular diffusion model (single).
    TabularTrain,
    /// The group fairness of a classifier on a table.
    TabularFairness,
    /// A presentation slide's animation.
    Story,
    /// Reading the study's cached ICL sweeps.
    IclOpen,
    /// Running the ICL sweep (single).
    IclSweep,
    /// Exporting the talk as PNG, GIF and APNG files (single).
    ExportTalk,
}

impl JobKind {
    fn single(self) -> bool {
        matches!(
            self,
            Self::Train
                | Self::Study
                | Self::TrainZoo
                | Self::Defences
                | Self::Extract
                | Self::Inpaint
                | Self::Invert
                | Self::Report
                | Self::ExposureMeasure
                | Self::SecretSearch
                | Self::TextExtract
                | Self::TextMia
                | Self::TextProbe
                | Self::TabularTrain
                | Self::IclSweep
                | Self::ExportTalk
        )
    }
}

/// Per-sample score columns of one data set.
pub type ScoreColumns = Vec<(String, Arc<Vec<f32>>)>;

/// What a job returns to the app.
pub enum JobResult {
    /// An opened study and its models.
    Study(Study, Vec<StudyModel>, Vec<String>),
    /// A loaded data set under its key.
    Dataset(String, Arc<Dataset>),
    /// A trained model's card.
    Trained(Box<ModelCard>),
    /// Neighbours of (data set key, index).
    Neighbours(String, usize, Vec<Neighbour>, Backend),
    /// Score columns by data set hash.
    Scores(BTreeMap<String, ScoreColumns>),
    /// An imported model's id.
    Imported(String),
    /// An imported diffusers model's id.
    ImportedDiffusion(String),
    /// The GPU adapter, or why there is none.
    Probe(Result<GpuInfo, String>),
    /// A written report.
    Report(Box<crate::report::ReportSummary>),
    /// A zoo finished training (its id).
    ZooTrained(String),
    /// The study's defences comparison (and the id of a variant trained first).
    Defences(Box<crate::defence::compare::DefencesReport>, Option<String>),
    /// The study's zoo results, if any.
    Zoo(Option<Box<crate::ui::views::LoadedZooResults>>),
    /// The study's diffusion models.
    DiffusionModels(Box<DiffusionModels>),
    /// An extraction of a model.
    Extraction {
        /// Model id.
        model: String,
        /// The extraction (None: the model has no saved extraction).
        ex: Option<Box<LoadedExtraction>>,
        /// Whether it was computed now (rather than opened).
        computed: bool,
    },
    /// One inpainted image.
    Inpainted(Box<InpaintOne>),
    /// The inpainting attack report of models (A, B), if any.
    InpaintReport(String, String, Option<Box<LoadedInpaint>>),
    /// The study's diffusion MIA reports.
    DiffusionMia(Box<crate::ui::views::DiffusionMiaList>),
    /// A classifier opened for inversion.
    InversionOpened(Box<crate::ui::invert_jobs::LoadedInversion>),
    /// A finished inversion of model (id): the merged report.
    Inverted(String, Box<crate::invert::InversionReport>),
    /// An opened LayerMem report.
    Layers(Box<crate::ui::layer_jobs::LoadedLayers>),
    /// A Layers view drill-down.
    LayersDrill(Box<crate::ui::layer_jobs::Drill>),
    /// An opened character LM.
    ExposureOpened(Box<crate::ui::exposure_jobs::LoadedExposure>),
    /// A measured exposure report of the LM in (folder).
    ExposureMeasured(PathBuf, Box<crate::canary::report::ExposureReport>),
    /// A finished search on the LM in (folder).
    SecretSearched(PathBuf, Box<crate::canary::extract::SearchResult>),
    /// A finished Text view job.
    Text(Box<crate::ui::text_jobs::TextDone>),
    /// A finished Tabular view job.
    Tabular(Box<crate::ui::tabular_jobs::TabularDone>),
    /// A presentation step's animation (step index; why it could not be made).
    Story(usize, Result<Option<Box<crate::story::Anim>>, String>),
    /// The study's ICL sweeps, read or just run.
    Icl(Box<crate::ui::icl_jobs::IclDone>),
    /// The talk, exported.
    TalkExported(Box<crate::ui::present::export::Exported>),
}

/// A running job and what it has reported.
pub struct RunningJob {
    /// Id for Cancel.
    pub id: u64,
    /// Kind.
    pub kind: JobKind,
    /// Label for the status bar.
    pub label: String,
    /// The handle.
    pub handle: JobHandle<JobResult>,
    /// Metric series reported so far.
    pub series: BTreeMap<String, Vec<[f64; 2]>>,
}

/// A finished job.
pub struct FinishedJob {
    /// Kind.
    pub kind: JobKind,
    /// Label.
    pub label: String,
    /// The series it reported.
    pub series: BTreeMap<String, Vec<[f64; 2]>>,
    /// How it ended.
    pub outcome: JobOutcome<JobResult>,
}

/// All running jobs.
pub struct JobRegistry {
    jobs: Vec<RunningJob>,
    next_id: u64,
    waker: Arc<dyn Fn() + Send + Sync>,
}

impl JobRegistry {
    /// A registry whose jobs call `waker` after each event.
    pub fn new(waker: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self {
            jobs: Vec::new(),
            next_id: 1,
            waker,
        }
    }

    /// Starts a job; refuses a second job of a single-instance kind.
    pub fn spawn<F>(&mut self, kind: JobKind, label: &str, run: F) -> Result<u64, String>
    where
        F: FnOnce(&JobCtx<'_>) -> CoreResult<JobResult> + Send + 'static,
    {
        if kind.single() && self.is_running(kind) {
            return Err(format!(
                "a {kind:?} job is already running; wait for it or cancel it"
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        let handle = spawn_job(&format!("{kind:?}-{id}").to_lowercase(), self.waker.clone(), run)
            .map_err(|e| e.to_string())?;
        self.jobs.push(RunningJob {
            id,
            kind,
            label: label.to_string(),
            handle,
            series: BTreeMap::new(),
        });
        Ok(id)
    }

    /// Whether a job of `kind` is running.
    pub fn is_running(&self, kind: JobKind) -> bool {
        self.jobs.iter().any(|j| j.kind == kind)
    }

    /// The running jobs.
    pub fn running(&self) -> &[RunningJob] {
        &self.jobs
    }

    /// Requests cancellation of job `id`.
    pub fn cancel(&self, id: u64) {
        if let Some(j) = self.jobs.iter().find(|j| j.id == id) {
            j.handle.cancel();
        }
    }

    /// Cancels everything (on exit).
    pub fn cancel_all(&self) {
        for j in &self.jobs {
            j.handle.cancel();
        }
    }

    /// Drains events within `budget` and returns the jobs that ended. Returns whether events were
    /// left for the next frame.
    pub fn drain(&mut self, budget: Duration) -> (Vec<FinishedJob>, bool) {
        let t0 = Instant::now();
        let mut more = false;
        for j in &mut self.jobs {
            let left = budget.saturating_sub(t0.elapsed());
            let events = j.handle.poll(left);
            if t0.elapsed() >= budget {
                more = true;
            }
            for ev in events {
                if let JobEvent::Metric { series, step, value } = ev {
                    j.series.entry(series).or_default().push([step, value]);
                }
            }
        }
        let mut finished = Vec::new();
        let mut k = 0;
        while k < self.jobs.len() {
            if self.jobs[k].handle.is_finished() && !more {
                let mut j = self.jobs.remove(k);
                // Pick up events sent just before the end.
                for ev in j.handle.poll(Duration::from_millis(2)) {
                    if let JobEvent::Metric { series, step, value } = ev {
                        j.series.entry(series).or_default().push([step, value]);
                    }
                }
                if let Some(outcome) = j.handle.take_outcome() {
                    finished.push(FinishedJob {
                        kind: j.kind,
                        label: j.label,
                        series: j.series,
                        outcome,
                    });
                }
            } else {
                k += 1;
            }
        }
        (finished, more)
    }
}
