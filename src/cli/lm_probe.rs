//! `rote lm-probe`: where memorized tokens live inside a language model (spec 11 §B): per-layer
//! linear probes on the residual stream and MLP activations, the logit-only baseline, and the
//! intervention that projects the best probe's direction out (`lm::probe_report`). Without files:
//! the card's planted passages (memorized side) against its held-out passages and validation text.

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::lm::HfLm;
use crate::lm::card::GptCard;
use crate::lm::probe_report::{HELDOUT_CHARS, ProbeOptions, ProbeTexts, probe_into_study};
use crate::lm::study::{heldout_corpus_text, mia_docs, study_of_model};

/// Options of `rote lm-probe`.
#[derive(Debug, clap::Args)]
pub struct LmProbeArgs {
    /// Hugging Face model folder; rote's card.json beside it supplies planted and held-out passages
    /// when no files are given.
    pub model: PathBuf,
    /// Texts the model trained on (.txt paragraphs, .jsonl or a folder of .txt).
    #[arg(long, requires = "nonmembers")]
    pub members: Option<PathBuf>,
    /// Texts from the same distribution it never saw.
    #[arg(long, requires = "members")]
    pub nonmembers: Option<PathBuf>,
    /// Card members planted fewer times than this are left off the memorized side.
    #[arg(long, default_value_t = 8)]
    pub min_insertions: u32,
    /// The log-probability drop (nats) under context replacement that makes a token memorized.
    #[arg(long, default_value_t = 2.0)]
    pub delta: f64,
    /// Skip confidence matching (shows why the spec requires it: the probe then reads confidence).
    #[arg(long)]
    pub unmatched: bool,
    /// Ablation strengths α of the intervention.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0f32, 0.5, 1.0])]
    pub alphas: Vec<f32>,
    /// Clamp the component to the not-memorized mean instead of projecting it to 0 (a labelled
    /// departure from the spec's projection).
    #[arg(long)]
    pub clamp: bool,
    /// Clamp the K units of the best site that separate the classes best to their not-memorized
    /// mean instead of projecting the probe direction out (the spec's second intervention; the
    /// control then clamps K random units).
    #[arg(long, default_value_t = 0)]
    pub neurons: usize,
    /// Seed of the context replacement, the confidence matching and the folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Recompute even when the study holds a report with these options.
    #[arg(long)]
    pub fresh: bool,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `rote lm-probe`.
pub fn lm_probe(args: LmProbeArgs, json: bool) -> CoreResult<()> {
    if args.alphas.iter().any(|a| !(0.0..=1.0).contains(a)) {
        return Err(CoreError::Invalid(format!(
            "--alphas must lie in [0, 1] (got {:?})",
            args.alphas
        )));
    }
    let device = crate::model::device(&args.device)?;
    let files = args.members.as_deref().zip(args.nonmembers.as_deref());
    let (members, nonmembers, source) = mia_docs(&args.model, files)?;
    let heldout = if files.is_none() {
        GptCard::read(&args.model)?.and_then(|c| heldout_corpus_text(&c, HELDOUT_CHARS))
    } else {
        None
    };
    let lm = HfLm::load(&args.model, &device)?;
    let opts = ProbeOptions {
        min_insertions: args.min_insertions,
        delta: args.delta,
        confidence_matched: !args.unmatched,
        alphas: args.alphas.clone(),
        clamp_to_class0: args.clamp,
        neurons: args.neurons,
        seed: args.seed,
        ..ProbeOptions::default()
    };
    let texts = ProbeTexts {
        members: &members,
        nonmembers: &nonmembers,
        heldout_text: heldout.as_deref(),
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let root = study_of_model(&args.model);
    let out = probe_into_study(
        &lm,
        source,
        &texts,
        &opts,
        root.as_deref(),
        args.fresh,
        &JobCtx::new(&cancel, &sink),
    );
    sink.finish();
    let (report, cached) = out?;
    let mut value = serde_json::to_value(&report)
        .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("finding".into(), json!(report.finding()));
        obj.insert("cached".into(), json!(cached));
    }
    print(json, &value, || {
        let mut s = format!("{}: {}\n", report.model, report.finding());
        let c = &report.counts;
        s.push_str(&format!(
            "  labels: {} tokens extracted verbatim from {} of {} members, {} depend on long context; \
             {} argmax-correct tokens of {} never-seen texts; {} per class after confidence matching\n",
            c.extracted_tokens,
            c.extracted_sequences,
            c.member_sequences,
            c.context_dependent,
            c.nonmember_correct,
            c.nonmember_sequences,
            c.matched_per_class
        ));
        s.push_str("  site          acc    AUC   TPR@1%FPR  top unit (AUC, d)\n");
        for p in &report.probes {
            let top = p.top_neurons.first().map_or(String::new(), |n| {
                format!("#{} ({:.2}, {:+.2})", n.index, n.auc, n.cohen_d)
            });
            s.push_str(&format!(
                "  {:<12} {:.3}  {:.3}  {:.3}      {top}\n",
                p.name, p.metrics.accuracy, p.metrics.auc, p.metrics.tpr_at_1pct_fpr
            ));
        }
        let b = &report.logit_baseline;
        s.push_str(&format!(
            "  {:<12} {:.3}  {:.3}  {:.3}      (max probability + entropy; chance {:.2})\n",
            "logit-only", b.accuracy, b.auc, b.tpr_at_1pct_fpr, report.chance
        ));
        let i = &report.intervention;
        s.push_str(&format!("  intervention at {} ({}):\n", i.site, i.form));
        for p in i.points.iter().chain(std::iter::once(&i.random_direction)) {
            let rare = p
                .rare_member_ppl
                .map_or(String::new(), |v| format!(", rare-member PPL {v:.1}"));
            s.push_str(&format!(
                "    α = {:.2}{}: exact extraction {:.0} %, token match {:.0} %, held-out PPL {:.1}{rare}\n",
                p.alpha,
                if std::ptr::eq(p, &i.random_direction) {
                    " (random control)"
                } else {
                    ""
                },
                100.0 * p.extraction,
                100.0 * p.match_fraction,
                p.heldout_ppl
            ));
        }
        for e in &i.exhibits {
            s.push_str(&format!(
                "  {}: true \"{}\"\n    original \"{}\"\n    ablated  \"{}\"\n",
                e.source, e.truth, e.original, e.ablated
            ));
        }
        s.push_str(&format!(
            "  {} activation vectors recorded, {:.0}/s; {:.1} s{}",
            report.activations,
            report.activations_per_second,
            report.seconds,
            if cached { " (cached)" } else { "" }
        ));
        s
    });
    Ok(())
}
