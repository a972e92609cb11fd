//! Job bodies behind the Text view's In-context learning tab: read the study's cached ICL sweeps
//! (`icl::cache`), or run the default `rote icl` sweep and cache it where `rote icl --study`
//! would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::CoreResult;
use crate::icl::cache::{self, IclRecord};
use crate::job::JobCtx;

/// What the ICL tab asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IclTask {
    /// List the cached sweeps and read one (`None`: the default sweep, else the first).
    Open(Option<PathBuf>),
    /// Run the default sweep (the cached one when its settings match) and cache it.
    Run,
}

/// A finished ICL job.
#[derive(Clone, Debug)]
pub struct IclDone {
    /// The study it read or wrote.
    pub study: PathBuf,
    /// Every cached sweep of the study.
    pub files: Vec<PathBuf>,
    /// The sweep to show, with its file (`None`: nothing cached).
    pub shown: Option<(PathBuf, Arc<IclRecord>)>,
}

/// Lists the cached sweeps of `study` and reads `file` (default: the first listed).
pub fn open(study: &Path, file: Option<PathBuf>) -> CoreResult<IclDone> {
    let files = cache::list(study);
    let shown = match file.or_else(|| files.first().cloned()) {
        Some(path) => {
            let record = cache::load(&path)?;
            Some((path, Arc::new(record)))
        }
        None => None,
    };
    Ok(IclDone {
        study: study.to_path_buf(),
        files,
        shown,
    })
}

/// Runs the default sweep (seed 0) into the study's cache, as `rote icl --study STUDY` does.
pub fn run(study: &Path, ctx: &JobCtx<'_>) -> CoreResult<IclDone> {
    let cfg = crate::icl::default_sweep(0);
    let (record, _) = cache::sweep_into_study(Some(study), &cfg, false, ctx)?;
    Ok(IclDone {
        study: study.to_path_buf(),
        files: cache::list(study),
        shown: Some((cache::sweep_path(study, &cfg), Arc::new(record))),
    })
}
