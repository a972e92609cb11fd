//! The app's "Export report..." button: pick a folder, write the study's report there as a job
//! (`report::write_report`), then a toast naming the folder.

use std::path::PathBuf;

use super::App;
use crate::report::ReportSummary;
use crate::ui::command::Command;
use crate::ui::jobs::{JobKind, JobResult};
use crate::ui::toasts::Level;

impl App {
    /// The top bar's button (only with a study open).
    pub(super) fn report_button_ui(&mut self, ui: &mut egui::Ui) {
        if self.study.is_some()
            && ui
                .button("Export report…")
                .on_hover_text(
                    "Write an HTML page with the key figures, PNG galleries and every table as CSV",
                )
                .clicked()
            && let Some(dir) = rfd::FileDialog::new()
                .set_title("Write the report into a folder")
                .pick_folder()
        {
            self.push_command(Command::ExportReport(dir));
        }
    }

    /// Starts writing the open study's report into `dir`.
    pub(super) fn export_report(&mut self, dir: PathBuf) {
        let Some(study) = self.study.as_ref().map(|s| s.root.clone()) else {
            self.toasts
                .push(Level::Error, "open a study before exporting a report");
            return;
        };
        let label = format!("Writing the report to {}", dir.display());
        self.spawn(JobKind::Report, &label, move |ctx| {
            let summary = crate::report::write_report(&study, &dir, ctx)?;
            Ok(JobResult::Report(Box::new(summary)))
        });
    }

    /// A toast for a written report (and one per note).
    pub(super) fn on_report(&mut self, s: ReportSummary) {
        for n in &s.notes {
            self.toasts.push(Level::Info, format!("Report: {n}"));
        }
        self.toasts.push(
            Level::Ok,
            format!("Report written to {} ({} files)", s.out.display(), s.files.len()),
        );
    }
}
