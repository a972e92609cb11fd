//! The attacks' inputs (a zoo's per-model signals, the attack, its options) and their outcome.

use crate::measure::audit::AuditBound;
use crate::measure::roc::Roc;

/// Per-model signals of a zoo, row-major K x n.
#[derive(Clone, Copy, Debug)]
pub struct ZooView<'a> {
    /// Number of models K.
    pub k: usize,
    /// Number of samples n.
    pub n: usize,
    /// member[t * n + i]: model t trained on sample i.
    pub member: &'a [bool],
    /// loss[t * n + i]: cross-entropy of model t on sample i (>= 0).
    pub loss: &'a [f32],
}

/// A membership inference attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Loss threshold (Yeom et al. 2018): score = −loss.
    Loss,
    /// LiRA with IN and OUT Gaussians (Carlini et al. 2022).
    LiraOnline,
    /// LiRA with OUT Gaussians only, one-sided test (Carlini et al. 2022).
    LiraOffline,
    /// Relative membership inference (Zarifzadeh et al. 2024).
    Rmia,
}

impl Attack {
    /// Every attack, in a fixed order.
    pub const ALL: [Attack; 4] = [
        Attack::Loss,
        Attack::LiraOnline,
        Attack::LiraOffline,
        Attack::Rmia,
    ];

    /// The attack's name in files and on the command line (`lira-online`), as serde writes it.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::LiraOnline => "lira-online",
            Self::LiraOffline => "lira-offline",
            Self::Rmia => "rmia",
        }
    }
}

/// Options of the attacks.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MiaConfig {
    /// LiRA: one variance shared by all samples (the paper's choice for few shadow models) instead
    /// of per-sample.
    pub fix_variance: bool,
    /// RMIA: likelihood-ratio threshold gamma (default 1.0).
    pub rmia_gamma: f64,
    /// RMIA offline approximation a in P(x) = ((1 + a) P_OUT(x) + (1 - a)) / 2 (default 0.3); used
    /// when rmia_offline.
    pub rmia_a: f64,
    /// RMIA: use only OUT reference models (offline) instead of all reference models (online).
    pub rmia_offline: bool,
    /// Target models: the first min(K, max_targets) models (default 64).
    pub max_targets: usize,
}

impl Default for MiaConfig {
    fn default() -> Self {
        Self {
            fix_variance: false,
            rmia_gamma: 1.0,
            rmia_a: 0.3,
            rmia_offline: false,
            max_targets: 64,
        }
    }
}

/// The outcome of one attack on a zoo.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MiaResult {
    /// The attack that was run.
    pub attack: Attack,
    /// ROC curve of all pooled (target, sample) scores (one point per distinct score).
    pub roc: Roc,
    /// Area under `roc`.
    pub auc: f64,
    /// TPR at FPR <= 0.1 %.
    pub tpr_at_0_1pct_fpr: f64,
    /// TPR at FPR <= 1 %.
    pub tpr_at_1pct_fpr: f64,
    /// Number of (target model, sample) scores pooled into the ROC.
    pub n_scores: usize,
    /// Number of target models.
    pub n_targets: usize,
    /// Per-sample vulnerability over the whole data set (length n): for sample i, the fraction of
    /// (member target, non-member target) pairs in which the member target got the higher score
    /// (ties count half) — a per-sample AUC in [0, 1], 0.5 = not vulnerable. NaN where i was not
    /// evaluated or has no member or no non-member target. For LiRA and offline RMIA each pair is
    /// scored leave-pair-out (see the [`crate::measure::mia`] docs), which keeps null samples at 0.5.
    #[serde(with = "crate::measure::serde_nan")]
    pub vulnerability: Vec<f32>,
    /// Audited ε lower bound from the pooled scores (Clopper–Pearson, Bonferroni over the
    /// thresholds, δ = [`crate::measure::audit::DEFAULT_DELTA`], 95 %; see [`crate::measure::audit`]). None in
    /// reports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_lower_bound: Option<AuditBound>,
    /// The one-run bound (Steinke et al. 2023) on the first target alone, its evaluated samples
    /// as canaries; None unless that target trained on exactly half of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_one_run: Option<AuditBound>,
}
