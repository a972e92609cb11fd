//! LLM memorization (`results/lm/<model>/{extract,mia}-*.json`, written by `rote lm-extract` and
//! `rote lm-mia`): one section per model with, for each extraction report, the finding, the table
//! by insertion group, the (n, p) curves, the k / m sweep and a few documents side by side (true
//! continuation | generated, reproduced tokens highlighted); and for each membership report, the
//! attack table with AUC and bootstrap interval, the per-group AUCs and the log–log ROC curves.

use super::svg::{Axis, Series, line_chart};
use super::{Report, Section, Table, html};
use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::lm::dataset_report::DatasetTestReport;
use crate::lm::extract_report::{ExtractDoc, ExtractFigures, LmExtractReport, finding_lines, headline};
use crate::lm::mia_report::{self, LmMiaReport};
use crate::lm::probe_report::ProbeReport;
use crate::lm::study::list_results;
use crate::measure::roc::log_roc_points;

/// Documents shown side by side per insertion group (or in all, for user texts).
const SIDE_BY_SIDE: usize = 2;

/// Adds one section per model with cached LM reports.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let found = list_results(&r.study.root);
    let mut models: Vec<String> = found
        .extract
        .iter()
        .chain(&found.mia)
        .chain(&found.dataset)
        .chain(&found.probe)
        .map(|(m, _)| m.clone())
        .collect();
    models.sort();
    models.dedup();
    for model in models {
        ctx.checkpoint()?;
        let mut body = String::new();
        for (_, path) in found.extract.iter().filter(|(m, _)| *m == model) {
            if let Some(rep) = r.load::<LmExtractReport>(path, &mut body) {
                extraction(r, &format!("{model}-{}", super::stem_of(path)), &rep, &mut body)?;
            }
        }
        for (_, path) in found.mia.iter().filter(|(m, _)| *m == model) {
            if let Some(rep) = r.load::<LmMiaReport>(path, &mut body) {
                membership(r, &format!("{model}-{}", super::stem_of(path)), &rep, &mut body)?;
            }
        }
        for (_, path) in found.dataset.iter().filter(|(m, _)| *m == model) {
            if let Some(rep) = r.load::<DatasetTestReport>(path, &mut body) {
                dataset_test(r, &format!("{model}-{}", super::stem_of(path)), &rep, &mut body)?;
            }
        }
        for (_, path) in found.probe.iter().filter(|(m, _)| *m == model) {
            if let Some(rep) = r.load::<ProbeReport>(path, &mut body) {
                super::lm_probe::probes(r, &format!("{model}-{}", super::stem_of(path)), &rep, &mut body)?;
            }
        }
        r.sections.push(Section {
            id: super::slug(&format!("lm-{model}")),
            title: format!("Language model: {model}"),
            body,
        });
    }
    Ok(())
}

fn figures_row(label: Option<u32>, f: &ExtractFigures) -> Vec<super::Cell> {
    vec![
        label.map_or_else(|| "all".into(), |c| c.to_string().into()),
        f.n.into(),
        f.exact.into(),
        f.exact_frac.into(),
        f.token_match.into(),
        f.mean_longest_match.into(),
        f.longest_match.into(),
        f.median_ln_p_z.into(),
    ]
}

const FIGURE_COLUMNS: [&str; 8] = [
    "insertions",
    "n",
    "exact",
    "exact_frac",
    "token_match",
    "mean_longest_match",
    "longest_match",
    "median_ln_p_z",
];

fn extraction(r: &mut Report<'_>, name: &str, rep: &LmExtractReport, body: &mut String) -> CoreResult<()> {
    let (k, m) = (rep.options.prefix_tokens, rep.options.suffix_tokens);
    body.push_str(&html::h3(&format!(
        "Extraction, {k}-token prefix to {m}-token continuation"
    )));
    body.push_str(&html::p(&format!(
        "{} ({}), documents: {}. Greedy decoding from each document's first {k} tokens; exact = \
         all {m} following tokens reproduced (Carlini et al. 2022, k-extractable), token match = \
         fraction of positions reproduced (Biderman et al. 2023), (n, p) = probability at least p \
         of sampling the continuation within n tries (Hayes et al. 2024). {} documents measured, \
         {} shorter than {} tokens left out.",
        rep.model,
        rep.model_type,
        rep.source.describe(),
        rep.overall.n,
        rep.skipped.len(),
        k + m
    )));
    let lines: Vec<(&str, String)> = vec![
        ("finding", headline(rep)),
        ("by group", finding_lines(rep).join("; ")),
    ];
    body.push_str(&html::figures(&lines));
    let mut t = Table::new(&FIGURE_COLUMNS);
    for g in rep.groups.iter().rev() {
        t.push(figures_row(Some(g.insertions), &g.figures));
    }
    t.push(figures_row(None, &rep.overall));
    let f = r.csv(
        &format!("lm-{name}"),
        &format!(
            "{}: extraction figures by insertion group (0 = held out) and overall",
            rep.model
        ),
        &t,
    )?;
    body.push_str(&html::table(&t, 50, Some(&f)));

    // (n, p) curves over all documents: one line per p, rate against n (log axis).
    let mut ps: Vec<f64> = rep.overall.np_rates.iter().map(|x| x.p).collect();
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    if !ps.is_empty() {
        let nmax = rep.overall.np_rates.iter().map(|x| x.n).fold(10.0, f64::max);
        let mut series: Vec<Series> = ps
            .iter()
            .map(|&p| {
                let pts = rep
                    .overall
                    .np_rates
                    .iter()
                    .filter(|x| x.p == p)
                    .map(|x| [x.n, x.rate])
                    .collect();
                Series::new(&format!("p = {p}"), pts)
            })
            .collect();
        series.push(Series::reference(
            "greedy exact",
            vec![[1.0, rep.overall.exact_frac], [nmax, rep.overall.exact_frac]],
        ));
        body.push_str(&html::chart(
            &line_chart(
                &series,
                &Axis::log("queries n", 1.0, nmax),
                &Axis::linear("(n, p)-extraction rate", 0.0, 1.0),
            ),
            "Fraction of documents whose true continuation is sampled at least once in n queries \
             with probability at least p (Hayes et al. 2024); dashed: the greedy exact rate.",
        ));
    }

    if !rep.sweep.is_empty() {
        let mut st = Table::new(&["k", "m", "group", "n", "exact_frac", "token_match"]);
        for p in &rep.sweep {
            st.push(vec![
                p.k.into(),
                p.m.into(),
                "all".into(),
                p.overall.n.into(),
                p.overall.exact_frac.into(),
                p.overall.token_match.into(),
            ]);
            for g in &p.groups {
                st.push(vec![
                    p.k.into(),
                    p.m.into(),
                    g.insertions.to_string().into(),
                    g.figures.n.into(),
                    g.figures.exact_frac.into(),
                    g.figures.token_match.into(),
                ]);
            }
        }
        let sf = r.csv(
            &format!("lm-{name}-sweep"),
            &format!(
                "{}: extraction over prefix lengths k and suffix lengths m",
                rep.model
            ),
            &st,
        )?;
        body.push_str(&html::h3("Sweep over prefix and suffix length"));
        body.push_str(&html::table(&st, 60, Some(&sf)));
    }

    let shown = pick_documents(rep);
    if !shown.is_empty() {
        body.push_str(&html::h3("Documents side by side"));
        body.push_str(&html::p(
            "Highlighted: continuation tokens that greedy decoding reproduced at their position.",
        ));
        body.push_str(&side_by_side(&shown));
        let mut dt = Table::new(&[
            "source",
            "insertions",
            "exact",
            "token_match",
            "longest_match",
            "ln_p_z",
            "prefix",
            "true_continuation",
            "generated",
        ]);
        for d in &rep.documents {
            dt.push(vec![
                d.source.as_str().into(),
                d.insertions.into(),
                d.exact.into(),
                d.token_match.into(),
                d.longest_match.into(),
                d.ln_p_z.into(),
                d.prefix_text.as_str().into(),
                d.truth_tokens.concat().into(),
                d.generated_tokens.concat().into(),
            ]);
        }
        let df = r.csv(
            &format!("lm-{name}-documents"),
            &format!(
                "{}: every document's prefix, true and generated continuation",
                rep.model
            ),
            &dt,
        )?;
        body.push_str(&format!(
            "<p class=\"file\">all documents: {}</p>\n",
            html::link(&df)
        ));
    }
    Ok(())
}

/// A few documents per insertion group (most inserted first), or the first few of user texts.
fn pick_documents(rep: &LmExtractReport) -> Vec<&ExtractDoc> {
    if rep.groups.is_empty() {
        return rep.documents.iter().take(2 * SIDE_BY_SIDE).collect();
    }
    rep.groups
        .iter()
        .rev()
        .flat_map(|g| {
            rep.documents
                .iter()
                .filter(move |d| d.insertions == Some(g.insertions))
                .take(SIDE_BY_SIDE)
        })
        .collect()
}

fn tokens_html(tokens: &[String], matches: &[bool]) -> String {
    tokens
        .iter()
        .zip(matches.iter().chain(std::iter::repeat(&false)))
        .map(|(t, &hit)| {
            if hit {
                format!("<mark>{}</mark>", html::esc(t))
            } else {
                html::esc(t)
            }
        })
        .collect()
}

fn side_by_side(docs: &[&ExtractDoc]) -> String {
    let mut s = String::from(
        "<table>\n<tr><th>document</th><th>insertions</th><th>prefix</th><th>true continuation</th>\
         <th>generated</th><th>match</th></tr>\n",
    );
    for d in docs {
        s.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.2}</td></tr>\n",
            html::esc(&d.source),
            d.insertions.map_or_else(|| "-".to_string(), |c| c.to_string()),
            html::esc(&d.prefix_text),
            tokens_html(&d.truth_tokens, &d.matches),
            tokens_html(&d.generated_tokens, &d.matches),
            d.token_match
        ));
    }
    s.push_str("</table>\n");
    s
}

fn membership(r: &mut Report<'_>, name: &str, rep: &LmMiaReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::h3("Membership inference"));
    body.push_str(&html::p(&format!(
        "{} ({}), {}: {} members vs {} non-members{}. MIMIR's scores (Duan et al. 2024): LOSS, zlib \
         (Carlini et al. 2021), Min-K% (Shi et al. 2024) and Min-K%++ (Zhang et al. 2024) at k = {}{}; \
         AUC with a percentile-bootstrap 95% interval over 1,000 resamples.",
        rep.model,
        rep.model_type,
        rep.source.describe(),
        rep.n_members,
        rep.n_nonmembers,
        if rep.truncated > 0 {
            format!(" ({} cut to the model's context)", rep.truncated)
        } else {
            String::new()
        },
        rep.options.min_k,
        rep.reference
            .as_ref()
            .map_or(String::new(), |x| format!(", and the reference model {x}"))
    )));
    let lines = mia_report::finding_lines(rep);
    let rows: Vec<(&str, String)> = vec![("finding", lines.join("; "))];
    body.push_str(&html::figures(&rows));
    let mut t = Table::new(&[
        "attack",
        "auc",
        "auc_ci_lo",
        "auc_ci_hi",
        "auc_se",
        "tpr_at_1pct_fpr",
        "tpr_at_0_1pct_fpr",
        "n_members",
        "n_nonmembers",
    ]);
    for a in &rep.attacks {
        t.push(vec![
            a.attack.as_str().into(),
            a.auc.into(),
            a.auc_ci[0].into(),
            a.auc_ci[1].into(),
            a.auc_se.into(),
            a.tpr_at_1pct_fpr.into(),
            a.tpr_at_0_1pct_fpr.into(),
            rep.n_members.into(),
            rep.n_nonmembers.into(),
        ]);
    }
    let f = r.csv(
        &format!("lm-{name}"),
        &format!(
            "{}: membership inference, AUC with bootstrap interval and TPR at low FPR",
            rep.model
        ),
        &t,
    )?;
    body.push_str(&html::table(&t, 20, Some(&f)));
    if !rep.by_insertions.is_empty() {
        let mut header = vec!["insertions".to_string(), "n".to_string()];
        header.extend(rep.attacks.iter().map(|a| format!("auc_{}", a.attack)));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut gt = Table::new(&header);
        for g in &rep.by_insertions {
            let mut row: Vec<super::Cell> = vec![g.insertions.into(), g.n.into()];
            row.extend(g.auc.iter().map(|(_, v)| super::Cell::from(*v)));
            gt.push(row);
        }
        let gf = r.csv(
            &format!("lm-{name}-groups"),
            &format!(
                "{}: AUC of each planted group against the held-out passages",
                rep.model
            ),
            &gt,
        )?;
        body.push_str(&html::p("Each planted group against the held-out passages:"));
        body.push_str(&html::table(&gt, 20, Some(&gf)));
    }
    let curves: Vec<(String, Vec<[f64; 2]>)> = rep
        .attacks
        .iter()
        .map(|a| {
            (
                format!("{} (AUC {:.3})", a.attack, a.auc),
                log_roc_points(&a.roc, 1e-4, 300),
            )
        })
        .collect();
    body.push_str(&html::chart(
        &super::mia::roc_chart(&curves),
        "ROC curve of each attack on log-log axes (the low-FPR region is what matters for privacy).",
    ));
    let mut roc = Table::new(&["attack", "fpr", "tpr"]);
    for a in &rep.attacks {
        for (x, y) in a.roc.fpr.iter().zip(&a.roc.tpr) {
            roc.push(vec![a.attack.as_str().into(), (*x).into(), (*y).into()]);
        }
    }
    let rf = r.csv(
        &format!("lm-{name}-roc"),
        &format!("{}: ROC points of every attack", rep.model),
        &roc,
    )?;
    body.push_str(&format!("<p class=\"file\">data: {}</p>\n", html::link(&rf)));
    Ok(())
}

/// `rote lm-dataset-test`: the verdict, the two tests and the power curve.
fn dataset_test(
    r: &mut Report<'_>,
    name: &str,
    rep: &DatasetTestReport,
    body: &mut String,
) -> CoreResult<()> {
    body.push_str(&html::h3(&format!(
        "Dataset-level membership (MemHunter-style) on {}, score {}",
        rep.source.describe(),
        rep.options.score.name()
    )));
    body.push_str(&html::p(&rep.finding()));
    let mut t = Table::new(&[
        "test",
        "n_suspect",
        "n_reference",
        "u",
        "auc",
        "p_value",
        "welch_t",
        "welch_p",
    ]);
    for (label, x) in [
        ("suspect vs reference", &rep.members),
        ("control: one reference split", &rep.control),
    ] {
        t.push(vec![
            label.into(),
            x.n_suspect.into(),
            x.n_reference.into(),
            x.u.into(),
            x.auc.into(),
            x.p_value.into(),
            x.welch_t.into(),
            x.welch_p.into(),
        ]);
    }
    let f = r.csv(
        &format!("lm-{name}"),
        &format!(
            "{}: one-sided Mann-Whitney U, suspect vs reference and a control split",
            rep.model
        ),
        &t,
    )?;
    body.push_str(&html::table(&t, 5, Some(&f)));
    let mut pt = Table::new(&["n_per_side", "power", "median_p"]);
    for p in &rep.power {
        pt.push(vec![p.n.into(), p.power.into(), p.median_p.into()]);
    }
    let pf = r.csv(
        &format!("lm-{name}-power"),
        &format!(
            "{}: empirical power at alpha {} against samples per side",
            rep.model, rep.options.alpha
        ),
        &pt,
    )?;
    body.push_str(&html::p(
        "Power of the test against the number of samples per side:",
    ));
    body.push_str(&html::table(&pt, 20, Some(&pf)));
    Ok(())
}
