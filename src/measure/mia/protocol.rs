//! The leave-one-model-out protocol: input checks, every (target, sample) score of an attack, and
//! the per-sample vulnerability scored leave-pair-out (see the parent module's docs).

use rayon::prelude::*;

use super::lira::{LiraGlobal, LiraStats, lira_globals, lira_loo, lira_score};
use super::loss::loss_score;
use super::rmia::{RmiaPopulation, rmia_parts};
use super::types::{Attack, MiaConfig, ZooView};
use crate::error::{CoreError, CoreResult};

/// Checks the inputs and returns the number of target models.
fn validate(
    zoo: &ZooView<'_>,
    attack: Attack,
    eval: &[usize],
    population: &[usize],
    cfg: &MiaConfig,
) -> CoreResult<usize> {
    let bad = |m: String| Err(CoreError::Invalid(m));
    if zoo.k < 2 {
        return bad(format!(
            "membership inference needs at least 2 models, the zoo has {}",
            zoo.k
        ));
    }
    let Some(len) = zoo.k.checked_mul(zoo.n) else {
        return bad("zoo size K x n overflows".into());
    };
    if zoo.member.len() != len {
        return bad(format!(
            "zoo membership has {} entries, expected K x n = {} x {} = {len}",
            zoo.member.len(),
            zoo.k,
            zoo.n
        ));
    }
    if zoo.loss.len() != len {
        return bad(format!(
            "zoo losses have {} entries, expected K x n = {} x {} = {len}",
            zoo.loss.len(),
            zoo.k,
            zoo.n
        ));
    }
    if eval.is_empty() {
        return bad("no samples to evaluate".into());
    }
    if let Some(&i) = eval.iter().find(|&&i| i >= zoo.n) {
        return bad(format!("evaluated sample {i} is out of range (n = {})", zoo.n));
    }
    if let Some(&i) = population.iter().find(|&&i| i >= zoo.n) {
        return bad(format!("population sample {i} is out of range (n = {})", zoo.n));
    }
    if cfg.max_targets == 0 {
        return bad("max_targets must be at least 1".into());
    }
    if let Some(pos) = zoo.loss.iter().position(|l| l.is_nan()) {
        return bad(format!(
            "loss of model {} on sample {} is NaN",
            pos / zoo.n,
            pos % zoo.n
        ));
    }
    if attack == Attack::Rmia {
        if population.is_empty() {
            return bad("RMIA needs a non-empty reference population".into());
        }
        if !(cfg.rmia_gamma.is_finite() && cfg.rmia_gamma > 0.0) {
            return bad(format!(
                "RMIA gamma must be positive and finite, got {}",
                cfg.rmia_gamma
            ));
        }
        if !(0.0..=1.0).contains(&cfg.rmia_a) {
            return bad(format!("RMIA offline a must lie in [0, 1], got {}", cfg.rmia_a));
        }
    }
    Ok(zoo.k.min(cfg.max_targets))
}

/// What an attack computes once per run and reuses for every sample.
pub(super) enum Prepared {
    /// LOSS needs nothing.
    Loss,
    /// LiRA: per-target global σ and μ_out.
    Lira { online: bool, globals: Vec<LiraGlobal> },
    /// RMIA: per-target sorted ln LR over the population.
    Rmia(RmiaPopulation),
}

/// All scores, sample-major: `scores[j * T + t]` for target t and sample `eval[j]`; returns
/// (scores, T, what was prepared).
pub(super) fn attack_scores(
    zoo: &ZooView<'_>,
    attack: Attack,
    eval: &[usize],
    population: &[usize],
    cfg: &MiaConfig,
) -> CoreResult<(Vec<f64>, usize, Prepared)> {
    let t_count = validate(zoo, attack, eval, population, cfg)?;
    let prep = match attack {
        Attack::Loss => Prepared::Loss,
        Attack::LiraOnline | Attack::LiraOffline => Prepared::Lira {
            online: attack == Attack::LiraOnline,
            globals: lira_globals(zoo, t_count)?,
        },
        Attack::Rmia => Prepared::Rmia(RmiaPopulation::new(zoo, population, cfg, t_count)),
    };
    let mut scores = vec![0.0; eval.len() * t_count];
    scores
        .par_chunks_mut(t_count)
        .zip(eval.par_iter())
        .for_each(|(row, &i)| match &prep {
            Prepared::Loss => {
                for (t, s) in row.iter_mut().enumerate() {
                    *s = loss_score(zoo, t, i);
                }
            }
            Prepared::Lira { online, globals } => {
                let stats = lira_loo(zoo, i, t_count);
                for ((s, st), g) in row.iter_mut().zip(&stats).zip(globals) {
                    *s = lira_score(st, g, *online, cfg.fix_variance);
                }
            }
            Prepared::Rmia(pop) => {
                let (ln_p, ln_ref) = rmia_parts(zoo, i, t_count, cfg);
                for (t, s) in row.iter_mut().enumerate() {
                    let lr = ln_p[t] - ln_ref[t];
                    *s = pop.score(t, i, lr, lr);
                }
            }
        });
    Ok((scores, t_count, prep))
}

/// Per-sample vulnerability of sample i from its row of scores (see
/// [`MiaResult::vulnerability`](super::types::MiaResult::vulnerability)).
///
/// Scores that depend on which shadow models trained on i (LiRA's IN/OUT fits, offline RMIA's OUT
/// references) are recomputed per pair leave-pair-out: for a member target t and a non-member
/// target u, both are scored against the sample statistics of the shadows other than t and u
/// (IN without t, OUT without u), so the two scores come from one function and are exchangeable
/// when the loss does not depend on membership. With the plain leave-one-out scores, the member
/// t is scored against an OUT fit that contains u and vice versa, which biases this within-sample
/// AUC below 0.5 (the known pessimism of leave-one-out AUC; Airola et al. 2011, "An experimental
/// comparison of cross-validation techniques for estimating the area under the ROC curve",
/// Comput. Stat. Data Anal. 55(4)). LiRA's global σ is that of target min(t, u) for both scores;
/// RMIA's population is each score's own target's. LOSS and online RMIA do not use memberships
/// and use `row`.
pub(super) fn sample_vulnerability(
    zoo: &ZooView<'_>,
    prep: &Prepared,
    cfg: &MiaConfig,
    i: usize,
    row: &[f64],
) -> f32 {
    let t_count = row.len();
    let (members, others): (Vec<usize>, Vec<usize>) = (0..t_count).partition(|&t| zoo.member[t * zoo.n + i]);
    if members.is_empty() || others.is_empty() {
        return f32::NAN;
    }
    match prep {
        Prepared::Lira { online, globals } => {
            let loo = lira_loo(zoo, i, t_count);
            pair_auc(&members, &others, |t, u| {
                let (inn, out) = (loo[t].inn, loo[u].out);
                let g = &globals[t.min(u)];
                let st = LiraStats {
                    phi: loo[t].phi,
                    inn,
                    out,
                };
                let su = LiraStats {
                    phi: loo[u].phi,
                    inn,
                    out,
                };
                (
                    lira_score(&st, g, *online, cfg.fix_variance),
                    lira_score(&su, g, *online, cfg.fix_variance),
                )
            })
        }
        Prepared::Rmia(pop) if cfg.rmia_offline => {
            let (ln_p, ln_ref) = rmia_parts(zoo, i, t_count, cfg);
            // u's OUT reference excludes u, and t (a member) is not an OUT reference.
            pair_auc(&members, &others, |t, u| {
                (pop.score(t, i, ln_p[t] - ln_ref[u], ln_p[t] - ln_ref[t]), row[u])
            })
        }
        _ => pair_auc(&members, &others, |t, u| (row[t], row[u])),
    }
}

/// Fraction of (member, non-member) pairs whose member score is higher (ties count half).
fn pair_auc(members: &[usize], others: &[usize], mut pair: impl FnMut(usize, usize) -> (f64, f64)) -> f32 {
    let mut wins = 0.0;
    for &t in members {
        for &u in others {
            let (a, b) = pair(t, u);
            if a > b {
                wins += 1.0;
            } else if a == b {
                wins += 0.5;
            }
        }
    }
    (wins / (members.len() * others.len()) as f64) as f32
}
