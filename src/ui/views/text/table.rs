//! The Text view's documents table: one row per document with its insertions, extraction
//! figures and membership scores, sorted by clicking a header.

use std::collections::HashMap;

use egui_extras::{Column, TableBuilder};

use crate::lm::extract_report::ExtractDoc;
use crate::lm::mia_report::LmMiaDoc;

use crate::ui::text_jobs::LoadedText;

/// What the table can be sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextColumn {
    /// Document order.
    #[default]
    Document,
    /// Times planted in the training text.
    Insertions,
    /// Greedy decoding reproduced the continuation exactly.
    Exact,
    /// Fraction of continuation tokens reproduced.
    TokenMatch,
    /// Longest verbatim span.
    Longest,
    /// LOSS score (−mean NLL).
    Loss,
    /// zlib score.
    Zlib,
    /// Min-K% score.
    MinK,
}

/// The columns in display order with their headers.
pub const COLUMNS: [(TextColumn, &str); 8] = [
    (TextColumn::Document, "Document"),
    (TextColumn::Insertions, "Insertions"),
    (TextColumn::Exact, "Exact"),
    (TextColumn::TokenMatch, "Token match"),
    (TextColumn::Longest, "Longest run"),
    (TextColumn::Loss, "LOSS"),
    (TextColumn::Zlib, "zlib"),
    (TextColumn::MinK, "Min-K%"),
];

/// One document's figures (None: not measured, or the document was too short).
#[derive(Clone, Debug, PartialEq)]
pub struct DocRow {
    /// Index into the documents.
    pub doc: usize,
    /// Where it came from.
    pub source: String,
    /// The document's first words (the name's hover).
    pub preview: String,
    /// Insertions (card passages).
    pub insertions: Option<u32>,
    /// Exact match of the continuation.
    pub exact: Option<bool>,
    /// Token match fraction.
    pub token_match: Option<f64>,
    /// Longest verbatim span (tokens).
    pub longest: Option<usize>,
    /// LOSS score.
    pub loss: Option<f64>,
    /// zlib score.
    pub zlib: Option<f64>,
    /// Min-K% score.
    pub min_k: Option<f64>,
}

impl DocRow {
    fn key(&self, col: TextColumn) -> Option<f64> {
        match col {
            TextColumn::Document => Some(self.doc as f64),
            TextColumn::Insertions => self.insertions.map(f64::from),
            TextColumn::Exact => self.exact.map(|e| f64::from(u8::from(e))),
            TextColumn::TokenMatch => self.token_match,
            TextColumn::Longest => self.longest.map(|l| l as f64),
            TextColumn::Loss => self.loss,
            TextColumn::Zlib => self.zlib,
            TextColumn::MinK => self.min_k,
        }
    }

    /// The text of a cell.
    pub fn cell(&self, col: TextColumn) -> String {
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
        match col {
            TextColumn::Document => self.source.clone(),
            TextColumn::Insertions => match self.insertions {
                None => "-".into(),
                Some(0) => "held out".into(),
                Some(n) => format!("{n}x"),
            },
            TextColumn::Exact => match self.exact {
                None => "-".into(),
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
            },
            TextColumn::TokenMatch => self.token_match.map_or_else(|| "-".into(), |x| format!("{x:.2}")),
            TextColumn::Longest => self.longest.map_or_else(|| "-".into(), |x| x.to_string()),
            TextColumn::Loss => num(self.loss),
            TextColumn::Zlib => self.zlib.map_or_else(|| "-".into(), |x| format!("{x:.5}")),
            TextColumn::MinK => num(self.min_k),
        }
    }
}

/// The first 160 characters of `text` on one line, with an ellipsis when cut.
fn preview(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// The rows of an opened model, in document order; reports are matched by document source.
pub fn rows(loaded: &LoadedText) -> Vec<DocRow> {
    let ex: HashMap<&str, &ExtractDoc> = loaded
        .extract
        .iter()
        .flat_map(|r| &r.documents)
        .map(|d| (d.source.as_str(), d))
        .collect();
    let mia: HashMap<&str, &LmMiaDoc> = loaded
        .mia
        .iter()
        .flat_map(|r| &r.documents)
        .map(|d| (d.source.as_str(), d))
        .collect();
    loaded
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ex = ex.get(d.source.as_str());
            let mia = mia.get(d.source.as_str());
            DocRow {
                doc: i,
                source: d.source.clone(),
                preview: preview(&d.text),
                insertions: d.insertions,
                exact: ex.map(|x| x.exact),
                token_match: ex.map(|x| x.token_match),
                longest: ex.map(|x| x.longest_match),
                loss: mia.map(|m| m.scores.loss),
                zlib: mia.map(|m| m.scores.zlib),
                min_k: mia.map(|m| m.scores.min_k),
            }
        })
        .collect()
}

/// Sorts by `col` (descending when `desc`); unmeasured cells last, ties in document order.
pub fn sort_rows(rows: &mut [DocRow], (col, desc): (TextColumn, bool)) {
    rows.sort_by(|a, b| {
        let o = match (a.key(col), b.key(col)) {
            (Some(x), Some(y)) if desc => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        o.then(a.doc.cmp(&b.doc))
    });
}

/// A small triangle right of a header: pointing down when sorted descending. (Painted: the
/// default fonts have no arrow glyphs.)
fn sort_arrow(ui: &egui::Ui, rect: egui::Rect, desc: bool) {
    let c = egui::pos2(rect.right() + 7.0, rect.center().y);
    let (w, h) = (4.0, if desc { 3.5 } else { -3.5 });
    let pts = vec![
        egui::pos2(c.x - w, c.y - h),
        egui::pos2(c.x + w, c.y - h),
        egui::pos2(c.x, c.y + h),
    ];
    let colour = ui.visuals().strong_text_color();
    ui.painter()
        .add(egui::Shape::convex_polygon(pts, colour, egui::Stroke::NONE));
}

/// Draws the table `height` high; a header click sorts (again: reverses). Returns the document
/// whose row was clicked.
pub fn table_ui(
    ui: &mut egui::Ui,
    rows: &mut [DocRow],
    sort: &mut (TextColumn, bool),
    selected: Option<usize>,
    height: f32,
) -> Option<usize> {
    let mut clicked = None;
    let mut new_sort = None;
    let mut table = TableBuilder::new(ui)
        .id_salt("text_docs")
        .striped(true)
        .resizable(true)
        .sense(egui::Sense::click())
        .max_scroll_height(height)
        .min_scrolled_height(height.min(120.0))
        .column(Column::auto().at_least(150.0).clip(true));
    for _ in 1..COLUMNS.len() {
        table = table.column(Column::auto().at_least(64.0));
    }
    table
        .header(22.0, |mut header| {
            for (col, name) in COLUMNS {
                header.col(|ui| {
                    let active = sort.0 == col;
                    let r = ui
                        .selectable_label(active, egui::RichText::new(name).strong())
                        .on_hover_text("Sort by this column (again: reverse)");
                    if active {
                        sort_arrow(ui, r.rect, sort.1);
                    }
                    if r.clicked() {
                        // Scores and matches read best from the top: descending first.
                        let desc = if active {
                            !sort.1
                        } else {
                            col != TextColumn::Document
                        };
                        new_sort = Some((col, desc));
                    }
                });
            }
        })
        .body(|body| {
            body.rows(20.0, rows.len(), |mut row| {
                let r = &rows[row.index()];
                let is_sel = selected == Some(r.doc);
                row.set_selected(is_sel);
                for (col, _) in COLUMNS {
                    row.col(|ui| {
                        let text = r.cell(col);
                        if col == TextColumn::Document {
                            if ui
                                .selectable_label(is_sel, text)
                                .on_hover_text(&r.preview)
                                .clicked()
                            {
                                clicked = Some(r.doc);
                            }
                        } else {
                            ui.add(egui::Label::new(text).selectable(false));
                        }
                    });
                }
                if row.response().clicked() {
                    clicked = Some(r.doc);
                }
            });
        });
    if let Some(s) = new_sort {
        *sort = s;
        sort_rows(rows, s);
    }
    clicked
}
