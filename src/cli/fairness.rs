//! `rote fairness`: statistical parity, equal opportunity and equalized odds differences of a
//! classifier's predictions between two groups of a protected attribute (`measure::fairness`),
//! from a predictions CSV (`index`, `split`, `group`, `y_true`, `y_pred`).

use std::path::PathBuf;

use crate::data::load_csv;
use crate::error::{CoreError, CoreResult};
use crate::measure::fairness::fairness as measure;

/// `rote fairness`.
#[derive(Debug, clap::Args)]
pub struct FairnessArgs {
    /// Predictions CSV with a header naming `index`, `split`, `group`, `y_true`, `y_pred` (one
    /// row per sample; labels as class names or numbers).
    #[arg(long)]
    pub predictions: PathBuf,
    /// The two groups compared, first minus second (default: the two largest, larger first).
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
    /// Rows of this split only (`train`, `test`, or `all`).
    #[arg(long, default_value = "test")]
    pub split: String,
}

/// Runs `rote fairness`.
pub fn fairness(args: FairnessArgs, json: bool) -> CoreResult<()> {
    let path = &args.predictions;
    if args.groups.as_ref().is_some_and(|g| g.len() != 2) {
        return Err(CoreError::Invalid(
            "--groups takes two groups, first minus second: --groups A,B".into(),
        ));
    }
    let table = load_csv(path, true)?;
    let col = |name: &str| -> CoreResult<usize> {
        table.columns.iter().position(|c| c == name).ok_or_else(|| {
            CoreError::format(
                path,
                format!("no column '{name}'; the columns are {:?}", table.columns),
            )
        })
    };
    let (cs, cg, ct, cp) = (col("split")?, col("group")?, col("y_true")?, col("y_pred")?);
    let rows: Vec<&Vec<String>> = table
        .rows
        .iter()
        .filter(|r| args.split == "all" || r[cs] == args.split)
        .collect();
    if rows.is_empty() {
        return Err(CoreError::format(
            path,
            format!(
                "no row of split '{}' (use --split train, test or all)",
                args.split
            ),
        ));
    }
    // Classes: the distinct labels, sorted (numerically when all are numbers); the last is positive.
    let mut classes: Vec<String> = rows.iter().flat_map(|r| [r[ct].clone(), r[cp].clone()]).collect();
    classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    classes.dedup();
    let index = |v: &str| classes.iter().position(|c| c == v).unwrap_or(0);
    let y_true: Vec<usize> = rows.iter().map(|r| index(&r[ct])).collect();
    let y_pred: Vec<usize> = rows.iter().map(|r| index(&r[cp])).collect();
    let group: Vec<String> = rows.iter().map(|r| r[cg].clone()).collect();
    let (first, second) = match &args.groups {
        Some(g) if g.len() == 2 => (g[0].clone(), g[1].clone()),
        _ => {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for g in &group {
                match counts.iter_mut().find(|(n, _)| n == g) {
                    Some(c) => c.1 += 1,
                    None => counts.push((g.clone(), 1)),
                }
            }
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            match counts.as_slice() {
                [a, b, ..] => (a.0.clone(), b.0.clone()),
                _ => {
                    return Err(CoreError::format(
                        path,
                        "the 'group' column has fewer than two groups",
                    ));
                }
            }
        }
    };
    let report = measure(&y_true, &y_pred, &group, (&first, &second), classes.len().max(2))
        .map_err(|e| CoreError::format(path, e.to_string()))?;
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
        rows.len(),
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
