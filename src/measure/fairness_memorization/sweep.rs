//! Sweeps of the memorized mass (spec 14 §7 figure a), the one-line finding, and the population
//! of a predictions table, for `rote fairness --memorize` (Pepin, Igel and Selvan).

use super::{Gaps, MemorizationReport, Population, SWEEP, Strategy, closed_form, derived_mass};
use crate::error::{CoreError, CoreResult};

/// One row of a sweep: the asked mass, p_D and the simulated and closed-form gaps.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepRow {
    /// The mass asked for (for `eo-optimal`: the fraction of M*_EO, capped at 1).
    pub target_mass: f64,
    /// The memorized fraction of P.
    pub p_d: f64,
    /// Measured gaps.
    pub simulated: Gaps,
    /// Closed-form gaps.
    pub closed_form: Gaps,
}

/// The gaps over [`SWEEP`] for a strategy; `eo-optimal` walks towards its optimum, memorizing
/// the fraction min(1, p_D / M*_EO) of each optimal cell.
pub fn sweep(pop: &Population, strategy: Strategy, seed: u64) -> CoreResult<Vec<SweepRow>> {
    let m_star = derived_mass(&pop.cells(&vec![false; pop.len()])?).m_star_eo;
    SWEEP
        .iter()
        .map(|&mass| {
            let mask = match strategy {
                Strategy::EoOptimal => {
                    let scale = if m_star > 0.0 {
                        (mass / m_star).min(1.0)
                    } else {
                        1.0
                    };
                    pop.eo_optimal_mask(scale, seed)?
                }
                s => pop.mask(s, mass, seed)?,
            };
            let cells = pop.cells(&mask)?;
            Ok(SweepRow {
                target_mass: mass,
                p_d: cells.p_d,
                simulated: pop.simulate(&mask)?,
                closed_form: closed_form(&cells),
            })
        })
        .collect()
}

/// The one-line finding: the statistical parity gap (equal opportunity for `eo-optimal`).
pub fn finding(r: &MemorizationReport, names: &[String; 2]) -> String {
    let (what, before, after, closed) = if r.strategy == Strategy::EoOptimal {
        (
            "equal opportunity gap (positive class)",
            r.before.equal_opportunity_difference,
            r.simulated.equal_opportunity_difference,
            r.closed_form.equal_opportunity_difference,
        )
    } else {
        (
            "statistical parity gap",
            r.before.statistical_parity_difference,
            r.simulated.statistical_parity_difference,
            r.closed_form.statistical_parity_difference,
        )
    };
    format!(
        "memorizing {:.1} % of the rows ({}) moves the {} − {} {what} from {before:+.3} to \
         {after:+.3}; the closed form gives {closed:+.3}",
        100.0 * r.p_d,
        r.strategy.name(),
        names[0],
        names[1]
    )
}

/// The position of a predictions table's column `name`.
pub(super) fn column(table: &crate::data::Table, name: &str) -> CoreResult<usize> {
    table
        .columns
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| CoreError::Invalid(format!("predictions table has no column '{name}'")))
}

/// The population of a predictions table's rows of `split` (`index`, `split`, `group`,
/// `y_true`, `y_pred`), with the classes and groups `measure_table` chose.
pub fn population_of_table(
    table: &crate::data::Table,
    split: &str,
    classes: &[String],
    names: (&str, &str),
) -> CoreResult<Population> {
    let col = |name: &str| column(table, name);
    let (cs, cg, ct, cp) = (col("split")?, col("group")?, col("y_true")?, col("y_pred")?);
    let index = |v: &str| classes.iter().position(|c| c == v).unwrap_or(0);
    let rows: Vec<&Vec<String>> = table
        .rows
        .iter()
        .filter(|r| split == "all" || r[cs] == split)
        .collect();
    let y_true: Vec<usize> = rows.iter().map(|r| index(&r[ct])).collect();
    let y_pred: Vec<usize> = rows.iter().map(|r| index(&r[cp])).collect();
    let group: Vec<String> = rows.iter().map(|r| r[cg].clone()).collect();
    Population::new(&y_true, &y_pred, &group, names, classes.len().max(2))
}
