//! Data view: a virtualised thumbnail gallery (class and split filters, sort by any per-sample score
//! column) and a detail panel with the selected image's label, split, scores and its nearest
//! neighbours by pixel distance (wgpu kernel or CPU twin).

use std::sync::Arc;

use crate::data::{BundledKind, Dataset, Split, bundled_all};
use crate::gpu::{Backend, Neighbour};
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::theme;

mod detail;

/// Which split to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitFilter {
    /// Both.
    #[default]
    All,
    /// Training split only.
    Train,
    /// Test split only.
    Test,
}

/// Sort order of the gallery.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum SortKey {
    /// Data set order.
    #[default]
    Index,
    /// By label.
    Label,
    /// By mean pixel intensity.
    Intensity,
    /// By a named score column.
    Score(String),
}

impl SortKey {
    fn name(&self) -> String {
        match self {
            Self::Index => "index".into(),
            Self::Label => "label".into(),
            Self::Intensity => "mean intensity".into(),
            Self::Score(s) => s.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct OrderKey {
    hash: String,
    class: Option<u16>,
    split: SplitFilter,
    sort: SortKey,
    descending: bool,
    n_score_columns: usize,
}

/// Neighbours found for one image.
#[derive(Clone, Debug)]
pub struct NeighbourResult {
    /// Data set key.
    pub dataset: String,
    /// Query image.
    pub index: usize,
    /// Nearest first.
    pub found: Vec<Neighbour>,
    /// Which implementation ran.
    pub backend: Backend,
}

/// Data view state.
pub struct DataView {
    /// Selected image.
    pub selected: Option<usize>,
    /// Class filter.
    pub class_filter: Option<u16>,
    /// Split filter.
    pub split_filter: SplitFilter,
    /// Sort key.
    pub sort: SortKey,
    /// Sort descending.
    pub descending: bool,
    /// Thumbnail size in points.
    pub thumb: f32,
    order: Option<(OrderKey, Arc<Vec<usize>>)>,
    intensity: Option<(String, Arc<Vec<f32>>)>,
    /// Neighbours of the selected image.
    pub neighbours: Option<NeighbourResult>,
    /// Scroll the gallery to the selection on the next frame.
    scroll_to_selected: bool,
    /// A sort requested before its column exists (start-up options).
    pending_sort: Option<String>,
    /// The table shown instead of the gallery for tabular data sets.
    pub table: super::data_table::TableView,
}

impl DataView {
    /// A view that selects `select` once data is there.
    pub fn new(select: Option<usize>, sort: Option<String>, descending: bool) -> Self {
        Self {
            pending_sort: sort,
            selected: select.or(Some(0)),
            class_filter: None,
            split_filter: SplitFilter::All,
            sort: SortKey::Index,
            descending,
            thumb: 40.0,
            order: None,
            intensity: None,
            neighbours: None,
            scroll_to_selected: false,
            table: Default::default(),
        }
    }

    /// Resets what depends on the data set.
    pub fn on_dataset_changed(&mut self) {
        self.order = None;
        self.neighbours = None;
        self.class_filter = None;
        self.table.sort = None;
        if !matches!(self.sort, SortKey::Index | SortKey::Label | SortKey::Intensity) {
            self.sort = SortKey::Index;
        }
    }

    /// Stores a neighbour result.
    pub fn set_neighbours(&mut self, dataset: String, index: usize, found: Vec<Neighbour>, backend: Backend) {
        self.neighbours = Some(NeighbourResult {
            dataset,
            index,
            found,
            backend,
        });
    }

    /// The gallery order for the current filters (cached until they change).
    pub fn order(&mut self, ds: &Dataset, columns: &[(String, Arc<Vec<f32>>)]) -> Arc<Vec<usize>> {
        let key = OrderKey {
            hash: ds.hash.clone(),
            class: self.class_filter,
            split: self.split_filter,
            sort: self.sort.clone(),
            descending: self.descending,
            n_score_columns: columns.len(),
        };
        if let Some((k, v)) = &self.order
            && *k == key
        {
            return v.clone();
        }
        let mut idx: Vec<usize> = (0..ds.n)
            .filter(|&i| self.class_filter.is_none_or(|c| ds.labels[i] == c))
            .filter(|&i| match self.split_filter {
                SplitFilter::All => true,
                SplitFilter::Train => ds.split[i] == Split::Train,
                SplitFilter::Test => ds.split[i] == Split::Test,
            })
            .collect();
        let values: Option<Arc<Vec<f32>>> = match &self.sort {
            SortKey::Index => None,
            SortKey::Label => Some(Arc::new(ds.labels.iter().map(|&l| f32::from(l)).collect())),
            SortKey::Intensity => Some(self.intensity(ds)),
            SortKey::Score(name) => columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        };
        let value = |v: &[f32], i: usize| v.get(i).copied().unwrap_or(f32::NAN);
        match values {
            Some(v) => {
                // Samples without a value (NaN, e.g. the test split for mem) go last either way.
                let (mut finite, missing): (Vec<usize>, Vec<usize>) =
                    idx.into_iter().partition(|&i| value(&v, i).is_finite());
                // Equal mem values are ordered by the zoo's held-out loss (mem_order's tie-break).
                let tie: Option<Arc<Vec<f32>>> = match &self.sort {
                    SortKey::Score(name) => name.strip_prefix("mem · ").and_then(|zoo| {
                        let want = format!("{}{zoo}", super::zoo_results::HELD_OUT_LOSS);
                        columns.iter().find(|(n, _)| *n == want).map(|(_, v)| v.clone())
                    }),
                    _ => None,
                };
                let tie_value = |i: usize| tie.as_ref().map_or(0.0, |t| value(t, i)).max(f32::MIN);
                finite.sort_by(|&a, &b| {
                    value(&v, a)
                        .total_cmp(&value(&v, b))
                        .then(tie_value(a).total_cmp(&tie_value(b)))
                        .then(a.cmp(&b))
                });
                if self.descending {
                    finite.reverse();
                }
                finite.extend(missing);
                idx = finite;
            }
            None if self.descending => idx.reverse(),
            None => {}
        }
        let arc = Arc::new(idx);
        self.order = Some((key, arc.clone()));
        arc
    }

    fn intensity(&mut self, ds: &Dataset) -> Arc<Vec<f32>> {
        if let Some((h, v)) = &self.intensity
            && *h == ds.hash
        {
            return v.clone();
        }
        let v = Arc::new(ds.mean_intensity());
        self.intensity = Some((ds.hash.clone(), v.clone()));
        v
    }

    fn apply_pending_sort(&mut self, columns: &[(String, Arc<Vec<f32>>)]) {
        let Some(want) = self.pending_sort.clone() else {
            return;
        };
        let sort = match want.as_str() {
            "index" => Some(SortKey::Index),
            "label" => Some(SortKey::Label),
            "intensity" => Some(SortKey::Intensity),
            w => columns
                .iter()
                .find(|(n, _)| n.starts_with(w))
                .map(|(n, _)| SortKey::Score(n.clone())),
        };
        if let Some(sort) = sort {
            self.sort = sort;
            self.pending_sort = None;
        }
    }

    fn select(&mut self, key: &str, i: usize, commands: &mut Vec<Command>) {
        if self.selected != Some(i) {
            self.selected = Some(i);
            commands.push(Command::FindNeighbours {
                dataset: key.to_string(),
                index: i,
            });
        }
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(key) = ctx.current.map(str::to_string) else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Loading data…");
            });
            return;
        };
        let Some(ds) = ctx.datasets.get(&key).cloned() else {
            return;
        };
        let columns: Vec<(String, Arc<Vec<f32>>)> = ctx.scores.get(&ds.hash).cloned().unwrap_or_default();
        self.apply_pending_sort(&columns);
        self.toolbar_ui(ui, ctx, &key, &ds, &columns);
        ui.separator();
        if ds.is_tabular() {
            let (filters, sel) = ((self.class_filter, self.split_filter), self.selected);
            if let Some(i) = self.table.ui(ui, &key, &ds, filters, sel, &columns) {
                self.selected = Some(i); // no pixel neighbours for table rows
            }
            return;
        }
        egui::Panel::right("data_detail")
            .default_size(330.0)
            .min_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.detail_ui(ui, ctx, &key, &ds, &columns));
            });
        egui::CentralPanel::default().show(ui, |ui| self.gallery_ui(ui, ctx, &key, &ds, &columns));
    }

    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        key: &str,
        ds: &Dataset,
        columns: &[(String, Arc<Vec<f32>>)],
    ) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Data set");
            egui::ComboBox::from_id_salt("dataset")
                .selected_text(key)
                .show_ui(ui, |ui| {
                    for b in bundled_all().iter().filter(|b| b.kind != BundledKind::Text) {
                        if ui
                            .selectable_label(key == b.name, b.name)
                            .on_hover_text(b.description)
                            .clicked()
                        {
                            ctx.commands.push(Command::LoadDataset(b.name.to_string()));
                        }
                    }
                    for k in ctx.datasets.keys().filter(|k| crate::data::bundled(k).is_none()) {
                        if ui.selectable_label(key == k, k.as_str()).clicked() {
                            ctx.commands.push(Command::SelectDataset(k.clone()));
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            if ui
                .button("Open images…")
                .on_hover_text("An IDX, NPY or CIFAR .bin file")
                .clicked()
                && let Some(p) = rfd::FileDialog::new()
                    .add_filter("images", &["gz", "idx", "ubyte", "npy", "bin"])
                    .pick_file()
            {
                ctx.commands.push(Command::LoadDataset(p.display().to_string()));
            }
            if ui
                .button("Open folder…")
                .on_hover_text("One subfolder per class, or CIFAR-10 batches")
                .clicked()
                && let Some(p) = rfd::FileDialog::new().pick_folder()
            {
                ctx.commands.push(Command::LoadDataset(p.display().to_string()));
            }
            ui.separator();
            let l = ui.label("Class");
            let class_text = self
                .class_filter
                .map_or("all".to_string(), |c| ds.class_names[c as usize].clone());
            egui::ComboBox::from_id_salt("class")
                .selected_text(class_text)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.class_filter, None, "all");
                    for (c, name) in ds.class_names.iter().enumerate() {
                        ui.selectable_value(&mut self.class_filter, Some(c as u16), name.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            let l = ui.label("Split");
            egui::ComboBox::from_id_salt("split")
                .selected_text(format!("{:?}", self.split_filter).to_lowercase())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.split_filter, SplitFilter::All, "all");
                    ui.selectable_value(&mut self.split_filter, SplitFilter::Train, "train");
                    ui.selectable_value(&mut self.split_filter, SplitFilter::Test, "test");
                })
                .response
                .labelled_by(l.id);
            if ds.is_tabular() {
                return; // the table sorts by its headers; no thumbnails
            }
            let l = ui.label("Sort by");
            egui::ComboBox::from_id_salt("sort")
                .selected_text(self.sort.name())
                .width(200.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sort, SortKey::Index, "index");
                    ui.selectable_value(&mut self.sort, SortKey::Label, "label");
                    ui.selectable_value(&mut self.sort, SortKey::Intensity, "mean intensity");
                    for (name, _) in columns {
                        ui.selectable_value(&mut self.sort, SortKey::Score(name.clone()), name.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.checkbox(&mut self.descending, "descending");
            ui.add(egui::Slider::new(&mut self.thumb, 24.0..=112.0).text("size"));
        });
    }

    fn gallery_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut AppCtx<'_>,
        key: &str,
        ds: &Dataset,
        columns: &[(String, Arc<Vec<f32>>)],
    ) {
        let order = self.order(ds, columns);
        ui.label(format!("{} of {} images · {}", order.len(), ds.n, ds.source));
        let spacing = 4.0;
        let aspect = ds.h as f32 / ds.w as f32;
        let cell = egui::vec2(self.thumb, self.thumb * aspect);
        let cols = (((ui.available_width() + spacing) / (cell.x + spacing)).floor() as usize).max(1);
        let rows = order.len().div_ceil(cols);
        let mut clicked = None;
        let selected = self.selected;
        let mut scroll = egui::ScrollArea::vertical().auto_shrink(false);
        if self.scroll_to_selected {
            if let Some(pos) = selected.and_then(|s| order.iter().position(|&i| i == s)) {
                scroll = scroll.vertical_scroll_offset((pos / cols) as f32 * (cell.y + spacing));
            }
            self.scroll_to_selected = false;
        }
        scroll.show_rows(ui, cell.y, rows, |ui, range| {
            ui.spacing_mut().item_spacing = egui::vec2(spacing, spacing);
            for r in range {
                ui.horizontal(|ui| {
                    for &i in order.iter().skip(r * cols).take(cols) {
                        let resp = match ctx.textures.get(ui.ctx(), ds, i) {
                            Some(tex) => ui.add(egui::Image::new((tex, cell)).sense(egui::Sense::click())),
                            None => {
                                let (rect, resp) = ui.allocate_exact_size(cell, egui::Sense::click());
                                ui.painter().rect_filled(rect, 0.0, theme::PLACEHOLDER);
                                resp
                            }
                        };
                        if ctx
                            .zoo
                            .is_some_and(|z| z.source_hash == ds.hash && z.is_planted(i))
                        {
                            ui.painter().rect_stroke(
                                resp.rect.expand(1.0),
                                0.0,
                                egui::Stroke::new(1.5, theme::ERROR),
                                egui::StrokeKind::Outside,
                            );
                        }
                        if selected == Some(i) {
                            ui.painter().rect_stroke(
                                resp.rect.expand(1.0),
                                0.0,
                                egui::Stroke::new(2.0, theme::SELECTED),
                                egui::StrokeKind::Outside,
                            );
                        }
                        let resp = resp.on_hover_text(format!(
                            "#{i} · {} · {}",
                            ds.class_names[ds.labels[i] as usize],
                            split_name(ds.split[i])
                        ));
                        if resp.clicked() {
                            clicked = Some(i);
                        }
                    }
                });
            }
        });
        if let Some(i) = clicked {
            self.select(key, i, ctx.commands);
        }
    }
}

fn split_name(s: Split) -> &'static str {
    match s {
        Split::Train => "train",
        Split::Test => "test",
    }
}
