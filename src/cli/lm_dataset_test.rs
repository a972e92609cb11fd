//! `rote lm-dataset-test`: did a language model train on a whole set of texts? MemHunter-style
//! dataset-level membership (`lm::dataset_test`, spec 11 §A): a suspect set against a reference
//! set the model never saw, with a control of two disjoint halves of the reference set. Without
//! files: the card's planted passages against its held-out ones.

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::lm::HfLm;
use crate::lm::dataset_report::{DatasetTestOptions, dataset_test};
use crate::lm::dataset_test::SampleScore;
use crate::lm::study::{mia_docs, study_of_model};

/// Options of `rote lm-dataset-test`.
#[derive(Debug, clap::Args)]
pub struct LmDatasetTestArgs {
    /// Hugging Face model folder; rote's card.json beside it supplies planted (suspect) and
    /// held-out (reference) passages when no files are given.
    pub model: PathBuf,
    /// The suspect texts (.txt paragraphs, .jsonl or a folder of .txt): did the model train on them?
    #[arg(long, requires = "reference")]
    pub suspect: Option<PathBuf>,
    /// Texts from the same distribution the model certainly never saw.
    #[arg(long, requires = "suspect")]
    pub reference: Option<PathBuf>,
    /// The per-sample score (lcs: MemHunter's partial-match memorization of a greedy
    /// continuation; the others: `lm-mia`'s scores).
    #[arg(long, value_enum, default_value = "lcs")]
    pub score: SampleScore,
    /// Significance level α.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Seed of the control halves and the power curve.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `rote lm-dataset-test`.
pub fn lm_dataset_test(args: LmDatasetTestArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let files = args.suspect.as_deref().zip(args.reference.as_deref());
    let (suspect, reference, source) = mia_docs(&args.model, files)?;
    let lm = HfLm::load(&args.model, &device)?;
    let opts = DatasetTestOptions {
        score: args.score,
        alpha: args.alpha,
        seed: args.seed,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let root = study_of_model(&args.model);
    let report = dataset_test(
        &lm,
        source,
        &suspect,
        &reference,
        &opts,
        root.as_deref(),
        &JobCtx::new(&cancel, &sink),
    );
    sink.finish();
    let report = report?;
    let mut value = serde_json::to_value(&report)
        .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("p_value".into(), json!(report.members.p_value));
        obj.insert("n".into(), json!(report.n_needed));
        obj.insert("members_p".into(), json!(report.members.p_value));
        obj.insert("control_p".into(), json!(report.control_p));
        obj.insert("finding".into(), json!(report.finding()));
    }
    print(json, &value, || {
        let mut s = format!("{}: {}\n", report.model, report.finding());
        let row = |name: &str, t: &crate::lm::dataset_test::RankTest| {
            format!(
                "  {name:<28} n = {:>4} vs {:>4}  U = {:>8.1}  AUC {:.3}  p = {:.3e}  (Welch t {:+.2}, p = {:.3e})\n",
                t.n_suspect, t.n_reference, t.u, t.auc, t.p_value, t.welch_t, t.welch_p
            )
        };
        s.push_str(&row("suspect vs reference", &report.members));
        s.push_str(&row("control: one split of ref.", &report.control));
        let curve: Vec<String> = report
            .power
            .iter()
            .map(|p| format!("n={} {:.2}", p.n, p.power))
            .collect();
        s.push_str(&format!("  power at α = {}: {}\n", opts.alpha, curve.join(", ")));
        for e in &report.exhibits {
            s.push_str(&format!(
                "  {} (lcs {:.2}): \"…{}\" -> model \"{}\" | true \"{}\"\n",
                e.source,
                e.score,
                tail(&e.prefix, 60),
                e.generated,
                e.truth
            ));
        }
        s.trim_end().to_string()
    });
    Ok(())
}

/// The last `n` characters of `s`.
fn tail(s: &str, n: usize) -> &str {
    let start = s
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    &s[start..]
}
