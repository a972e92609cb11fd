//! Bias after memorization: Pepin, Igel and Selvan, "When Can Memorization Improve Fairness?"
//! (arXiv:2412.09254), in the notation and with the derivations of spec 14 (labelled [derived]
//! there: the spec's own, not checked against the paper's equations).
//!
//! Memorization is perfect prediction (f = Y) on a set D of a population P. From the base
//! predictions on P and a mask of D this module measures the cell statistics of spec 14 §2
//! (π_{a,y}, m_{a,y}, λ_{a,y} = m_{a,y}/π_{a,y}, p_D, and the confusion rows c_a(k|y) on the
//! *unmemorized* rows, so that P(f=k|Y=y,A=a) = λ_{a,y}·1[k=y] + (1−λ_{a,y})·c_a(k|y) holds
//! exactly in finite samples), evaluates the closed forms of §4 for Δ_sp(k), Δ_eo(y) and
//! Δ_eodds(y,k), and simulates them (f = Y on D, then `measure::fairness`); the two agree to
//! rounding on any mask (§7 step 3). It also builds memorized sets (§7: uniform over P, uniform in
//! the disadvantaged group, the EO exact minimum of §5, and targeted at misclassified rows, §6) and
//! the masses of §5: M*_EO = Σ_y π_{ℓ(y),y}·|Δ⁰_eo(y)|/FNR_{ℓ(y)}(y) and the statistical parity
//! lower bound p_D ≥ min(π₊,π₋)·TV(s₊,s₋)/max_{a,y} FNR_a(y).

mod retrain;
mod sweep;

pub use retrain::{RetrainReport, compare, population_indices, retrained_predictions};
pub use sweep::{SweepRow, finding, population_of_table, sweep};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::error::{CoreError, CoreResult};
use crate::measure::fairness::{FairnessReport, fairness};

/// Labels the §4–§5 quantities in outputs.
pub const DERIVED: &str = "derived (spec 14 §4-§5; not checked against the paper's equations)";

/// The p_D grid of `--sweep` (spec 14 §7 figure a).
pub const SWEEP: [f64; 6] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3];

/// Base predictions on a population P: two groups, first (A = +) minus second (A = −).
#[derive(Clone, Debug)]
pub struct Population {
    /// True class per row.
    pub y_true: Vec<usize>,
    /// Base prediction per row.
    pub y_pred: Vec<usize>,
    /// 0 for the first group, 1 for the second.
    pub group: Vec<usize>,
    /// The two group names.
    pub names: [String; 2],
    /// Number of classes; the last is the positive one.
    pub classes: usize,
}

/// How the memorized set is chosen (spec 14 §7 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Uniform over P.
    Uniform,
    /// Uniform within the disadvantaged group (the lower positive-prediction rate).
    Group,
    /// The EO exact minimum of §5 (ignores the mass).
    EoOptimal,
    /// Misclassified rows only, the disadvantaged group first (§6).
    Targeted,
}

impl Strategy {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Group => "group",
            Self::EoOptimal => "eo-optimal",
            Self::Targeted => "targeted",
        }
    }
}

/// Cell statistics of §2, index [a][y] (a = 0 first group, 1 second), c as [a][y][k].
#[derive(Clone, Debug, serde::Serialize)]
pub struct Cells {
    /// π_{a,y}.
    pub pi: [Vec<f64>; 2],
    /// m_{a,y}.
    pub m: [Vec<f64>; 2],
    /// λ_{a,y} (0 for an empty cell).
    pub lambda: [Vec<f64>; 2],
    /// c_a(k|y) on the unmemorized rows (the whole cell where all of it is memorized; NaN rows for
    /// an empty cell).
    pub c: [Vec<Vec<f64>>; 2],
    /// p_D = Σ m_{a,y}.
    pub p_d: f64,
}

/// The three gaps, per component and as the scalars of `measure::fairness`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Gaps {
    /// Δ_sp(positive class).
    pub statistical_parity_difference: f64,
    /// Δ_eo(positive class) (classical equal opportunity).
    pub equal_opportunity_difference: f64,
    /// max_{y,k} |Δ_eodds(y,k)|.
    pub equalized_odds_difference: f64,
    /// Δ_sp(k).
    pub statistical_parity: Vec<f64>,
    /// Δ_eo(y).
    pub equal_opportunity: Vec<f64>,
    /// Δ_eodds(y,k).
    pub equalized_odds: Vec<Vec<f64>>,
}

impl From<&FairnessReport> for Gaps {
    fn from(r: &FairnessReport) -> Self {
        Self::new(r.statistical_parity.clone(), r.equalized_odds.clone())
    }
}

impl Gaps {
    fn new(sp: Vec<f64>, eodds: Vec<Vec<f64>>) -> Self {
        let eo: Vec<f64> = (0..eodds.len()).map(|y| eodds[y][y]).collect();
        let pos = sp.len().saturating_sub(1);
        Self {
            statistical_parity_difference: sp.get(pos).copied().unwrap_or(f64::NAN),
            equal_opportunity_difference: eo.get(pos).copied().unwrap_or(f64::NAN),
            equalized_odds_difference: eodds
                .iter()
                .flatten()
                .filter(|x| x.is_finite())
                .fold(0.0f64, |m, x| m.max(x.abs())),
            statistical_parity: sp,
            equal_opportunity: eo,
            equalized_odds: eodds,
        }
    }

    /// The largest difference between two sets of gaps, component by component (NaN = NaN).
    pub fn max_difference(&self, other: &Gaps) -> f64 {
        let a = self
            .statistical_parity
            .iter()
            .chain(self.equalized_odds.iter().flatten());
        let b = other
            .statistical_parity
            .iter()
            .chain(other.equalized_odds.iter().flatten());
        a.zip(b).fold(0.0f64, |m, (x, y)| match (x.is_nan(), y.is_nan()) {
            (true, true) => m,
            (false, false) => m.max((x - y).abs()),
            _ => f64::INFINITY,
        })
    }
}

/// The masses of §5 [derived], from the base predictions.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DerivedMass {
    /// Where the formulas come from.
    pub source: &'static str,
    /// M*_EO = Σ_y π_{ℓ(y),y}·|Δ⁰_eo(y)|/FNR_{ℓ(y)}(y) (λ capped at 1).
    pub m_star_eo: f64,
    /// Σ_y π_{ℓ(y),y}·|Δ⁰_eo(y)| ≤ M*_EO ≤ Σ_y π_{ℓ(y),y}.
    pub m_star_eo_bounds: (f64, f64),
    /// min(π₊,π₋)·TV(s₊,s₋)/max_{a,y} FNR_a(y): no smaller mass removes the SP gap.
    pub sp_lower_bound: f64,
}

/// A simulated memorization and its closed form.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemorizationReport {
    /// The strategy.
    pub strategy: Strategy,
    /// The mass asked for (a fraction of P; `eo-optimal` ignores it).
    pub target_mass: f64,
    /// p_D, the memorized fraction of P.
    pub p_d: f64,
    /// Memorized rows.
    pub memorized: usize,
    /// Rows of P.
    pub rows: usize,
    /// The gaps of the base predictions.
    pub before: Gaps,
    /// The gaps with f = Y on D, measured.
    pub simulated: Gaps,
    /// The gaps of the §4 closed forms [derived].
    pub closed_form: Gaps,
    /// max |closed form − simulated| over all components.
    pub closed_form_error: f64,
    /// §5 masses [derived].
    pub derived: DerivedMass,
}

impl Population {
    /// The rows of `group` that are in `names`; rows of other groups are left out of P.
    pub fn new(
        y_true: &[usize],
        y_pred: &[usize],
        group: &[String],
        names: (&str, &str),
        classes: usize,
    ) -> CoreResult<Self> {
        if y_true.len() != y_pred.len() || y_true.len() != group.len() {
            return Err(CoreError::Invalid("population: columns of unequal length".into()));
        }
        if let Some(v) = y_true.iter().chain(y_pred).find(|&&v| v >= classes) {
            return Err(CoreError::Invalid(format!("class {v} outside {classes} classes")));
        }
        let mut p = Self {
            y_true: Vec::new(),
            y_pred: Vec::new(),
            group: Vec::new(),
            names: [names.0.to_string(), names.1.to_string()],
            classes,
        };
        for i in 0..group.len() {
            let a = if group[i] == names.0 {
                0
            } else if group[i] == names.1 {
                1
            } else {
                continue;
            };
            p.y_true.push(y_true[i]);
            p.y_pred.push(y_pred[i]);
            p.group.push(a);
        }
        if p.group.iter().all(|&a| a == 0) || p.group.iter().all(|&a| a == 1) {
            return Err(CoreError::Invalid(format!(
                "population: one of {names:?} has no row"
            )));
        }
        Ok(p)
    }

    /// Rows of P.
    pub fn len(&self) -> usize {
        self.y_true.len()
    }

    /// Whether P is empty.
    pub fn is_empty(&self) -> bool {
        self.y_true.is_empty()
    }

    /// §2 cell statistics for the memorized `mask` over P.
    pub fn cells(&self, mask: &[bool]) -> CoreResult<Cells> {
        self.check(mask)?;
        let k = self.classes;
        let n = self.len() as f64;
        let mut count = [vec![0usize; k], vec![0usize; k]];
        let mut mem = [vec![0usize; k], vec![0usize; k]];
        let mut conf_un = [vec![vec![0usize; k]; k], vec![vec![0usize; k]; k]];
        let mut conf_all = conf_un.clone();
        for (i, &memorized) in mask.iter().enumerate() {
            let (a, y, f) = (self.group[i], self.y_true[i], self.y_pred[i]);
            count[a][y] += 1;
            conf_all[a][y][f] += 1;
            if memorized {
                mem[a][y] += 1;
            } else {
                conf_un[a][y][f] += 1;
            }
        }
        let per = |f: &dyn Fn(usize) -> f64| (0..k).map(f).collect::<Vec<f64>>();
        let row = |a: usize, y: usize| -> Vec<f64> {
            let un = count[a][y] - mem[a][y];
            let (src, d) = if un > 0 {
                (&conf_un, un)
            } else {
                (&conf_all, count[a][y])
            };
            src[a][y]
                .iter()
                .map(|&v| if d == 0 { f64::NAN } else { v as f64 / d as f64 })
                .collect()
        };
        let lam = |a: usize, y: usize| {
            if count[a][y] == 0 {
                0.0
            } else {
                mem[a][y] as f64 / count[a][y] as f64
            }
        };
        Ok(Cells {
            pi: [0, 1].map(|a| per(&|y| count[a][y] as f64 / n)),
            m: [0, 1].map(|a| per(&|y| mem[a][y] as f64 / n)),
            lambda: [0, 1].map(|a| per(&|y| lam(a, y))),
            c: [0, 1].map(|a| (0..k).map(|y| row(a, y)).collect()),
            p_d: mem.iter().flatten().sum::<usize>() as f64 / n,
        })
    }

    fn check(&self, mask: &[bool]) -> CoreResult<()> {
        if mask.len() == self.len() {
            Ok(())
        } else {
            Err(CoreError::Invalid(format!(
                "mask of {} rows over {} rows",
                mask.len(),
                self.len()
            )))
        }
    }

    /// The gaps with f = Y on the mask, measured by `measure::fairness`.
    pub fn simulate(&self, mask: &[bool]) -> CoreResult<Gaps> {
        self.check(mask)?;
        let pred: Vec<usize> = (0..self.len())
            .map(|i| if mask[i] { self.y_true[i] } else { self.y_pred[i] })
            .collect();
        let group: Vec<String> = self.group.iter().map(|&a| self.names[a].clone()).collect();
        let names = (self.names[0].as_str(), self.names[1].as_str());
        Ok(Gaps::from(&fairness(
            &self.y_true,
            &pred,
            &group,
            names,
            self.classes,
        )?))
    }

    /// The base gaps (nothing memorized).
    pub fn base(&self) -> CoreResult<Gaps> {
        self.simulate(&vec![false; self.len()])
    }

    /// The disadvantaged group: the lower positive-prediction rate of the base predictions.
    pub fn disadvantaged(&self) -> usize {
        let pos = self.classes - 1;
        let rate = |a: usize| {
            let n = self.group.iter().filter(|&&g| g == a).count().max(1);
            let p = (0..self.len())
                .filter(|&i| self.group[i] == a && self.y_pred[i] == pos)
                .count();
            p as f64 / n as f64
        };
        usize::from(rate(1) < rate(0))
    }

    /// A memorized set of `mass` (a fraction of P) by `strategy`, seeded and deterministic.
    pub fn mask(&self, strategy: Strategy, mass: f64, seed: u64) -> CoreResult<Vec<bool>> {
        if !(0.0..=1.0).contains(&mass) {
            return Err(CoreError::Invalid(format!(
                "the mass {mass} is not a fraction in [0, 1]"
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let target = (mass * self.len() as f64).round() as usize;
        let low = self.disadvantaged();
        let rows = |f: &dyn Fn(usize) -> bool| (0..self.len()).filter(|&i| f(i)).collect::<Vec<_>>();
        let order: Vec<usize> = match strategy {
            Strategy::EoOptimal => return self.eo_optimal_mask(1.0, seed),
            Strategy::Uniform => rows(&|_| true),
            Strategy::Group => rows(&|i| self.group[i] == low),
            Strategy::Targeted => {
                let wrong = |a: usize| rows(&|i| self.group[i] == a && self.y_pred[i] != self.y_true[i]);
                let (mut first, mut second) = (wrong(low), wrong(1 - low));
                first.shuffle(&mut rng);
                second.shuffle(&mut rng);
                first.extend(second);
                first
            }
        };
        let mut order = order;
        if strategy != Strategy::Targeted {
            order.shuffle(&mut rng);
        }
        let mut mask = vec![false; self.len()];
        for &i in order.iter().take(target) {
            mask[i] = true;
        }
        Ok(mask)
    }

    /// §5 "EO exact minimum", scaled by `scale` ∈ [0, 1]: in each class y, a fraction
    /// λ = scale·min(1, |Δ⁰_eo(y)|/FNR_ℓ(y)) of the cell (ℓ(y), y), ℓ(y) the group with the lower
    /// TPR, sampled within each predicted class (so the unmemorized rows keep the cell's
    /// confusion row, A1, up to rounding).
    pub fn eo_optimal_mask(&self, scale: f64, seed: u64) -> CoreResult<Vec<bool>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let base = self.cells(&vec![false; self.len()])?;
        let mut mask = vec![false; self.len()];
        for (y, (l, lambda)) in eo_plan(&base).into_iter().enumerate() {
            for f in 0..self.classes {
                let mut cell: Vec<usize> = (0..self.len())
                    .filter(|&i| self.group[i] == l && self.y_true[i] == y && self.y_pred[i] == f)
                    .collect();
                cell.shuffle(&mut rng);
                let take = (scale.clamp(0.0, 1.0) * lambda * cell.len() as f64).round() as usize;
                for &i in cell.iter().take(take) {
                    mask[i] = true;
                }
            }
        }
        Ok(mask)
    }

    /// Simulates `mask` and compares it with the closed form.
    pub fn report(
        &self,
        strategy: Strategy,
        target_mass: f64,
        mask: &[bool],
    ) -> CoreResult<MemorizationReport> {
        let cells = self.cells(mask)?;
        let simulated = self.simulate(mask)?;
        let closed_form = closed_form(&cells);
        Ok(MemorizationReport {
            strategy,
            target_mass,
            p_d: cells.p_d,
            memorized: mask.iter().filter(|&&m| m).count(),
            rows: self.len(),
            before: self.base()?,
            closed_form_error: closed_form.max_difference(&simulated),
            simulated,
            closed_form,
            derived: derived_mass(&self.cells(&vec![false; self.len()])?),
        })
    }
}

/// Per class y: ℓ(y), the group with the lower TPR, and λ = min(1, |Δ⁰_eo(y)|/FNR_ℓ(y)).
fn eo_plan(base: &Cells) -> Vec<(usize, f64)> {
    (0..base.c[0].len())
        .map(|y| {
            let tpr = |a: usize| base.c[a][y][y];
            let l = usize::from(tpr(1) < tpr(0));
            let (gap, fnr) = ((tpr(0) - tpr(1)).abs(), 1.0 - tpr(l));
            let lambda = if gap.is_finite() && fnr > 0.0 {
                (gap / fnr).min(1.0)
            } else {
                0.0
            };
            (l, lambda)
        })
        .collect()
}

/// The §4 closed forms [derived]: Δ_sp(k) = Δ⁰_sp(k) + (1/π₊)Σ_y m_{+,y}e₊(k|y) −
/// (1/π₋)Σ_y m_{−,y}e₋(k|y) with e_a(k|y) = 1[k=y] − c_a(k|y); Δ_eo(y) = Δ⁰_eo(y) +
/// λ_{+,y}FNR₊(y) − λ_{−,y}FNR₋(y); Δ_eodds(y,k) = (1−λ_{+,y})c₊(k|y) − (1−λ_{−,y})c₋(k|y) for
/// k ≠ y. Δ⁰ is the bias of a classifier behaving like c everywhere.
pub fn closed_form(cells: &Cells) -> Gaps {
    let k = cells.pi[0].len();
    let c = |a: usize, y: usize, j: usize| cells.c[a][y][j];
    let e = |a: usize, y: usize, j: usize| f64::from(u8::from(j == y)) - c(a, y, j);
    let pi_a = [0, 1].map(|a| cells.pi[a].iter().sum::<f64>());
    // Cells with no row contribute nothing (their c is NaN).
    let term = |a: usize, f: &dyn Fn(usize) -> f64| -> f64 {
        (0..k).filter(|&y| cells.pi[a][y] > 0.0).map(f).sum::<f64>() / pi_a[a]
    };
    let sp: Vec<f64> = (0..k)
        .map(|j| {
            let s0 = |a: usize| term(a, &|y| cells.pi[a][y] * c(a, y, j));
            let shift = |a: usize| term(a, &|y| cells.m[a][y] * e(a, y, j));
            (s0(0) - s0(1)) + shift(0) - shift(1)
        })
        .collect();
    let eodds: Vec<Vec<f64>> = (0..k)
        .map(|y| {
            let (l0, l1) = (cells.lambda[0][y], cells.lambda[1][y]);
            (0..k)
                .map(|j| {
                    if j == y {
                        let (fnr0, fnr1) = (1.0 - c(0, y, y), 1.0 - c(1, y, y));
                        (c(0, y, y) - c(1, y, y)) + l0 * fnr0 - l1 * fnr1
                    } else {
                        (1.0 - l0) * c(0, y, j) - (1.0 - l1) * c(1, y, j)
                    }
                })
                .collect()
        })
        .collect();
    Gaps::new(sp, eodds)
}

/// The §5 masses [derived] from the base cells (nothing memorized).
pub fn derived_mass(base: &Cells) -> DerivedMass {
    let k = base.pi[0].len();
    let mut m_star = 0.0;
    let (mut lower, mut upper) = (0.0, 0.0);
    for (y, (l, lambda)) in eo_plan(base).into_iter().enumerate() {
        let gap = (base.c[0][y][y] - base.c[1][y][y]).abs();
        let pi = base.pi[l][y];
        m_star += pi * lambda;
        if gap.is_finite() {
            lower += pi * gap;
        }
        upper += pi;
    }
    let pi_a = [0, 1].map(|a| base.pi[a].iter().sum::<f64>());
    let s = |a: usize, j: usize| {
        (0..k)
            .filter(|&y| base.pi[a][y] > 0.0)
            .map(|y| base.pi[a][y] * base.c[a][y][j])
            .sum::<f64>()
            / pi_a[a]
    };
    let tv = 0.5 * (0..k).map(|j| (s(0, j) - s(1, j)).abs()).sum::<f64>();
    let max_fnr = (0..2)
        .flat_map(|a| (0..k).map(move |y| (a, y)))
        .map(|(a, y)| 1.0 - base.c[a][y][y])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let sp_lower_bound = if max_fnr > 0.0 {
        pi_a[0].min(pi_a[1]) * tv / max_fnr
    } else if tv > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    DerivedMass {
        source: DERIVED,
        m_star_eo: m_star,
        m_star_eo_bounds: (lower, upper),
        sp_lower_bound,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;

    /// Three classes, group "a" mostly right, "b" often wrong: every strategy's closed form
    /// equals its simulation, and the identity of §2 holds cell by cell.
    #[test]
    fn closed_form_equals_simulation_for_every_strategy() {
        let (mut t, mut p, mut g) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..600usize {
            let y = i % 3;
            let a = (i / 3) % 2;
            t.push(y);
            p.push(if (i * 7) % (5 + 3 * a) == 0 {
                (y + 1 + i % 2) % 3
            } else {
                y
            });
            g.push(["a", "b"][a].to_string());
        }
        let pop = Population::new(&t, &p, &g, ("a", "b"), 3).unwrap();
        for s in [
            Strategy::Uniform,
            Strategy::Group,
            Strategy::EoOptimal,
            Strategy::Targeted,
        ] {
            for seed in 0..4 {
                let mask = pop.mask(s, 0.1 * seed as f64, seed).unwrap();
                let r = pop.report(s, 0.1, &mask).unwrap();
                assert!(r.closed_form_error < 1e-12, "{s:?}: {}", r.closed_form_error);
            }
        }
        let empty = pop
            .report(Strategy::Uniform, 0.0, &vec![false; pop.len()])
            .unwrap();
        assert!(empty.before.max_difference(&empty.simulated) == 0.0);
        assert!(pop.mask(Strategy::Uniform, 1.5, 0).is_err());
        assert!(pop.cells(&[true]).is_err());
    }
}
