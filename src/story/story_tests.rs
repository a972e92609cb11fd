//! The story's animations on the demo study: each must show what its slide claims.

use super::*;
use crate::job::{CancelToken, NullSink};

fn demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    crate::demo::write_demo(&root).unwrap();
    (dir, root)
}

fn last_panel<'a>(anim: &'a Anim, label_start: &str) -> &'a Panel {
    let last = anim.frames.last().unwrap();
    last.panels
        .iter()
        .find(|p| p.label.starts_with(label_start))
        .unwrap_or_else(|| panic!("no panel '{label_start}'"))
}

#[test]
fn demo_animations_show_the_findings_and_are_cached() {
    let (_dir, root) = demo();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);

    // Extraction: the re-run generation ends on the cached generation, which copies the planted
    // training image shown beside it.
    let den = load_or_build(&root, Step::Extraction, &ctx).unwrap().unwrap();
    assert_eq!(den.frames.len(), 51, "noise + 50 DDIM steps");
    let x = last_panel(&den, "x_t");
    let train = last_panel(&den, "training image");
    let j: usize = den
        .subject
        .split("generation ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The presentation's model is the 28x28 MNIST one (pixel values up to 255).
    let dup = crate::demo::diffusion::DUP_MODEL;
    let cache = root.join(format!("diffusion/{dup}/generations/ddim50e0-s0-n1024.u8"));
    let gens = std::fs::read(cache).unwrap();
    let len = x.pixels.len();
    assert_eq!(len, 28 * 28);
    let cached = display_bytes(&gens[j * len..(j + 1) * len], 255);
    let differ = x.pixels.iter().zip(&cached).filter(|(a, b)| a != b).count();
    assert!(
        differ <= 2,
        "{differ} of {len} pixels differ from the cached generation {j}"
    );
    let dist = |a: &[u8], b: &[u8]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
            .sum::<f64>()
            .sqrt()
            / 255.0
    };
    let first = &den.frames[0].panels[0].pixels;
    assert!(
        dist(&x.pixels, &train.pixels) < 0.25 * dist(first, &train.pixels),
        "the generation must end near the training image, far nearer than the noise it started from"
    );

    // Inpainting: the model that trained on the image restores the hidden half better.
    let inp = load_or_build(&root, Step::Inpainting, &ctx).unwrap().unwrap();
    assert!(inp.frames.len() <= 60 && inp.frames.len() > 10);
    let caption = &inp.frames.last().unwrap().caption;
    let errs: Vec<f64> = caption
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(errs.len(), 2, "{caption}");
    assert!(
        errs[0] < errs[1],
        "IN error {} must be below OUT error {}",
        errs[0],
        errs[1]
    );
    // The same completions as the attack report's row for that image (same noise, best of N).
    let rp = root.join("results/diffusion/ddpm-digits-pair-k00/inpaint-ddpm-digits-pair-k01.json");
    let report: crate::diffusion::attack::InpaintReport =
        serde_json::from_str(&std::fs::read_to_string(rp).unwrap()).unwrap();
    let index: usize = inp
        .subject
        .trim_start_matches("image #")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let row = report.rows.iter().find(|r| r.index == index).unwrap();
    assert!(
        (errs[0] - row.err_in).abs() < 1e-3 && (errs[1] - row.err_out).abs() < 1e-3,
        "{errs:?} vs {row:?}"
    );

    // Inversion: iterates every 10 steps, ending on the report's own reconstruction.
    let inv = load_or_build(&root, Step::Inversion, &ctx).unwrap().unwrap();
    assert!(inv.frames.len() > 20, "{} frames", inv.frames.len());
    let rebuilt = last_panel(&inv, "the reconstruction");
    let report = crate::invert::load_report(&crate::invert::report_path(
        &root,
        crate::demo::DEMO_FACE_MODEL,
        crate::invert::Method::Tv,
    ))
    .unwrap();
    let person = report
        .classes
        .iter()
        .find(|c| inv.subject.contains(&format!(": {} (", c.name)))
        .unwrap();
    assert!(
        person.eval_top1,
        "the slide shows a person the evaluator identifies"
    );
    // Both contrast-stretched: a rounding step of the 8-bit image becomes a few levels.
    let want = stretch(&person.image);
    let diffs: Vec<u8> = rebuilt
        .pixels
        .iter()
        .zip(&want)
        .map(|(&a, &b)| a.abs_diff(b))
        .collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    let off = diffs.iter().copied().max().unwrap();
    assert!(
        off <= 8 && mean < 1.0,
        "the reconstruction differs from the report's (max {off}, mean {mean})"
    );

    // Cached: a second call reads the file (a marked cache comes back as written).
    let path = anim_path(&root, "inpainting");
    let mut marked = inp.clone();
    marked.subject = "read from the cache".into();
    crate::study::write_json_atomic(&path, &marked).unwrap();
    let again = load_or_build(&root, Step::Inpainting, &ctx).unwrap().unwrap();
    assert_eq!(again, marked);
    // A damaged cache is rebuilt, not shown.
    std::fs::write(&path, b"{ not json").unwrap();
    let rebuilt = load_or_build(&root, Step::Inpainting, &ctx).unwrap().unwrap();
    assert_eq!(rebuilt, inp);
    // Steps without an animation have none.
    assert!(load_or_build(&root, Step::Data, &ctx).unwrap().is_none());
}

#[test]
fn a_study_without_the_demo_results_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let err = load_or_build(dir.path(), Step::Extraction, &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains(crate::demo::diffusion::DUP_MODEL), "{err}");
}
