//! `rote fairness`: statistical parity, equal opportunity and equalized odds differences of a
//! classifier's predictions between two groups of a protected attribute (`measure::fairness`),
//! from a classifier trained on a table (its predictions are exported with `--predictions`) or
//! from a predictions CSV (`index`, `split`, `group`, `y_true`, `y_pred`).

use std::path::{Path, PathBuf};

use crate::data::{Table, load_csv};
use crate::error::{CoreError, CoreResult};
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
    if json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
        value["classes"] = serde_json::json!(classes);
        value["split"] = serde_json::json!(args.split);
        println!("{value}");
        return Ok(());
    }
    let positive = classes.last().map_or("", String::as_str);
    println!(
        "{first} minus {second} ({} rows of split {}, positive class '{positive}'):",
        rows,
        args.split
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
    Ok(())
}
