//! Group fairness of a classifier trained on a table (Pepin, Igel and Selvan; spec 14): its
//! predictions on every row of the table as a predictions table (`index`, `split`, `group`,
//! `y_true`, `y_pred`), and the differences of `measure::fairness` between two groups of that
//! table. `rote fairness` and the Tabular view's fairness bars both use it.

use std::path::Path;

use crate::data::Table;
use crate::error::{CoreError, CoreResult};
use crate::measure::fairness::{FairnessReport, fairness as measure};

/// A fairness report and what it was measured on.
#[derive(Clone, Debug)]
pub struct MeasuredFairness {
    /// The differences, first group minus second.
    pub report: FairnessReport,
    /// The classes, sorted; the last is the positive one.
    pub classes: Vec<String>,
    /// Rows measured.
    pub rows: usize,
    /// The first group.
    pub first: String,
    /// The second group.
    pub second: String,
}

/// Predictions of a tabular classifier on every row of its table, as a predictions table.
pub fn model_predictions(dir: &Path, protected: Option<&str>) -> CoreResult<Table> {
    let (table, ds, _) = tabular_model_data(dir)?;
    let device = candle_core::Device::Cpu;
    let loaded = crate::model::load_model(dir, Some(&ds), &device)?;
    let pred = predict_all(&loaded.model, &ds, &device)?;
    predictions_table(
        &table,
        &ds,
        protected,
        &pred,
        format!("predictions of {}", dir.display()),
    )
}

/// The table a tabular classifier's card names (Adult), as a table and as a data set, with the
/// card; an error naming `dir` when the model was not trained on a table.
pub(crate) fn tabular_model_data(
    dir: &Path,
) -> CoreResult<(
    crate::data::tabular::TabularData,
    crate::data::Dataset,
    crate::model::ModelCard,
)> {
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
    Ok((table, ds, card))
}

/// The predicted class of every row of `ds`.
pub(crate) fn predict_all(
    model: &crate::model::Classifier,
    ds: &crate::data::Dataset,
    device: &candle_core::Device,
) -> CoreResult<Vec<u32>> {
    let mut out = Vec::with_capacity(ds.n);
    let all: Vec<usize> = (0..ds.n).collect();
    for chunk in all.chunks(4096) {
        let x = candle_core::Tensor::from_vec(ds.batch_f32(chunk), (chunk.len(), ds.c, ds.h, ds.w), device)?;
        out.extend(model.forward(&x)?.argmax(1)?.to_vec1::<u32>()?);
    }
    Ok(out)
}

/// A predictions table (`index`, `split`, `group`, `y_true`, `y_pred`) of `pred` over every row,
/// grouped by the `protected` column (default: the table's first protected attribute).
pub(crate) fn predictions_table(
    table: &crate::data::tabular::TabularData,
    ds: &crate::data::Dataset,
    protected: Option<&str>,
    pred: &[u32],
    source: String,
) -> CoreResult<Table> {
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
    let rows = (0..ds.n)
        .map(|i| {
            let split = match ds.split[i] {
                crate::data::Split::Train => "train",
                crate::data::Split::Test => "test",
            };
            vec![
                i.to_string(),
                split.to_string(),
                group_name(column, i),
                table.class_names[ds.labels[i] as usize].clone(),
                pred.get(i)
                    .and_then(|&p| table.class_names.get(p as usize))
                    .cloned()
                    .unwrap_or_default(),
            ]
        })
        .collect();
    Ok(Table {
        source,
        columns: ["index", "split", "group", "y_true", "y_pred"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// The fairness report of a predictions table's rows of `split` (`train`, `test` or `all`)
/// between `groups` (first minus second; default the two largest, larger first). `path` names
/// the table in errors.
pub fn measure_table(
    table: &Table,
    path: &Path,
    split: &str,
    groups: Option<&[String]>,
) -> CoreResult<MeasuredFairness> {
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
        .filter(|r| split == "all" || r[cs] == split)
        .collect();
    if rows.is_empty() {
        return Err(CoreError::format(
            path,
            format!("no row of split '{split}' (use --split train, test or all)"),
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
    let (first, second) = match groups {
        Some([a, b]) => (a.clone(), b.clone()),
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
    Ok(MeasuredFairness {
        report,
        classes,
        rows: rows.len(),
        first,
        second,
    })
}

/// The group of row `i` in a protected column (`?` where the value is missing).
fn group_name(column: &crate::data::Column, i: usize) -> String {
    match &column.values {
        crate::data::ColumnValues::Categorical { codes, categories } => codes[i]
            .and_then(|c| categories.get(c as usize).cloned())
            .unwrap_or_else(|| "?".into()),
        crate::data::ColumnValues::Numeric(v) => v[i].map_or("?".into(), |x| x.to_string()),
    }
}

/// Feldman–Zhang mem of the training rows of one group of a protected column (spec 14 §7: where
/// memorization falls across groups).
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupMem {
    /// The group.
    pub group: String,
    /// Training rows of the group with a mem estimate.
    pub n: usize,
    /// Their mean mem.
    pub mean_mem: f64,
    /// How many have mem at or above the threshold.
    pub high_mem: usize,
    /// That count over `n`.
    pub high_share: f64,
}

/// A protected column's name and the mem of its groups.
pub type ColumnMem = (String, Vec<GroupMem>);

/// mem per group of each protected column, for a zoo trained on a bundled table (`data_name`);
/// `None` for any other data. `mem` holds one value per data-set row (NaN where no model could
/// train on it, the test split); groups are listed largest first.
pub fn mem_by_group(data_name: &str, mem: &[f32], threshold: f32) -> CoreResult<Option<Vec<ColumnMem>>> {
    let is_table = crate::data::bundled(data_name).is_some_and(|b| b.kind == crate::data::BundledKind::Table);
    if !is_table {
        return Ok(None);
    }
    let table = crate::tabular::train::load_table(data_name, None)?;
    if table.n_rows() != mem.len() {
        return Err(CoreError::Invalid(format!(
            "{data_name} has {} rows but the memorization report {} values",
            table.n_rows(),
            mem.len()
        )));
    }
    let mut out = Vec::new();
    for &k in &table.protected {
        let column = &table.columns[k];
        let mut groups: Vec<GroupMem> = Vec::new();
        for (i, &m) in mem.iter().enumerate() {
            if !m.is_finite() {
                continue;
            }
            let name = group_name(column, i);
            let g = match groups.iter().position(|g| g.group == name) {
                Some(p) => &mut groups[p],
                None => {
                    groups.push(GroupMem {
                        group: name,
                        n: 0,
                        mean_mem: 0.0,
                        high_mem: 0,
                        high_share: 0.0,
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            g.n += 1;
            g.mean_mem += f64::from(m);
            g.high_mem += usize::from(m >= threshold);
        }
        for g in &mut groups {
            let n = g.n.max(1) as f64;
            g.mean_mem /= n;
            g.high_share = g.high_mem as f64 / n;
        }
        groups.sort_by(|a, b| b.n.cmp(&a.n).then(a.group.cmp(&b.group)));
        out.push((column.name.clone(), groups));
    }
    Ok(Some(out))
}
