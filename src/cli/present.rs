//! `rote present`: the demo story full screen (presentation mode), or with `--export DIR` the talk
//! as files a speaker can carry: a still PNG, an animated GIF and an APNG per step, and
//! `index.html` that plays them in order (see `ui::present::export`).

use std::path::PathBuf;

use clap::Args;

use crate::error::{CoreError, CoreResult};

/// Arguments of `rote present`.
#[derive(Args, Debug)]
pub struct PresentArgs {
    /// Study to present (default: the demo study, written on first use).
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// Write the talk into this folder instead of opening the window.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Width of the exported slides in pixels.
    #[arg(long, default_value_t = 1280, requires = "export")]
    pub width: u32,
    /// Height of the exported slides in pixels.
    #[arg(long, default_value_t = 720, requires = "export")]
    pub height: u32,
}

/// Runs `rote present`.
#[cfg(feature = "gui")]
pub fn present(args: PresentArgs, json: bool) -> CoreResult<()> {
    use serde_json::json;

    use super::commands::print;
    use super::progress::CliSink;
    use crate::job::{CancelToken, JobCtx};

    let Some(out) = args.export else {
        return crate::ui::run_native(args.study, true).map_err(|e| CoreError::Invalid(format!("{e:#}")));
    };
    let study = match args.study {
        Some(s) => s,
        None => {
            let s = crate::paths::default_demo_study();
            crate::demo::write_demo(&s)?;
            s
        }
    };
    let t0 = std::time::Instant::now();
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let done = crate::ui::present::export::export_talk(
        &study,
        &out,
        [args.width, args.height],
        &JobCtx::new(&cancel, &sink),
    );
    sink.finish();
    let done = done?;
    let secs = t0.elapsed().as_secs_f64();
    let value = json!({"export": &done, "rendered": done.rendered(), "seconds": secs});
    print(json, &value, || {
        let mut s = format!(
            "{} slides at {}x{} in {} ({:.1} s; {} rendered, {} from the cache):\n",
            done.steps.len(),
            done.size[0],
            done.size[1],
            done.dir.display(),
            secs,
            done.rendered(),
            done.steps.len() - done.rendered()
        );
        for (k, st) in done.steps.iter().enumerate() {
            s.push_str(&format!(
                "  {}. {}: {slug}.png, {slug}.gif and {slug}.apng ({} frames)\n",
                k + 1,
                st.title.split_once(". ").map_or(st.title.as_str(), |t| t.1),
                st.frames,
                slug = st.slug
            ));
        }
        s.push_str(&format!(
            "Open {} to play them in order.",
            done.dir.join("index.html").display()
        ));
        s
    });
    Ok(())
}

/// Runs `rote present` (this build has no GUI).
#[cfg(not(feature = "gui"))]
pub fn present(_: PresentArgs, _: bool) -> CoreResult<()> {
    Err(CoreError::Invalid(
        "`rote present` renders the app: this build has no GUI (built without the 'gui' feature)".into(),
    ))
}
