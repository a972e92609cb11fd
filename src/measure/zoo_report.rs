//! Reports over a zoo, shared by `rote memorization`, `rote mia` and the GUI; each is cached as
//! JSON under `STUDY/results/<zoo>/` so views open instantly.

use std::path::{Path, PathBuf};

use super::memorization::{
    InflEstimate, InflPair, MemEstimate, PairThresholds, ZooMatrix, convergence, held_out_loss, influence,
    memorization, planted_recall,
};
use super::mia::{Attack, MiaConfig, MiaResult, ZooView, run_attack};
use super::roc::{Roc, log_roc_points};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::study::Study;
use crate::train::zoo::{Zoo, resolve_zoo_id, zoo_data};

/// The zoo's signals and the data set it was trained on (with planted labels applied).
pub struct LoadedZoo {
    /// The zoo.
    pub zoo: Zoo,
    /// Dense signals.
    pub matrix: ZooMatrix,
    /// The data set as the zoo saw it.
    pub data: Dataset,
    /// Planted sample indices.
    pub planted: Vec<usize>,
}

/// Opens zoo `id` of `study` (the only zoo when `id` is `None`) and loads its signals.
pub fn load_zoo(study: &Study, id: Option<&str>) -> CoreResult<LoadedZoo> {
    let zoos_dir = study.root.join("zoos");
    let id = resolve_zoo_id(study, id)?;
    let zoo = Zoo::open(&zoos_dir.join(&id))?;
    let ds = crate::data::load(&zoo.manifest.dataset.name)?;
    if ds.hash != zoo.manifest.dataset.hash {
        return Err(CoreError::Mismatch(format!(
            "zoo '{id}' was trained on '{}' with hash {}, but that data set now has hash {}",
            zoo.manifest.dataset.name, zoo.manifest.dataset.hash, ds.hash
        )));
    }
    let models = zoo.load_models()?;
    if models.len() < 2 {
        return Err(CoreError::Invalid(format!(
            "zoo '{id}' has {} trained models; at least 2 are needed",
            models.len()
        )));
    }
    let rows: Vec<(Vec<bool>, Vec<bool>, Vec<f32>)> = models
        .into_iter()
        .map(|m| (m.member, m.correct, m.loss))
        .collect();
    let matrix = ZooMatrix::from_rows(&rows)?;
    let data = zoo_data(&ds, &zoo.dir, &zoo.manifest)?;
    let planted = zoo.manifest.planted.iter().map(|p| p.0 as usize).collect();
    Ok(LoadedZoo {
        zoo,
        matrix,
        data,
        planted,
    })
}

/// Where a zoo's results go.
pub fn results_dir(study: &Study, zoo_id: &str) -> PathBuf {
    study.results_dir().join(zoo_id)
}

/// Pairs kept in a saved report (the strongest; `n_pairs` counts them all).
pub const MAX_STORED_PAIRS: usize = 5000;

/// The memorization report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemorizationReport {
    /// Zoo id.
    pub zoo: String,
    /// Training-split samples.
    pub n_train: usize,
    /// Test-split samples.
    pub n_test: usize,
    /// Models in the zoo.
    pub models: usize,
    /// Mean mem over the training split.
    pub mem_mean: f64,
    /// Samples with mem >= the threshold.
    pub n_high_mem: usize,
    /// High-influence pairs (all of them; `influence.pairs` keeps the strongest
    /// [`MAX_STORED_PAIRS`]).
    pub n_pairs: usize,
    /// Distinct test samples in the pairs.
    pub n_pair_tests: usize,
    /// The strongest pairs.
    pub top_pairs: Vec<InflPair>,
    /// Fraction of planted samples among the top-|planted| mem scores, ties in mem broken by
    /// the held-out loss (see `memorization::mem_order`; None without planting).
    pub planted_recall: Option<f64>,
    /// Mean loss of the models that did not train on each sample (the tie-break of the mem
    /// ranking; NaN on the test split).
    #[serde(default, with = "super::serde_nan")]
    pub held_out_loss: Vec<f32>,
    /// Planted samples.
    pub planted: Vec<usize>,
    /// Thresholds used.
    pub thresholds: PairThresholds,
    /// Per-sample estimates.
    pub mem: MemEstimate,
    /// Pairs and top influencers.
    pub influence: InflEstimate,
    /// Mean |mem_K - mem_final| as K grows.
    pub convergence: Vec<[f64; 2]>,
}

/// Computes the memorization report of a loaded zoo.
pub fn memorization_report(z: &LoadedZoo, thr: &PairThresholds) -> MemorizationReport {
    let train = z.data.train_indices();
    let test = z.data.test_indices();
    let mem = memorization(&z.matrix, &train);
    let held_out_loss = held_out_loss(&z.matrix, &train);
    let infl = influence(&z.matrix, &mem, &train, &test, &z.data.labels, thr);
    let vals: Vec<f64> = train
        .iter()
        .map(|&i| f64::from(mem.mem[i]))
        .filter(|v| v.is_finite())
        .collect();
    let mem_mean = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
    let n_high_mem = vals.iter().filter(|&&v| v >= f64::from(thr.mem)).count();
    let n_pairs = infl.pairs.len();
    let mut tests: Vec<usize> = infl.pairs.iter().map(|p| p.test).collect();
    tests.sort_unstable();
    tests.dedup();
    MemorizationReport {
        zoo: z.zoo.manifest.config.id.clone(),
        n_train: train.len(),
        n_test: test.len(),
        models: z.matrix.k,
        mem_mean,
        n_high_mem,
        n_pairs,
        n_pair_tests: tests.len(),
        top_pairs: infl.pairs.iter().take(10).cloned().collect(),
        planted_recall: planted_recall(&mem.mem, &held_out_loss, &z.planted),
        held_out_loss,
        planted: z.planted.clone(),
        thresholds: thr.clone(),
        convergence: convergence(&z.matrix, &train, 16),
        mem,
        influence: InflEstimate {
            pairs: infl.pairs.into_iter().take(MAX_STORED_PAIRS).collect(),
            top: infl.top,
        },
    }
}

/// Runs one attack over a loaded zoo: candidates are the training split, the RMIA population is
/// the test split.
pub fn mia_report(z: &LoadedZoo, attack: Attack, cfg: &MiaConfig) -> CoreResult<MiaResult> {
    let view = ZooView {
        k: z.matrix.k,
        n: z.matrix.n,
        member: &z.matrix.member,
        loss: &z.matrix.loss,
    };
    let mut r = run_attack(
        &view,
        attack,
        &z.data.train_indices(),
        &z.data.test_indices(),
        cfg,
    )?;
    // The full curve has one point per distinct score (up to K x n); keep a thinned copy that
    // still resolves FPRs down to 1e-6, with the exact AUC.
    let pts = log_roc_points(&r.roc, 1e-6, 2000);
    r.roc = Roc {
        fpr: pts.iter().map(|p| p[0]).collect(),
        tpr: pts.iter().map(|p| p[1]).collect(),
        auc: r.auc,
    };
    Ok(r)
}

/// Saves a report as `results/<zoo>/<name>.json`.
pub fn save_report<T: serde::Serialize>(
    study: &Study,
    zoo_id: &str,
    name: &str,
    value: &T,
) -> CoreResult<PathBuf> {
    let p = results_dir(study, zoo_id).join(format!("{name}.json"));
    // Compact: reports hold per-sample vectors for the whole data set.
    let bytes =
        serde_json::to_vec(value).map_err(|e| CoreError::format(&p, format!("cannot serialise: {e}")))?;
    crate::study::write_atomic(&p, &bytes)?;
    Ok(p)
}

/// Loads a saved report.
pub fn load_report<T: serde::de::DeserializeOwned>(path: &Path) -> CoreResult<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CoreError::format(path, format!("bad report: {e}")))
}

/// Trains zoo `cfg` in `study` up to `k` models, `group` at a time; after each group it reports the
/// live convergence of the estimates (metric "mem change": mean |mem(K) - mem(K - group)|, and
/// "mean mem"), then writes the memorization report and every attack's report.
pub fn train_zoo_with_reports(
    cfg: &crate::train::zoo::ZooConfig,
    ds: &Dataset,
    study: &Study,
    k: u32,
    group: usize,
    ctx: &crate::job::JobCtx<'_>,
) -> CoreResult<()> {
    let group = group.max(1);
    let mut prev: Option<Vec<f32>> = None;
    let mut target = 0u32;
    while target < k {
        target = (target + group as u32).min(k);
        crate::train::zoo::train_zoo(cfg, ds, study, target, None, group, ctx)?;
        let z = load_zoo(study, Some(&cfg.id))?;
        let train = z.data.train_indices();
        let mem = memorization(&z.matrix, &train).mem;
        let finite: Vec<f64> = train
            .iter()
            .map(|&i| f64::from(mem[i]))
            .filter(|v| v.is_finite())
            .collect();
        ctx.metric(
            "mean mem",
            f64::from(target),
            finite.iter().sum::<f64>() / finite.len().max(1) as f64,
        );
        if let Some(p) = &prev {
            let change: f64 = train
                .iter()
                .map(|&i| f64::from((mem[i] - p[i]).abs()))
                .sum::<f64>()
                / train.len().max(1) as f64;
            ctx.metric("mem change", f64::from(target), change);
        }
        prev = Some(mem);
    }
    ctx.progress("computing reports", 0, 1);
    let z = load_zoo(study, Some(&cfg.id))?;
    save_report(
        study,
        &cfg.id,
        "memorization",
        &memorization_report(&z, &PairThresholds::default()),
    )?;
    for attack in Attack::ALL {
        ctx.checkpoint()?;
        save_report(
            study,
            &cfg.id,
            &format!("mia-{}", attack.slug()),
            &mia_report(&z, attack, &MiaConfig::default())?,
        )?;
    }
    Ok(())
}
