//! The Exposure view's live extraction panel: Dijkstra (or beam) search after a prefix, typing
//! out the partial secret it is expanding and listing the complete candidates in rank order.

use super::ExposureView;
use crate::canary::extract::SearchMethod;
use crate::ui::app::AppCtx;
use crate::ui::command::Command;
use crate::ui::exposure_jobs::{ExtractRequest, LoadedExposure};
use crate::ui::jobs::JobKind;
use crate::ui::theme;

/// The search the panel's settings describe.
pub fn request(view: &ExposureView, l: &LoadedExposure, device: &str) -> ExtractRequest {
    ExtractRequest {
        dir: l.dir.clone(),
        prefix: view.prefix.clone(),
        digits: l.card.formats.get(view.format).map_or(6, |f| f.digits),
        options: view.search.clone(),
        device: device.to_string(),
        live: view.live.clone(),
    }
}

/// Draws the panel.
pub fn panel_ui(ui: &mut egui::Ui, view: &mut ExposureView, l: &LoadedExposure, ctx: &mut AppCtx<'_>) {
    ui.strong("Extraction: shortest-path search for the secret");
    let digits = l.card.formats.get(view.format).map_or(6, |f| f.digits);
    ui.horizontal_wrapped(|ui| {
        let p = ui.label("Prefix");
        ui.add(egui::TextEdit::singleline(&mut view.prefix).desired_width(180.0))
            .labelled_by(p.id);
        let b = ui.label("Budget");
        ui.add(
            egui::DragValue::new(&mut view.search.budget)
                .range(10..=1_000_000)
                .speed(100),
        )
        .labelled_by(b.id);
        let m = ui.label("Method");
        egui::ComboBox::from_id_salt("search_method")
            .selected_text(match view.search.method {
                SearchMethod::Dijkstra => "Dijkstra (exact)",
                SearchMethod::Beam => "beam",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(
                    &mut view.search.method,
                    SearchMethod::Dijkstra,
                    "Dijkstra (exact)",
                );
                ui.selectable_value(&mut view.search.method, SearchMethod::Beam, "beam");
            })
            .response
            .labelled_by(m.id);
    });
    let running = ctx.jobs.is_running(JobKind::SecretSearch);
    ui.horizontal_wrapped(|ui| {
        if ui
            .add_enabled(!running && !view.prefix.is_empty(), egui::Button::new("Extract"))
            .on_hover_text(
                "Expands the cheapest partial secret first; the first complete one is the model's favourite",
            )
            .clicked()
        {
            ctx.commands.push(Command::SearchSecret(Box::new(request(
                view,
                l,
                &ctx.settings.device,
            ))));
        }
        ui.label(format!("{digits} digits"));
    });
    let live = view.live.lock();
    let shown = if running {
        format!(
            "{}{}",
            live.frontier,
            "_".repeat(digits.saturating_sub(live.frontier.len()))
        )
    } else {
        live.candidates
            .first()
            .map_or_else(|| "_".repeat(digits), |c| c.secret.clone())
    };
    ui.label(
        egui::RichText::new(format!("{}{shown}", view.prefix))
            .monospace()
            .size(22.0)
            .color(if running {
                theme::SELECTED
            } else {
                ui.visuals().strong_text_color()
            }),
    );
    if live.expanded > 0 {
        ui.label(format!(
            "{} expansions{}",
            live.expanded,
            view.last_search.as_ref().map_or(String::new(), |s| format!(
                " in {:.2}s{}",
                s.seconds,
                if s.out_of_budget { ", budget exhausted" } else { "" }
            ))
        ));
    }
    let canaries: Vec<(&str, u32)> = l
        .card
        .canaries
        .iter()
        .filter(|c| c.format == view.format && l.card.formats[c.format].prefix == view.prefix)
        .map(|c| (c.secret.as_str(), c.insertions))
        .collect();
    egui::ScrollArea::vertical()
        .id_salt("search_candidates")
        .show(ui, |ui| {
            egui::Grid::new("search_candidate_grid")
                .striped(true)
                .show(ui, |ui| {
                    for h in ["#", "candidate", "bits", "after", ""] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for (i, c) in live.candidates.iter().enumerate() {
                        ui.label(format!("{}", i + 1));
                        ui.monospace(&c.secret);
                        ui.label(format!("{:.2}", c.bits));
                        ui.label(format!("{} exp.", c.expanded));
                        match canaries.iter().find(|(s, _)| *s == c.secret) {
                            Some((_, n)) => ui.colored_label(theme::OK, format!("canary, inserted x{n}")),
                            None => ui.label(""),
                        };
                        ui.end_row();
                    }
                });
        });
}
