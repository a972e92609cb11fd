//! Influence view (Feldman & Zhang 2020, Sec. 3): high-influence (train, test) pairs side by side,
//! with their values, classes and the pair counts; sortable.

use super::memorization::no_zoo_ui;
use super::zoo_results::thumb;
use crate::ui::app::AppCtx;

/// Sort order of the pair table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PairSort {
    /// Influence, highest first.
    #[default]
    Influence,
    /// mem of the training sample, highest first.
    Mem,
    /// Test sample index.
    Test,
}

/// Influence view state.
#[derive(Default)]
pub struct InfluenceView {
    /// Sort order.
    pub sort: PairSort,
    /// Test sample whose top influencers the side panel shows.
    pub selected_test: Option<usize>,
}

impl InfluenceView {
    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(z) = ctx.zoo else {
            no_zoo_ui(ui, ctx);
            return;
        };
        let r = &z.memorization;
        let mut by_test: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for p in &r.influence.pairs {
            *by_test.entry(p.test).or_default() += 1;
        }
        let single = by_test.values().filter(|&&c| c == 1).count();
        egui::Grid::new("pair_counts")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                for h in [
                    "Pairs",
                    "Test samples",
                    "% of test split",
                    "Influenced by one training sample",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                ui.label(r.n_pairs.to_string());
                ui.label(r.n_pair_tests.to_string());
                ui.label(format!(
                    "{:.2}%",
                    100.0 * r.n_pair_tests as f64 / r.n_test.max(1) as f64
                ));
                ui.label(single.to_string());
                ui.end_row();
            });
        ui.label(format!(
            "Pairs with mem(train) >= {}, infl >= {}{}; test image on the left, the training image that makes it right on the right",
            r.thresholds.mem,
            r.thresholds.infl,
            if r.thresholds.same_class { ", same class" } else { "" }
        ));
        ui.horizontal(|ui| {
            ui.label("Sort by");
            ui.selectable_value(&mut self.sort, PairSort::Influence, "influence");
            ui.selectable_value(&mut self.sort, PairSort::Mem, "mem");
            ui.selectable_value(&mut self.sort, PairSort::Test, "test index");
        });
        ui.separator();
        let mut pairs = r.influence.pairs.clone();
        match self.sort {
            PairSort::Influence => {}
            PairSort::Mem => pairs.sort_by(|a, b| b.mem.total_cmp(&a.mem)),
            PairSort::Test => pairs.sort_by_key(|p| (p.test, p.train)),
        }
        if pairs.is_empty() {
            ui.label("No pair passes the thresholds (MNIST has few; lower them with rote memorization --infl-thr).");
        }
        let ds = z.data.clone();
        if self.selected_test.is_none() {
            self.selected_test = pairs.first().map(|p| p.test);
        }
        egui::Panel::right("infl_detail")
            .default_size(320.0)
            .show(ui, |ui| {
                let Some(j) = self.selected_test else {
                    ui.label("Click a pair to see its test image's top influencers");
                    return;
                };
                ui.heading(format!("Test #{j} ({})", ds.class_names[ds.labels[j] as usize]));
                thumb(ui, ctx.textures, &ds, j, 96.0, false);
                ui.label("Its most influential training samples (any class):");
                if let Some((_, top)) = r.influence.top.iter().find(|(t, _)| *t == j) {
                    for p in top {
                        ui.horizontal(|ui| {
                            thumb(ui, ctx.textures, &ds, p.train, 56.0, z.is_planted(p.train));
                            ui.label(format!(
                                "#{} ({})\ninfl {:.2} ± {:.2} · mem {:.2}",
                                p.train, ds.class_names[ds.labels[p.train] as usize], p.infl, p.se, p.mem
                            ));
                        });
                    }
                }
            });
        let row_h = 64.0;
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show_rows(ui, row_h, pairs.len(), |ui, range| {
                for p in &pairs[range] {
                    ui.horizontal(|ui| {
                        thumb(ui, ctx.textures, &ds, p.test, 56.0, false);
                        ui.label("->");
                        thumb(ui, ctx.textures, &ds, p.train, 56.0, z.is_planted(p.train));
                        ui.label(format!(
                            "infl {:.2} ± {:.2}   mem {:.2}\ntest #{} ({})  ·  train #{} ({})",
                            p.infl,
                            p.se,
                            p.mem,
                            p.test,
                            ds.class_names[ds.labels[p.test] as usize],
                            p.train,
                            ds.class_names[ds.labels[p.train] as usize]
                        ));
                    });
                }
            });
    }
}
