//! The app: state, `logic` (drain jobs, apply commands) and `ui` (draw).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::command::Command;
use super::diffusion_jobs::DiffusionModels;
use super::jobs::{JobKind, JobRegistry, JobResult, ScoreColumns};
use super::present::Presentation;
use super::textures::TextureCache;
use super::toasts::{Level, Toasts};
use super::views::{
    DataView, DefencesView, ExposureView, ExtractionView, InfluenceView, InpaintingView, InversionView,
    LayersView, MemorizationView, ModelsView, PrivacyView, SettingsView, TabularView, TextView, ZooResults,
};
use super::widgets::jobs_bar_ui;
use crate::data::Dataset;
use crate::gpu::GpuInfo;
use crate::model::SampleScores;
use crate::study::{Study, StudyModel};

mod defences;
mod diffusion;
mod dispatch;
mod exposure;
mod icl;
mod inversion;
mod layers;
mod nav;
mod present;
mod report;
mod tabular;
mod text;

pub use nav::{VIEWS, View};

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
    /// Start presenting (`rote present`) as soon as the study is open.
    pub present: bool,
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
    /// Inversion view state.
    pub inversion_view: InversionView,
    /// Layers view state.
    pub layers_view: LayersView,
    /// Exposure view state.
    pub exposure_view: ExposureView,
    /// Text view state.
    pub text_view: TextView,
    /// Tabular view state.
    pub tabular_view: TabularView,
    /// Defences view state.
    pub defences_view: DefencesView,
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
    /// Presentation mode (F11).
    pub presentation: Presentation,
    textures: TextureCache,
    commands: Vec<Command>,
}

impl App {
    /// Creates the app and starts opening the study.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let present = options.present;
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
            inversion_view: InversionView::default(),
            layers_view: LayersView::default(),
            exposure_view: ExposureView::default(),
            text_view: TextView::default(),
            tabular_view: TabularView::default(),
            defences_view: DefencesView::default(),
            zoo: None,
            diffusion: None,
            jobs: JobRegistry::new(waker),
            toasts: Toasts::default(),
            last_training: None,
            presentation: Presentation {
                on_open: present,
                ..Presentation::default()
            },
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
        let study_root = self.study.as_ref().map(|s| s.root.clone());
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
            if let Some(root) = study_root {
                for (hash, name, col) in crate::diffusion::sharpness::study_columns(&root) {
                    out.entry(hash).or_default().push((name, Arc::new(col)));
                }
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
        // Wraps onto a second row when the window is too narrow for the views and the study actions.
        ui.horizontal_wrapped(|ui| {
            ui.heading("rote");
            ui.separator();
            for v in VIEWS {
                if ui.selectable_label(self.view == v, v.name()).clicked() {
                    self.view = v;
                }
            }
            ui.separator();
            if ui
                .button("Present")
                .on_hover_text("Full screen, large type, the demo story step by step (F11)")
                .clicked()
            {
                self.enter_presentation(ui.ctx(), None);
            }
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
            self.report_button_ui(ui);
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
        self.presentation_input(ui.ctx());
        if !self.presentation.active {
            egui::Panel::top("top_bar").show(ui, |ui| self.top_bar_ui(ui));
        }
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
        if !(self.presentation.active && self.presentation.exporting) {
            egui::Panel::bottom("jobs_bar").show(ui, |ui| {
                jobs_bar_ui(ui, &running, &mut self.commands);
            });
        }
        if self.presentation.active {
            self.presentation_ui(ui);
        } else {
            self.central_ui(ui);
        }
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

impl App {
    /// The current view in the central panel.
    fn central_ui(&mut self, ui: &mut egui::Ui) {
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
            inversion_view,
            layers_view,
            exposure_view,
            text_view,
            tabular_view,
            defences_view,
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
            View::Inversion => inversion_view.ui(ui, &mut actx),
            View::Layers => layers_view.ui(ui, &mut actx),
            View::Exposure => exposure_view.ui(ui, &mut actx),
            View::Text => text_view.ui(ui, &mut actx),
            View::Tabular => tabular_view.ui(ui, &mut actx),
            View::Defences => defences_view.ui(ui, &mut actx),
            View::Settings => settings_view.ui(ui, &mut actx),
        });
    }
}
