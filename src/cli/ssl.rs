//! `rote ssl-pair` (train the SimCLR encoder pair f, g) and `rote layermem` (LayerMem, ΔLayerMem
//! and UnitMem of the pair).

use std::path::PathBuf;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};
use crate::ssl::augment::AugConfig;
use crate::ssl::measure::AlignForm;
use crate::ssl::stats::{MuMinus, Norm};
use crate::ssl::{
    LayerMemConfig, SplitConfig, SslEncoder, SslPairConfig, SslRecipe, layermem_into_study,
    train_pair_into_study,
};

/// Options of `rote ssl-pair`.
#[derive(Debug, clap::Args)]
pub struct SslPairArgs {
    /// Main data set (bundled name or path; image sides divisible by 4).
    #[arg(long, default_value = "mnist10k")]
    pub data: String,
    /// Images drawn (seeded) from the training split: 2x --candidate-frac of them become the
    /// candidates S_C and the independent set S_I, the rest the shared set S_S.
    #[arg(long, default_value_t = 3000)]
    pub images: usize,
    /// Fraction of --images in S_C (and again in S_I).
    #[arg(long, default_value_t = 0.1)]
    pub candidate_frac: f64,
    /// Replace this many candidates with images of --outlier-data (recorded in the cards).
    #[arg(long, default_value_t = 0)]
    pub plant_outliers: usize,
    /// Data set the planted outliers come from (same image shape).
    #[arg(long, default_value = "fashion-mnist")]
    pub outlier_data: String,
    /// Widths of the stem/blocks (one residual block per width, average pooling between).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16, 32, 64])]
    pub widths: Vec<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Images per batch (two views each).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Weight decay (decoupled).
    #[arg(long, default_value_t = 1e-6)]
    pub weight_decay: f64,
    /// NT-Xent temperature.
    #[arg(long, default_value_t = 0.5)]
    pub temperature: f64,
    /// Random horizontal flips (off by default: digits are not mirror-symmetric).
    #[arg(long)]
    pub flip: bool,
    /// Seed of the split, initialisation, batch order and augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Pair id (encoders `<id>-f`, `<id>-g`; default ssl-<data>-s<seed>).
    #[arg(long)]
    pub id: Option<String>,
    /// Store the weights as f16.
    #[arg(long)]
    pub half: bool,
    /// Retrain encoders already in the study with the same split and recipe.
    #[arg(long)]
    pub force: bool,
    /// Study folder (created if missing); encoders go to STUDY/ssl/.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `rote layermem`.
#[derive(Debug, clap::Args)]
pub struct LayerMemArgs {
    /// Candidate encoder folder (STUDY/ssl/<id>-f).
    #[arg(long)]
    pub f: PathBuf,
    /// Independent encoder folder (STUDY/ssl/<id>-g).
    #[arg(long)]
    pub g: PathBuf,
    /// LayerMem augmentations per candidate.
    #[arg(long, default_value_t = 5)]
    pub augmentations: usize,
    /// UnitMem augmentations per candidate.
    #[arg(long, default_value_t = 10)]
    pub unit_augmentations: usize,
    /// Normalisation: range (reference code: divide by max - min), minmax, none.
    #[arg(long, value_enum, default_value_t = Norm::Range)]
    pub norm: Norm,
    /// UnitMem's μ_-max: median (reference code) or mean of the other candidates.
    #[arg(long, value_enum, default_value_t = MuMinus::Median)]
    pub mu_minus: MuMinus,
    /// L_align: clean-vs-aug (reference code) or two-view (paper's definition).
    #[arg(long, value_enum, default_value_t = AlignForm::CleanVsAug)]
    pub align: AlignForm,
    /// Seed of the measurement draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `rote ssl-pair`.
pub fn ssl_pair(args: SslPairArgs, json: bool) -> CoreResult<()> {
    let cfg = SslPairConfig {
        id: args
            .id
            .unwrap_or_else(|| format!("ssl-{}-s{}", args.data, args.seed)),
        data: args.data,
        split: SplitConfig {
            images: args.images,
            candidate_frac: args.candidate_frac,
            plant_outliers: args.plant_outliers,
            outlier_data: args.outlier_data,
            seed: args.seed,
        },
        widths: args.widths,
        recipe: SslRecipe {
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            weight_decay: args.weight_decay,
            temperature: args.temperature,
            aug: AugConfig {
                flip: args.flip,
                ..AugConfig::default()
            },
            seed: args.seed,
        },
        device: args.device,
        half: args.half,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = train_pair_into_study(&cfg, &args.out, &command_line(), args.force, &ctx);
    sink.finish();
    let mut rows = Vec::new();
    for (dir, trained) in done? {
        let enc = SslEncoder::load(&dir, &crate::model::device("cpu")?)?;
        let c = &enc.card;
        rows.push(json!({
            "id": c.id, "role": c.role, "path": dir, "trained_now": trained, "n_train": c.n_train,
            "n_params": c.n_params, "final_loss": c.final_loss, "seconds": c.seconds,
            "planted": c.split.planted_slots(),
        }));
    }
    let value = json!({ "pair": cfg.id, "encoders": rows });
    print(json, &value, || {
        rows.iter()
            .map(|r| {
                format!(
                    "{} ({}): {} images, {} parameters, final NT-Xent {:.4}, {:.1}s -> {}",
                    r["id"].as_str().unwrap_or(""),
                    if r["trained_now"].as_bool().unwrap_or(false) {
                        "trained"
                    } else {
                        "already there"
                    },
                    r["n_train"],
                    r["n_params"],
                    r["final_loss"].as_f64().unwrap_or(f64::NAN),
                    r["seconds"].as_f64().unwrap_or(0.0),
                    r["path"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `rote layermem`.
pub fn layermem(args: LayerMemArgs, json: bool) -> CoreResult<()> {
    let cfg = LayerMemConfig {
        augmentations: args.augmentations,
        unit_augmentations: args.unit_augmentations,
        norm: args.norm,
        mu_minus: args.mu_minus,
        align: args.align,
        seed: args.seed,
        device: args.device,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = layermem_into_study(&args.f, &args.g, &cfg, &ctx);
    sink.finish();
    let (r, path) = done?;
    let o = &r.outliers;
    let value = json!({
        "report": path, "f": r.f, "g": r.g, "layers": r.layers, "norm": r.config.norm,
        "layermem_mean": r.layermem_mean, "delta_layermem_mean": r.delta_layermem_mean,
        "raw_mean": r.raw_mean, "unitmem_mean_f": r.unitmem_mean_f,
        "unitmem_mean_g": r.unitmem_g.iter().map(|u| u.mean).collect::<Vec<_>>(),
        "outliers": o,
        "seconds_per_candidate_layermem": r.seconds_per_candidate_layermem,
        "seconds_per_candidate_unitmem": r.seconds_per_candidate_unitmem,
    });
    print(json, &value, || {
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        let mut s = format!(
            "LayerMem of {} vs {} ({} candidates, norm {:?}, μ_-max {:?}, {:?})\n{:<14} {:>9} {:>9} {:>10} {:>10}\n",
            r.f,
            r.g,
            r.candidates.len(),
            r.config.norm,
            r.config.mu_minus,
            r.config.align,
            "layer",
            "LayerMem",
            "Δ",
            "UnitMem f",
            "UnitMem g"
        );
        for (l, name) in r.layers.iter().enumerate() {
            s.push_str(&format!(
                "{name:<14} {:>9.4} {:>9.4} {:>10} {:>10}\n",
                r.layermem_mean[l],
                r.delta_layermem_mean[l],
                fmt(r.unitmem_mean_f[l]),
                fmt(r.unitmem_g.get(l).and_then(|u| u.mean))
            ));
        }
        s.push_str(&format!(
            "planted outliers {}: final-layer ratio {} (norm {:?}), raw {}, minmax {}\n",
            o.planted.len(),
            fmt(o.ratio),
            r.config.norm,
            fmt(o.ratio_raw),
            fmt(o.ratio_minmax)
        ));
        s.push_str(&format!(
            "seconds per candidate: LayerMem {:.4}, UnitMem {:.4}\nreport: {}",
            r.seconds_per_candidate_layermem,
            r.seconds_per_candidate_unitmem,
            path.display()
        ));
        s
    });
    Ok(())
}

/// Options of `rote unitmem`.
#[derive(Debug, clap::Args)]
pub struct UnitMemArgs {
    /// Supervised model folder (STUDY/models/<id>, an MLP).
    #[arg(long)]
    pub model: PathBuf,
    /// Use the candidates of this SSL encoder (STUDY/ssl/<id>-f) for a like-for-like comparison.
    #[arg(long)]
    pub like: Option<PathBuf>,
    /// Training images drawn (seeded) when --like is not given.
    #[arg(long, default_value_t = 500)]
    pub candidates: usize,
    /// Augmentations per candidate (1: the clean image only).
    #[arg(long, default_value_t = 10)]
    pub augmentations: usize,
    /// μ_-max: median (reference code) or mean of the other candidates / classes.
    #[arg(long, value_enum, default_value_t = MuMinus::Median)]
    pub mu_minus: MuMinus,
    /// Seed of the candidate draw and the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `rote unitmem`.
pub fn unitmem(args: UnitMemArgs, json: bool) -> CoreResult<()> {
    let cfg = crate::ssl::supervised::SupervisedConfig {
        candidates: args.candidates,
        augmentations: args.augmentations,
        mu_minus: args.mu_minus,
        seed: args.seed,
        device: args.device,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = crate::ssl::supervised::supervised_into_study(&args.model, args.like.as_deref(), &cfg, &ctx);
    sink.finish();
    let (r, path) = done?;
    let value = json!({
        "report": path, "model": r.model, "like": r.like, "layers": r.layers,
        "n_candidates": r.n_candidates, "augmentations": r.config.augmentations,
        "unitmem_mean": r.unitmem_mean, "classmem_mean": r.classmem_mean, "seconds": r.seconds,
    });
    print(json, &value, || {
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
        let mut s = format!(
            "UnitMem / ClassMem of {} ({} candidates{}, {} augmentations, μ_-max {:?})\n{:<10} {:>8} {:>9} {:>9} {:>6}\n",
            r.model,
            r.n_candidates,
            r.like.as_ref().map_or(String::new(), |l| format!(" of {l}")),
            r.config.augmentations,
            r.config.mu_minus,
            "layer",
            "units",
            "UnitMem",
            "ClassMem",
            "dead"
        );
        for u in &r.units {
            s.push_str(&format!(
                "{:<10} {:>8} {:>9} {:>9} {:>6}\n",
                u.layer,
                u.unitmem.len(),
                fmt(u.unitmem_mean),
                fmt(u.classmem_mean),
                u.dead
            ));
        }
        s.push_str(&format!("{:.1}s\nreport: {}", r.seconds, path.display()));
        s
    });
    Ok(())
}
