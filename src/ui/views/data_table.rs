//! Data view for tabular data sets: a virtualised table of the rows with their original values
//! (as in the CSV), index, split, label and any per-row score columns; sortable by a header
//! click, filtered by text (any cell, case-insensitive) plus the view's class and split filters.
//!
//! The original table is read again on a background thread (the encoded [`Dataset`] keeps only
//! features) and cached by data set key and hash.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

use egui_extras::{Column, TableBuilder};

use super::SplitFilter;
use crate::data::{ColumnValues, Dataset, Split, TabularData};

/// Separates cells in a row's search text (never typed into a filter).
const SEP: char = '\u{1f}';

/// A column of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableColumn {
    /// Row index.
    Index,
    /// Train or test.
    Split,
    /// The data set's label.
    Label,
    /// Original column `k` of the table.
    Original(usize),
    /// A named per-row score column.
    Score(String),
}

/// The original rows, ready to draw and search.
pub struct LoadedTable {
    /// The table as read.
    pub data: TabularData,
    /// Per original column, a sort rank per categorical code (alphabetical).
    ranks: Vec<Vec<u32>>,
    /// Per row, its cells lowercased and joined by [`SEP`] (index, split and label included).
    search: Vec<String>,
    /// Seconds the load took.
    pub seconds: f64,
}

enum Load {
    Pending(Receiver<Result<LoadedTable, String>>),
    Ready(Arc<LoadedTable>),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
struct OrderKey {
    hash: String,
    class: Option<u16>,
    split: SplitFilter,
    filter: String,
    sort: Option<(TableColumn, bool)>,
    n_score_columns: usize,
}

/// State of the table (lives in the Data view).
#[derive(Default)]
pub struct TableView {
    /// Text filter.
    pub filter: String,
    /// Sort column and descending; `None` is data set order.
    pub sort: Option<(TableColumn, bool)>,
    load: Option<(String, String, Load)>,
    order: Option<(OrderKey, Arc<Vec<usize>>)>,
    /// Scroll to the selection on the next frame.
    pub scroll_to_selected: bool,
}

/// The text of cell `i` of an original column, as in the CSV (`?` when missing).
pub fn cell_text(values: &ColumnValues, i: usize) -> String {
    match values {
        ColumnValues::Numeric(v) => v
            .get(i)
            .copied()
            .flatten()
            .map_or_else(|| "?".to_string(), |x| x.to_string()),
        ColumnValues::Categorical { codes, categories } => codes
            .get(i)
            .copied()
            .flatten()
            .and_then(|c| categories.get(c as usize))
            .map_or_else(|| "?".to_string(), Clone::clone),
    }
}

fn split_name(s: Split) -> &'static str {
    match s {
        Split::Train => "train",
        Split::Test => "test",
    }
}

/// Reads the original table behind data set `key` (the bundled Adult or a CSV's key) and checks
/// it matches `ds` row for row.
fn load_table(key: &str, ds: &Dataset) -> Result<LoadedTable, String> {
    let t0 = std::time::Instant::now();
    let data = crate::tabular::train::load_table(key, None).map_err(|e| e.to_string())?;
    if data.n_rows() != ds.n {
        return Err(format!(
            "the table has {} rows, the data set {}",
            data.n_rows(),
            ds.n
        ));
    }
    let ranks = data
        .columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Numeric(_) => Vec::new(),
            ColumnValues::Categorical { categories, .. } => {
                let mut by_name: Vec<usize> = (0..categories.len()).collect();
                by_name.sort_by(|&a, &b| categories[a].cmp(&categories[b]));
                let mut rank = vec![0u32; categories.len()];
                for (r, &c) in by_name.iter().enumerate() {
                    rank[c] = r as u32;
                }
                rank
            }
        })
        .collect();
    let search = (0..ds.n)
        .map(|i| {
            let mut s = format!("{i}{SEP}{}{SEP}", split_name(ds.split[i]));
            if let Some(l) = ds.labels.get(i).and_then(|&l| ds.class_names.get(l as usize)) {
                s.push_str(l);
            }
            for (k, c) in data.columns.iter().enumerate() {
                if k != data.target {
                    s.push(SEP);
                    s.push_str(&cell_text(&c.values, i));
                }
            }
            s.to_lowercase()
        })
        .collect();
    Ok(LoadedTable {
        data,
        ranks,
        search,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn score_text(v: &[f32], i: usize) -> String {
    v.get(i)
        .filter(|x| x.is_finite())
        .map_or("–".into(), |x| format!("{x:.4}"))
}

impl TableView {
    /// The loaded table of data set `key` (starts the load on first call; `None` while loading).
    pub fn table(&mut self, key: &str, ds: &Arc<Dataset>) -> Result<Option<Arc<LoadedTable>>, String> {
        let stale = self
            .load
            .as_ref()
            .is_none_or(|(k, h, _)| k != key || *h != ds.hash);
        if stale {
            let (tx, rx) = sync_channel(1);
            let (k, d) = (key.to_string(), ds.clone());
            let load = match std::thread::Builder::new()
                .name("data-table".into())
                .spawn(move || {
                    let _ = tx.send(load_table(&k, &d));
                }) {
                Ok(_) => Load::Pending(rx),
                Err(e) => Load::Failed(format!("cannot start the table reader: {e}")),
            };
            self.load = Some((key.to_string(), ds.hash.clone(), load));
            self.order = None;
        }
        let Some((_, _, load)) = &mut self.load else {
            return Ok(None);
        };
        if let Load::Pending(rx) = load {
            match rx.try_recv() {
                Ok(Ok(t)) => {
                    log::info!("table {key}: {} rows read in {:.3} s", t.data.n_rows(), t.seconds);
                    *load = Load::Ready(Arc::new(t));
                }
                Ok(Err(e)) => *load = Load::Failed(e),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => *load = Load::Failed("the load stopped".into()),
            }
        }
        match load {
            Load::Pending(_) => Ok(None),
            Load::Ready(t) => Ok(Some(t.clone())),
            Load::Failed(e) => Err(e.clone()),
        }
    }

    /// The rows shown, in order, for the current filters (cached until they change).
    pub fn order(
        &mut self,
        t: &LoadedTable,
        ds: &Dataset,
        class: Option<u16>,
        split: SplitFilter,
        columns: &[(String, Arc<Vec<f32>>)],
    ) -> Arc<Vec<usize>> {
        let key = OrderKey {
            hash: ds.hash.clone(),
            class,
            split,
            filter: self.filter.clone(),
            sort: self.sort.clone(),
            n_score_columns: columns.len(),
        };
        if let Some((k, v)) = &self.order
            && *k == key
        {
            return v.clone();
        }
        let needle = self.filter.trim().to_lowercase();
        let mut idx: Vec<usize> = (0..ds.n)
            .filter(|&i| class.is_none_or(|c| ds.labels[i] == c))
            .filter(|&i| match split {
                SplitFilter::All => true,
                SplitFilter::Train => ds.split[i] == Split::Train,
                SplitFilter::Test => ds.split[i] == Split::Test,
            })
            .filter(|&i| {
                needle.is_empty()
                    || t.search.get(i).is_some_and(|s| s.contains(&needle))
                    || columns.iter().any(|(_, v)| score_text(v, i).contains(&needle))
            })
            .collect();
        if let Some((col, desc)) = &self.sort {
            sort_rows(&mut idx, t, ds, col, *desc, columns);
        }
        let arc = Arc::new(idx);
        self.order = Some((key, arc.clone()));
        arc
    }

    /// Draws the filter line and the table (rows of the class and split filtered to); returns
    /// the row clicked.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        ds: &Arc<Dataset>,
        (class, split): (Option<u16>, SplitFilter),
        selected: Option<usize>,
        columns: &[(String, Arc<Vec<f32>>)],
    ) -> Option<usize> {
        let t = match self.table(key, ds) {
            Ok(Some(t)) => t,
            Ok(None) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the table…");
                });
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(30));
                return None;
            }
            Err(e) => {
                ui.colored_label(crate::ui::theme::ERROR, format!("cannot show the table: {e}"));
                return None;
            }
        };
        let order = self.order(&t, ds, class, split, columns);
        ui.horizontal(|ui| {
            let l = ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("text in any cell")
                    .desired_width(200.0),
            )
            .labelled_by(l.id);
            if !self.filter.is_empty()
                && ui
                    .small_button("Clear")
                    .on_hover_text("Clear the filter")
                    .clicked()
            {
                self.filter.clear();
            }
            ui.label(format!("{} of {} rows", order.len(), ds.n));
            ui.weak(&ds.source);
        });
        let clicked = egui::ScrollArea::horizontal()
            .show(ui, |ui| self.table_ui(ui, &t, ds, &order, selected, columns))
            .inner;
        if let Some(i) = clicked {
            log::debug!("table row {i} selected");
        }
        clicked
    }

    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        t: &LoadedTable,
        ds: &Dataset,
        order: &[usize],
        selected: Option<usize>,
        columns: &[(String, Arc<Vec<f32>>)],
    ) -> Option<usize> {
        let data = &t.data;
        let target_name = data.columns.get(data.target).map_or("label", |c| c.name.as_str());
        let mut cols: Vec<(TableColumn, String)> = vec![
            (TableColumn::Index, "index".into()),
            (TableColumn::Split, "split".into()),
            (TableColumn::Label, target_name.to_string()),
        ];
        for (k, c) in data.columns.iter().enumerate() {
            if k != data.target {
                cols.push((TableColumn::Original(k), c.name.clone()));
            }
        }
        for (name, _) in columns {
            cols.push((TableColumn::Score(name.clone()), name.clone()));
        }
        let mut table = TableBuilder::new(ui)
            .id_salt("data_table")
            .striped(true)
            .resizable(true)
            .sense(egui::Sense::click())
            .min_scrolled_height(200.0);
        for (c, _) in &cols {
            let w = match c {
                TableColumn::Index | TableColumn::Split => 56.0,
                TableColumn::Label => 72.0,
                TableColumn::Original(k) => match data.columns[*k].values {
                    ColumnValues::Numeric(_) => 72.0,
                    ColumnValues::Categorical { .. } => 120.0,
                },
                TableColumn::Score(_) => 110.0,
            };
            table = table.column(Column::initial(w).at_least(36.0).clip(true));
        }
        if self.scroll_to_selected {
            if let Some(pos) = selected.and_then(|s| order.iter().position(|&i| i == s)) {
                table = table.scroll_to_row(pos, Some(egui::Align::Center));
            }
            self.scroll_to_selected = false;
        }
        let mut clicked = None;
        let mut new_sort = None;
        let sort = self.sort.clone();
        table
            .header(22.0, |mut header| {
                for (c, name) in &cols {
                    header.col(|ui| {
                        let active = sort.as_ref().filter(|(s, _)| s == c).map(|(_, d)| *d);
                        let arrow = match active {
                            Some(true) => ", now descending",
                            Some(false) => ", now ascending",
                            None => "",
                        };
                        let r = ui
                            .selectable_label(active.is_some(), egui::RichText::new(name.as_str()).strong())
                            .on_hover_text(format!("Sort by {name} (again: reverse){arrow}"));
                        if r.clicked() {
                            // Scores read best from the top: descending first; the rest ascending.
                            let desc = active.map_or(matches!(c, TableColumn::Score(_)), |d| !d);
                            new_sort = Some((c.clone(), desc));
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, order.len(), |mut row| {
                    let i = order[row.index()];
                    row.set_selected(selected == Some(i));
                    for (c, _) in &cols {
                        row.col(|ui| {
                            let text = match c {
                                TableColumn::Index => i.to_string(),
                                TableColumn::Split => split_name(ds.split[i]).to_string(),
                                TableColumn::Label => ds
                                    .class_names
                                    .get(ds.labels[i] as usize)
                                    .cloned()
                                    .unwrap_or_default(),
                                TableColumn::Original(k) => cell_text(&data.columns[*k].values, i),
                                TableColumn::Score(name) => columns
                                    .iter()
                                    .find(|(n, _)| n == name)
                                    .map_or("–".into(), |(_, v)| score_text(v, i)),
                            };
                            ui.add(egui::Label::new(text).selectable(false));
                        });
                    }
                    if row.response().clicked() {
                        clicked = Some(i);
                    }
                });
            });
        if new_sort.is_some() {
            self.sort = new_sort;
        }
        clicked
    }
}

/// Sorts `idx` by `col` (numbers numerically, categories alphabetically; missing values last
/// either way; ties in data set order).
fn sort_rows(
    idx: &mut [usize],
    t: &LoadedTable,
    ds: &Dataset,
    col: &TableColumn,
    desc: bool,
    columns: &[(String, Arc<Vec<f32>>)],
) {
    // Each row's sort value, NaN when missing.
    let value: Box<dyn Fn(usize) -> f64 + '_> = match col {
        TableColumn::Index => Box::new(|i| i as f64),
        TableColumn::Split => Box::new(|i| f64::from(u8::from(ds.split[i] == Split::Test))),
        TableColumn::Label => {
            let mut by_name: Vec<usize> = (0..ds.class_names.len()).collect();
            by_name.sort_by(|&a, &b| ds.class_names[a].cmp(&ds.class_names[b]));
            let mut rank = vec![0.0; by_name.len()];
            for (r, &c) in by_name.iter().enumerate() {
                rank[c] = r as f64;
            }
            Box::new(move |i| rank.get(ds.labels[i] as usize).copied().unwrap_or(f64::NAN))
        }
        TableColumn::Original(k) => match t.data.columns.get(*k).map(|c| &c.values) {
            Some(ColumnValues::Numeric(v)) => Box::new(|i| v.get(i).copied().flatten().unwrap_or(f64::NAN)),
            Some(ColumnValues::Categorical { codes, .. }) => {
                let rank = &t.ranks[*k];
                Box::new(move |i| {
                    codes
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|c| rank.get(c as usize))
                        .map_or(f64::NAN, |&r| f64::from(r))
                })
            }
            None => Box::new(|_| f64::NAN),
        },
        TableColumn::Score(name) => match columns.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Box::new(|i| v.get(i).map_or(f64::NAN, |&x| f64::from(x))),
            None => Box::new(|_| f64::NAN),
        },
    };
    let keyed: Vec<(f64, usize)> = idx.iter().map(|&i| (value(i), i)).collect();
    type Keyed = Vec<(f64, usize)>;
    let (mut finite, missing): (Keyed, Keyed) = keyed.into_iter().partition(|(v, _)| v.is_finite());
    finite.sort_by(|a, b| {
        let by = if desc {
            b.0.total_cmp(&a.0)
        } else {
            a.0.total_cmp(&b.0)
        };
        by.then(a.1.cmp(&b.1))
    });
    for (slot, (_, i)) in idx.iter_mut().zip(finite.into_iter().chain(missing)) {
        *slot = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adult_table_sorts_and_filters() {
        let ds = Arc::new(crate::data::load("adult").unwrap());
        let t0 = std::time::Instant::now();
        let t = load_table("adult", &ds).unwrap();
        eprintln!("adult table read in {:.3} s", t0.elapsed().as_secs_f64());
        let mut v = TableView::default();
        let all = v.order(&t, &ds, None, SplitFilter::All, &[]);
        assert_eq!(all.len(), ds.n);
        let age = t.data.columns.iter().position(|c| c.name == "age").unwrap();
        v.sort = Some((TableColumn::Original(age), true));
        let o = v.order(&t, &ds, None, SplitFilter::All, &[]);
        assert_eq!(cell_text(&t.data.columns[age].values, o[0]), "90");
        let edu = t.data.columns.iter().position(|c| c.name == "education").unwrap();
        v.sort = Some((TableColumn::Original(edu), false));
        let o = v.order(&t, &ds, None, SplitFilter::All, &[]);
        assert_eq!(cell_text(&t.data.columns[edu].values, o[0]), "10th");
        v.filter = "STATE-GOV".into();
        let o = v.order(&t, &ds, None, SplitFilter::Train, &[]);
        assert!(o.iter().all(|&i| ds.split[i] == Split::Train));
        assert!(!o.is_empty() && o.len() < 1298);
    }
}
