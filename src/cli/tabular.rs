//! `rote train-tabular` and `rote tab-memorization`: a TabDDPM-style model on a table (Adult or a
//! CSV), its memorization ratio per epoch checkpoint (Fang et al.), the memorized synthetic rows
//! beside their training twins, and the quality of the synthetic rows.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};
use crate::tabular::augment::Augment;
use crate::tabular::memorization::{DistanceRule, THRESHOLD};
use crate::tabular::train::{TabTrainConfig, TabularCard, train_tabular};
use crate::tabular::twins::memorized_twins;

/// Options of `rote train-tabular`.
#[derive(Debug, clap::Args)]
pub struct TrainTabularArgs {
    /// `adult` (bundled) or a CSV with a header.
    #[arg(long, default_value = "adult")]
    pub data: String,
    /// The column to predict (a CSV needs it; Adult's is `income`).
    #[arg(long)]
    pub target: Option<String>,
    /// Training rows drawn from the train split (0 = all).
    #[arg(long, default_value_t = TabTrainConfig::default().rows)]
    pub rows: usize,
    /// Epochs.
    #[arg(long, default_value_t = TabTrainConfig::default().epochs)]
    pub epochs: usize,
    /// Checkpoints at which the memorization ratio is measured (evenly spaced).
    #[arg(long, default_value_t = TabTrainConfig::default().checkpoints)]
    pub checkpoints: usize,
    /// Training-set augmentation (TabCutMix appends 30% mixed rows, as the reference).
    #[arg(long, value_enum, default_value = "none")]
    pub augment: Augment,
    /// Mixed rows appended per training row with --augment tabcutmix[-plus] (the reference's 0.3;
    /// larger shares mix more, a labelled departure from the paper).
    #[arg(long, default_value_t = crate::tabular::augment::NEW_ROW_FRACTION)]
    pub augment_share: f64,
    /// Diffusion steps T (TabDDPM uses 1000).
    #[arg(long, default_value_t = TabTrainConfig::default().arch.timesteps)]
    pub timesteps: usize,
    /// Hidden widths of the denoiser MLP.
    #[arg(long, value_delimiter = ',', default_values_t = TabTrainConfig::default().arch.layers)]
    pub layers: Vec<usize>,
    /// Batch size.
    #[arg(long, default_value_t = TabTrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TabTrainConfig::default().lr)]
    pub lr: f64,
    /// Synthetic rows per checkpoint (0 = as many as training rows).
    #[arg(long, default_value_t = 0)]
    pub samples: usize,
    /// Training rows planted as duplicates.
    #[arg(long, default_value_t = 0)]
    pub plant_duplicates: usize,
    /// Copies of each planted row.
    #[arg(long, default_value_t = TabTrainConfig::default().dup_factor)]
    pub dup_factor: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model id (default from the recipe).
    #[arg(long)]
    pub id: Option<String>,
    /// Study folder; the model goes to STUDY/tabular/ID.
    #[arg(long)]
    pub out: PathBuf,
}

/// `rote train-tabular`.
pub fn train_tabular_cmd(args: TrainTabularArgs, json: bool) -> CoreResult<()> {
    let mut cfg = TabTrainConfig {
        data: args.data,
        target: args.target,
        rows: args.rows,
        epochs: args.epochs,
        checkpoints: args.checkpoints,
        batch_size: args.batch_size,
        lr: args.lr,
        augment: args.augment,
        augment_share: args.augment_share,
        samples: args.samples,
        plant_duplicates: args.plant_duplicates,
        dup_factor: args.dup_factor,
        seed: args.seed,
        id: args.id.unwrap_or_default(),
        ..TabTrainConfig::default()
    };
    cfg.arch.timesteps = args.timesteps;
    cfg.arch.layers = args.layers;
    crate::study::Study::open_or_create(&args.out)?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let card = train_tabular(&cfg, &args.out, &ctx);
    sink.finish();
    let card = card?;
    let dir = crate::tabular::train::tabular_dir(&args.out).join(cfg.id_or_default());
    let value = summary_json(&card, &dir, DistanceRule::Code, None);
    print(json, &value, || summary_text(&card, &dir, DistanceRule::Code));
    Ok(())
}

/// Options of `rote tab-memorization`.
#[derive(Debug, clap::Args)]
pub struct TabMemorizationArgs {
    /// Tabular model folder (STUDY/tabular/ID).
    pub model: PathBuf,
    /// Which distance the headline ratio uses (both are always reported).
    #[arg(long, value_enum, default_value = "code")]
    pub rule: DistanceRule,
    /// Measure these synthetic rows (a CSV with the model's header) instead of the model's own.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Memorized rows listed beside their training twins.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// `rote tab-memorization`.
pub fn tab_memorization(args: TabMemorizationArgs, json: bool) -> CoreResult<()> {
    let (card, twins) = memorized_twins(&args.model, args.samples.as_deref(), args.rule)?;
    let samples_path = args
        .samples
        .clone()
        .unwrap_or_else(|| args.model.join("samples.csv"));
    let summary = &twins.summary;
    let memorized: Vec<serde_json::Value> = twins
        .rows
        .iter()
        .take(args.top)
        .map(|t| {
            json!({
                "synthetic_row": t.synthetic_row,
                "training_row": t.training_row,
                "planted": t.planted,
                "ratio": t.ratio,
                "synthetic": t.synthetic,
                "training": t.training,
            })
        })
        .collect();
    let mut value = summary_json(&card, &args.model, args.rule, Some(&samples_path));
    if let Some(obj) = value.as_object_mut() {
        obj.insert("memorization_ratio".into(), json!(summary.ratio));
        obj.insert("memorization_auc".into(), json!(summary.auc));
        obj.insert("columns".into(), json!(twins.header));
        obj.insert("memorized".into(), json!(memorized));
    }
    print(json, &value, || {
        let mut text = summary_text(&card, &args.model, args.rule);
        if args.samples.is_some() {
            text.push_str(&format!(
                "\n{}: memorization ratio {:.1}% ({})",
                samples_path.display(),
                100.0 * summary.ratio,
                args.rule.label()
            ));
        }
        for t in twins.rows.iter().take(args.top) {
            text.push_str(&format!(
                "\n  synthetic #{} (d1/d2 {:.2}): {}\n  training  #{}{}:            {}",
                t.synthetic_row,
                t.ratio,
                t.synthetic.join(", "),
                t.training_row,
                if t.planted { " (planted)" } else { "" },
                t.training.join(", ")
            ));
        }
        if twins.rows.is_empty() {
            text.push_str(
                "\nno synthetic row is closer to one training row than a third of its distance \
                 to the next: nothing is memorized by this rule (train longer, on fewer rows, or \
                 plant duplicates to see copying)",
            );
        }
        text
    });
    Ok(())
}

fn pick(card: &TabularCard, rule: DistanceRule) -> Vec<(usize, f64)> {
    card.by_epoch
        .iter()
        .map(|r| {
            let m = match rule {
                DistanceRule::Code => &r.code,
                DistanceRule::Global => &r.global,
            };
            (r.epoch, m.ratio)
        })
        .collect()
}

fn summary_json(
    card: &TabularCard,
    dir: &Path,
    rule: DistanceRule,
    samples: Option<&Path>,
) -> serde_json::Value {
    let series = pick(card, rule);
    let last = card.by_epoch.last();
    json!({
        "model": dir,
        "rule": rule,
        "rule_label": rule.label(),
        "threshold": THRESHOLD,
        "augment": card.config.augment,
        "augment_share": card.config.augment_share,
        "memorization_ratio": series.last().map(|s| s.1),
        "memorization_ratio_code": last.map(|r| r.code.ratio),
        "memorization_ratio_global": last.map(|r| r.global.ratio),
        "by_epoch": card.by_epoch.iter().map(|r| json!({
            "epoch": r.epoch,
            "loss": r.loss,
            "memorization_ratio": match rule { DistanceRule::Code => r.code.ratio, DistanceRule::Global => r.global.ratio },
            "memorization_ratio_code": r.code.ratio,
            "memorization_ratio_global": r.global.ratio,
            "median_dcr": r.code.median_dcr,
        })).collect::<Vec<_>>(),
        "tstr_accuracy": card.tstr_accuracy,
        "trtr_accuracy": card.trtr_accuracy,
        "quality": card.quality,
        "training_rows": card.members.len(),
        "planted_rows": card.planted.len(),
        "augmented_rows": card.augmented_rows,
        "rows_per_second": card.rows_per_second,
        "samples": samples,
    })
}

fn summary_text(card: &TabularCard, dir: &Path, rule: DistanceRule) -> String {
    let series: Vec<String> = pick(card, rule)
        .iter()
        .map(|(e, r)| format!("epoch {e}: {:.1}%", 100.0 * r))
        .collect();
    format!(
        "{}: {} training rows, augmentation {}\nmemorization ratio ({}): {}\nTSTR accuracy {:.1}% \
         (trained on real rows: {:.1}%), marginal fidelity {:.3}, correlation difference {:.3}",
        dir.display(),
        card.members.len(),
        card.config.augment.label(),
        rule.label(),
        series.join(", "),
        100.0 * card.tstr_accuracy,
        100.0 * card.trtr_accuracy,
        card.quality.marginal_fidelity,
        card.quality.correlation_difference
    )
}

/// `rote bench tabular`.
pub fn bench_tabular_cmd(rows: usize, epochs: usize, samples: usize, json: bool) -> CoreResult<()> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(true);
    let ctx = JobCtx::new(&cancel, &sink);
    let r = crate::tabular::bench::bench_tabular(rows, epochs, samples, &ctx);
    sink.finish();
    let r = r?;
    print(json, &json!({"bench": "tabular", "result": r}), || {
        format!(
            "tabular diffusion on Adult ({} rows, {} epochs, {} threads): {:.0} training rows/s; \
             {} rows x {} steps sampled in {:.1} s; memorization search {:.2} s (code) / {:.2} s \
             (global), {:.2e} pairs/s",
            r.rows,
            r.epochs,
            r.threads,
            r.train_rows_per_second,
            r.samples,
            r.timesteps,
            r.sample_seconds,
            r.search_seconds_code,
            r.search_seconds_global,
            r.pairs_per_second
        )
    });
    Ok(())
}
