//! The status bar: one line per running job with a progress bar, ETA and Cancel.

use crate::job::Progress;
use crate::ui::command::Command;

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
            let text = if p.total > 0 {
                format!("{} · {:.0}% · {}", p.stage, p.fraction() * 100.0, p.eta_text())
            } else {
                p.stage.clone()
            };
            ui.add(
                egui::ProgressBar::new(p.fraction())
                    .desired_width(320.0)
                    .text(text),
            );
            if *cancelling {
                ui.label("Cancelling…");
            } else if ui.button("Cancel").clicked() {
                commands.push(Command::CancelJob(*id));
            }
        });
    }
}
