//! `rote train-lm` (a character LM with canaries), `rote exposure` (their exposure) and
//! `rote extract-secret` (the shortest-path search for a secret). The last two take any LM
//! folder: rote's character LSTM, or a Hugging Face causal LM (a folder with `config.json`),
//! with canaries from its card or from `--format` / `--secret`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::canary::card::{CanaryLm, LmRecipe};
use crate::canary::extract::{SearchMethod, SearchOptions, canaries_found};
use crate::canary::model::CanarySet;
use crate::canary::open::{CanaryModel, canaries_from_args};
use crate::canary::report::{Estimate, ExposureOptions, report_path};
use crate::canary::secrets::CanaryFormat;
use crate::canary::train::{LmConfig, train_lm_into_study};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};

/// The architecture `rote train-lm` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LmArchArg {
    /// Character LSTM (Secret Sharer): STUDY/lm/<id>/{card.json, weights.safetensors}.
    Lstm,
    /// GPT-2 with a byte-level BPE, saved as a Hugging Face folder (config.json,
    /// model.safetensors, tokenizer.json) with rote's card.json; passages planted too.
    Gpt,
}

/// Options of `rote train-lm`.
#[derive(Debug, clap::Args)]
pub struct TrainLmArgs {
    /// lstm (character LSTM) or gpt (GPT-2 in the Hugging Face layout, with planted passages).
    #[arg(long, value_enum, default_value_t = LmArchArg::Lstm)]
    pub arch: LmArchArg,
    /// Text corpus: bundled name (austen) or a UTF-8 text file (gzip'd or plain).
    #[arg(long, default_value = "austen")]
    pub data: String,
    /// Characters of the corpus to train on (a seeded slice starting at a line) [default: 200000;
    /// gpt: the demo GPT's].
    #[arg(long)]
    pub chars: Option<usize>,
    /// Validation characters (the text after the slice) [default: 20000; gpt: the demo GPT's].
    #[arg(long)]
    pub val_chars: Option<usize>,
    /// Canary format PREFIX:DIGITS:COUNTS[:SECRETS], repeatable; one canary per count, inserted
    /// that many times (0 = a control never inserted). Default: 'my pin number is :6:0,1,2,4,8,16,32'
    /// and 'my account number is :9:0,4,32'.
    #[arg(long = "format")]
    pub formats: Vec<String>,
    /// Embedding width (lstm).
    #[arg(long, default_value_t = 32)]
    pub embed: usize,
    /// LSTM units (lstm).
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Epochs [default: 10; gpt: the demo GPT's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Windows per batch [default: 32; gpt: the demo GPT's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Characters per window (lstm) or tokens of context (gpt) [default: 64; gpt: the demo
    /// GPT's].
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Peak learning rate (Adam for lstm, AdamW for gpt) [default: 0.002; gpt: the demo GPT's].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of the slice, the secrets, their positions, the initialisation and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub gpt: super::gpt::GptArgs,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Model id (default lm-<data>-s<seed>, gpt-<data>-s<seed> for gpt).
    #[arg(long)]
    pub id: Option<String>,
    /// Retrain a model already in the study with the same configuration.
    #[arg(long)]
    pub force: bool,
    /// Study folder (created if missing); the model goes to STUDY/lm/<id>/.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `rote exposure`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A Hugging Face model rote did not train has no card: name its canaries, e.g.\n  \
rote exposure ./my-llama --format 'my pin number is :6' --secret 123456 --secret 654321\n\
Digits should be one token each (Llama, Qwen2 and rote's GPT tokenizers split them): the exact rank then runs through \
the digit tree. With a tokenizer that merges digits (GPT-2's original BPE) every candidate is scored as a whole string \
(one forward pass each), and extract-secret refuses."
)]
pub struct ExposureArgs {
    /// Model folder: rote's character LSTM (STUDY/lm/<id>) or a Hugging Face causal LM (a folder
    /// with config.json, model.safetensors and tokenizer.json; GPT-2, GPT-NeoX, Llama, Qwen2).
    pub model: PathBuf,
    /// Canary format to measure instead of the card's, repeatable: PREFIX:DIGITS (secrets from
    /// --secret) or PREFIX:DIGITS:COUNTS:SECRETS. The slot is scored after the prefix (after a
    /// line break and the prefix for a model with rote's card, as the canaries were inserted).
    #[arg(long = "format")]
    pub formats: Vec<String>,
    /// A secret to test (digits), repeatable: measured in every --format with as many digits,
    /// recorded with 0 insertions (unknown).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Study whose results/exposure/ gets the report (default: the model's study when the folder
    /// is STUDY/lm/<id>, else the current folder).
    #[arg(long)]
    pub study: Option<PathBuf>,
    /// exact (rank among all 10^digits), skew-normal (fit to sampled references), both, or
    /// tf-privacy (TF Privacy's interpolation and extrapolation on mean nats).
    #[arg(long, value_enum, default_value_t = Estimate::Both)]
    pub estimate: Estimate,
    /// Sampled references (TF Privacy's notebook uses 65536).
    #[arg(long, default_value_t = 10_000)]
    pub references: usize,
    /// Seed of the references.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Options of `rote extract-secret`.
#[derive(Debug, clap::Args)]
pub struct ExtractSecretArgs {
    /// Model folder: rote's character LSTM (STUDY/lm/<id>) or a Hugging Face causal LM (a folder
    /// with config.json; its tokenizer must give one token per digit).
    pub model: PathBuf,
    /// Text before the secret (default: each canary format's prefix in turn; needed for a
    /// Hugging Face model without rote's card).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Digits in the secret (default: the format's, or 6).
    #[arg(long)]
    pub digits: Option<usize>,
    /// dijkstra (exact order) or beam.
    #[arg(long, value_enum, default_value_t = SearchMethod::Dijkstra)]
    pub method: SearchMethod,
    /// Node expansions allowed.
    #[arg(long, default_value_t = 50_000)]
    pub budget: usize,
    /// Candidates to list.
    #[arg(long, default_value_t = 10)]
    pub candidates: usize,
    /// Beam width.
    #[arg(long, default_value_t = 64)]
    pub beam: usize,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub(super) fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// The canary formats of `--format`, or the demo's.
pub(super) fn parse_formats(formats: &[String]) -> CoreResult<Vec<CanaryFormat>> {
    if formats.is_empty() {
        Ok(LmConfig::demo_formats())
    } else {
        formats.iter().map(|f| CanaryFormat::parse(f)).collect()
    }
}

/// `rote train-lm`.
pub fn train_lm(args: TrainLmArgs, json: bool) -> CoreResult<()> {
    if args.arch == LmArchArg::Gpt {
        return super::gpt::train_gpt(args, json);
    }
    let formats = parse_formats(&args.formats)?;
    let cfg = LmConfig {
        id: args
            .id
            .unwrap_or_else(|| format!("lm-{}-s{}", args.data, args.seed)),
        data: args.data,
        chars: args.chars.unwrap_or(200_000),
        val_chars: args.val_chars.unwrap_or(20_000),
        formats,
        embed: args.embed,
        hidden: args.hidden,
        recipe: LmRecipe {
            epochs: args.epochs.unwrap_or(10),
            batch_size: args.batch_size.unwrap_or(32),
            seq_len: args.seq_len.unwrap_or(64),
            lr: args.lr.unwrap_or(2e-3),
            seed: args.seed,
        },
        device: args.device,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = train_lm_into_study(&cfg, &args.out, &command_line(), args.force, &ctx);
    sink.finish();
    let (dir, trained) = done?;
    let lm = CanaryLm::load(&dir, &crate::model::device("cpu")?)?;
    let c = &lm.card;
    let last = c.epochs.last();
    let canaries: Vec<_> = c
        .canaries
        .iter()
        .enumerate()
        .map(|(k, can)| {
            json!({
                "format": c.formats[can.format].prefix, "secret": can.secret, "insertions": can.insertions,
                "exposure_last_epoch": last.map(|e| e.exposure[k]),
            })
        })
        .collect();
    let value = json!({
        "id": c.id, "path": dir, "trained_now": trained, "n_params": c.n_params,
        "vocab": c.arch.vocab, "seconds": c.seconds,
        "train_loss": last.map(|e| e.train_loss), "val_loss": last.map(|e| e.val_loss),
        "canaries": canaries,
    });
    print(json, &value, || {
        let mut s = format!(
            "{} ({}): {} parameters, {} characters, {} epochs in {:.0}s; train {:.3} / validation {:.3} nats per character\n",
            c.id,
            if trained { "trained" } else { "already there" },
            c.n_params,
            c.corpus.chars,
            c.epochs.len(),
            c.seconds,
            last.map_or(f64::NAN, |e| e.train_loss),
            last.map_or(f64::NAN, |e| e.val_loss),
        );
        for (k, can) in c.canaries.iter().enumerate() {
            s.push_str(&format!(
                "  {}{}  x{:<3} exposure after training {:.1} bits\n",
                c.formats[can.format].prefix,
                can.secret,
                can.insertions,
                last.map_or(f64::NAN, |e| e.exposure[k])
            ));
        }
        s.push_str(&format!("-> {}", dir.display()));
        s
    });
    Ok(())
}

/// Where a model's reports go: the study of a folder `STUDY/lm/<id>`, else the current folder.
fn study_of(model: &Path) -> PathBuf {
    let parent = model.parent();
    match parent.and_then(|p| p.parent()) {
        Some(study) if parent.and_then(Path::file_name).is_some_and(|n| n == "lm") => study.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The canaries to measure: the command line's when given, else the card's.
fn canary_set(model: &CanaryModel, formats: &[String], secrets: &[String]) -> CoreResult<CanarySet> {
    if !formats.is_empty() || !secrets.is_empty() {
        return canaries_from_args(&model.id(), formats, secrets);
    }
    match model.card_set() {
        Some(set) => Ok(set),
        None => canaries_from_args(&model.id(), formats, secrets),
    }
}

/// `rote exposure`.
pub fn exposure(args: ExposureArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let lm = CanaryModel::load(&args.model, &device)?;
    let set = canary_set(&lm, &args.formats, &args.secrets)?;
    let opts = ExposureOptions {
        estimate: args.estimate,
        references: args.references,
        seed: args.seed,
        ..ExposureOptions::default()
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = lm.measure(&set, &opts, &ctx);
    sink.finish();
    let report = done?;
    let study = args.study.clone().unwrap_or_else(|| study_of(&args.model));
    let path = report_path(&study, &report.model, args.estimate);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    }
    crate::study::write_json_atomic(&path, &report)?;
    let mut value = serde_json::to_value(&report).map_err(|e| CoreError::Invalid(e.to_string()))?;
    value["report"] = json!(path);
    print(json, &value, || {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mut s = format!(
            "Exposure of the canaries of {} ({}; bits)\n{:<24} {:>10} {:>5} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
            report.model,
            args.estimate.as_str(),
            "format",
            "secret",
            "ins.",
            "Px bits",
            "rank",
            "exact",
            "skew-n",
            "interp",
            "TF int",
            "TF ext"
        );
        for c in &report.canaries {
            s.push_str(&format!(
                "{:<24} {:>10} {:>5} {:>9.2} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
                report.formats[c.format].prefix,
                c.secret,
                c.insertions,
                c.px_bits,
                c.exact_rank.map_or("-".into(), |r| r.to_string()),
                f(c.exact),
                f(c.skew_normal),
                f(c.interpolation),
                f(c.tf_interpolation),
                f(c.tf_extrapolation)
            ));
        }
        for fe in &report.formats {
            s.push_str(&format!(
                "'{}': |R| = 10^{} (ceiling {:.2} bits), {} references (ceiling {:.2})",
                fe.prefix, fe.digits, fe.log2_space, fe.references, fe.log2_references
            ));
            if let (Some(fit), Some(ks)) = (fe.fit, fe.ks) {
                s.push_str(&format!(
                    ", skew-normal a {:.2} loc {:.2} scale {:.2}, KS {:.3}",
                    fit.shape, fit.loc, fit.scale, ks
                ));
            }
            if let Some(cps) = fe.candidates_per_sec {
                s.push_str(&format!(", exact rank {cps:.0} candidates/s"));
            }
            s.push('\n');
        }
        s.push_str(&format!("{:.1}s\nreport: {}", report.seconds, path.display()));
        s
    });
    Ok(())
}

/// `rote extract-secret`.
pub fn extract_secret(args: ExtractSecretArgs, json: bool) -> CoreResult<()> {
    let device = crate::model::device(&args.device)?;
    let lm = CanaryModel::load(&args.model, &device)?;
    let set = lm.card_set().unwrap_or_else(|| CanarySet {
        id: lm.id(),
        formats: Vec::new(),
        canaries: Vec::new(),
    });
    let opts = SearchOptions {
        method: args.method,
        budget: args.budget,
        batch: 64,
        beam: args.beam,
        candidates: args.candidates,
    };
    // Each format's prefix, or the given one (matched to a format when it is one).
    let targets: Vec<(String, usize, Option<usize>)> = match &args.prefix {
        Some(p) => {
            let f = set.formats.iter().position(|f| &f.prefix == p);
            let digits = args
                .digits
                .or_else(|| f.map(|i| set.formats[i].digits))
                .unwrap_or(6);
            vec![(p.clone(), digits, f)]
        }
        None if set.formats.is_empty() => {
            return Err(CoreError::Invalid(format!(
                "{}: no card with canary formats; give --prefix (and --digits)",
                args.model.display()
            )));
        }
        None => set
            .formats
            .iter()
            .enumerate()
            .map(|(i, f)| (f.prefix.clone(), args.digits.unwrap_or(f.digits), Some(i)))
            .collect(),
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let mut out = Vec::new();
    for (prefix, digits, f) in targets {
        let r = lm.search(&prefix, digits, &opts, &mut |_| {}, &ctx);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                sink.finish();
                return Err(e);
            }
        };
        let found = f
            .map(|f| canaries_found(&set.canaries, f, &r))
            .unwrap_or_default();
        out.push((r, found));
    }
    sink.finish();
    let value = json!(
        out.iter()
            .map(|(r, found)| json!({ "search": r, "canaries": found }))
            .collect::<Vec<_>>()
    );
    print(json, &value, || {
        let mut s = String::new();
        for (r, found) in &out {
            s.push_str(&format!(
                "'{}' + {} digits ({:?}): {} expansions in {:.2}s{}\n",
                r.prefix,
                r.digits,
                args.method,
                r.expanded,
                r.seconds,
                if r.out_of_budget {
                    " (budget exhausted)"
                } else {
                    ""
                }
            ));
            for (i, c) in r.candidates.iter().enumerate() {
                let tag = found
                    .iter()
                    .find(|f| f.secret == c.secret)
                    .map_or(String::new(), |f| {
                        format!("  <- canary inserted x{}", f.insertions)
                    });
                s.push_str(&format!(
                    "  {:>3}. {}{}  {:.2} bits{tag}\n",
                    i + 1,
                    r.prefix,
                    c.secret,
                    c.bits
                ));
            }
            for f in found {
                s.push_str(&format!(
                    "  canary {} (x{}): {}\n",
                    f.secret,
                    f.insertions,
                    match (f.position, f.expanded) {
                        (Some(p), Some(e)) => format!("recovered as candidate {p} after {e} expansions"),
                        _ => "not recovered".to_string(),
                    }
                ));
            }
        }
        s.trim_end().to_string()
    });
    Ok(())
}
