//! Exposure view (Carlini et al., *The Secret Sharer*, USENIX Security 2019): how much a language
//! model (rote's character LSTM or a transformer) memorized secrets inserted into its training
//! text. Exposure against insertions (with the
//! log2|R| ceiling), exposure against training epoch next to the loss, the log-perplexity histogram
//! of the candidate space with the skew-normal fit and the canary marked, and a live extraction
//! panel that types out the search's best guesses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::canary::extract::{SearchOptions, SearchResult};
use crate::canary::report::ExposureReport;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::exposure_jobs::{LiveSearch, LoadedExposure};
use crate::ui::jobs::JobKind;
use crate::ui::theme;

mod plots;
mod search;

/// Exposure view state.
#[derive(Default)]
pub struct ExposureView {
    /// LM folders of the study (None while listing).
    pub models: Option<Vec<PathBuf>>,
    /// The chosen LM.
    pub chosen: Option<PathBuf>,
    /// The opened LM.
    pub loaded: Option<Arc<LoadedExposure>>,
    /// Shown canary format.
    pub format: usize,
    /// Selected canary (index into the card's canaries).
    pub selected: Option<usize>,
    /// Extraction prefix being edited.
    pub prefix: String,
    /// Extraction settings.
    pub search: SearchOptions,
    /// Live state of the running search.
    pub live: Arc<Mutex<LiveSearch>>,
    /// The last finished search.
    pub last_search: Option<SearchResult>,
}

fn short(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

impl ExposureView {
    /// Shows a freshly opened LM.
    pub fn open(&mut self, loaded: LoadedExposure) {
        self.format = 0;
        self.prefix = loaded
            .card
            .formats
            .first()
            .map(|f| f.prefix.clone())
            .unwrap_or_default();
        // The most inserted canary of the first format.
        self.selected = loaded
            .card
            .canaries
            .iter()
            .enumerate()
            .filter(|(_, c)| c.format == 0)
            .max_by_key(|(_, c)| c.insertions)
            .map(|(k, _)| k);
        self.search.candidates = 10;
        self.loaded = Some(Arc::new(loaded));
    }

    /// Takes in a measured report of the LM in `dir`.
    pub fn on_measured(&mut self, dir: &Path, report: ExposureReport) {
        if let Some(l) = &self.loaded
            && l.dir == dir
        {
            self.loaded = Some(Arc::new(LoadedExposure {
                dir: l.dir.clone(),
                card: l.card.clone(),
                report: Some(report),
            }));
        }
    }

    /// The extraction search for the shown format's prefix (None before an LM is open).
    pub fn extract_request(&self, device: &str) -> Option<crate::ui::exposure_jobs::ExtractRequest> {
        self.loaded.as_ref().map(|l| search::request(self, l, device))
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(models) = self.models.clone() else {
            ui.spinner();
            return;
        };
        if models.is_empty() {
            ui.heading("No language models in this study");
            ui.label("Train one with canaries inserted, then measure and extract them:");
            let study = ctx
                .study
                .map_or("STUDY".to_string(), |s| s.root.display().to_string());
            ui.code(format!(
                "rote train-lm --out {study}\nrote exposure {study}/lm/lm-austen-s0\nrote extract-secret {study}/lm/lm-austen-s0"
            ));
            return;
        }
        self.top_bar(ui, ctx, &models);
        let Some(loaded) = self.loaded.clone() else {
            ui.spinner();
            return;
        };
        egui::Panel::left("exposure_canaries")
            .default_size(330.0)
            .show(ui, |ui| self.canary_table(ui, &loaded));
        egui::CentralPanel::default().show(ui, |ui| {
            let h = ((ui.available_height() - 60.0) / 2.0).max(140.0);
            ui.columns(2, |cols| {
                plots::insertions_ui(&mut cols[0], &loaded, self.format, self.selected, h);
                plots::epochs_ui(&mut cols[1], &loaded, self.format, self.selected, h);
            });
            ui.separator();
            ui.columns(2, |cols| {
                plots::histogram_ui(&mut cols[0], &loaded, self.format, self.selected, h);
                search::panel_ui(&mut cols[1], self, &loaded, ctx);
            });
        });
    }

    fn top_bar(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, models: &[PathBuf]) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Language model");
            let before = self.chosen.clone();
            egui::ComboBox::from_id_salt("exposure_model")
                .selected_text(self.chosen.as_deref().map(short).unwrap_or_default())
                .show_ui(ui, |ui| {
                    for m in models {
                        ui.selectable_value(&mut self.chosen, Some(m.clone()), short(m));
                    }
                })
                .response
                .labelled_by(l.id);
            if self.chosen != before
                && let Some(p) = self.chosen.clone()
            {
                self.loaded = None;
                self.last_search = None;
                ctx.commands.push(Command::OpenExposure(p));
            }
            let Some(loaded) = self.loaded.clone() else {
                return;
            };
            let card = &loaded.card;
            let f = ui.label("Format");
            let before = self.format;
            egui::ComboBox::from_id_salt("exposure_format")
                .selected_text(
                    card.formats
                        .get(self.format)
                        .map(|f| format!("{}+{} digits", f.prefix, f.digits))
                        .unwrap_or_default(),
                )
                .show_ui(ui, |ui| {
                    for (i, f) in card.formats.iter().enumerate() {
                        ui.selectable_value(&mut self.format, i, format!("{}+{} digits", f.prefix, f.digits));
                    }
                })
                .response
                .labelled_by(f.id);
            if self.format != before {
                self.prefix = card.formats[self.format].prefix.clone();
                self.selected = card.canaries.iter().position(|c| c.format == self.format);
            }
            let running = ctx.jobs.is_running(JobKind::ExposureMeasure);
            let label = if loaded.report.is_some() { "Measure again" } else { "Measure exposure" };
            if ui
                .add_enabled(!running && !card.canaries.is_empty(), egui::Button::new(label))
                .on_hover_text("Exact rank over the whole space (slots up to 8 digits), skew-normal fit to 10,000 sampled references")
                .clicked()
            {
                ctx.commands.push(Command::MeasureExposure(loaded.dir.clone()));
            }
            let last = card.epochs.last();
            match &card.corpus {
                Some((chars, source)) => ui.label(format!(
                    "{}: {} chars of {}, {} epochs, validation {:.3} nats/{}",
                    card.kind,
                    chars,
                    short(Path::new(source)),
                    card.epochs.len(),
                    last.map_or(f64::NAN, |e| e.val_loss),
                    if card.kind == "character LSTM" { "char" } else { "token" }
                )),
                None => ui.label(format!("{} without rote's card", card.kind)),
            };
        });
        ui.separator();
    }

    fn canary_table(&mut self, ui: &mut egui::Ui, loaded: &LoadedExposure) {
        ui.heading("Canaries");
        let card = &loaded.card;
        let rep = loaded.report.as_ref();
        if !card.has_card {
            ui.label("No card: rote does not know what was planted in this model. Type a prefix in the extraction panel, or measure chosen secrets from the command line:");
            ui.code(format!(
                "rote exposure {} --format 'my pin number is :6' --secret 123456",
                loaded.dir.display()
            ));
        } else if rep.is_none() {
            ui.colored_label(theme::INFO, "Not measured yet: the figures are the last epoch's.");
        }
        let found: Vec<String> = self
            .last_search
            .as_ref()
            .map(|s| s.candidates.iter().map(|c| c.secret.clone()).collect())
            .unwrap_or_default();
        egui::Grid::new("canary_table").striped(true).show(ui, |ui| {
            for h in ["secret", "inserted", "exact", "skew-n", "found"] {
                ui.strong(h);
            }
            ui.end_row();
            for (k, c) in card.canaries.iter().enumerate() {
                if c.format != self.format {
                    continue;
                }
                let row = rep.and_then(|r| r.canaries.iter().find(|x| x.canary == k));
                let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
                let last = card.epochs.last().and_then(|e| e.exposure.get(k).copied());
                let text = egui::RichText::new(&c.secret).monospace();
                if ui.selectable_label(self.selected == Some(k), text).clicked() {
                    self.selected = Some(k);
                }
                ui.label(format!("x{}", c.insertions));
                ui.label(fmt(row.and_then(|r| r.exact).or(if row.is_none() {
                    last
                } else {
                    None
                })));
                ui.label(fmt(row.and_then(|r| r.skew_normal)));
                match found.iter().position(|s| *s == c.secret) {
                    Some(p) => ui.colored_label(theme::OK, format!("#{}", p + 1)),
                    None => ui.label("-"),
                };
                ui.end_row();
            }
        });
        if let Some(r) = rep
            && let Some(f) = r.formats.get(self.format)
        {
            ui.separator();
            ui.label(format!(
                "|R| = 10^{}: exact exposure at most {:.2} bits; {} references (interpolation at most {:.2})",
                f.digits, f.log2_space, f.references, f.log2_references
            ));
            if let (Some(fit), Some(ks)) = (f.fit, f.ks) {
                ui.label(format!(
                    "skew-normal fit: a {:.2}, loc {:.2}, scale {:.2}; KS distance {:.3}",
                    fit.shape, fit.loc, fit.scale, ks
                ));
            }
            if let Some(cps) = f.candidates_per_sec {
                ui.label(format!("exact rank: {cps:.0} candidates per second"));
            }
        }
        ui.separator();
        ui.small(format!("Command: {}", card.command));
    }
}
