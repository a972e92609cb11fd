//! `rote screenshot`: renders a view of the real app headlessly (egui_kittest with the wgpu
//! renderer, so lavapipe works without a display) and writes a PNG. README images come from here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;

use super::{App, AppOptions, View};
use crate::error::{CoreError, CoreResult};

/// Steps `harness` until the app is idle with data loaded, or `timeout` passes.
pub fn settle(harness: &mut Harness<'_, App>, timeout: Duration) {
    let t0 = Instant::now();
    let mut idle_frames = 0;
    while t0.elapsed() < timeout {
        harness.step();
        let app = harness.state();
        let ready = app.current_dataset().is_some() && app.study.is_some() && app.is_idle();
        idle_frames = if ready { idle_frames + 1 } else { 0 };
        if idle_frames >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Selects the first image of the gallery's current order (and looks up its neighbours).
fn select_first_in_gallery(app: &mut App) {
    let (Some(ds), Some(key)) = (app.current_dataset().cloned(), app.current.clone()) else {
        return;
    };
    let cols = app.scores.get(&ds.hash).cloned().unwrap_or_default();
    if let Some(&first) = app.data_view.order(&ds, &cols).first() {
        app.data_view.selected = Some(first);
        app.push_command(super::Command::FindNeighbours {
            dataset: key,
            index: first,
        });
    }
}

/// Opens the drill-down of the Layers view's most memorized candidate; false while the view has
/// no report loaded yet.
pub(crate) fn open_top_candidate(app: &mut App) -> bool {
    let (Some(loaded), Some(study)) = (app.layers_view.loaded.clone(), app.study.as_ref()) else {
        return false;
    };
    let Some(&top) = loaded.order.first() else {
        return false;
    };
    let req = super::layer_jobs::DrillRequest {
        study: study.root.clone(),
        f_card: loaded.f_card.clone(),
        g: loaded.report.g.clone(),
        position: top,
        seed: loaded.report.config.seed,
        views: loaded.report.config.augmentations.clamp(1, 8),
        k: 8,
        main: loaded.main.clone(),
        outliers: loaded.outliers.clone(),
        device: app.settings.device.clone(),
    };
    app.layers_view.selected = Some(top);
    app.push_command(super::Command::DrillLayers(Box::new(req)));
    true
}

/// Renders `view` of the app on `study` (a fresh demo study when `None`) at `size` into `out`;
/// `sort` sorts the gallery descending by the named column (e.g. "loss").
pub fn render_view(
    view: &str,
    out: &Path,
    study: Option<PathBuf>,
    size: [f32; 2],
    sort: Option<String>,
) -> CoreResult<()> {
    // "inpainting-batch": the Inpainting view in batch mode with the saved attack report.
    // "privacy-diffusion": the Membership view on its diffusion-model tab.
    // "layers-drill": the Layers view with its most memorized candidate opened.
    // "present-<step>[@frame]": presentation mode on that step of the demo story (frame: the
    // animation frame shown, default its last).
    if let Some(rest) = view.strip_prefix("present-") {
        return render_presentation(rest, out, study, size);
    }
    let batch = view == "inpainting-batch";
    let layers_drill = view == "layers-drill";
    let diffusion_mia = view == "privacy-diffusion";
    // "text-inside" / "text-icl": the Text view's activation-probe and in-context-learning tabs.
    let text_tab = match view {
        "text-inside" => Some(super::views::TextTab::Inside),
        "text-icl" => Some(super::views::TextTab::Icl),
        _ => None,
    };
    let view = View::parse(match view {
        "inpainting-batch" => "inpainting",
        "privacy-diffusion" => "privacy",
        "text-inside" | "text-icl" => "text",
        "layers-drill" => "layers",
        v => v,
    })
        .ok_or_else(|| CoreError::Invalid(format!("unknown view '{view}' (data, models, memorization, influence, membership, extraction, inpainting, inversion, layers, exposure, text, tabular, defences or settings)")))?;
    let (study_path, temp) = study_or_demo(study)?;
    let descending = sort.is_some();
    let options = AppOptions {
        study: Some(study_path),
        view,
        select: Some(0),
        sort,
        descending,
        present: false,
    };
    let mut harness = open_app(options, size);
    if descending {
        select_first_in_gallery(harness.state_mut());
        settle(&mut harness, Duration::from_secs(60));
    }
    if diffusion_mia {
        harness.state_mut().privacy_view.tab = Some(super::views::MembershipTab::Diffusion);
        settle(&mut harness, Duration::from_secs(60));
    }
    if batch {
        let app = harness.state_mut();
        app.inpainting_view.mode = super::views::InpaintMode::Batch;
        if let (Some(a), Some(b)) = (app.inpainting_view.a.clone(), app.inpainting_view.b.clone()) {
            app.push_command(super::Command::OpenInpaintReport(a, b));
        }
        settle(&mut harness, Duration::from_secs(60));
    }
    if view == View::Exposure {
        // Run the extraction search so the panel shows its candidates.
        let app = harness.state_mut();
        if let Some(req) = app.exposure_view.extract_request("cpu") {
            app.push_command(super::Command::SearchSecret(Box::new(req)));
        }
        settle(&mut harness, Duration::from_secs(60));
    }
    if let Some(tab) = text_tab {
        harness.state_mut().text_view.tab = tab;
        settle(&mut harness, Duration::from_secs(60));
    } else if view == View::Text {
        run_text_jobs(&mut harness);
    }
    if layers_drill {
        let _ = open_top_candidate(harness.state_mut());
        settle(&mut harness, Duration::from_secs(120));
    }
    save_png(&mut harness, out, &temp)
}

/// Runs the Text view's extraction and membership inference when they are not cached, so the
/// screenshot shows the table, the finding, the ROC and the selected document's strip.
fn run_text_jobs(harness: &mut Harness<'_, App>) {
    use super::text_jobs::{TextRequest, TextTask};
    settle(harness, Duration::from_secs(60));
    let app = harness.state_mut();
    let Some(loaded) = app.text_view.loaded.clone() else {
        return;
    };
    let mut tasks = Vec::new();
    if loaded.extract.is_none() && loaded.source.is_some() {
        tasks.push(TextTask::Extract);
    }
    if loaded.mia.is_none() && loaded.card.is_some() {
        tasks.push(TextTask::Mia);
    }
    for task in tasks {
        app.push_command(super::Command::Text(Box::new(TextRequest {
            dir: loaded.dir.clone(),
            source: loaded.source.clone(),
            task,
        })));
    }
    settle(harness, Duration::from_secs(300));
    // The strip of the selected document is asked for when the view draws it.
    harness.run_steps(2);
    settle(harness, Duration::from_secs(60));
}

/// The app on `options` in a headless window of `size`, settled.
fn open_app(options: AppOptions, size: [f32; 2]) -> Harness<'static, App> {
    // A user's command must not panic on a missing glyph (tests keep kittest's panic).
    let mut harness = Harness::builder()
        .allow_missing_glyphs()
        .with_size(egui::vec2(size[0], size[1]))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    settle(&mut harness, Duration::from_secs(60));
    harness
}

/// The study to show, and the temporary folder a fresh demo study goes into when none is given.
fn study_or_demo(study: Option<PathBuf>) -> CoreResult<(PathBuf, PathBuf)> {
    let temp = std::env::temp_dir().join(format!("rote-screenshot-{}", std::process::id()));
    let path = match study {
        Some(p) => p,
        None => {
            crate::demo::write_demo(&temp)?;
            temp.clone()
        }
    };
    Ok((path, temp))
}

/// Renders the harness into `out` (atomically) and removes the temporary demo study.
fn save_png(harness: &mut Harness<'_, App>, out: &Path, temp: &Path) -> CoreResult<()> {
    harness.run_steps(3);
    let image = harness
        .render()
        .map_err(|e| CoreError::Gpu(format!("cannot render: {e}")))?;
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| CoreError::format(out, format!("cannot encode PNG: {e}")))?;
    crate::study::write_atomic(out, &bytes)?;
    if temp.exists() {
        std::fs::remove_dir_all(temp).ok();
    }
    Ok(())
}

/// `rote screenshot --view present-<step>[@frame]`.
fn render_presentation(spec: &str, out: &Path, study: Option<PathBuf>, size: [f32; 2]) -> CoreResult<()> {
    let (slug, frame) = match spec.split_once('@') {
        Some((s, f)) => (
            s,
            Some(f.parse::<usize>().map_err(|_| {
                CoreError::Invalid(format!("'{f}' is not a frame number (present-<step>@<frame>)"))
            })?),
        ),
        None => (spec, None),
    };
    let step = crate::story::Step::index_of(slug).ok_or_else(|| {
        let names: Vec<&str> = crate::story::STEPS.iter().map(|s| s.slug()).collect();
        CoreError::Invalid(format!("unknown story step '{slug}' ({})", names.join(", ")))
    })?;
    let (study_path, temp) = study_or_demo(study)?;
    let options = AppOptions {
        study: Some(study_path),
        select: Some(0),
        ..AppOptions::default()
    };
    let mut harness = open_app(options, size);
    let ctx = harness.ctx.clone();
    harness.state_mut().enter_presentation(&ctx, Some(step));
    settle(&mut harness, Duration::from_secs(180));
    {
        let p = &mut harness.state_mut().presentation;
        let n = p.anim().map_or(0, |a| a.frames.len());
        p.frame = frame.unwrap_or(usize::MAX).min(n.saturating_sub(1));
        p.shown = None;
    }
    settle(&mut harness, Duration::from_secs(60));
    // Say so when this window size cuts text (the slides are checked at projector sizes).
    let screen = harness.ctx.content_rect();
    let shapes = &harness.output().shapes;
    for cut in super::present::fit::cut_text(shapes, screen) {
        log::warn!("at {}x{} the slide does not show {cut}", size[0], size[1]);
    }
    save_png(&mut harness, out, &temp)
}
