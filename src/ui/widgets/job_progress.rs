//! The status bar: one line per running job with a progress bar, ETA and Cancel.

use crate::job::Progress;
use crate::ui::command::Command;

/// One job: a progress bar with stage, percentage and ETA, then Cancel (or "Cancelling…").
pub fn job_row_ui(
    ui: &mut egui::Ui,
    id: u64,
    p: &Progress,
    cancelling: bool,
    width: f32,
    commands: &mut Vec<Command>,
) {
    let text = if p.total > 0 {
        format!("{} · {:.0}% · {}", p.stage, p.fraction() * 100.0, p.eta_text())
    } else {
        p.stage.clone()
    };
    ui.add(
        egui::ProgressBar::new(p.fraction())
            .desired_width(width)
            .text(text),
    );
    if cancelling {
        ui.label("Cancelling…");
    } else if ui.button("Cancel").clicked() {
        commands.push(Command::CancelJob(id));
    }
}

/// Draws the running jobs; Cancel pushes [`Command::CancelJob`].
pub fn jobs_bar_ui(
    ui: &mut egui::Ui,
    running: &[(u64, String, Progress, bool)],
    commands: &mut Vec<Command>,
) {
    if running.is_empty() {
        ui.label("Ready");
        return;
    }
    for (id, label, p, cancelling) in running {
        ui.horizontal(|ui| {
            ui.label(label);
            job_row_ui(ui, *id, p, *cancelling, 320.0, commands);
        });
    }
}
