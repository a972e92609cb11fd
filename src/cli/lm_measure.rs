//! `rote lm-extract` (greedy and (n, p) extraction) and `rote lm-mia` (MIMIR's membership
//! attacks) on a Hugging Face causal LM, over the planted passages of rote's card beside the
//! model or over user texts. The report is cached in the study holding the model
//! (`STUDY/lm/<id>` → `STUDY/results/lm/<id>/`) or in `--study`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::lm::HfLm;
use crate::lm::extract_report::{LmExtractOptions, extract_into_study, finding_lines, headline};
use crate::lm::mia_report::{self, LmMiaOptions, mia_into_study};
use crate::lm::study::{extraction_docs, mia_docs, study_of_model};

/// Options of `rote lm-extract`.
#[derive(Debug, clap::Args)]
pub struct LmExtractArgs {
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json); rote's card.json
    /// beside them supplies the planted passages.
    pub model: PathBuf,
    /// Documents to extract instead of the card's passages: a .txt file (one document per
    /// blank-line-separated paragraph), a .jsonl file ({"text": ...} per line) or a folder of .txt
    /// files.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// Prefix length k in tokens.
    #[arg(long, default_value_t = 32)]
    pub prefix_tokens: usize,
    /// Suffix (continuation) length m in tokens.
    #[arg(long, default_value_t = 32)]
    pub suffix_tokens: usize,
    /// Also sweep prefixes 8, 16, 32, 64, 128 (suffix m) and suffixes 8, 16, 32, 64 (prefix k).
    #[arg(long)]
    pub sweep: bool,
    /// Documents per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Study to cache the report in (default: the study holding MODEL when it is STUDY/lm/<id>).
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Options of `rote lm-mia`.
#[derive(Debug, clap::Args)]
pub struct LmMiaArgs {
    /// Hugging Face model folder; rote's card.json beside it supplies the planted (members) and
    /// held-out (non-members) passages.
    pub model: PathBuf,
    /// Member documents (.txt paragraphs, .jsonl or a folder of .txt) instead of the card's.
    #[arg(long, requires = "nonmembers")]
    pub members: Option<PathBuf>,
    /// Non-member documents, from the same distribution as the members.
    #[arg(long, requires = "members")]
    pub nonmembers: Option<PathBuf>,
    /// Reference model folder for the reference attack (reads the texts with its own tokenizer).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Fraction k of Min-K% and Min-K%++.
    #[arg(long, default_value_t = 0.2)]
    pub min_k: f64,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Documents per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Study to cache the report in (default: the study holding MODEL when it is STUDY/lm/<id>).
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The study root to cache in: `--study` (must be a study) or the one holding the model.
fn cache_root(study: Option<&Path>, model: &Path) -> CoreResult<Option<PathBuf>> {
    match study {
        Some(s) => crate::study::Study::open(s).map(|s| Some(s.root)),
        None => Ok(study_of_model(model)),
    }
}

/// Runs `f` with a progress bar on stderr, removing the bar whatever happens.
fn with_progress<T>(json: bool, f: impl FnOnce(&JobCtx<'_>) -> CoreResult<T>) -> CoreResult<T> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let out = f(&JobCtx::new(&cancel, &sink));
    sink.finish();
    out
}

fn to_value<T: serde::Serialize>(v: &T) -> CoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))
}

fn cached_line(path: Option<&Path>) -> String {
    path.map_or_else(
        || "not cached (the model is not in a study; pass --study STUDY to keep the report)".to_string(),
        |p| format!("report: {}", p.display()),
    )
}

/// `rote lm-extract`.
pub fn lm_extract(args: LmExtractArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let (docs, source) = extraction_docs(&args.model, args.texts.as_deref())?;
    let root = cache_root(args.study.as_deref(), &args.model)?;
    let lm = HfLm::load(&args.model, &device)?;
    let opts = LmExtractOptions {
        prefix_tokens: args.prefix_tokens,
        suffix_tokens: args.suffix_tokens,
        batch: args.batch,
        ..LmExtractOptions::default()
    };
    let opts = if args.sweep { opts.with_sweep() } else { opts };
    let (report, path) = with_progress(json, |ctx| {
        extract_into_study(&lm, source.clone(), &docs, &opts, root.as_deref(), ctx)
    })?;
    let mut value = to_value(&report)?;
    if let Some(obj) = value.as_object_mut() {
        // Per-document rows stay in the cached report (they are what the views draw).
        obj.remove("documents");
        obj.insert("n_documents".into(), json!(report.documents.len()));
        obj.insert("finding".into(), json!(headline(&report)));
        obj.insert("report".into(), json!(path));
    }
    print(json, &value, || {
        let mut s = format!(
            "{} ({}): greedy extraction of {}, {}-token prefix -> {}-token continuation\n{}\n",
            report.model,
            report.model_type,
            source.describe(),
            opts.prefix_tokens,
            opts.suffix_tokens,
            headline(&report)
        );
        for l in finding_lines(&report) {
            s.push_str(&format!("  {l}\n"));
        }
        let np: Vec<String> = report
            .overall
            .np_rates
            .iter()
            .filter(|r| r.p == 0.5 && [1.0, 1e3, 1e6].contains(&r.n))
            .map(|r| format!("{:.2} at n = {}", r.rate, r.n))
            .collect();
        if !np.is_empty() {
            s.push_str(&format!(
                "(n, p = 0.5)-extractable (Hayes et al. 2024): {}\n",
                np.join(", ")
            ));
        }
        if !report.sweep.is_empty() {
            s.push_str(&format!(
                "{:>5} {:>5} {:>6} {:>8} {:>8}\n",
                "k", "m", "n", "exact", "match"
            ));
            for p in &report.sweep {
                s.push_str(&format!(
                    "{:>5} {:>5} {:>6} {:>8.3} {:>8.3}\n",
                    p.k, p.m, p.overall.n, p.overall.exact_frac, p.overall.token_match
                ));
            }
        }
        if !report.skipped.is_empty() {
            s.push_str(&format!(
                "{} documents shorter than {} tokens left out (first: {})\n",
                report.skipped.len(),
                opts.prefix_tokens + opts.suffix_tokens,
                report.skipped[0]
            ));
        }
        s.push_str(&cached_line(path.as_deref()));
        s
    });
    Ok(())
}

/// `rote lm-mia`.
pub fn lm_mia(args: LmMiaArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let files = args.members.as_deref().zip(args.nonmembers.as_deref());
    let (members, nonmembers, source) = mia_docs(&args.model, files)?;
    let root = cache_root(args.study.as_deref(), &args.model)?;
    let lm = HfLm::load(&args.model, &device)?;
    let reference = args
        .reference
        .as_ref()
        .map(|p| HfLm::load(p, &device))
        .transpose()?;
    let opts = LmMiaOptions {
        min_k: args.min_k,
        batch: args.batch,
        seed: args.seed,
    };
    let (report, path) = with_progress(json, |ctx| {
        mia_into_study(
            &lm,
            reference.as_ref(),
            source.clone(),
            &members,
            &nonmembers,
            &opts,
            root.as_deref(),
            ctx,
        )
    })?;
    let mut value = to_value(&report)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("documents");
        if let Some(attacks) = obj.get_mut("attacks").and_then(|a| a.as_array_mut()) {
            // The ROC points stay in the cached report; the summary keeps the figures.
            for a in attacks.iter_mut().filter_map(|a| a.as_object_mut()) {
                a.remove("roc");
            }
        }
        obj.insert("report".into(), json!(path));
    }
    print(json, &value, || {
        let mut s = format!(
            "{} ({}): membership inference on {}: {} members vs {} non-members\n",
            report.model,
            report.model_type,
            source.describe(),
            report.n_members,
            report.n_nonmembers
        );
        if let Some(best) = report.attacks.iter().max_by(|a, b| a.auc.total_cmp(&b.auc)) {
            s.push_str(&format!(
                "best attack: {} with AUC {:.3} (95% CI {:.3}-{:.3}; 0.5 = chance)\n",
                best.attack, best.auc, best.auc_ci[0], best.auc_ci[1]
            ));
        }
        for l in mia_report::finding_lines(&report) {
            s.push_str(&format!("  {l}\n"));
        }
        for g in &report.by_insertions {
            let aucs: Vec<String> = g.auc.iter().map(|(a, v)| format!("{a} {v:.3}")).collect();
            s.push_str(&format!(
                "  seen {} times ({} passages) vs held out, AUC: {}\n",
                g.insertions,
                g.n,
                aucs.join(", ")
            ));
        }
        if report.truncated > 0 {
            s.push_str(&format!(
                "{} documents cut to the model's context\n",
                report.truncated
            ));
        }
        s.push_str(&cached_line(path.as_deref()));
        s
    });
    Ok(())
}
