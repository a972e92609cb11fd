//! `rote lm-dataset-test`'s report: the per-sample scores of a suspect set and a reference set
//! under one language model, the dataset-level test between them ([`super::dataset_test`]), the
//! control between two halves of the reference set, the power curve, and a few exhibited
//! extractions (MemHunter's "verifiable" output: a p-value and the text behind it).

use std::collections::HashSet;

use super::dataset_test::{
    PowerPoint, RankTest, SampleScore, halves, lcs_norm, power_curve, rank_test, samples_needed,
};
use super::extract_report::{LmExtractOptions, extract_into_study};
use super::mia_report::{LmMiaOptions, mia_into_study};
use super::study::{LmDoc, LmSource};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Random halvings of the reference set the control runs on.
pub const CONTROL_SPLITS: usize = 200;

/// What the test runs with.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetTestOptions {
    /// The per-sample score.
    pub score: SampleScore,
    /// Significance level α.
    pub alpha: f64,
    /// Seed of the control halves and the power curve's subsets.
    pub seed: u64,
}

impl Default for DatasetTestOptions {
    fn default() -> Self {
        Self {
            score: SampleScore::Lcs,
            alpha: 0.05,
            seed: 0,
        }
    }
}

/// A suspect sample shown as evidence: its prefix, true continuation and the model's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exhibit {
    /// Where it came from.
    pub source: String,
    /// Its score.
    pub score: f64,
    /// The prompt.
    pub prefix: String,
    /// The true continuation.
    pub truth: String,
    /// The model's greedy continuation.
    pub generated: String,
}

/// The dataset-level test of one model on a suspect and a reference set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetTestReport {
    /// Model id.
    pub model: String,
    /// Where the texts came from.
    pub source: LmSource,
    /// Options.
    pub options: DatasetTestOptions,
    /// Suspect vs reference.
    pub members: RankTest,
    /// Reference half vs reference half (H0 true by construction), the seed's first split.
    pub control: RankTest,
    /// The control's p-values over [`CONTROL_SPLITS`] random splits of the reference set: under
    /// H0 they spread evenly over (0, 1) (the spec's null calibration).
    pub control_splits: Vec<f64>,
    /// Their median (about ½ when the test is calibrated): the `control_p` of the output.
    pub control_p: f64,
    /// The share of splits with p < α (about α when the test is calibrated).
    pub control_reject_rate: f64,
    /// Samples per side the test needed for power 0.8 at α (none: not within the sets' size).
    pub n_needed: Option<usize>,
    /// The power curve, suspect vs reference.
    pub power: Vec<PowerPoint>,
    /// Suspect scores.
    pub suspect_scores: Vec<f64>,
    /// Reference scores.
    pub reference_scores: Vec<f64>,
    /// Up to three suspect samples the model continued best (with `lcs`).
    pub exhibits: Vec<Exhibit>,
    /// Samples left out (too short for a 32 + 32-token extraction).
    pub skipped: usize,
}

impl DatasetTestReport {
    /// The verdict in one sentence.
    pub fn finding(&self) -> String {
        let a = self.options.alpha;
        let m = &self.members;
        let verdict = if m.p_value < a {
            format!(
                "the model memorized the suspect set (p = {:.2e} < α = {a})",
                m.p_value
            )
        } else {
            format!(
                "no evidence the model memorized the suspect set (p = {:.3} ≥ α = {a})",
                m.p_value
            )
        };
        let needed = self.n_needed.map_or_else(
            || "no subset size up to the sets' reached power 0.8".to_string(),
            |n| format!("{n} samples per side suffice for power 0.8"),
        );
        format!(
            "{verdict}: {} of {} suspect vs {} reference samples by {}, a suspect sample outscores a \
             reference one {:.0} % of the time; {needed}; control (reference half vs half, {} \
             random splits): median p = {:.3}, {:.0} % below α.",
            self.options.score.name(),
            m.n_suspect,
            m.n_reference,
            if self.options.score == SampleScore::Lcs {
                "longest common substring"
            } else {
                "score"
            },
            100.0 * m.auc,
            self.control_splits.len(),
            self.control_p,
            100.0 * self.control_reject_rate
        )
    }
}

/// Scores the suspect and reference documents with `lm`, tests, and builds the report. The
/// extraction or membership report behind the scores is cached in `cache` like `lm-extract`'s and
/// `lm-mia`'s.
pub fn dataset_test(
    lm: &super::HfLm,
    source: LmSource,
    suspect: &[LmDoc],
    reference: &[LmDoc],
    opts: &DatasetTestOptions,
    cache: Option<&std::path::Path>,
    ctx: &JobCtx<'_>,
) -> CoreResult<DatasetTestReport> {
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        return Err(CoreError::Invalid(format!(
            "--alpha {} is not in (0, 1)",
            opts.alpha
        )));
    }
    let suspect_sources: HashSet<&str> = suspect.iter().map(|d| d.source.as_str()).collect();
    if reference
        .iter()
        .any(|d| suspect_sources.contains(d.source.as_str()))
    {
        return Err(CoreError::Invalid(
            "the suspect and reference sets share documents (the same file twice?)".into(),
        ));
    }
    let (mut a, mut b, mut exhibits) = (Vec::new(), Vec::new(), Vec::new());
    let skipped = if opts.score == SampleScore::Lcs {
        let docs: Vec<LmDoc> = suspect.iter().chain(reference).cloned().collect();
        let (report, _) = extract_into_study(
            lm,
            source.clone(),
            &docs,
            &LmExtractOptions::default(),
            cache,
            ctx,
        )?;
        let mut shown: Vec<Exhibit> = Vec::new();
        for d in &report.documents {
            let s = lcs_norm(&d.generated, &d.truth);
            if suspect_sources.contains(d.source.as_str()) {
                a.push(s);
                shown.push(Exhibit {
                    source: d.source.clone(),
                    score: s,
                    prefix: d.prefix_text.clone(),
                    truth: d.truth_tokens.concat(),
                    generated: d.generated_tokens.concat(),
                });
            } else {
                b.push(s);
            }
        }
        shown.sort_by(|x, y| y.score.total_cmp(&x.score));
        exhibits = shown.into_iter().take(3).filter(|e| e.score >= 0.5).collect();
        report.skipped.len()
    } else {
        let (report, _) = mia_into_study(
            lm,
            None,
            source.clone(),
            suspect,
            reference,
            &LmMiaOptions::default(),
            cache,
            ctx,
        )?;
        for d in &report.documents {
            let s = d.scores.get(opts.score.name()).unwrap_or(f64::NAN);
            if d.member { a.push(s) } else { b.push(s) }
        }
        0
    };
    ctx.progress("testing", 0, 1);
    let members = rank_test(&a, &b)
        .map_err(|e| CoreError::Invalid(format!("{e}; {skipped} documents were too short for the score")))?;
    let too_few = || {
        CoreError::Invalid(format!(
            "the control needs at least 4 reference samples ({} scored)",
            b.len()
        ))
    };
    let (h1, h2) = halves(&b, opts.seed);
    let control = rank_test(&h1, &h2).map_err(|_| too_few())?;
    let mut control_splits = Vec::with_capacity(CONTROL_SPLITS);
    for k in 0..CONTROL_SPLITS as u64 {
        let (h1, h2) = halves(&b, opts.seed.wrapping_add(k));
        control_splits.push(rank_test(&h1, &h2).map_err(|_| too_few())?.p_value);
    }
    let mut sorted = control_splits.clone();
    sorted.sort_by(f64::total_cmp);
    let control_p = sorted[sorted.len() / 2];
    let control_reject_rate =
        control_splits.iter().filter(|&&p| p < opts.alpha).count() as f64 / control_splits.len() as f64;
    let power = power_curve(&a, &b, opts.alpha, opts.seed)?;
    ctx.progress("testing", 1, 1);
    let report = DatasetTestReport {
        model: lm.id(),
        source,
        options: opts.clone(),
        members,
        control,
        control_splits,
        control_p,
        control_reject_rate,
        n_needed: samples_needed(&power),
        power,
        suspect_scores: a,
        reference_scores: b,
        exhibits,
        skipped,
    };
    if let Some(root) = cache {
        let path = super::study::dataset_path(root, &report.model, &report.source, opts.score.name());
        super::study::save_report(&path, &report)?;
    }
    Ok(report)
}
