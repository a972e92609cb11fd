//! The app: state, `logic` (drain jobs, apply commands) and `ui` (draw).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::command::Command;
use super::diffusion_jobs::DiffusionModels;
use super::jobs::{FinishedJob, JobKind, JobRegistry, JobResult, ScoreColumns};
use super::textures::TextureCache;
use super::toasts::{Level, Toasts};
use super::views::{
    DataView, ExtractionView, InfluenceView, InpaintingView, MemorizationView, ModelsView, PrivacyView,
    SettingsView, ZooResults,
};
use super::widgets::jobs_bar_ui;
use crate::data::Dataset;
use crate::gpu::GpuInfo;
use crate::job::JobOutcome;
use crate::model::SampleScores;
use crate::study::{Study, StudyModel};

mod diffusion;

/// The views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// Images, classes, scores and neighbours.
    #[default]
    Data,
    /// Model cards, training and curves.
    Models,
    /// Feldman-Zhang memorization from the study's zoo.
    Memorization,
    /// High-influence train/test pairs.
    Influence,
    /// Membership inference.
    Privacy,
    /// Training images extracted from a diffusion model.
    Extraction,
    /// The inpainting attack on diffusion models.
    Inpainting,
    /// Compute device and GPU adapter.
    Settings,
}

/// Every view, in navigation order.
pub const VIEWS: [View; 8] = [
    View::Data,
    View::Models,
    View::Memorization,
    View::Influence,
    View::Privacy,
    View::Extraction,
    View::Inpainting,
    View::Settings,
];

impl View {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "Data",
            Self::Models => "Models",
            Self::Memorization => "Memorization",
            Self::Influence => "Influence",
            Self::Privacy => "Membership",
            Self::Extraction => "Extraction",
            Self::Inpainting => "Inpainting",
            Self::Settings => "Settings",
        }
    }

    /// Parses a view name (for `rote screenshot --view`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "data" => Some(Self::Data),
            "models" => Some(Self::Models),
            "settings" => Some(Self::Settings),
            "memorization" => Some(Self::Memorization),
            "influence" => Some(Self::Influence),
            "privacy" | "mia" | "membership" => Some(Self::Privacy),
            "extraction" | "extract" => Some(Self::Extraction),
            "inpainting" | "inpaint" => Some(Self::Inpainting),
            _ => None,
        }
    }
}

/// How the app starts.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Study to open (default: the demo study, written on first launch).
    pub study: Option<PathBuf>,
    /// First view.
    pub view: View,
    /// Image to select once the data set is loaded.
    pub select: Option<usize>,
    /// Sort the gallery by the first column whose name starts with this ("loss", "margin",
    /// "label", "intensity") once it is available.
    pub sort: Option<String>,
    /// Sort descending.
    pub descending: bool,
}

/// User settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Device for candle (`cpu` or `cuda`).
    pub device: String,
    /// Whether neighbour search may use the wgpu kernel.
    pub use_gpu_kernels: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            device: "cpu".into(),
            use_gpu_kernels: true,
        }
    }
}

/// State the views read, and the command queue they write.
pub struct AppCtx<'a> {
    /// The open study.
    pub study: Option<&'a Study>,
    /// Its models.
    pub models: &'a [StudyModel],
    /// Loaded data sets by key.
    pub datasets: &'a BTreeMap<String, Arc<Dataset>>,
    /// Key of the current data set.
    pub current: Option<&'a str>,
    /// Score columns by data set hash.
    pub scores: &'a BTreeMap<String, ScoreColumns>,
    /// Settings (editable).
    pub settings: &'a mut Settings,
    /// GPU probe result.
    pub gpu: Option<&'a Result<GpuInfo, String>>,
    /// Running jobs.
    pub jobs: &'a JobRegistry,
    /// Last finished training, with its curves.
    pub last_training: Option<&'a FinishedTraining>,
    /// The study's zoo results.
    pub zoo: Option<&'a ZooResults>,
    /// The study's diffusion models (None while reading them).
    pub diffusion: Option<&'a DiffusionModels>,
    /// Thumbnails.
    pub textures: &'a mut TextureCache,
    /// Commands for the app.
    pub commands: &'a mut Vec<Command>,
}

/// The curves and result of the last training run (kept for the Train dialog).
pub struct FinishedTraining {
    /// Series reported.
    pub series: BTreeMap<String, Vec<[f64; 2]>>,
    /// "trained X: test acc Y" or why it stopped.
    pub summary: String,
}

/// The rote app.
pub struct App {
    /// How it started.
    pub options: AppOptions,
    /// The open study.
    pub study: Option<Study>,
    /// Its models.
    pub models: Vec<StudyModel>,
    /// Loaded data sets by key (bundled name or path).
    pub datasets: BTreeMap<String, Arc<Dataset>>,
    /// Current data set key.
    pub current: Option<String>,
    /// Score columns by data set hash.
    pub scores: BTreeMap<String, ScoreColumns>,
    /// Settings.
    pub settings: Settings,
    /// GPU probe.
    pub gpu: Option<Result<GpuInfo, String>>,
    /// Current view.
    pub view: View,
    /// Data view state.
    pub data_view: DataView,
    /// Models view state.
    pub models_view: ModelsView,
    settings_view: SettingsView,
    /// Memorization view state.
    pub memorization_view: MemorizationView,
    influence_view: InfluenceView,
    /// Membership view state.
    pub privacy_view: PrivacyView,
    /// Extraction view state.
    pub extraction_view: ExtractionView,
    /// Inpainting view state.
    pub inpainting_view: InpaintingView,
    /// The study's zoo results.
    pub zoo: Option<Arc<ZooResults>>,
    /// The study's diffusion models.
    pub diffusion: Option<Arc<DiffusionModels>>,
    /// Running jobs.
    pub jobs: JobRegistry,
    /// Messages.
    pub toasts: Toasts,
    /// Last training.
    pub last_training: Option<FinishedTraining>,
    textures: TextureCache,
    commands: Vec<Command>,
}

impl App {
    /// Creates the app and starts opening the study.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let ctx = cc.egui_ctx.clone();
        let waker: Arc<dyn Fn() + Send + Sync> =
            Arc::new(move || ctx.request_repaint_after(Duration::from_millis(30)));
        let mut app = Self {
            view: options.view,
            data_view: DataView::new(options.select, options.sort.clone(), options.descending),
            options,
            study: None,
            models: Vec::new(),
            datasets: BTreeMap::new(),
            current: None,
            scores: BTreeMap::new(),
            settings: Settings::default(),
            gpu: None,
            models_view: ModelsView::default(),
            settings_view: SettingsView,
            memorization_view: MemorizationView::default(),
            influence_view: InfluenceView::default(),
            privacy_view: PrivacyView::default(),
            extraction_view: ExtractionView::default(),
            inpainting_view: InpaintingView::default(),
            zoo: None,
            diffusion: None,
            jobs: JobRegistry::new(waker),
            toasts: Toasts::default(),
            last_training: None,
            textures: TextureCache::default(),
            commands: Vec::new(),
        };
        let path = app.options.study.clone();
        app.open_study(path);
        app.spawn(JobKind::Probe, "Probing GPU", |_| {
            Ok(JobResult::Probe(crate::gpu::gpu_info()))
        });
        app
    }

    /// Whether nothing is running or pending (used by screenshots and tests).
    pub fn is_idle(&self) -> bool {
        self.jobs.running().is_empty() && self.commands.is_empty() && !self.textures_pending()
    }

    fn textures_pending(&self) -> bool {
        self.textures.pending
    }

    /// The current data set.
    pub fn current_dataset(&self) -> Option<&Arc<Dataset>> {
        self.current.as_ref().and_then(|k| self.datasets.get(k))
    }

    /// Queues a command (as a view would).
    pub fn push_command(&mut self, cmd: Command) {
        self.commands.push(cmd);
    }

    fn spawn<F>(&mut self, kind: JobKind, label: &str, run: F)
    where
        F: FnOnce(&crate::job::JobCtx<'_>) -> crate::CoreResult<JobResult> + Send + 'static,
    {
        if let Err(e) = self.jobs.spawn(kind, label, run) {
            self.toasts.push(Level::Error, e);
        }
    }

    fn open_study(&mut self, path: Option<PathBuf>) {
        let label = match &path {
            Some(p) => format!("Opening {}", p.display()),
            None => "Opening the demo study".into(),
        };
        self.spawn(JobKind::Study, &label, move |_| {
            let study = match path {
                Some(p) if p.join("study.json").is_file() => Study::open(&p)?,
                Some(p) => Study::open_or_create(&p)?,
                None => crate::demo::write_demo(&crate::paths::default_demo_study())?,
            };
            study.clean_staging();
            let (models, bad) = study.models();
            Ok(JobResult::Study(
                study,
                models,
                bad.iter().map(ToString::to_string).collect(),
            ))
        });
    }

    fn refresh_models(&mut self) {
        if let Some(study) = self.study.clone() {
            let (models, bad) = study.models();
            for b in bad {
                self.toasts.push(Level::Error, b.to_string());
            }
            self.models = models;
            self.load_scores();
        }
    }

    fn load_scores(&mut self) {
        let models: Vec<StudyModel> = self.models.clone();
        self.spawn(JobKind::Scores, "Reading scores", move |ctx| {
            let mut out: BTreeMap<String, ScoreColumns> = BTreeMap::new();
            for m in models {
                ctx.checkpoint()?;
                let p = m.dir.join("scores.json");
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                let s: SampleScores = serde_json::from_str(&text)
                    .map_err(|e| crate::CoreError::format(&p, format!("bad scores file: {e}")))?;
                let cols = out.entry(m.card.dataset.hash.clone()).or_default();
                cols.push((format!("loss · {}", m.id), Arc::new(s.loss)));
                cols.push((format!("margin · {}", m.id), Arc::new(s.margin)));
            }
            Ok(JobResult::Scores(out))
        });
    }

    fn load_zoo_results(&mut self) {
        let Some(study) = self.study.clone() else { return };
        self.spawn(JobKind::Zoo, "Reading zoo results", move |ctx| {
            let Some(res) = super::views::load_zoo_results(&study, ctx)? else {
                return Ok(JobResult::Zoo(None));
            };
            Ok(JobResult::Zoo(Some(Box::new(res))))
        });
    }

    fn load_dataset(&mut self, key: String) {
        if self.datasets.contains_key(&key) {
            self.set_current(key);
            return;
        }
        self.spawn(JobKind::LoadDataset, &format!("Loading {key}"), move |_| {
            let ds = crate::data::load(&key)?;
            Ok(JobResult::Dataset(key, Arc::new(ds)))
        });
    }

    fn set_current(&mut self, key: String) {
        if self.current.as_deref() != Some(&key) {
            self.data_view.on_dataset_changed();
            self.current = Some(key.clone());
            if let Some(i) = self.data_view.selected {
                self.commands.push(Command::FindNeighbours {
                    dataset: key,
                    index: i,
                });
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::OpenStudy(p) => self.open_study(Some(p)),
            Command::SaveStudyAs(dest) => {
                let Some(study) = self.study.clone() else { return };
                self.spawn(
                    JobKind::Study,
                    &format!("Saving to {}", dest.display()),
                    move |_| {
                        let copy = study.copy_to(&dest)?;
                        let (models, bad) = copy.models();
                        Ok(JobResult::Study(
                            copy,
                            models,
                            bad.iter().map(ToString::to_string).collect(),
                        ))
                    },
                );
            }
            Command::LoadDataset(k) => self.load_dataset(k),
            Command::SelectDataset(k) => self.set_current(k),
            Command::ShowView(v) => self.view = v,
            Command::InpaintImage {
                image,
                in_model,
                out_model,
            } => {
                let v = &mut self.inpainting_view;
                v.image = image;
                v.a = Some(in_model);
                v.b = Some(out_model);
                v.mode = super::views::InpaintMode::Single;
                v.last = None;
                self.view = View::Inpainting;
            }
            Command::RefreshModels => self.refresh_models(),
            Command::CancelJob(id) => self.jobs.cancel(id),
            Command::FindNeighbours { dataset, index } => {
                let Some(ds) = self.datasets.get(&dataset).cloned() else {
                    return;
                };
                let prefer_gpu = self.settings.use_gpu_kernels;
                self.spawn(
                    JobKind::Neighbours,
                    &format!("Neighbours of #{index}"),
                    move |ctx| {
                        let refs: Vec<usize> = (0..ds.n).collect();
                        let (mut found, backend) =
                            crate::gpu::nearest_neighbours(&ds, &[index], &refs, 8, prefer_gpu, Some(ctx))?;
                        Ok(JobResult::Neighbours(
                            dataset,
                            index,
                            found.pop().unwrap_or_default(),
                            backend,
                        ))
                    },
                );
            }
            Command::StartTraining(mut cfg) => {
                let Some(study) = self.study.clone() else {
                    self.toasts.push(Level::Error, "open a study before training");
                    return;
                };
                cfg.device = self.settings.device.clone();
                let ds = self.datasets.get(&cfg.data).cloned();
                self.last_training = None;
                let label = format!("Training {} on {}", cfg.family.as_str(), cfg.data);
                self.spawn(JobKind::Train, &label, move |ctx| {
                    let ds = match ds {
                        Some(d) => d,
                        None => Arc::new(crate::data::load(&cfg.data)?),
                    };
                    let mut study = study;
                    let outcome = crate::train::train_into_study(&cfg, &ds, &mut study, ctx)?;
                    Ok(JobResult::Trained(Box::new(outcome.card)))
                });
            }
            Command::TrainZoo(cfg, k) => {
                let Some(study) = self.study.clone() else {
                    self.toasts
                        .push(Level::Error, "open a study before training a zoo");
                    return;
                };
                let mut cfg = *cfg;
                cfg.train.device = self.settings.device.clone();
                let ds = self.datasets.get(&cfg.train.data).cloned();
                let label = format!("Training zoo {} ({k} models)", cfg.id);
                self.spawn(JobKind::TrainZoo, &label, move |ctx| {
                    let ds = match ds {
                        Some(d) => d,
                        None => Arc::new(crate::data::load(&cfg.train.data)?),
                    };
                    let mut study = study;
                    study.add_dataset(&cfg.train.data)?;
                    crate::measure::zoo_report::train_zoo_with_reports(&cfg, &ds, &study, k, 8, ctx)?;
                    Ok(JobResult::ZooTrained(cfg.id.clone()))
                });
            }
            Command::OpenExtraction(model) => self.open_extraction(model),
            Command::RunExtraction { model, samples, seed } => self.run_extraction(model, samples, seed),
            Command::OpenInpaintReport(a, b) => self.open_inpaint_report(a, b),
            Command::Inpaint(req) => self.inpaint(*req, false),
            Command::InpaintBatch(req) => self.inpaint(*req, true),
            Command::ReloadDiffusionMia => self.load_diffusion_mia(),
            Command::ImportModel(dir) => {
                let Some(study) = self.study.clone() else {
                    self.toasts
                        .push(Level::Error, "open a study before importing a model");
                    return;
                };
                self.spawn(JobKind::Import, "Importing model", move |_| {
                    let id = super::views::import_model(&study, &dir)?;
                    Ok(JobResult::Imported(id))
                });
            }
        }
    }

    fn on_finished(&mut self, job: FinishedJob) {
        let FinishedJob {
            kind,
            label,
            series,
            outcome,
        } = job;
        match outcome {
            JobOutcome::Done(result) => self.on_result(result, series),
            JobOutcome::Cancelled => {
                self.toasts.push(Level::Info, format!("{label}: cancelled"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: "Cancelled; nothing was saved".into(),
                    });
                }
            }
            JobOutcome::Failed(e) => {
                self.toasts.push(Level::Error, format!("{label} failed: {e}"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: format!("Failed: {e}"),
                    });
                }
            }
            JobOutcome::Panicked(msg) => {
                self.toasts.push(Level::Error, format!("{label} crashed: {msg}"));
                if kind == JobKind::Train {
                    self.last_training = Some(FinishedTraining {
                        series,
                        summary: format!("Crashed: {msg}"),
                    });
                }
            }
        }
    }

    fn on_result(&mut self, result: JobResult, series: BTreeMap<String, Vec<[f64; 2]>>) {
        match result {
            JobResult::Study(study, models, bad) => {
                for b in bad {
                    self.toasts.push(Level::Error, b);
                }
                let first = study
                    .manifest
                    .datasets
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "mnist10k".into());
                self.study = Some(study);
                self.models = models;
                self.models_view.select_first(&self.models);
                self.zoo = None;
                self.load_scores();
                self.load_zoo_results();
                self.load_diffusion();
                self.load_diffusion_mia();
                self.load_dataset(first);
            }
            JobResult::Dataset(key, ds) => {
                self.datasets.insert(key.clone(), ds);
                self.set_current(key);
            }
            JobResult::Trained(card) => {
                let summary = format!(
                    "Trained {} on {} samples: train acc {:.3}, test acc {:.3}",
                    card.id, card.metrics.n_train, card.metrics.train_acc, card.metrics.test_acc
                );
                self.toasts.push(Level::Ok, summary.clone());
                self.last_training = Some(FinishedTraining { series, summary });
                self.models_view.selected = Some(card.id.clone());
                self.refresh_models();
            }
            JobResult::Neighbours(key, index, found, backend) => {
                self.data_view.set_neighbours(key, index, found, backend);
            }
            JobResult::Scores(cols) => {
                // Keep zoo columns, replace model columns.
                let zoo_cols: Vec<(String, ScoreColumns)> = self
                    .scores
                    .iter()
                    .map(|(h, c)| {
                        (
                            h.clone(),
                            c.iter()
                                .filter(|(n, _)| n.starts_with("mem ·") || n.starts_with("vulnerability"))
                                .cloned()
                                .collect(),
                        )
                    })
                    .collect();
                self.scores = cols;
                for (h, c) in zoo_cols {
                    self.scores.entry(h).or_default().extend(c);
                }
            }
            JobResult::Imported(id) => {
                self.toasts.push(Level::Ok, format!("Imported model {id}"));
                self.models_view.selected = Some(id);
                self.refresh_models();
            }
            JobResult::Probe(info) => self.gpu = Some(info),
            JobResult::ZooTrained(id) => {
                self.toasts
                    .push(Level::Ok, format!("Zoo {id} trained; results saved"));
                self.load_zoo_results();
            }
            JobResult::DiffusionModels(models) => self.on_diffusion_models(*models),
            JobResult::Extraction { model, ex, computed } => self.on_extraction(model, ex, computed),
            JobResult::Inpainted(one) => self.inpainting_view.set_single(*one),
            JobResult::InpaintReport(a, b, report) => {
                self.inpainting_view
                    .reports
                    .insert((a, b), report.map(|r| Arc::new(*r)));
            }
            JobResult::DiffusionMia(list) => self.on_diffusion_mia(*list),
            JobResult::Zoo(res) => {
                if let Some(res) = res {
                    let cols = self.scores.entry(res.memorization_hash.clone()).or_default();
                    cols.retain(|(n, _)| !n.ends_with(&format!("· {}", res.results.zoo)));
                    cols.extend(res.columns.iter().cloned());
                    self.zoo = Some(Arc::new(res.results));
                }
            }
        }
    }

    /// One frame of non-drawing work: drain jobs (5 ms budget) and apply commands.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        let (finished, more) = self.jobs.drain(Duration::from_millis(5));
        for job in finished {
            self.on_finished(job);
        }
        let cmds = std::mem::take(&mut self.commands);
        for cmd in cmds {
            self.apply(cmd);
        }
        if more || !self.jobs.running().is_empty() {
            ctx.request_repaint_after(Duration::from_millis(50));
        }
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("rote");
            ui.separator();
            for v in VIEWS {
                if ui.selectable_label(self.view == v, v.name()).clicked() {
                    self.view = v;
                }
            }
            ui.separator();
            if ui.button("Open study…").clicked()
                && let Some(p) = rfd::FileDialog::new()
                    .set_title("Open or create a study folder")
                    .pick_folder()
            {
                self.commands.push(Command::OpenStudy(p));
            }
            if self.study.is_some()
                && ui
                    .button("Save study as…")
                    .on_hover_text("Copy the study to a new folder and continue there")
                    .clicked()
                && let Some(p) = rfd::FileDialog::new()
                    .set_title("Save the study into an empty folder")
                    .pick_folder()
            {
                self.commands.push(Command::SaveStudyAs(p));
            }
            match &self.study {
                Some(s) => {
                    ui.label(format!("Study {}", s.manifest.name))
                        .on_hover_text(s.root.display().to_string());
                }
                None => {
                    ui.spinner();
                    ui.label("Opening study");
                }
            }
        });
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.textures.begin_frame();
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar_ui(ui));
        let running: Vec<(u64, String, crate::job::Progress, bool)> = self
            .jobs
            .running()
            .iter()
            .filter(|j| !matches!(j.kind, JobKind::Probe | JobKind::Scores))
            .map(|j| {
                (
                    j.id,
                    j.label.clone(),
                    j.handle.progress(),
                    j.handle.is_cancel_requested(),
                )
            })
            .collect();
        egui::Panel::bottom("jobs_bar").show(ui, |ui| {
            jobs_bar_ui(ui, &running, &mut self.commands);
        });
        let Self {
            study,
            models,
            datasets,
            current,
            scores,
            settings,
            gpu,
            view,
            data_view,
            models_view,
            settings_view,
            memorization_view,
            influence_view,
            privacy_view,
            extraction_view,
            inpainting_view,
            zoo,
            diffusion,
            jobs,
            last_training,
            textures,
            commands,
            ..
        } = self;
        let mut actx = AppCtx {
            study: study.as_ref(),
            models,
            datasets,
            current: current.as_deref(),
            scores,
            settings,
            gpu: gpu.as_ref(),
            jobs,
            last_training: last_training.as_ref(),
            zoo: zoo.as_deref(),
            diffusion: diffusion.as_deref(),
            textures,
            commands,
        };
        egui::CentralPanel::default().show(ui, |ui| match view {
            View::Data => data_view.ui(ui, &mut actx),
            View::Models => models_view.ui(ui, &mut actx),
            View::Memorization => memorization_view.ui(ui, &mut actx),
            View::Influence => influence_view.ui(ui, &mut actx),
            View::Privacy => privacy_view.ui(ui, &mut actx),
            View::Extraction => extraction_view.ui(ui, &mut actx),
            View::Inpainting => inpainting_view.ui(ui, &mut actx),
            View::Settings => settings_view.ui(ui, &mut actx),
        });
        let ctx = ui.ctx().clone();
        self.toasts.ui(&ctx);
        if self.textures.pending {
            ctx.request_repaint();
        }
        let cmds = std::mem::take(&mut self.commands);
        for cmd in cmds {
            self.apply(cmd);
        }
    }

    fn on_exit(&mut self) {
        self.jobs.cancel_all();
    }
}
