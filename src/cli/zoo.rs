//! `rote zoo`, `rote zoo merge`, `rote memorization`, `rote mia`.

use std::path::Path;

use serde_json::json;

use super::{CliSink, ZooArgs, ZooMerge};
use crate::data;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::measure::compare::compare_with_file;
use crate::measure::memorization::PairThresholds;
use crate::measure::mia::{Attack, MiaConfig};
use crate::measure::zoo_report::{load_zoo, memorization_report, mia_report, save_report};
use crate::study::Study;
use crate::train::TrainConfig;
use crate::train::zoo::{Shard, Subsets, ZooConfig, merge_zoos, resolve_zoo_id, train_zoo, zoo_dir};

/// `rote zoo ...` and `rote zoo merge ...`.
pub fn zoo(args: ZooArgs, json: bool) -> CoreResult<()> {
    if let Some(ZooMerge::Merge { out, id, shards }) = args.merge {
        return merge(&out, id.as_deref(), &shards, json);
    }
    let data_name = args
        .data
        .ok_or_else(|| CoreError::Invalid("rote zoo needs --data".into()))?;
    let out = args
        .out
        .ok_or_else(|| CoreError::Invalid("rote zoo needs --out STUDY".into()))?;
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let ds = data::load(&data_name)?;
    let subsets = args
        .subsets
        .as_deref()
        .map(|p| Subsets::read(p, ds.n))
        .transpose()?;
    let models = match (&subsets, args.models) {
        (_, Some(k)) => k,
        (Some(s), None) => s.rows.len() as u32,
        (None, None) => 64,
    };
    let mut study = Study::open_or_create(&out)?;
    study.add_dataset(&data_name)?;
    let dp_rows = match args.dp.settings() {
        Some(_) => Some(crate::train::zoo::rows_per_model(
            &ds,
            subsets.as_ref(),
            args.subset_ratio,
            args.seed,
        )?),
        None => None,
    };
    let cfg = ZooConfig {
        id: args
            .id
            .unwrap_or_else(|| format!("zoo-{}-{}", args.family.as_str(), ds.name)),
        train: TrainConfig {
            family: args.family,
            data: data_name,
            epochs: args.epochs,
            batch_size: args.batch_size,
            optimizer: args.optimizer,
            lr: args.lr,
            subset_ratio: args.subset_ratio,
            seed: args.seed,
            device: args.device,
            ..ZooConfig::default().train
        },
        plant_mislabel: args.plant_mislabel,
        plant_seed: args.plant_seed,
        subsets: subsets.map(|s| s.reference),
        init: args.init,
        ..ZooConfig::default()
    };
    let cfg = ZooConfig {
        dp: args
            .dp
            .settings()
            .map(|dp| {
                let m = dp_rows.unwrap_or_default();
                crate::train::dp_record(&dp, cfg.train.batch_size, cfg.train.epochs, m)
            })
            .transpose()?,
        ..cfg
    };
    let adversarial = args.adv.settings();
    if let Some(a) = &adversarial {
        a.check()?;
        if cfg.dp.is_some() {
            return Err(CoreError::Invalid(
                "one defence per zoo: DP-SGD (--dp-*) or adversarial training (--adversarial/--demem)".into(),
            ));
        }
    }
    let cfg = ZooConfig { adversarial, ..cfg };
    if let (Some(dp), false) = (&cfg.dp, json) {
        eprintln!(
            "DP-SGD: ε = {:.3} at δ = {:.0e} (σ = {:.3}, C = {}, q = {:.4}, {} steps, RDP order {})",
            dp.epsilon, dp.delta, dp.noise_multiplier, dp.clip, dp.sample_rate, dp.steps, dp.order
        );
    }
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let run = train_zoo(&cfg, &ds, &study, models, shard, args.group, &ctx);
    sink.finish();
    let run = run?;
    let value = json!({
        "zoo": cfg.id,
        "path": run.dir,
        "trained": run.trained,
        "models": run.total,
        "seconds": run.seconds,
    });
    if json {
        println!("{value}");
    } else {
        println!(
            "zoo {}: trained {} models in {:.1}s, {} on disk at {}",
            cfg.id,
            run.trained,
            run.seconds,
            run.total,
            run.dir.display()
        );
    }
    Ok(())
}

/// `--dp-*` options of `rote zoo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DpTrainArgs {
    /// Train with DP-SGD to this ε (the noise multiplier is calibrated for the run's steps and
    /// sampling rate by the RDP accountant; `rote dp-epsilon` shows the arithmetic).
    #[arg(long, conflicts_with = "dp_noise")]
    pub dp_epsilon: Option<f64>,
    /// Train with DP-SGD at this noise multiplier σ (the accountant then gives ε).
    #[arg(long)]
    pub dp_noise: Option<f64>,
    /// DP-SGD per-sample clipping norm C.
    #[arg(long, default_value_t = 1.0)]
    pub dp_clip: f64,
    /// δ of the DP guarantee.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
}

/// `--adversarial`/`--demem` options of `rote zoo` and `rote defences`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdvTrainArgs {
    /// Train with PGD adversarial training (Madry et al. 2018); each model records its robust
    /// accuracy on the test split under PGD-20.
    #[arg(long)]
    pub adversarial: bool,
    /// With --adversarial: DeMem-style de-memorization of the high-risk rows (spec 13 §B; implies
    /// --adversarial).
    #[arg(long)]
    pub demem: bool,
    /// L∞ radius ε of the PGD perturbation (pixels in [0, 1]).
    #[arg(long, default_value_t = 0.1)]
    pub adv_epsilon: f64,
    /// PGD steps per training batch (step size 2.5 ε / steps).
    #[arg(long, default_value_t = 3)]
    pub adv_steps: usize,
    /// DeMem: fraction ρ of each model's rows marked high-risk.
    #[arg(long, default_value_t = 0.1)]
    pub demem_rho: f64,
    /// DeMem: weight λ of the hinge penalty.
    #[arg(long, default_value_t = 1.0)]
    pub demem_lambda: f64,
    /// DeMem: warm-up epochs whose adversarial losses score the risk.
    #[arg(long, default_value_t = 5)]
    pub demem_warmup: usize,
    /// DeMem: the hinge's threshold τ: the mean test-split loss (held-out) or spec 13 §B's
    /// median loss of the low-risk training rows (low-risk-train).
    #[arg(long, value_enum, default_value = "held-out")]
    pub demem_tau: DememTau,
}

/// `--demem-tau`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DememTau {
    /// Mean natural loss of the test split.
    HeldOut,
    /// Median natural loss of the model's low-risk training rows.
    LowRiskTrain,
}

impl AdvTrainArgs {
    /// The adversarial-training settings, when asked for.
    pub fn settings(&self) -> Option<crate::defence::demem::Adversarial> {
        use crate::defence::demem::{Adversarial, Demem};
        (self.adversarial || self.demem).then(|| {
            let demem = self.demem.then_some(Demem {
                rho: self.demem_rho,
                lambda: self.demem_lambda,
                warmup_epochs: self.demem_warmup,
                tau: match self.demem_tau {
                    DememTau::HeldOut => crate::defence::demem::TauRule::HeldOut,
                    DememTau::LowRiskTrain => crate::defence::demem::TauRule::LowRiskTrain,
                },
            });
            Adversarial::new(self.adv_epsilon, self.adv_steps, demem)
        })
    }
}

impl DpTrainArgs {
    /// The DP-SGD settings, when asked for.
    pub fn settings(&self) -> Option<crate::defence::dp_sgd::DpSettings> {
        (self.dp_epsilon.is_some() || self.dp_noise.is_some()).then_some(crate::defence::dp_sgd::DpSettings {
            clip: self.dp_clip,
            epsilon: self.dp_epsilon,
            noise_multiplier: self.dp_noise,
            delta: self.dp_delta,
        })
    }
}

fn merge(out: &Path, id: Option<&str>, shards: &[std::path::PathBuf], json: bool) -> CoreResult<()> {
    let first = Study::open(
        shards
            .first()
            .ok_or_else(|| CoreError::Invalid("no shard studies".into()))?,
    )?;
    let id = match id {
        Some(id) => id.to_string(),
        None => resolve_zoo_id(&first, None)?,
    };
    let dirs: Vec<std::path::PathBuf> = shards
        .iter()
        .map(|s| Study::open(s).map(|st| zoo_dir(&st, &id)))
        .collect::<CoreResult<_>>()?;
    let mut study = Study::open_or_create(out)?;
    for d in &first.manifest.datasets {
        study.add_dataset(d)?;
    }
    let copied = merge_zoos(&dirs, &zoo_dir(&study, &id))?;
    let total = crate::train::zoo::Zoo::open(&zoo_dir(&study, &id))?
        .model_indices()
        .len();
    if json {
        println!(
            "{}",
            json!({ "zoo": id, "copied": copied, "models": total, "study": out })
        );
    } else {
        println!(
            "merged {copied} models into {} ({total} models)",
            zoo_dir(&study, &id).display()
        );
    }
    Ok(())
}

/// `rote memorization STUDY`: `pairs` holds the mem and influence thresholds and whether pairs
/// must share a class; `compare` another implementation's mem vector.
pub fn memorization(
    study_path: &Path,
    zoo: Option<&str>,
    pairs: (f32, f32, bool),
    compare: Option<&Path>,
    json: bool,
) -> CoreResult<()> {
    let study = Study::open(study_path)?;
    let z = load_zoo(&study, zoo)?;
    let (mem_thr, infl_thr, same_class) = pairs;
    let thr = PairThresholds {
        mem: mem_thr,
        infl: infl_thr,
        same_class,
        ..PairThresholds::default()
    };
    let r = memorization_report(&z, &thr);
    let agreement = compare
        .map(|f| compare_with_file(f, &r.mem.mem, &z.data.train_indices()))
        .transpose()?;
    let path = save_report(&study, &r.zoo, "memorization", &r)?;
    let by_group = crate::measure::fairness_model::mem_by_group(&z.data.name, &r.mem.mem, mem_thr)?;
    let value = json!({
        "zoo": r.zoo,
        "n_train": r.n_train,
        "n_test": r.n_test,
        "models": r.models,
        "mem_mean": r.mem_mean,
        "n_high_mem": r.n_high_mem,
        "n_pairs": r.n_pairs,
        "n_pair_tests": r.n_pair_tests,
        "top_pairs": r.top_pairs,
        "planted_recall": r.planted_recall,
        "n_planted": r.planted.len(),
        "compare": agreement,
        "mem_by_group": by_group.as_ref().map(|cols| cols
            .iter()
            .map(|(c, g)| (c.clone(), json!(g)))
            .collect::<serde_json::Map<_, _>>()),
        "report": path,
    });
    if json {
        println!("{value}");
    } else {
        println!(
            "zoo {} ({} models): mean mem {:.4} over {} training candidates, {} samples with mem >= {}, \
             {} high-influence pairs over {} test samples",
            r.zoo, r.models, r.mem_mean, r.n_train, r.n_high_mem, thr.mem, r.n_pairs, r.n_pair_tests
        );
        if let Some(rec) = r.planted_recall {
            println!(
                "planted mislabels recovered among the top-{} mem: {:.1}%",
                r.planted.len(),
                rec * 100.0
            );
        }
        if let Some(a) = &agreement {
            println!(
                "against {}: Pearson {:.4}, Spearman {:.4} over {} rows (mean mem {:.4} here, {:.4} there)",
                a.file, a.pearson, a.spearman, a.n, a.mean_ours, a.mean_theirs
            );
        }
        for (column, groups) in by_group.iter().flatten() {
            let parts: Vec<String> = groups
                .iter()
                .map(|g| {
                    format!(
                        "{} {:.4} ({} rows, {:.1}% with mem >= {})",
                        g.group,
                        g.mean_mem,
                        g.n,
                        100.0 * g.high_share,
                        thr.mem
                    )
                })
                .collect();
            println!("mean mem by {column}: {}", parts.join("; "));
        }
        println!("report: {}", path.display());
    }
    Ok(())
}

fn parse_attack(s: &str) -> CoreResult<Attack> {
    match s {
        "loss" => Ok(Attack::Loss),
        "lira" | "lira-online" => Ok(Attack::LiraOnline),
        "lira-offline" => Ok(Attack::LiraOffline),
        "rmia" => Ok(Attack::Rmia),
        other => Err(CoreError::Invalid(format!(
            "unknown attack '{other}' (loss, lira, lira-offline, rmia)"
        ))),
    }
}

/// `rote mia STUDY --attack ...`.
pub fn mia(
    study_path: &Path,
    zoo: Option<&str>,
    attack: &str,
    fix_variance: bool,
    offline: bool,
    targets: usize,
    json: bool,
) -> CoreResult<()> {
    let attack = parse_attack(attack)?;
    let study = Study::open(study_path)?;
    let z = load_zoo(&study, zoo)?;
    let cfg = MiaConfig {
        fix_variance,
        rmia_offline: offline,
        max_targets: targets,
        ..MiaConfig::default()
    };
    let r = mia_report(&z, attack, &cfg)?;
    let name = format!("mia-{}", attack.slug());
    let path = save_report(&study, &z.zoo.manifest.config.id, &name, &r)?;
    let value = json!({
        "zoo": z.zoo.manifest.config.id,
        "attack": attack,
        "auc": r.auc,
        "tpr_at_0.1pct_fpr": r.tpr_at_0_1pct_fpr,
        "tpr_at_1pct_fpr": r.tpr_at_1pct_fpr,
        "n_scores": r.n_scores,
        "n_targets": r.n_targets,
        // Audited ε lower bounds (δ = 1e-5, 95 %; see measure::audit). A DP zoo's accountant ε
        // belongs beside them: the audited bound must not exceed it.
        "epsilon_lower_bound": r.epsilon_lower_bound,
        "epsilon_one_run": r.epsilon_one_run,
        "report": path,
    });
    if json {
        println!("{value}");
    } else {
        println!(
            "{:?} on zoo {} ({} targets, {} scores): AUC {:.4}, TPR {:.4} at 0.1% FPR, {:.4} at 1% FPR",
            attack,
            z.zoo.manifest.config.id,
            r.n_targets,
            r.n_scores,
            r.auc,
            r.tpr_at_0_1pct_fpr,
            r.tpr_at_1pct_fpr
        );
        for b in r.epsilon_lower_bound.iter().chain(&r.epsilon_one_run) {
            println!("{}", b.summary());
        }
    }
    Ok(())
}
