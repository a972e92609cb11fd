//! Secret Sharer exposure (`results/exposure/*.json`): every canary's exposure by each estimate,
//! exposure against insertions per format, and the skew-normal fit per format.

use super::svg::{Axis, Series, line_chart};
use super::{Report, Section, Table, html};
use crate::canary::report::ExposureReport;
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Adds one section per exposure report.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    for path in super::json_files(&r.study.results_dir().join("exposure")) {
        ctx.checkpoint()?;
        let stem = super::stem_of(&path);
        let mut body = String::new();
        if let Some(rep) = r.load::<ExposureReport>(&path, &mut body) {
            section(r, &stem, &rep, &mut body)?;
        }
        r.sections.push(Section {
            id: super::slug(&format!("exposure-{stem}")),
            title: format!("Exposure: {stem}"),
            body,
        });
    }
    Ok(())
}

fn section(r: &mut Report<'_>, stem: &str, rep: &ExposureReport, body: &mut String) -> CoreResult<()> {
    let prefix = |f: usize| {
        rep.formats
            .iter()
            .find(|x| x.format == f)
            .map_or(String::new(), |x| x.prefix.clone())
    };
    body.push_str(&html::p(&format!(
        "Character LM {}: {} canaries in {} formats; exposure in bits (log2 |R| - log2 rank); \
         estimates '{}' with {} sampled references.",
        rep.model,
        rep.canaries.len(),
        rep.formats.len(),
        rep.options.estimate.as_str(),
        rep.options.references
    )));
    let mut t = Table::new(&[
        "canary",
        "format",
        "prefix",
        "secret",
        "insertions",
        "px_bits",
        "exact_rank",
        "exact",
        "skew_normal",
        "interpolation",
        "tf_mean_nats",
        "tf_interpolation",
        "tf_extrapolation",
        "exposure",
    ]);
    for c in &rep.canaries {
        t.push(vec![
            c.canary.into(),
            c.format.into(),
            prefix(c.format).into(),
            c.secret.as_str().into(),
            c.insertions.into(),
            c.px_bits.into(),
            c.exact_rank.into(),
            c.exact.into(),
            c.skew_normal.into(),
            c.interpolation.into(),
            c.tf_mean_nats.into(),
            c.tf_interpolation.into(),
            c.tf_extrapolation.into(),
            c.best().into(),
        ]);
    }
    let f = r.csv(
        &format!("exposure-{stem}"),
        &format!(
            "{}: exposure of every canary by each estimate (exposure: exact, else skew-normal, else TF Privacy's extrapolation)",
            rep.model
        ),
        &t,
    )?;
    let mut series = Vec::new();
    let mut xmax: f64 = 1.0;
    let mut ymax: f64 = 1.0;
    for fm in &rep.formats {
        let mut pts: Vec<[f64; 2]> = rep
            .canaries
            .iter()
            .filter(|c| c.format == fm.format)
            .map(|c| [f64::from(c.insertions), c.best()])
            .collect();
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
        xmax = pts.iter().map(|p| p[0]).fold(xmax, f64::max);
        ymax = pts
            .iter()
            .map(|p| p[1])
            .filter(|v| v.is_finite())
            .fold(ymax, f64::max)
            .max(fm.log2_space);
        series.push(Series::new(
            &format!("'{}' + {} digits", fm.prefix.trim(), fm.digits),
            pts,
        ));
    }
    for fm in &rep.formats {
        series.push(Series::reference(
            &format!("log2 |R| = {:.1}", fm.log2_space),
            vec![[0.0, fm.log2_space], [xmax, fm.log2_space]],
        ));
    }
    body.push_str(&html::chart(
        &line_chart(
            &series,
            &Axis::linear("insertions in the training text", 0.0, xmax),
            &Axis::linear("exposure (bits)", 0.0, ymax * 1.05),
        ),
        "Exposure against the number of insertions, one line per format; dashed: the largest \
         possible exposure (the canary ranked first of all 10^digits).",
    ));
    body.push_str(&html::table(&t, 100, Some(&f)));
    body.push_str(&html::p(
        "The secret column is text: read it with pandas.read_csv(..., dtype={'secret': str}) to keep \
         leading zeros.",
    ));

    let mut ft = Table::new(&[
        "format",
        "prefix",
        "digits",
        "log2_space",
        "references",
        "log2_references",
        "fit_shape",
        "fit_loc",
        "fit_scale",
        "ks",
        "exact_seconds",
    ]);
    for fm in &rep.formats {
        ft.push(vec![
            fm.format.into(),
            fm.prefix.as_str().into(),
            fm.digits.into(),
            fm.log2_space.into(),
            fm.references.into(),
            fm.log2_references.into(),
            fm.fit.as_ref().map(|s| s.shape).into(),
            fm.fit.as_ref().map(|s| s.loc).into(),
            fm.fit.as_ref().map(|s| s.scale).into(),
            fm.ks.into(),
            fm.exact_seconds.into(),
        ]);
    }
    let ff = r.csv(
        &format!("exposure-formats-{stem}"),
        &format!(
            "{}: per format, the space, references and the skew-normal fit",
            rep.model
        ),
        &ft,
    )?;
    body.push_str(&html::h3("Formats"));
    body.push_str(&html::table(&ft, 20, Some(&ff)));
    Ok(())
}
