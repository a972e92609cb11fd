//! `rote present --export DIR`: the demo talk as files a speaker can carry. One still PNG, one
//! animated GIF and one APNG per step at the chosen size; the animated steps play their frames
//! and end on the finding (the GIF's last frame is the still); `index.html` links every file; the
//! second export comes from the study's cache.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use image::AnimationDecoder as _;
use rote::story::STEPS;

fn gif_frames(path: &std::path::Path) -> Vec<image::RgbaImage> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    image::codecs::gif::GifDecoder::new(f)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap()
        .into_iter()
        .map(image::Frame::into_buffer)
        .collect()
}

/// `rote --json present --study STUDY --export OUT --width W --height 720`.
fn export(
    study: &std::path::Path,
    out: &std::path::Path,
    width: &str,
    home: &std::path::Path,
) -> std::process::Output {
    let args = [
        "--json",
        "present",
        "--study",
        study.to_str().unwrap(),
        "--export",
        out.to_str().unwrap(),
        "--width",
        width,
        "--height",
        "720",
    ];
    common::rote(&args, home)
}

/// Mean absolute difference per channel (GIF colours are quantized).
fn mean_diff(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn the_demo_talk_exports_as_stills_animations_and_a_page() {
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("demo");
    rote::demo::write_demo(&study).unwrap();
    let out = home.path().join("talk");
    let first = common::json_of(&export(&study, &out, "1280", home.path()));
    assert_eq!(first["rendered"], STEPS.len(), "{first}");
    let mut animated = 0;
    for step in STEPS {
        let slug = step.slug();
        let still = image::open(out.join(format!("{slug}.png"))).unwrap().to_rgba8();
        assert_eq!(still.dimensions(), (1280, 720), "{slug}");
        let frames = gif_frames(&out.join(format!("{slug}.gif")));
        assert!(
            frames.len() >= 2,
            "{slug}: the GIF moves ({} frames)",
            frames.len()
        );
        let last = frames.last().unwrap();
        assert_eq!(last.dimensions(), (1280, 720));
        let d = mean_diff(last, &still);
        assert!(
            d < 3.0,
            "{slug}: the GIF ends on the finished slide (mean difference {d:.2})"
        );
        assert!(
            mean_diff(&frames[0], last) > 0.5,
            "{slug}: the first frame is not the last"
        );
        let apng = std::fs::read(out.join(format!("{slug}.apng"))).unwrap();
        let decoded = image::codecs::png::PngDecoder::new(std::io::Cursor::new(&apng))
            .unwrap()
            .apng()
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        assert_eq!(
            decoded.len(),
            frames.len(),
            "{slug}: APNG and GIF have the same frames"
        );
        assert_eq!(
            decoded.last().unwrap().buffer(),
            &still,
            "{slug}: the APNG ends exactly on the still"
        );
        if step.anim_stem().is_some() {
            animated += 1;
            assert!(
                frames.len() > 20,
                "{slug}: every frame of the animation ({})",
                frames.len()
            );
        }
    }
    assert_eq!(animated, 3);
    // The page plays them in order and every link resolves.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let mut links = 0;
    for part in html.split("href=\"").skip(1) {
        let target = part.split('"').next().unwrap();
        if target == "#" {
            continue;
        }
        assert!(
            out.join(target).is_file(),
            "index.html links {target}, which is missing"
        );
        links += 1;
    }
    assert_eq!(links, 3 * STEPS.len());
    assert!(html.contains(STEPS[3].narrative()));
    // The second export is copied from the study's cache, byte for byte.
    let before = std::fs::read(out.join("extraction.gif")).unwrap();
    let out2 = home.path().join("talk2");
    let second = common::json_of(&export(&study, &out2, "1280", home.path()));
    assert_eq!(second["rendered"], 0, "{second}");
    assert_eq!(std::fs::read(out2.join("extraction.gif")).unwrap(), before);
    // A bad size is one clear error naming the problem.
    let bad = export(&study, &out, "10", home.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a slide size"));
}

#[test]
fn the_export_button_runs_as_a_job_and_says_where_the_talk_is() {
    use std::time::Duration;

    use rote::ui::{App, AppOptions, Command};
    let home = tempfile::tempdir().unwrap();
    let study = home.path().join("demo");
    rote::demo::write_demo(&study).unwrap();
    let out = home.path().join("talk");
    let options = AppOptions {
        study: Some(study),
        ..AppOptions::default()
    };
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    let ctx = h.ctx.clone();
    h.state_mut().enter_presentation(&ctx, Some(3));
    h.state_mut()
        .push_command(Command::ExportTalk(out.clone(), [1024, 768]));
    h.run_steps(2);
    assert!(
        !h.state().is_idle(),
        "the export runs as a job (progress and Cancel in the jobs bar)"
    );
    let t0 = std::time::Instant::now();
    while !out.join("index.html").is_file() || !h.state().is_idle() {
        assert!(t0.elapsed() < Duration::from_secs(300), "the export finishes");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(2);
    for step in STEPS {
        let still = image::open(out.join(format!("{}.png", step.slug()))).unwrap();
        assert_eq!((still.width(), still.height()), (1024, 768));
    }
    assert!(h.state().presentation.active, "the talk goes on");
    assert_eq!(h.state().presentation.step, 3);
    use egui_kittest::kittest::Queryable as _;
    h.get_by_label_contains("Exported 9 slides");
}
