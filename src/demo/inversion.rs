//! The demo's model-inversion result: the face classifier [`DEMO_FACE_MODEL`] inverted for all 40
//! people with the total-variation method, so the Inversion view opens on a full grid. The
//! evaluation classifier is not shipped (10 MB); the first new inversion in a study trains it
//! (seconds) and caches it there.

use std::path::Path;

use super::common::DEMO_FACE_MODEL;
use crate::error::{CoreError, CoreResult};
use crate::invert::{InvertConfig, InvertOptions, Method, invert_model, report_path};
use crate::job::JobCtx;
use crate::study::{Study, write_atomic};

/// Methods whose demo reports are shipped (the TV prior, MI-FACE with rote's defaults and MI-FACE
/// as published, which stalls on 40 people: see [`crate::invert::PAPER_RULES_STALL`]).
pub const DEMO_INVERSION_METHODS: [Method; 3] = [Method::Tv, Method::MiFace, Method::MiFacePaper];

/// Copies the shipped inversion reports into `study` (reports already there are kept).
pub fn copy_demo_inversion(study: &Study, assets: &Path) -> CoreResult<()> {
    for method in DEMO_INVERSION_METHODS {
        let src = report_path(assets, DEMO_FACE_MODEL, method);
        let dest = report_path(&study.root, DEMO_FACE_MODEL, method);
        if src.is_file() && !dest.exists() {
            let bytes = std::fs::read(&src).map_err(|e| CoreError::io(&src, e))?;
            write_atomic(&dest, &bytes)?;
        }
    }
    Ok(())
}

/// Inverts every person of the demo face model in `study` with each shipped method (the
/// methods' defaults, seed 0), and with `assets` replaces the shipped reports.
pub fn rebuild_demo_inversion(study: &Study, assets: Option<&Path>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let model_dir = study.models_dir().join(DEMO_FACE_MODEL);
    for method in DEMO_INVERSION_METHODS {
        let opts = InvertOptions {
            config: InvertConfig::for_method(method),
            ..InvertOptions::default()
        };
        let (_, written) = invert_model(&model_dir, &opts, ctx)?;
        if let Some(assets) = assets {
            let bytes = std::fs::read(&written).map_err(|e| CoreError::io(&written, e))?;
            write_atomic(&report_path(assets, DEMO_FACE_MODEL, method), &bytes)?;
        }
    }
    Ok(())
}
