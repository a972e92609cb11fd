//! `rote report STUDY --out DIR`: the study as an HTML page with PNG galleries and CSV tables.

use std::path::Path;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};

/// Writes the report and prints what was written.
pub(super) fn report(study: &Path, out: &Path, json: bool) -> CoreResult<()> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let summary = crate::report::write_report(study, out, &ctx);
    sink.finish();
    let summary = summary?;
    let value = json!(summary);
    print(json, &value, || {
        let mut s = format!(
            "report of {} written to {}: {} files ({} sections, {} CSV tables, {} PNG galleries)",
            study.display(),
            summary.index.display(),
            summary.files.len(),
            summary.sections.len(),
            summary.files.iter().filter(|f| f.ends_with(".csv")).count(),
            summary.files.iter().filter(|f| f.ends_with(".png")).count(),
        );
        for n in &summary.notes {
            s.push_str(&format!("\nnote: {n}"));
        }
        s
    });
    Ok(())
}
