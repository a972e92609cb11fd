//! `rote bench frames`: the real window (eframe + wgpu, as `rote` opens it) on a fresh demo study
//! with a 60k-image data set in the Data view while a training job runs on that set. Every frame
//! the gallery is scrolled by the mouse wheel, and every half second another image is selected (a
//! neighbour search over all 60k images). Per frame it records eframe's CPU time of the previous
//! frame (egui, tessellation, paint submission) and the wall interval between frames; peak RSS is
//! VmHWM from /proc/self/status. It prints figures and never asserts times.
//!
//! The app is wrapped rather than changed: [`BenchApp`] forwards every eframe call to the real
//! [`App`] and adds the input and the measurements around it.

mod data60k;
mod stats;

pub use data60k::{BenchData, FASHION_MNIST_ENV, find_fashion_mnist, generate, prepare, write_generated};
pub use stats::{Percentiles, parse_vm_hwm, peak_rss_bytes, percentile};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::app::{App, AppOptions, View};
use super::command::Command;
use super::jobs::JobKind;
use crate::error::{CoreError, CoreResult};
use crate::train::TrainConfig;

/// Goal for the 95th percentile frame time, in milliseconds.
pub const GOAL_P95_MS: f64 = 16.0;

/// Goal for the peak resident memory, in bytes.
pub const GOAL_PEAK_RSS_BYTES: u64 = 1 << 30;

/// Points the gallery is scrolled down per frame.
const SCROLL_PER_FRAME: f32 = 40.0;

/// Time between two simulated selections.
const SELECT_EVERY: Duration = Duration::from_millis(500);

/// Frames before the measurement starts (after the training job started).
const WARMUP: Duration = Duration::from_secs(1);

/// How long the study and the data set may take to open before the benchmark gives up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(300);

/// Options of `rote bench frames`.
#[derive(Clone, Debug)]
pub struct FrameBenchOptions {
    /// Images of the generated data set (a Fashion-MNIST copy on disk is used whole).
    pub images: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Run no training job (to tell its share of the figures).
    pub no_job: bool,
    /// Select no images (no neighbour searches).
    pub no_select: bool,
    /// Do not scroll the gallery.
    pub no_scroll: bool,
}

/// What `rote bench frames` measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FrameBenchReport {
    /// Where the data set came from.
    pub data_source: String,
    /// Its images.
    pub images: usize,
    /// Seconds to find or generate and write it (before the window opens).
    pub prepare_seconds: f64,
    /// Seconds from asking the app to load it to its gallery being shown.
    pub open_seconds: f64,
    /// The job that ran during the measurement.
    pub job: String,
    /// The wgpu adapter of the window.
    pub adapter: String,
    /// Seconds measured.
    pub seconds: f64,
    /// Frames measured.
    pub frames: usize,
    /// Of those, frames with the training job still running.
    pub frames_with_job: usize,
    /// Images selected (each starts a neighbour search over the whole set).
    pub selections: usize,
    /// Points the gallery was scrolled per frame (0: not scrolled).
    pub scroll_per_frame: f32,
    /// eframe's CPU time per frame (egui, tessellation, paint submission), milliseconds.
    pub cpu_ms: Percentiles,
    /// Wall time between frames (includes waiting for the surface and presenting), milliseconds.
    pub interval_ms: Percentiles,
    /// Frames per second over the measurement.
    pub fps: f64,
    /// Peak resident set size of the whole process, bytes (None where unknown).
    pub peak_rss_bytes: Option<u64>,
    /// p95 CPU frame time under 16 ms.
    pub goal_p95_cpu_met: bool,
    /// p95 frame interval under 16 ms.
    pub goal_p95_interval_met: bool,
    /// Peak RSS under 1 GiB (None where unknown).
    pub goal_peak_rss_met: Option<bool>,
    /// Errors the app reported while it ran.
    pub errors: Vec<String>,
}

impl FrameBenchReport {
    /// The human-readable lines.
    pub fn lines(&self) -> Vec<String> {
        let ms = |p: &Percentiles| {
            format!(
                "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                p.p50, p.p95, p.p99, p.max
            )
        };
        let yes = |b: bool| if b { "met" } else { "NOT met" };
        let mut out = vec![
            format!("data set: {} ({} images)", self.data_source, self.images),
            format!(
                "prepared in {:.2} s; opened in the app in {:.2} s",
                self.prepare_seconds, self.open_seconds
            ),
            format!(
                "while: {} (running in {} of {} frames), gallery scrolled {} points a frame, {} images selected",
                self.job, self.frames_with_job, self.frames, self.scroll_per_frame, self.selections
            ),
            format!(
                "{} frames in {:.1} s ({:.1} fps) on {}",
                self.frames, self.seconds, self.fps, self.adapter
            ),
            format!("CPU frame time : {}", ms(&self.cpu_ms)),
            format!("frame interval : {}", ms(&self.interval_ms)),
            match self.peak_rss_bytes {
                Some(b) => format!("peak RSS       : {:.1} MiB", b as f64 / (1u64 << 20) as f64),
                None => "peak RSS       : n/a (no /proc/self/status)".into(),
            },
            format!(
                "goal p95 CPU frame time < {GOAL_P95_MS} ms: {} (frame interval: {})",
                yes(self.goal_p95_cpu_met),
                yes(self.goal_p95_interval_met)
            ),
            format!(
                "goal peak RSS < 1 GiB: {}",
                self.goal_peak_rss_met.map_or("n/a", yes)
            ),
        ];
        for e in &self.errors {
            out.push(format!("app error: {e}"));
        }
        out
    }
}

/// Runs the benchmark: prepares the data set and a demo study in a temporary folder, opens the
/// window, measures, closes it and removes the folder.
pub fn run(opts: &FrameBenchOptions) -> CoreResult<FrameBenchReport> {
    let dir = std::env::temp_dir().join(format!("rote-bench-frames-{}", std::process::id()));
    let result = run_in(opts, &dir);
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn run_in(opts: &FrameBenchOptions, dir: &Path) -> CoreResult<FrameBenchReport> {
    if opts.images == 0 || opts.images > u32::MAX as usize {
        return Err(CoreError::Invalid(format!(
            "--images {} is out of range",
            opts.images
        )));
    }
    if !(opts.seconds.is_finite() && opts.seconds > 0.0) {
        return Err(CoreError::Invalid(format!(
            "--seconds {} must be positive",
            opts.seconds
        )));
    }
    let t0 = Instant::now();
    let data = prepare(opts.images, &dir.join("data"))?;
    let prepare_seconds = t0.elapsed().as_secs_f64();
    let study = crate::demo::write_demo(&dir.join("study"))?;
    let slot: Arc<Mutex<Option<Result<Measured, String>>>> = Arc::new(Mutex::new(None));
    let recorder = Recorder::new(data.images.clone(), opts, slot.clone());
    let study_root: PathBuf = study.root.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("rote: frame benchmark")
            .with_inner_size([1280.0, 800.0]),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "rote-bench-frames",
        options,
        Box::new(move |cc| {
            let app = App::new(
                cc,
                AppOptions {
                    study: Some(study_root),
                    ..AppOptions::default()
                },
            );
            Ok(Box::new(BenchApp { app, rec: recorder }))
        }),
    )
    .map_err(|e| CoreError::Invalid(format!("cannot open the window: {e}")))?;
    let measured = slot
        .lock()
        .take()
        .ok_or_else(|| CoreError::Invalid("the window closed before the measurement ended".into()))?
        .map_err(CoreError::Invalid)?;
    let peak = peak_rss_bytes();
    Ok(measured.report(data.source, prepare_seconds, peak))
}

/// What the window measured.
struct Measured {
    images: usize,
    open_seconds: f64,
    job: String,
    adapter: String,
    seconds: f64,
    cpu_ms: Vec<f64>,
    interval_ms: Vec<f64>,
    frames_with_job: usize,
    selections: usize,
    scroll_per_frame: f32,
    errors: Vec<String>,
}

impl Measured {
    fn report(self, data_source: String, prepare_seconds: f64, peak: Option<u64>) -> FrameBenchReport {
        let cpu_ms = Percentiles::of(&self.cpu_ms);
        let interval_ms = Percentiles::of(&self.interval_ms);
        let frames = self.interval_ms.len().max(self.cpu_ms.len());
        FrameBenchReport {
            data_source,
            images: self.images,
            prepare_seconds,
            open_seconds: self.open_seconds,
            job: self.job,
            adapter: self.adapter,
            seconds: self.seconds,
            frames,
            frames_with_job: self.frames_with_job,
            selections: self.selections,
            scroll_per_frame: self.scroll_per_frame,
            fps: if self.seconds > 0.0 {
                frames as f64 / self.seconds
            } else {
                0.0
            },
            goal_p95_cpu_met: !self.cpu_ms.is_empty() && cpu_ms.p95 < GOAL_P95_MS,
            goal_p95_interval_met: !self.interval_ms.is_empty() && interval_ms.p95 < GOAL_P95_MS,
            goal_peak_rss_met: peak.map(|b| b < GOAL_PEAK_RSS_BYTES),
            peak_rss_bytes: peak,
            cpu_ms,
            interval_ms,
            errors: self.errors,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for the study, its first data set and the start-up jobs.
    OpenStudy,
    /// The 60k set is loading (since when).
    LoadData(Instant),
    /// The training job runs; not measured yet (until when).
    Warmup(Instant),
    /// Measuring (since when).
    Record(Instant),
    /// Finished; the window is closing.
    Done,
}

/// The measurement, driven once per frame.
struct Recorder {
    key: String,
    seconds: f64,
    job_on: bool,
    select_on: bool,
    scroll_on: bool,
    started: Instant,
    phase: Phase,
    open_seconds: f64,
    job: String,
    adapter: String,
    last_frame: Option<Instant>,
    cpu_ms: Vec<f64>,
    interval_ms: Vec<f64>,
    frames_with_job: usize,
    selections: usize,
    next_select: Instant,
    rng: u64,
    errors_before: usize,
    /// The window's area in points, for the simulated pointer.
    area: Option<egui::Rect>,
    slot: Arc<Mutex<Option<Result<Measured, String>>>>,
}

impl Recorder {
    fn new(
        images: PathBuf,
        opts: &FrameBenchOptions,
        slot: Arc<Mutex<Option<Result<Measured, String>>>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            key: images.display().to_string(),
            seconds: opts.seconds,
            job_on: !opts.no_job,
            select_on: !opts.no_select,
            scroll_on: !opts.no_scroll,
            started: now,
            phase: Phase::OpenStudy,
            open_seconds: 0.0,
            job: String::new(),
            adapter: String::new(),
            last_frame: None,
            cpu_ms: Vec::new(),
            interval_ms: Vec::new(),
            frames_with_job: 0,
            selections: 0,
            next_select: now,
            rng: 0x9e37_79b9_7f4a_7c15,
            errors_before: 0,
            area: None,
            slot,
        }
    }

    fn finish(&mut self, ctx: &egui::Context, result: Result<Measured, String>) {
        *self.slot.lock() = Some(result);
        self.phase = Phase::Done;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// A pseudo-random index below `n` (splitmix64).
    fn next_index(&mut self, n: usize) -> usize {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }

    /// Called at the start of every frame, before the app draws.
    fn frame(&mut self, app: &mut App, ui: &egui::Ui, frame: &eframe::Frame) {
        let now = Instant::now();
        let ctx = ui.ctx();
        self.area = Some(ui.max_rect());
        if !matches!(self.phase, Phase::Done) {
            ctx.request_repaint();
        }
        if self.adapter.is_empty()
            && let Some(rs) = frame.wgpu_render_state()
        {
            let info = rs.adapter.get_info();
            self.adapter = format!("{} ({:?})", info.name, info.backend);
        }
        let waiting = matches!(self.phase, Phase::OpenStudy | Phase::LoadData(_));
        if waiting && now.duration_since(self.started) > OPEN_TIMEOUT {
            let why = app.toasts.error_log.last().cloned().unwrap_or_default();
            self.finish(
                ctx,
                Err(format!(
                    "the study or the data set did not open within {} s {why}",
                    OPEN_TIMEOUT.as_secs()
                )),
            );
            return;
        }
        match self.phase {
            Phase::OpenStudy => {
                if app.study.is_some() && app.current.is_some() && app.jobs.running().is_empty() {
                    self.errors_before = app.toasts.error_log.len();
                    app.view = View::Data;
                    app.push_command(Command::LoadDataset(self.key.clone()));
                    self.phase = Phase::LoadData(now);
                }
            }
            Phase::LoadData(since) => {
                if let Some(e) = app.toasts.error_log.get(self.errors_before) {
                    let e = e.clone();
                    self.finish(ctx, Err(format!("the data set did not open: {e}")));
                    return;
                }
                if app.current.as_deref() == Some(self.key.as_str()) {
                    self.open_seconds = since.elapsed().as_secs_f64();
                    let cfg = TrainConfig {
                        data: self.key.clone(),
                        // More than the measurement lasts; cancelled when the window closes.
                        epochs: 100,
                        id: "mlp-frames-bench".into(),
                        ..TrainConfig::default()
                    };
                    if self.job_on {
                        self.job = format!(
                            "training the demo MLP ({}, batch {}) on the set",
                            cfg.family.as_str(),
                            cfg.batch_size
                        );
                        app.push_command(Command::StartTraining(cfg));
                    } else {
                        self.job = "no job".into();
                    }
                    self.phase = Phase::Warmup(now + WARMUP);
                }
            }
            Phase::Warmup(until) => {
                if now >= until {
                    self.phase = Phase::Record(now);
                    self.next_select = now;
                }
            }
            Phase::Record(since) => {
                if let Some(last) = self.last_frame {
                    self.interval_ms
                        .push(now.duration_since(last).as_secs_f64() * 1e3);
                }
                if let Some(cpu) = frame.info().cpu_usage {
                    self.cpu_ms.push(f64::from(cpu) * 1e3);
                }
                if app.jobs.is_running(JobKind::Train) {
                    self.frames_with_job += 1;
                }
                if self.select_on
                    && now >= self.next_select
                    && let Some(n) = app.current_dataset().map(|d| d.n)
                {
                    let i = self.next_index(n);
                    app.data_view.selected = Some(i);
                    app.push_command(Command::FindNeighbours {
                        dataset: self.key.clone(),
                        index: i,
                    });
                    self.selections += 1;
                    self.next_select = now + SELECT_EVERY;
                }
                let seconds = now.duration_since(since).as_secs_f64();
                if seconds >= self.seconds {
                    let measured = Measured {
                        images: app.current_dataset().map_or(0, |d| d.n),
                        open_seconds: self.open_seconds,
                        job: std::mem::take(&mut self.job),
                        adapter: self.adapter.clone(),
                        seconds,
                        cpu_ms: std::mem::take(&mut self.cpu_ms),
                        interval_ms: std::mem::take(&mut self.interval_ms),
                        frames_with_job: self.frames_with_job,
                        selections: self.selections,
                        scroll_per_frame: if self.scroll_on { SCROLL_PER_FRAME } else { 0.0 },
                        errors: app.toasts.error_log[self.errors_before.min(app.toasts.error_log.len())..]
                            .to_vec(),
                    };
                    self.finish(ctx, Ok(measured));
                }
            }
            Phase::Done => {}
        }
        self.last_frame = Some(now);
    }

    /// The simulated input: the pointer over the gallery and the mouse wheel turning.
    fn input(&self, raw: &mut egui::RawInput) {
        if !self.scroll_on || !matches!(self.phase, Phase::Warmup(_) | Phase::Record(_)) {
            return;
        }
        let Some(area) = self.area else { return };
        // The gallery fills the left of the Data view; the detail panel is on the right.
        let pos = area.min + egui::vec2(area.width() * 0.35, area.height() * 0.55);
        raw.events.push(egui::Event::PointerMoved(pos));
        raw.events.push(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -SCROLL_PER_FRAME),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
    }
}

/// The real app with the benchmark's input and measurements around it.
struct BenchApp {
    app: App,
    rec: Recorder,
}

impl eframe::App for BenchApp {
    fn raw_input_hook(&mut self, ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        self.app.raw_input_hook(ctx, raw_input);
        self.rec.input(raw_input);
    }

    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.app.logic(ctx, frame);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.rec.frame(&mut self.app, ui, frame);
        self.app.ui(ui, frame);
    }

    fn on_exit(&mut self) {
        self.app.on_exit();
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        self.app.clear_color(visuals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!(
            p,
            Percentiles {
                p50: 50.0,
                p95: 95.0,
                p99: 99.0,
                max: 100.0
            }
        );
        let sorted = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 50.0), 2.0);
        assert_eq!(percentile(&sorted, 95.0), 3.0);
        assert_eq!(percentile(&[], 95.0), 0.0);
        assert_eq!(Percentiles::of(&[f64::NAN, 4.0]).p50, 4.0);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\trote\nVmPeak:\t 2000000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(512 << 20));
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t x kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t 12 MB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn report_flags_goals() {
        let m = Measured {
            images: 60_000,
            open_seconds: 1.0,
            job: "j".into(),
            adapter: "a".into(),
            seconds: 2.0,
            cpu_ms: vec![5.0; 100],
            interval_ms: vec![20.0; 100],
            frames_with_job: 100,
            selections: 4,
            scroll_per_frame: 40.0,
            errors: vec![],
        };
        let r = m.report("s".into(), 0.5, Some(2 << 30));
        assert!(r.goal_p95_cpu_met);
        assert!(!r.goal_p95_interval_met);
        assert_eq!(r.goal_peak_rss_met, Some(false));
        assert_eq!(r.frames, 100);
        assert!((r.fps - 50.0).abs() < 1e-9);
        assert!(r.lines().iter().any(|l| l.contains("NOT met")));
    }
}
