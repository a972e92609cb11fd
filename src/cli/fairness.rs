//! `rote fairness`: statistical parity, equal opportunity and equalized odds differences of a
//! classifier's predictions between two groups of a protected attribute (`measure::fairness`),
//! from a classifier trained on a table (its predictions are exported with `--predictions`) or
//! from a predictions CSV (`index`, `split`, `group`, `y_true`, `y_pred`).

use std::path::{Path, PathBuf};

use super::CliSink;
use crate::data::{Table, load_csv};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::measure::fairness_memorization::{
    self as memo, MemorizationReport, Population, RetrainReport, Strategy, SweepRow,
};
use crate::measure::fairness_model::{MeasuredFairness, measure_table, model_predictions};

/// `rote fairness`.
#[derive(Debug, clap::Args)]
pub struct FairnessArgs {
    /// A classifier trained on a table (STUDY/models/ID, e.g. `rote train --family mlp --data
    /// adult`): its predictions on every row are measured (and written to --predictions).
    pub model: Option<PathBuf>,
    /// With MODEL: the protected column whose groups are compared (default: the table's first
    /// protected attribute, `sex` for Adult).
    #[arg(long)]
    pub protected: Option<String>,
    /// Without MODEL: the predictions CSV to measure, with a header naming `index`, `split`,
    /// `group`, `y_true`, `y_pred` (one row per sample; labels as class names or numbers). With
    /// MODEL: where the model's predictions are written in that format.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// The two groups compared, first minus second (default: the two largest, larger first).
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
    /// Rows of this split only (`train`, `test`, or `all`).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Simulates memorization (f = Y on a memorized set D of the --split rows, Pepin, Igel and
    /// Selvan; spec 14 §4-§7): D uniform over the rows, uniform in the disadvantaged group, the
    /// equal-opportunity minimum (`eo-optimal`, ignores --mass) or misclassified rows
    /// (`targeted`); prints the gaps before and after, measured and in closed form.
    #[arg(long, value_enum)]
    pub memorize: Option<Strategy>,
    /// With --memorize: the memorized mass p_D, a fraction of the rows.
    #[arg(long, default_value_t = 0.05)]
    pub mass: f64,
    /// With --memorize: the seed of the memorized set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With --memorize: the gaps for p_D in 0, 0.02, 0.05, 0.1, 0.2 and 0.3.
    #[arg(long, requires = "memorize")]
    pub sweep: bool,
    /// With --memorize and MODEL: also train MODEL's recipe again on its training rows plus D
    /// (each row --weight times) and set the real memorization against the simulation (spec 14
    /// §7 step 4): how much of D it fits, the gaps on the rows measured and on those outside D,
    /// and the spillover.
    #[arg(long, requires = "memorize", requires = "model")]
    pub retrain: bool,
    /// With --retrain: copies of each memorized row added to the training rows (the spec's ×w).
    #[arg(long, default_value_t = 20)]
    pub weight: usize,
}

/// Runs `rote fairness`.
pub fn fairness(args: FairnessArgs, json: bool) -> CoreResult<()> {
    if args.groups.as_ref().is_some_and(|g| g.len() != 2) {
        return Err(CoreError::Invalid(
            "--groups takes two groups, first minus second: --groups A,B".into(),
        ));
    }
    match (&args.model, &args.predictions) {
        (Some(model), out) => {
            let table = model_predictions(model, args.protected.as_deref())?;
            if let Some(out) = out {
                write_table(&table, out)?;
            }
            report(&table, model, &args, json)
        }
        (None, Some(path)) => report(&load_csv(path, true)?, path, &args, json),
        (None, None) => Err(CoreError::Invalid(
            "rote fairness needs a MODEL trained on a table or --predictions FILE.csv".into(),
        )),
    }
}

/// Writes a predictions table as CSV, atomically.
fn write_table(table: &Table, path: &Path) -> CoreResult<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| CoreError::format(path, format!("cannot write CSV: {e}"));
    w.write_record(&table.columns).map_err(err)?;
    for r in &table.rows {
        w.write_record(r).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CoreError::format(path, format!("cannot write CSV: {e}")))?;
    crate::study::write_atomic(path, &bytes)
}

/// The fairness report of a predictions table (`path` names it in errors).
fn report(table: &Table, path: &Path, args: &FairnessArgs, json: bool) -> CoreResult<()> {
    let measured = measure_table(table, path, &args.split, args.groups.as_deref())?;
    let MeasuredFairness {
        report,
        classes,
        rows,
        first,
        second,
    } = &measured;
    let memorization = match args.memorize {
        Some(strategy) => Some(memorize(table, &measured, args, strategy, json)?),
        None => None,
    };
    if json {
        let mut value = serde_json::to_value(report)
            .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
        value["classes"] = serde_json::json!(classes);
        value["split"] = serde_json::json!(args.split);
        if let Some((r, finding, sweep, retrained)) = &memorization {
            let mut m = serde_json::to_value(r)
                .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
            m["finding"] = serde_json::json!(finding);
            if let Some(retrained) = retrained {
                m["retrained"] = serde_json::to_value(retrained)
                    .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
            }
            if let Some(sweep) = sweep {
                m["sweep"] = serde_json::to_value(sweep)
                    .map_err(|e| CoreError::Invalid(format!("cannot serialise the sweep: {e}")))?;
            }
            value["memorization"] = m;
        }
        println!("{value}");
        return Ok(());
    }
    let positive = classes.last().map_or("", String::as_str);
    println!(
        "{first} minus {second} ({} rows of split {}, positive class '{positive}'):",
        rows, args.split
    );
    println!(
        "  statistical parity difference {:+.4} (max |Δ| {:.4}, total variation {:.4})",
        report.statistical_parity_difference,
        report.statistical_parity_max_abs,
        report.statistical_parity_total_variation
    );
    println!(
        "  equal opportunity difference  {:+.4} (positive class; all classes max |Δ| {:.4})",
        report.equal_opportunity_difference, report.equal_opportunity_max_abs
    );
    println!(
        "  equalized odds difference     {:.4} (max |Δ| over the confusion rows)",
        report.equalized_odds_difference
    );
    for g in &report.groups {
        println!(
            "  {}: {} rows, predicted-positive rate {:.4}",
            g.group,
            g.n,
            g.predicted_rate.last().copied().unwrap_or(f64::NAN)
        );
    }
    for (g, y) in &report.small_cells {
        println!(
            "  note: group {g}, class '{}' has fewer than {} rows; its rates are noisy",
            classes.get(*y).map_or("?", String::as_str),
            crate::measure::fairness::SMALL_CELL
        );
    }
    if let Some((r, finding, sweep, retrained)) = &memorization {
        print_memorization(r, finding, sweep.as_deref());
        if let Some(retrained) = retrained {
            print_retrained(r, retrained);
        }
    }
    Ok(())
}

/// A simulated memorization of the measured rows: its report, finding, optional sweep and
/// optional real memorization.
type Memorized = (
    MemorizationReport,
    String,
    Option<Vec<SweepRow>>,
    Option<RetrainReport>,
);

fn memorize(
    table: &Table,
    measured: &MeasuredFairness,
    args: &FairnessArgs,
    strategy: Strategy,
    json: bool,
) -> CoreResult<Memorized> {
    if !(0.0..=1.0).contains(&args.mass) {
        return Err(CoreError::Invalid(format!(
            "--mass {} is not a fraction of the rows in [0, 1]",
            args.mass
        )));
    }
    let names = (measured.first.as_str(), measured.second.as_str());
    let pop: Population = memo::population_of_table(table, &args.split, &measured.classes, names)?;
    let mask = pop.mask(strategy, args.mass, args.seed)?;
    let r = pop.report(strategy, args.mass, &mask)?;
    let finding = memo::finding(&r, &pop.names);
    let sweep = if args.sweep {
        Some(memo::sweep(&pop, strategy, args.seed)?)
    } else {
        None
    };
    let retrained = match (&args.model, args.retrain) {
        (Some(model), true) => Some(retrain(table, model, args, &measured.classes, &pop, &mask, json)?),
        _ => None,
    };
    Ok((r, finding, sweep, retrained))
}

/// Spec 14 §7 step 4: MODEL's recipe on its training rows plus `weight` × D.
fn retrain(
    table: &Table,
    model: &Path,
    args: &FairnessArgs,
    classes: &[String],
    pop: &Population,
    mask: &[bool],
    json: bool,
) -> CoreResult<RetrainReport> {
    if args.weight == 0 {
        return Err(CoreError::Invalid("--weight must be at least 1".into()));
    }
    let names = (pop.names[0].as_str(), pop.names[1].as_str());
    let idx = memo::population_indices(table, &args.split, names)?;
    let d: Vec<usize> = idx
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(&i, _)| i)
        .collect();
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let (after_table, rows, seconds) =
        memo::retrained_predictions(model, args.protected.as_deref(), &d, args.weight, &ctx)?;
    let after = memo::population_of_table(&after_table, &args.split, classes, names)?;
    memo::compare(pop, &after, mask, args.weight, rows, seconds)
}

/// One gap of a set of gaps.
type GapOf = fn(&memo::Gaps) -> f64;

fn print_retrained(r: &MemorizationReport, t: &RetrainReport) {
    println!(
        "real memorization: the model's recipe trained again on {} rows (its own + {} x D), {:.0} s",
        t.train_rows, t.weight, t.seconds
    );
    println!(
        "  fits {:.1} % of D (the base model {:.1} %); accuracy on the rows measured {:.1} % -> {:.1} %",
        100.0 * t.fit_on_d,
        100.0 * t.base_fit_on_d,
        100.0 * t.accuracy[0],
        100.0 * t.accuracy[1]
    );
    println!(
        "  {:<34} {:>9} {:>9} {:>9}   outside D: {:>8} {:>8}",
        "", "before", "f = Y", "retrained", "before", "after"
    );
    let pick: [(&str, GapOf); 3] = [
        ("statistical parity (positive)", |g| {
            g.statistical_parity_difference
        }),
        ("equal opportunity (positive class)", |g| {
            g.equal_opportunity_difference
        }),
        ("equalized odds (max |Δ|)", |g| g.equalized_odds_difference),
    ];
    for (name, f) in pick {
        println!(
            "  {name:<34} {:>+9.4} {:>+9.4} {:>+9.4}              {:>+8.4} {:>+8.4}",
            f(&r.before),
            f(&r.simulated),
            f(&t.seen),
            f(&t.unseen_before),
            f(&t.unseen_after)
        );
    }
    println!(
        "  spillover: {:.1} % of the rows outside D changed prediction",
        100.0 * t.spillover
    );
}

fn print_memorization(r: &MemorizationReport, finding: &str, sweep: Option<&[SweepRow]>) {
    println!(
        "memorization ({}): f = Y on {} of {} rows, p_D = {:.4}",
        r.strategy.name(),
        r.memorized,
        r.rows,
        r.p_d
    );
    println!(
        "  {:<34} {:>9} {:>9} {:>11}",
        "", "before", "after", "closed form"
    );
    let rows = [
        (
            "statistical parity (positive)",
            r.before.statistical_parity_difference,
            r.simulated.statistical_parity_difference,
            r.closed_form.statistical_parity_difference,
        ),
        (
            "equal opportunity (positive class)",
            r.before.equal_opportunity_difference,
            r.simulated.equal_opportunity_difference,
            r.closed_form.equal_opportunity_difference,
        ),
        (
            "equalized odds (max |Δ|)",
            r.before.equalized_odds_difference,
            r.simulated.equalized_odds_difference,
            r.closed_form.equalized_odds_difference,
        ),
    ];
    for (name, b, a, c) in rows {
        println!("  {name:<34} {b:>+9.4} {a:>+9.4} {c:>+11.4}");
    }
    println!("  closed form − simulated: {:.1e} at most", r.closed_form_error);
    println!(
        "  M*_EO = {:.4} (between {:.4} and {:.4}); statistical parity needs p_D ≥ {:.4} [{}]",
        r.derived.m_star_eo,
        r.derived.m_star_eo_bounds.0,
        r.derived.m_star_eo_bounds.1,
        r.derived.sp_lower_bound,
        r.derived.source
    );
    println!("  {finding}");
    if let Some(sweep) = sweep {
        println!(
            "  {:>6} {:>7} {:>9} {:>9} {:>9}   (simulated; closed form in brackets)",
            "mass", "p_D", "SP", "EO", "EOdds"
        );
        for s in sweep {
            println!(
                "  {:>6.2} {:>7.4} {:>+9.4} {:>+9.4} {:>9.4}   [{:+.4} {:+.4} {:.4}]",
                s.target_mass,
                s.p_d,
                s.simulated.statistical_parity_difference,
                s.simulated.equal_opportunity_difference,
                s.simulated.equalized_odds_difference,
                s.closed_form.statistical_parity_difference,
                s.closed_form.equal_opportunity_difference,
                s.closed_form.equalized_odds_difference
            );
        }
    }
}
