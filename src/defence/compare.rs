//! What a defence changes: a study's zoos side by side, the baseline (trained without a defence)
//! and its defended variants (the same recipe with a defence), on utility (test accuracy) and on
//! every memorization measurement rote has for a zoo: LiRA's AUC and TPR at 0.1 % FPR
//! (Carlini et al. 2022), the audited ε lower bound of that ROC, mean Feldman–Zhang mem and the
//! recall of planted mislabels; for DP-SGD the accountant's ε beside the audited one (the audit
//! must not exceed it). Used by `rote defences`, the Defences view and the report's Defences
//! section. Spec 13 §C.5.

use crate::error::CoreResult;
use crate::measure::memorization::PairThresholds;
use crate::measure::mia::{Attack, MiaConfig, MiaResult};
use crate::measure::zoo_report::{
    LoadedZoo, MemorizationReport, load_report, load_zoo, memorization_report, mia_report, results_dir,
    save_report,
};
use crate::study::Study;
use crate::train::zoo::{ZooConfig, zoo_dir};

/// One zoo's row of the comparison.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DefenceRow {
    /// Zoo id.
    pub zoo: String,
    /// The defence, in words ("none", "DP-SGD ε = 2, C = 1").
    pub defence: String,
    /// The baseline this zoo is a defended variant of (same recipe without the defence).
    pub variant_of: Option<String>,
    /// Models in the zoo.
    pub models: usize,
    /// Mean test-split accuracy over the models.
    pub test_accuracy: f64,
    /// Mean test-split accuracy under PGD over the models (adversarially trained zoos).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robust_accuracy: Option<f64>,
    /// LiRA (online) AUC.
    pub lira_auc: f64,
    /// LiRA TPR at 0.1 % FPR.
    pub lira_tpr_at_0_1pct_fpr: f64,
    /// Audited ε lower bound of LiRA's ROC (see `measure::audit`), with its δ.
    pub audited_epsilon: Option<f64>,
    /// The DP accountant's ε (DP-SGD zoos).
    pub accountant_epsilon: Option<f64>,
    /// δ of the accountant's ε.
    pub delta: Option<f64>,
    /// Mean mem over the training split.
    pub mem_mean: f64,
    /// Recall of planted mislabels among the top mem scores (None without planting).
    pub planted_recall: Option<f64>,
}

/// One diffusion model's row: its newest saved extraction (Carlini et al. 2023).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExtractionDefenceRow {
    /// Model id.
    pub model: String,
    /// The defence, in words ("none", "dedup (RMS 0.05 in the worst tile): 710 -> 400 entries").
    pub defence: String,
    /// The model trained with the same recipe without the defence.
    pub variant_of: Option<String>,
    /// Generations scored.
    pub samples: usize,
    /// Generations counted as extracted.
    pub n_extracted: usize,
    /// Distinct training images extracted.
    pub unique_train_extracted: usize,
    /// Fraction of the planted duplicates extracted.
    pub planted_dup_extracted_frac: Option<f64>,
    /// Fraction of the single images extracted.
    pub singleton_extracted_frac: Option<f64>,
    /// Final training loss (a utility proxy; None when not recorded).
    pub final_loss: Option<f64>,
}

/// Every zoo of a study, baselines first, each followed by its variants; and every diffusion
/// model with a saved extraction, likewise.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DefencesReport {
    /// The zoos.
    pub rows: Vec<DefenceRow>,
    /// The diffusion models.
    #[serde(default)]
    pub diffusion: Vec<ExtractionDefenceRow>,
}

/// A diffusion card's recipe without its id, defence and training outcome.
fn ddpm_recipe(c: &crate::diffusion::model::DiffusionCard) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for k in [
            "id",
            "dedup",
            "final_loss",
            "loss_curve",
            "seconds",
            "command",
            "rote_version",
            "device",
            "n_params",
        ] {
            m.remove(k);
        }
    }
    v
}

/// The study's diffusion models with a saved extraction, each deduplicated variant after the
/// model with its recipe.
pub fn extraction_rows(study: &Study) -> Vec<ExtractionDefenceRow> {
    use crate::diffusion::extract::{ExtractionRun, newest_extraction};
    use crate::diffusion::model::{DiffusionCard, diffusion_dir};
    let Ok(entries) = std::fs::read_dir(diffusion_dir(&study.root)) else {
        return Vec::new();
    };
    let mut found: Vec<(serde_json::Value, bool, ExtractionDefenceRow)> = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let cp = dir.join("card.json");
        let Ok(text) = std::fs::read_to_string(&cp) else {
            continue;
        };
        let Ok(card) = DiffusionCard::from_json(&cp, &text) else {
            continue;
        };
        let results = study.results_dir().join("diffusion").join(&card.id);
        let Some(run) = newest_extraction(&results).and_then(|p| load_report::<ExtractionRun>(&p).ok())
        else {
            continue;
        };
        let s = &run.report.summary;
        let defence = card.dedup.as_ref().map_or_else(
            || "none".to_string(),
            |d| {
                format!(
                    "dedup (RMS {} in the worst tile): {} -> {} entries",
                    d.threshold, d.entries_before, d.kept
                )
            },
        );
        found.push((
            ddpm_recipe(&card),
            card.dedup.is_some(),
            ExtractionDefenceRow {
                model: card.id.clone(),
                defence,
                variant_of: None,
                samples: s.n_samples,
                n_extracted: s.n_extracted,
                unique_train_extracted: s.unique_train_extracted,
                planted_dup_extracted_frac: s.planted_dup_extracted_frac,
                singleton_extracted_frac: s.singleton_extracted_frac,
                final_loss: Some(card.final_loss).filter(|v| v.is_finite()),
            },
        ));
    }
    let mut out = Vec::new();
    let mut placed = vec![false; found.len()];
    for b in 0..found.len() {
        if found[b].1 || placed[b] {
            continue;
        }
        placed[b] = true;
        out.push(found[b].2.clone());
        for v in 0..found.len() {
            if !placed[v] && found[v].1 && found[v].0 == found[b].0 {
                placed[v] = true;
                let mut row = found[v].2.clone();
                row.variant_of = Some(found[b].2.model.clone());
                out.push(row);
            }
        }
    }
    out.extend(
        (0..found.len())
            .filter(|&i| !placed[i])
            .map(|i| found[i].2.clone()),
    );
    out
}

/// The defence of a zoo configuration, in words.
pub fn describe(cfg: &ZooConfig) -> String {
    cfg.defence().unwrap_or_else(|| "none".into())
}

/// The recipe without its defence and id: two zoos with equal recipes differ only by defence.
fn recipe(cfg: &ZooConfig) -> ZooConfig {
    ZooConfig {
        id: String::new(),
        dp: None,
        adversarial: None,
        ..cfg.clone()
    }
}

/// A cached report of the zoo that is `current`, or the report computed now (and cached).
fn cached<T, F>(study: &Study, zoo: &str, name: &str, current: impl Fn(&T) -> bool, make: F) -> CoreResult<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce() -> CoreResult<T>,
{
    let path = results_dir(study, zoo).join(format!("{name}.json"));
    if let Ok(r) = load_report::<T>(&path)
        && current(&r)
    {
        return Ok(r);
    }
    let r = make()?;
    save_report(study, zoo, name, &r)?;
    Ok(r)
}

/// Mean test-split accuracy over the zoo's models.
fn test_accuracy(z: &LoadedZoo) -> f64 {
    let test = z.data.test_indices();
    let n = z.matrix.n;
    let mut hits = 0usize;
    for k in 0..z.matrix.k {
        hits += test.iter().filter(|&&i| z.matrix.correct[k * n + i]).count();
    }
    hits as f64 / (z.matrix.k * test.len()).max(1) as f64
}

/// One zoo's row (reports read from the cache, computed when missing).
pub fn defence_row(study: &Study, id: &str) -> CoreResult<DefenceRow> {
    let z = load_zoo(study, Some(id))?;
    let mem: MemorizationReport = cached(
        study,
        id,
        "memorization",
        |_| true,
        || Ok(memorization_report(&z, &PairThresholds::default())),
    )?;
    // A report from before the audit existed is measured again.
    let lira: MiaResult = cached(
        study,
        id,
        &format!("mia-{}", Attack::LiraOnline.slug()),
        |r: &MiaResult| r.epsilon_lower_bound.is_some(),
        || mia_report(&z, Attack::LiraOnline, &MiaConfig::default()),
    )?;
    let cfg = &z.zoo.manifest.config;
    let robust_accuracy = match cfg.adversarial {
        Some(_) => {
            let acc: Vec<f64> = z
                .zoo
                .load_models()?
                .iter()
                .filter_map(|m| m.robust_accuracy.map(f64::from))
                .collect();
            (!acc.is_empty()).then(|| acc.iter().sum::<f64>() / acc.len() as f64)
        }
        None => None,
    };
    Ok(DefenceRow {
        zoo: id.to_string(),
        defence: describe(cfg),
        variant_of: None,
        models: z.matrix.k,
        test_accuracy: test_accuracy(&z),
        robust_accuracy,
        lira_auc: lira.auc,
        lira_tpr_at_0_1pct_fpr: lira.tpr_at_0_1pct_fpr,
        audited_epsilon: audited_epsilon(&lira),
        accountant_epsilon: cfg.dp.as_ref().map(|d| d.epsilon),
        delta: cfg.dp.as_ref().map(|d| d.delta),
        mem_mean: mem.mem_mean,
        planted_recall: mem.planted_recall,
    })
}

/// The audited ε lower bound of an attack's ROC.
fn audited_epsilon(r: &MiaResult) -> Option<f64> {
    r.epsilon_lower_bound.as_ref().map(|b| b.epsilon)
}

/// Every zoo of the study with at least two models, each defended variant after its baseline.
pub fn defences_report(study: &Study, ctx: &crate::job::JobCtx<'_>) -> CoreResult<DefencesReport> {
    let ids = crate::train::zoo::zoo_ids(study);
    let mut entries: Vec<(ZooConfig, DefenceRow)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        ctx.checkpoint()?;
        ctx.progress("measuring zoos", i as u64, ids.len() as u64);
        let zoo = crate::train::zoo::Zoo::open(&zoo_dir(study, id))?;
        if zoo.model_indices().len() < 2 {
            continue;
        }
        entries.push((zoo.manifest.config.clone(), defence_row(study, id)?));
    }
    let mut rows = Vec::new();
    let baselines: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].0.defence().is_none())
        .collect();
    let mut placed = vec![false; entries.len()];
    for &b in &baselines {
        placed[b] = true;
        rows.push(entries[b].1.clone());
        for v in 0..entries.len() {
            if !placed[v] && recipe(&entries[v].0) == recipe(&entries[b].0) {
                placed[v] = true;
                let mut row = entries[v].1.clone();
                row.variant_of = Some(entries[b].1.zoo.clone());
                rows.push(row);
            }
        }
    }
    rows.extend(
        (0..entries.len())
            .filter(|&i| !placed[i])
            .map(|i| entries[i].1.clone()),
    );
    Ok(DefencesReport {
        rows,
        diffusion: extraction_rows(study),
    })
}

/// A DeMem-style variant beside its PGD-AT sibling (same baseline, same attack settings).
pub struct DememComparison<'a> {
    /// The DeMem-style variant.
    pub demem: &'a DefenceRow,
    /// The PGD-AT variant it adds the hinge to.
    pub pgd_at: &'a DefenceRow,
}

impl DememComparison<'_> {
    /// Whether DeMem lowered LiRA's AUC by more than an 8–16-model zoo's noise.
    pub fn lowered_lira(&self) -> bool {
        self.demem.lira_auc < self.pgd_at.lira_auc - 0.005
    }
}

/// Why DeMem-style may not lower LiRA on rote's zoos (docs/fidelity.md §12).
pub const DEMEM_NO_EFFECT: &str = "its hinge acts only on high-risk rows fitted below τ, and \
     adversarial training already left this zoo's hard rows unfitted (see mem and planted recall). \
     The paper's gain is on CIFAR-scale CNNs that overfit under PGD-AT";

/// Every DeMem-style variant of `rows` with its PGD-AT sibling.
pub fn demem_comparisons(rows: &[DefenceRow]) -> Vec<DememComparison<'_>> {
    rows.iter()
        .filter_map(|d| {
            let (at, _) = d.defence.split_once(" + DeMem")?;
            let pgd_at = rows
                .iter()
                .find(|a| a.defence == at && a.variant_of == d.variant_of)?;
            Some(DememComparison { demem: d, pgd_at })
        })
        .collect()
}

/// Where the comparison is saved: `results/defences.json`.
pub fn report_path(study: &Study) -> std::path::PathBuf {
    study.results_dir().join("defences.json")
}

/// Saves the comparison (atomically) and returns its path.
pub fn save(study: &Study, report: &DefencesReport) -> CoreResult<std::path::PathBuf> {
    let path = report_path(study);
    crate::study::write_json_atomic(&path, report)?;
    Ok(path)
}

/// The saved comparison, if there is one.
pub fn load(study: &Study) -> CoreResult<DefencesReport> {
    load_report(&report_path(study))
}

/// A defence a zoo can be trained with.
#[derive(Clone, Debug, PartialEq)]
pub enum Defence {
    /// DP-SGD at these settings.
    Dp(crate::defence::dp_sgd::DpSettings),
    /// PGD adversarial training, with DeMem when set.
    Adversarial(crate::defence::demem::Adversarial),
}

impl Defence {
    /// One clear error for settings no run can use.
    pub fn check(&self) -> CoreResult<()> {
        match self {
            Self::Dp(s) => s.check(),
            Self::Adversarial(a) => a.check(),
        }
    }

    /// The id of `baseline`'s variant with this defence.
    pub fn variant_id(&self, baseline: &str) -> String {
        let num = |v: f64| format!("{v}").replace('.', "p");
        match self {
            Self::Dp(s) => match (s.epsilon, s.noise_multiplier) {
                (Some(e), _) => format!("{baseline}-dp-eps{}", num(e)),
                (_, Some(s)) => format!("{baseline}-dp-sigma{}", num(s)),
                (None, None) => format!("{baseline}-dp"),
            },
            Self::Adversarial(a) => format!(
                "{baseline}-{}-eps{}",
                if a.demem.is_some() { "demem" } else { "pgdat" },
                num(a.epsilon)
            ),
        }
    }
}

/// The id of `baseline`'s DP-SGD variant at `settings`.
pub fn dp_variant_id(baseline: &str, settings: &crate::defence::dp_sgd::DpSettings) -> String {
    Defence::Dp(*settings).variant_id(baseline)
}

/// Trains the DP-SGD variant of zoo `baseline`: [`train_variant`] with [`Defence::Dp`].
pub fn train_dp_variant(
    study: &Study,
    baseline: &str,
    settings: &crate::defence::dp_sgd::DpSettings,
    models: Option<u32>,
    ctx: &crate::job::JobCtx<'_>,
) -> CoreResult<String> {
    train_variant(study, baseline, &Defence::Dp(*settings), models, ctx)
}

/// Trains the variant of zoo `baseline` with `defence` (its recipe and data; `models` models,
/// default as many as the baseline has) into the same study with its reports, and returns the
/// variant's id. A variant already on disk is resumed.
pub fn train_variant(
    study: &Study,
    baseline: &str,
    defence: &Defence,
    models: Option<u32>,
    ctx: &crate::job::JobCtx<'_>,
) -> CoreResult<String> {
    defence.check()?;
    let base = crate::train::zoo::Zoo::open(&zoo_dir(study, baseline))?;
    let cfg = base.manifest.config.clone();
    if let Some(d) = cfg.defence() {
        return Err(crate::error::CoreError::Invalid(format!(
            "zoo '{baseline}' is already trained with a defence ({d}); pick its baseline"
        )));
    }
    let k = models.unwrap_or(base.model_indices().len() as u32);
    let ds = crate::data::load(&cfg.train.data)?;
    let id = defence.variant_id(baseline);
    let variant = match defence {
        Defence::Dp(settings) => {
            let subsets = cfg
                .subsets
                .as_ref()
                .map(|r| crate::train::zoo::Subsets::in_zoo(&base.dir, r, ds.n))
                .transpose()?;
            let m = crate::train::zoo::rows_per_model(
                &ds,
                subsets.as_ref(),
                cfg.train.subset_ratio,
                cfg.train.seed,
            )?;
            let dp = crate::train::dp_record(settings, cfg.train.batch_size, cfg.train.epochs, m)?;
            ZooConfig {
                id: id.clone(),
                dp: Some(dp),
                ..cfg
            }
        }
        Defence::Adversarial(a) => ZooConfig {
            id: id.clone(),
            adversarial: Some(a.clone()),
            ..cfg
        },
    };
    crate::measure::zoo_report::train_zoo_with_reports(&variant, &ds, study, k, 32, ctx)?;
    Ok(id)
}
