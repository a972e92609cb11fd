//! `rote present --export DIR` (and the Export button of presentation mode): the talk as files a
//! speaker can carry: for every step, a still PNG of the finished slide, the step as an animated
//! GIF and APNG, and `index.html` that plays them in order with the sentence to read out.
//!
//! The slides are the real app rendered headlessly (egui_kittest on wgpu, as `rote screenshot`)
//! at the chosen size. A step with an animation (denoising, RePaint, inversion iterates) plays
//! every frame of the cached story and holds the last, where the verdict is; a step without one
//! builds up as a speaker would: the heading and narrative first, then the view with the finding.
//! Rendered files are cached in `STUDY/results/story/export/<W>x<H>/`, keyed by a fingerprint of
//! the step's text, its animation, the study's files and rote's version, so the second export
//! copies them in seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui_kittest::Harness;
use image::RgbaImage;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::animfile::{apng_bytes, gif_bytes};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;
use crate::story::{STEPS, Step, anim_path};
use crate::study::write_atomic;
use crate::ui::{App, AppOptions};

/// Bumped when the export's look changes, so old cached files are rendered again.
const FORMAT: &str = "export-2";
/// How long a frame of an animation shows, the first frame, and the last (the verdict).
const FRAME_MS: u32 = 125;
const FIRST_MS: u32 = 1200;
const LAST_MS: u32 = 4000;

/// One exported step.
#[derive(Clone, Debug, Serialize)]
pub struct ExportedStep {
    /// Short name (the files' stem).
    pub slug: String,
    /// The slide's heading.
    pub title: String,
    /// The sentence to read out.
    pub narrative: String,
    /// Frames in the GIF and APNG.
    pub frames: usize,
    /// Whether the files came from the cache.
    pub cached: bool,
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Exported {
    /// The folder.
    pub dir: PathBuf,
    /// Width and height in pixels.
    pub size: [u32; 2],
    /// Every step in the talk's order.
    pub steps: Vec<ExportedStep>,
}

impl Exported {
    /// Steps whose files were rendered now (not cached).
    pub fn rendered(&self) -> usize {
        self.steps.iter().filter(|s| !s.cached).count()
    }
}

/// The files of step `slug`: the still, the GIF, the APNG.
pub fn file_names(slug: &str) -> [String; 3] {
    [
        format!("{slug}.png"),
        format!("{slug}.gif"),
        format!("{slug}.apng"),
    ]
}

/// Exports the talk on `study` into `out` at `size` pixels.
pub fn export_talk(study: &Path, out: &Path, size: [u32; 2], ctx: &JobCtx<'_>) -> CoreResult<Exported> {
    if size[0] < 640 || size[1] < 400 || size[0] > 7680 || size[1] > 4320 {
        return Err(CoreError::Invalid(format!(
            "{}x{} is not a slide size: use 640x400 to 7680x4320 (a projector is 1024x768 to 3840x2160)",
            size[0], size[1]
        )));
    }
    if !study.join("study.json").is_file() && !study.join("results").is_dir() {
        return Err(CoreError::Invalid(format!(
            "{} is not a rote study (no study.json): pass --study with a study folder, or leave it out for the demo",
            study.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| CoreError::io(out, e))?;
    let cache = study
        .join("results")
        .join("story")
        .join("export")
        .join(format!("{}x{}", size[0], size[1]));
    // Animations first (computed once, then cached in the study), so the keys see them.
    for (k, step) in STEPS.iter().enumerate() {
        ctx.checkpoint()?;
        ctx.progress("Preparing the story", k as u64, STEPS.len() as u64);
        crate::story::load_or_build(study, *step, ctx)?;
    }
    let study_key = study_fingerprint(study);
    let mut harness: Option<Harness<'static, App>> = None;
    let mut steps = Vec::new();
    for (k, step) in STEPS.iter().enumerate() {
        ctx.checkpoint()?;
        let key = step_key(study, *step, size, &study_key);
        let key_path = cache.join(format!("{}.key", step.slug()));
        let names = file_names(step.slug());
        let fresh = std::fs::read_to_string(&key_path).is_ok_and(|k| k.trim_start().starts_with(&key))
            && names.iter().all(|n| cache.join(n).is_file());
        let frames = if fresh {
            std::fs::read_to_string(&key_path)
                .ok()
                .and_then(|k| k.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
                .unwrap_or(1)
        } else {
            let h = match harness.as_mut() {
                Some(h) => h,
                None => harness.insert(open_talk(study, size)),
            };
            let n = render_step(h, k, &cache, ctx)?;
            write_atomic(&key_path, format!("{key} {n}\n").as_bytes())?;
            n
        };
        for name in &names {
            copy_atomic(&cache.join(name), &out.join(name))?;
        }
        steps.push(ExportedStep {
            slug: step.slug().into(),
            title: step.title().into(),
            narrative: step.narrative().into(),
            frames,
            cached: fresh,
        });
    }
    ctx.progress("Exported", STEPS.len() as u64, STEPS.len() as u64);
    write_atomic(&out.join("index.html"), index_html(&steps, size).as_bytes())?;
    Ok(Exported {
        dir: out.to_path_buf(),
        size,
        steps,
    })
}

/// The app on `study` in presentation mode, in a window of `size` pixels.
fn open_talk(study: &Path, size: [u32; 2]) -> Harness<'static, App> {
    let options = AppOptions {
        study: Some(study.to_path_buf()),
        select: Some(0),
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .allow_missing_glyphs()
        .with_size(egui::vec2(size[0] as f32, size[1] as f32))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    crate::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    let ctx = h.ctx.clone();
    h.state_mut().presentation.exporting = true;
    h.state_mut().enter_presentation(&ctx, Some(0));
    h
}

/// Renders step `k`'s still, GIF and APNG into `cache`; returns the number of frames.
fn render_step(h: &mut Harness<'static, App>, k: usize, cache: &Path, ctx: &JobCtx<'_>) -> CoreResult<usize> {
    let step = STEPS[k];
    let stage = format!("Slide {} of {}", k + 1, STEPS.len());
    h.state_mut().present_step(k);
    crate::ui::screenshot::settle(h, Duration::from_secs(180));
    let n = h.state().presentation.anim().map_or(0, |a| a.frames.len());
    let mut frames = Vec::new();
    let mut delays = Vec::new();
    if n > 1 {
        for f in 0..n {
            ctx.checkpoint()?;
            ctx.progress(&stage, f as u64, n as u64);
            frames.push(render_frame(h, Some(f), false)?);
            delays.push(match f {
                0 => FIRST_MS,
                f if f + 1 == n => LAST_MS,
                _ => FRAME_MS,
            });
        }
    } else {
        // The build-up: the question (heading and narrative), then the finding.
        ctx.progress(&stage, 0, 2);
        frames.push(render_frame(h, None, true)?);
        frames.push(render_frame(h, None, false)?);
        delays.extend([2500, LAST_MS]);
    }
    h.state_mut().presentation.hide_view = false;
    ctx.checkpoint()?;
    ctx.progress(&stage, n as u64, n as u64 + 1);
    let [still, gif, apng] = file_names(step.slug());
    let last = frames
        .last()
        .ok_or_else(|| CoreError::Invalid(format!("slide {} rendered no frames", k + 1)))?;
    write_atomic(&cache.join(still), &png_bytes(last, cache)?)?;
    write_atomic(&cache.join(gif), &gif_bytes(&frames, &delays)?)?;
    write_atomic(&cache.join(apng), &apng_bytes(&frames, &delays)?)?;
    Ok(frames.len())
}

/// Renders the slide at animation frame `frame` (`None`: as it is), with or without the view.
fn render_frame(
    h: &mut Harness<'static, App>,
    frame: Option<usize>,
    hide_view: bool,
) -> CoreResult<RgbaImage> {
    {
        let p = &mut h.state_mut().presentation;
        if let Some(f) = frame {
            p.frame = f;
            p.shown = None;
        }
        p.playing = false;
        p.hide_view = hide_view;
    }
    h.run_steps(2);
    let mut image = h
        .render()
        .map_err(|e| CoreError::Gpu(format!("cannot render the slide: {e}")))?;
    // A slide is opaque (the renderer can leave the clear colour's alpha below 255, which a GIF
    // would turn into holes).
    for p in image.pixels_mut() {
        p[3] = 255;
    }
    Ok(image)
}

fn png_bytes(image: &RgbaImage, at: &Path) -> CoreResult<Vec<u8>> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| CoreError::format(at, format!("cannot encode PNG: {e}")))?;
    Ok(bytes)
}

/// Copies `from` to `to` through a temporary file renamed into place.
fn copy_atomic(from: &Path, to: &Path) -> CoreResult<()> {
    let bytes = std::fs::read(from).map_err(|e| CoreError::io(from, e))?;
    write_atomic(to, &bytes)
}

/// What every slide depends on in the study: its files' names, sizes and times (the export
/// cache and the story animations, keyed on their own, left out).
fn study_fingerprint(study: &Path) -> String {
    let mut entries = Vec::new();
    let skip = study.join("results").join("story");
    let mut stack = vec![study.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in read.flatten() {
            let path = e.path();
            if path == skip {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                let secs = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let rel = path
                    .strip_prefix(study)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .to_string();
                entries.push(format!("{rel}\t{}\t{secs}", meta.len()));
            }
        }
    }
    entries.sort();
    hex(&Sha256::digest(entries.join("\n").as_bytes()))
}

/// The cache key of one step's files.
fn step_key(study: &Path, step: Step, size: [u32; 2], study_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        FORMAT,
        env!("CARGO_PKG_VERSION"),
        step.slug(),
        step.title(),
        step.narrative(),
        study_key,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(size[0].to_le_bytes());
    h.update(size[1].to_le_bytes());
    if let Some(stem) = step.anim_stem()
        && let Ok(bytes) = std::fs::read(anim_path(study, stem))
    {
        h.update(&bytes);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The offline page that plays the steps in order: one step at a time, Right/Space for the
/// next, Left for the previous, and every file linked.
fn index_html(steps: &[ExportedStep], size: [u32; 2]) -> String {
    let mut sections = String::new();
    for (k, s) in steps.iter().enumerate() {
        let [png, gif, apng] = file_names(&s.slug);
        sections.push_str(&format!(
            "<section id=\"{slug}\" data-step=\"{k}\">\n<h2>{title}</h2>\n<p class=\"say\">{say}</p>\n\
             <img src=\"{gif}\" width=\"{w}\" height=\"{h}\" alt=\"{title}\">\n\
             <p class=\"files\">Files: <a href=\"{gif}\">{gif}</a> (animated, {n} frames) · <a href=\"{apng}\">{apng}</a> \
             (full colour) · <a href=\"{png}\">{png}</a> (still of the finished slide)</p>\n</section>\n",
            slug = esc(&s.slug),
            title = esc(&s.title),
            say = esc(&s.narrative),
            n = s.frames,
            w = size[0],
            h = size[1],
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>rote: what did the model memorize?</title>\n\
         <style>body{{background:#1b1b1b;color:#ddd;font-family:sans-serif;margin:1em}}\
         img{{max-width:100%;height:auto;display:block}}section{{display:none}}section.on{{display:block}}\
         .say{{font-size:1.3em}}.files{{color:#999}}a{{color:#8cf}}nav{{margin:.5em 0}}</style></head>\n<body>\n\
         <nav><button id=\"prev\">Previous</button> <span id=\"at\"></span> <button id=\"next\">Next</button> \
         · Right/Space: next, Left: previous · <a href=\"#\" id=\"all\">show all</a></nav>\n{sections}\
         <script>\nconst s=[...document.querySelectorAll('section')];let k=0;\n\
         function show(i){{k=Math.max(0,Math.min(s.length-1,i));s.forEach((e,j)=>e.classList.toggle('on',j===k));\
         const img=s[k].querySelector('img');img.src=img.getAttribute('src');\
         document.getElementById('at').textContent=(k+1)+' / '+s.length;}}\n\
         document.getElementById('prev').onclick=()=>show(k-1);document.getElementById('next').onclick=()=>show(k+1);\n\
         document.getElementById('all').onclick=e=>{{e.preventDefault();s.forEach(x=>x.classList.add('on'));}};\n\
         document.addEventListener('keydown',e=>{{if(e.key==='ArrowRight'||e.key===' '||e.key==='PageDown'){{e.preventDefault();show(k+1);}}\
         if(e.key==='ArrowLeft'||e.key==='PageUp'){{e.preventDefault();show(k-1);}}}});\nshow(0);\n</script>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_every_file_of_every_step_in_order() {
        let steps: Vec<ExportedStep> = STEPS
            .iter()
            .map(|s| ExportedStep {
                slug: s.slug().into(),
                title: s.title().into(),
                narrative: s.narrative().into(),
                frames: 2,
                cached: false,
            })
            .collect();
        let html = index_html(&steps, [1280, 720]);
        let mut at = 0;
        for s in &steps {
            let pos = html[at..].find(&format!("id=\"{}\"", s.slug)).map(|p| p + at);
            let pos = pos.unwrap_or_else(|| panic!("{} in order", s.slug));
            for name in file_names(&s.slug) {
                assert!(html[pos..].contains(&format!("href=\"{name}\"")), "{name} linked");
            }
            at = pos;
        }
        assert!(html.contains("32 times"), "the narrative is on the page");
        assert!(!html.contains("x<y"), "nothing unescaped");
    }

    #[test]
    fn a_bad_size_or_folder_is_one_clear_error() {
        let cancel = crate::job::CancelToken::new();
        let ctx = JobCtx::new(&cancel, &crate::job::NullSink);
        let dir = tempfile::tempdir().unwrap();
        let e = export_talk(dir.path(), &dir.path().join("out"), [100, 100], &ctx).unwrap_err();
        assert!(e.to_string().contains("not a slide size"), "{e}");
        let e = export_talk(dir.path(), &dir.path().join("out"), [1280, 720], &ctx).unwrap_err();
        assert!(e.to_string().contains("not a rote study"), "{e}");
    }
}
