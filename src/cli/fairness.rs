//! `rote fairness`: statistical parity, equal opportunity and equalized odds differences of a
//! classifier's predictions between two groups of a protected attribute (`measure::fairness`),
//! from a classifier trained on a table (its predictions are exported with `--predictions`) or
//! from a predictions CSV (`index`, `split`, `group`, `y_true`, `y_pred`).

use std::path::{Path, PathBuf};

use crate::data::{Table, load_csv};
use crate::error::{CoreError, CoreResult};
use crate::measure::fairness::fairness as measure;

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

/// Predictions of a tabular classifier on every row of its table, as a predictions table.
fn model_predictions(dir: &Path, protected: Option<&str>) -> CoreResult<Table> {
    let card = crate::model::ModelCard::load(&dir.join("card.json"))?;
    let name = &card.dataset.name;
    let is_table = crate::data::bundled(name).is_some_and(|b| b.kind == crate::data::BundledKind::Table);
    if !is_table {
        return Err(CoreError::format(
            dir,
            format!(
                "was trained on '{name}', not a table: group fairness needs protected attributes \
                 (train one with `rote train --family mlp --data adult`, or pass --predictions)"
            ),
        ));
    }
    let table = crate::data::tabular::load_adult()?;
    let ds = crate::data::Dataset::from_tabular(&table)?;
    let device = candle_core::Device::Cpu;
    let loaded = crate::model::load_model(dir, Some(&ds), &device)?;
    let column_name = match protected {
        Some(p) => p.to_string(),
        None => table
            .protected
            .first()
            .map(|&k| table.columns[k].name.clone())
            .ok_or_else(|| CoreError::Invalid("the table names no protected attribute".into()))?,
    };
    let column = table.column(&column_name).ok_or_else(|| {
        CoreError::Invalid(format!(
            "no column '{column_name}' in {}; the columns are {:?}",
            table.name,
            table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
        ))
    })?;
    let group_of = |i: usize| -> String {
        match &column.values {
            crate::data::ColumnValues::Categorical { codes, categories } => codes[i]
                .and_then(|c| categories.get(c as usize).cloned())
                .unwrap_or_else(|| "?".into()),
            crate::data::ColumnValues::Numeric(v) => v[i].map_or("?".into(), |x| x.to_string()),
        }
    };
    let mut rows = Vec::with_capacity(ds.n);
    let all: Vec<usize> = (0..ds.n).collect();
    for chunk in all.chunks(4096) {
        let x = candle_core::Tensor::from_vec(ds.batch_f32(chunk), (chunk.len(), ds.c, ds.h, ds.w), &device)?;
        let pred: Vec<u32> = loaded.model.forward(&x)?.argmax(1)?.to_vec1()?;
        for (&i, &p) in chunk.iter().zip(&pred) {
            let split = match ds.split[i] {
                crate::data::Split::Train => "train",
                crate::data::Split::Test => "test",
            };
            rows.push(vec![
                i.to_string(),
                split.to_string(),
                group_of(i),
                table.class_names[ds.labels[i] as usize].clone(),
                table.class_names.get(p as usize).cloned().unwrap_or_default(),
            ]);
        }
    }
    Ok(Table {
        source: format!("predictions of {}", dir.display()),
        columns: ["index", "split", "group", "y_true", "y_pred"]
            .map(String::from)
            .to_vec(),
        rows,
    })
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
