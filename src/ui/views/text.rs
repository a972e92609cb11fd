//! Text view: what a Hugging Face causal language model memorized of a set of documents (the
//! planted passages of rote's card, or a user text file).
//!
//! * a sortable documents table: insertions, greedy extraction (exact match, token match, longest
//!   verbatim span; Carlini et al. 2022, Biderman et al. 2023) and MIMIR's membership scores;
//! * for the selected document, a token strip coloured by ln p(token | prefix) (a memorized span
//!   is a run of strong colour) and the extraction side by side (prefix | true continuation |
//!   generated, matching tokens green);
//! * the membership ROC per attack on log–log axes and the exact-match fraction per insertion
//!   count with the finding in one sentence.
//!
//! Results are read from and written to the study's cache (`lm::study`), so a measured model
//! opens instantly; the runs are jobs with progress, ETA and Cancel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lm::HfLm;
use crate::lm::study::LmSource;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::jobs::JobKind;
use crate::ui::text_jobs::{LoadedText, TextDone, TextOutcome, TextRequest, TextTask, TokenStrip};
use crate::ui::theme;
use crate::ui::widgets::job_row_ui;

mod icl;
mod plots;
mod probe;
mod strip;
mod table;
#[cfg(test)]
mod tests;

pub use icl::IclPanel;
pub use table::{DocRow, TextColumn};

/// The Text view's tabs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextTab {
    /// Documents, extraction and membership.
    #[default]
    Memorized,
    /// Activation probes: where memorized tokens live.
    Inside,
    /// In-context learning kinetics.
    Icl,
}

/// Text view state.
#[derive(Default)]
pub struct TextView {
    /// HF model folders of the study (None while listing).
    pub models: Option<Vec<PathBuf>>,
    /// The chosen model.
    pub chosen: Option<PathBuf>,
    /// The opened model: documents and cached reports.
    pub loaded: Option<Arc<LoadedText>>,
    /// The model's network, once a job has read it (kept for the next job).
    pub model: Option<Arc<HfLm>>,
    /// One row per document.
    pub rows: Vec<DocRow>,
    /// Sort column and direction (true: descending).
    pub sort: (TextColumn, bool),
    /// Selected document (index into the documents).
    pub selected: Option<usize>,
    /// Token strips computed so far, by document.
    pub strips: HashMap<usize, TokenStrip>,
    /// The document whose strip was last asked for.
    strip_asked: Option<usize>,
    /// The last failed Text job, said in the view.
    pub error: Option<String>,
    /// The tab shown: the memorized text, the probes inside the model, or in-context learning.
    pub tab: TextTab,
    /// The In-context learning tab.
    pub icl: IclPanel,
}

fn short(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn is_text_job(kind: JobKind) -> bool {
    matches!(
        kind,
        JobKind::TextOpen
            | JobKind::TextExtract
            | JobKind::TextMia
            | JobKind::TextProbe
            | JobKind::TextTokens
    )
}

impl TextView {
    /// Forgets the opened model (a new study, or another model chosen).
    pub fn reset(&mut self, chosen: Option<PathBuf>) {
        self.chosen = chosen;
        self.loaded = None;
        self.rows.clear();
        self.selected = None;
        self.strips.clear();
        self.strip_asked = None;
        self.error = None;
    }

    /// Says why a Text job failed.
    pub fn on_failed(&mut self, kind: JobKind, msg: String) {
        self.icl.on_failed(kind, msg.clone());
        if is_text_job(kind) {
            self.error = Some(msg);
        }
    }

    /// Takes in a finished job (ignored when another model or source was chosen since).
    pub fn on_done(&mut self, done: TextDone) {
        if self.chosen.as_ref() != Some(&done.dir) {
            return;
        }
        if let Some(m) = done.model {
            self.model = Some(m);
        }
        if let TextOutcome::Opened(loaded) = done.outcome {
            self.strips.clear();
            self.strip_asked = None;
            self.selected = None;
            self.loaded = Some(Arc::new(*loaded));
            self.rebuild_rows();
            self.selected = self.default_selection();
            return;
        }
        let Some(loaded) = self.loaded.as_mut() else {
            return;
        };
        if loaded.source != done.source {
            return;
        }
        match done.outcome {
            TextOutcome::Extracted(r) => Arc::make_mut(loaded).extract = Some(*r),
            TextOutcome::Mia(r) => Arc::make_mut(loaded).mia = Some(*r),
            TextOutcome::Probe(r) => Arc::make_mut(loaded).probe = Some(*r),
            TextOutcome::Tokens(i, s) => {
                self.strips.insert(i, s);
                return;
            }
            TextOutcome::Opened(_) => return,
        }
        self.rebuild_rows();
        if self.selected.is_none() {
            self.selected = self.default_selection();
        }
    }

    /// The most inserted document that greedy decoding reproduced best, else the first.
    fn default_selection(&self) -> Option<usize> {
        self.rows
            .iter()
            .max_by(|a, b| {
                a.insertions
                    .unwrap_or(0)
                    .cmp(&b.insertions.unwrap_or(0))
                    .then(
                        a.token_match
                            .unwrap_or(0.0)
                            .total_cmp(&b.token_match.unwrap_or(0.0)),
                    )
                    .then(b.doc.cmp(&a.doc))
            })
            .map(|r| r.doc)
    }

    fn rebuild_rows(&mut self) {
        self.rows = self.loaded.as_deref().map(table::rows).unwrap_or_default();
        table::sort_rows(&mut self.rows, self.sort);
    }

    fn request(&self, ctx: &mut AppCtx<'_>, source: Option<LmSource>, task: TextTask) {
        if let Some(dir) = self.chosen.clone() {
            ctx.commands
                .push(Command::Text(Box::new(TextRequest { dir, source, task })));
        }
    }

    /// Draws the view.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tab, TextTab::Memorized, "Memorized text");
            ui.selectable_value(&mut self.tab, TextTab::Inside, "Inside the model");
            ui.selectable_value(&mut self.tab, TextTab::Icl, "In-context learning");
        });
        if self.tab == TextTab::Icl {
            ui.separator();
            self.icl.ui(ui, ctx);
            return;
        }
        let Some(models) = self.models.clone() else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the study's language models");
            });
            return;
        };
        if models.is_empty() {
            no_models_ui(ui, ctx);
            return;
        }
        self.top_bar_ui(ui, ctx, &models);
        if let Some(e) = &self.error {
            ui.colored_label(theme::ERROR, e);
        }
        let Some(loaded) = self.loaded.clone() else {
            if self.error.is_none() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Opening the model");
                });
            }
            return;
        };
        if loaded.source.is_none() {
            ui.heading(format!("{} has no card, so no planted passages", loaded.id));
            ui.label(
                "Choose the texts to measure with Text file… or Folder… above: a .txt file (one \
                 document per paragraph), a .jsonl file of {\"text\": ...} lines, or a folder of \
                 .txt files.",
            );
            return;
        }
        if self.tab == TextTab::Inside {
            self.inside_ui(ui, ctx, &loaded);
            return;
        }
        egui::Panel::right("text_mia")
            .default_size(430.0)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("text_mia_scroll")
                    .show(ui, |ui| plots::side_ui(ui, &loaded));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let h = (ui.available_height() * 0.42).max(160.0);
            let clicked = table::table_ui(ui, &mut self.rows, &mut self.sort, self.selected, h);
            if let Some(i) = clicked {
                self.selected = Some(i);
            }
            ui.separator();
            self.ask_strip(ctx, &loaded);
            egui::ScrollArea::vertical()
                .id_salt("text_detail")
                .show(ui, |ui| match self.selected {
                    Some(i) => strip::detail_ui(ui, &loaded, i, self.strips.get(&i)),
                    None => {
                        ui.label("Select a document to see its tokens and its extraction");
                    }
                });
        });
    }

    /// The activation probes of the opened model, or how to run them.
    fn inside_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, loaded: &LoadedText) {
        let running = ctx.jobs.is_running(JobKind::TextProbe);
        let card = loaded.source == Some(LmSource::Card);
        egui::ScrollArea::vertical().id_salt("text_probe_scroll").show(ui, |ui| {
            match &loaded.probe {
                Some(r) => probe::probe_panel(ui, r, &format!("probe-{}", loaded.id)),
                None => {
                    ui.heading("Where do memorized tokens live?");
                    ui.label(
                        "Linear probes on every layer's activations separate the tokens the model \
                         recalls verbatim from confident tokens of text it never saw (matched for \
                         confidence, folds grouped by passage); the intervention then projects the \
                         best probe's direction out and measures extraction again. About a minute \
                         on the demo GPT.",
                    );
                }
            }
            ui.add_space(6.0);
            let label = if loaded.probe.is_some() { "Run the probes again" } else { "Run the probes" };
            if ui
                .add_enabled(card && !running, egui::Button::new(label))
                .on_disabled_hover_text(
                    "Needs the card's planted passages (or `rote lm-probe MODEL --members FILE --nonmembers FILE`)",
                )
                .clicked()
            {
                self.request(ctx, loaded.source.clone(), TextTask::Probe);
            }
        });
    }

    /// Asks for the selected document's token strip once.
    fn ask_strip(&mut self, ctx: &mut AppCtx<'_>, loaded: &LoadedText) {
        let Some(i) = self.selected else { return };
        if self.strips.contains_key(&i) || self.strip_asked == Some(i) || i >= loaded.docs.len() {
            return;
        }
        self.strip_asked = Some(i);
        self.request(ctx, loaded.source.clone(), TextTask::Tokens(i));
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>, models: &[PathBuf]) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Language model");
            let before = self.chosen.clone();
            egui::ComboBox::from_id_salt("text_model")
                .selected_text(self.chosen.as_deref().map(short).unwrap_or_default())
                .show_ui(ui, |ui| {
                    for m in models {
                        ui.selectable_value(&mut self.chosen, Some(m.clone()), short(m));
                    }
                })
                .response
                .labelled_by(l.id);
            if self.chosen != before {
                let chosen = self.chosen.clone();
                self.reset(chosen);
                self.model = None;
                self.request(ctx, None, TextTask::Open);
            }
            ui.separator();
            self.source_ui(ui, ctx);
            ui.separator();
            self.run_buttons_ui(ui, ctx);
        });
        for j in ctx.jobs.running().iter().filter(|j| is_text_job(j.kind)) {
            let p = j.handle.progress();
            ui.horizontal(|ui| {
                ui.label(&j.label);
                job_row_ui(ui, j.id, &p, j.handle.is_cancel_requested(), 320.0, ctx.commands);
            });
        }
        ui.separator();
    }

    fn source_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let loaded = self.loaded.clone();
        let has_card = loaded.as_ref().is_some_and(|l| l.card.is_some());
        let source = loaded.as_ref().and_then(|l| l.source.clone());
        ui.label("Documents");
        let card = ui
            .add_enabled(
                has_card,
                egui::Button::selectable(source == Some(LmSource::Card), "Card passages"),
            )
            .on_hover_text("The passages planted 1, 4, 16 and 64 times and the held-out ones")
            .on_disabled_hover_text("This model has no card (rote did not train it)");
        if card.clicked() && source != Some(LmSource::Card) {
            self.request(ctx, Some(LmSource::Card), TextTask::Open);
        }
        let mut picked = None;
        if ui
            .button("Text file…")
            .on_hover_text(
                "A .txt file (one document per paragraph) or a .jsonl file of {\"text\": ...} lines",
            )
            .clicked()
        {
            picked = rfd::FileDialog::new()
                .set_title("Texts to measure")
                .add_filter("texts", &["txt", "jsonl"])
                .pick_file();
        }
        if ui
            .button("Folder…")
            .on_hover_text("A folder of .txt files")
            .clicked()
        {
            picked = rfd::FileDialog::new()
                .set_title("A folder of .txt files to measure")
                .pick_folder();
        }
        if let Some(p) = picked {
            self.open_texts(ctx, &p);
        }
        if let Some(LmSource::Texts { path }) = &source {
            ui.label(short(Path::new(path))).on_hover_text(path);
        }
    }

    /// Opens the chosen model on the texts of `path` (a .txt/.jsonl file or a folder). What is
    /// shown stays until they are read, and stays when they cannot be (the error says why).
    pub fn open_texts(&mut self, ctx: &mut AppCtx<'_>, path: &Path) {
        let source = LmSource::Texts {
            path: path.display().to_string(),
        };
        self.request(ctx, Some(source), TextTask::Open);
    }

    fn run_buttons_ui(&mut self, ui: &mut egui::Ui, ctx: &mut AppCtx<'_>) {
        let Some(loaded) = self.loaded.clone() else {
            return;
        };
        let Some(source) = loaded.source.clone() else {
            return;
        };
        let extracting = ctx.jobs.is_running(JobKind::TextExtract);
        let label = if loaded.extract.is_some() {
            "Run extraction again"
        } else {
            "Run extraction"
        };
        if ui
            .add_enabled(!extracting, egui::Button::new(label))
            .on_hover_text(
                "Greedy decoding of every document's 32-token continuation from its 32-token prefix",
            )
            .clicked()
        {
            self.request(ctx, Some(source.clone()), TextTask::Extract);
        }
        let card = source == LmSource::Card;
        let attacking = ctx.jobs.is_running(JobKind::TextMia);
        let label = if loaded.mia.is_some() {
            "Run membership inference again"
        } else {
            "Run membership inference"
        };
        if ui
            .add_enabled(card && !attacking, egui::Button::new(label))
            .on_hover_text("LOSS, zlib, Min-K% and Min-K%++: planted passages against held-out ones")
            .on_disabled_hover_text(
                "Needs known members and non-members: the card's passages (or `rote lm-mia MODEL --members FILE --nonmembers FILE`)",
            )
            .clicked()
        {
            self.request(ctx, Some(source), TextTask::Mia);
        }
        ui.label(format!("{} documents", loaded.docs.len()));
    }
}

/// The study has no Hugging Face model: how to get one.
fn no_models_ui(ui: &mut egui::Ui, ctx: &AppCtx<'_>) {
    let study = ctx
        .study
        .map_or("STUDY".to_string(), |s| s.root.display().to_string());
    ui.heading("No Hugging Face language models in this study");
    ui.label("Train a small GPT with planted passages (rote writes its card beside the model):");
    ui.code(format!("rote train-lm --arch gpt --out {study}"));
    ui.label(format!(
        "or copy a Hugging Face model folder (config.json, model.safetensors, tokenizer.json) into {study}/lm/<name>/, then reopen the study."
    ));
}
