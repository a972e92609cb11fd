//! A job sink that draws an indicatif progress bar on stderr.

use indicatif::{ProgressBar, ProgressStyle};

use crate::job::{JobSink, Progress};

/// Progress bar for CLI jobs (hidden automatically when stderr is not a terminal).
pub struct CliSink {
    bar: ProgressBar,
    quiet: bool,
}

impl CliSink {
    /// A new bar. `quiet` suppresses log lines (used with `--json`).
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::new(0);
        let style =
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} {elapsed_precise} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        Self { bar, quiet }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl JobSink for CliSink {
    fn progress(&self, p: &Progress) {
        if self.bar.length() != Some(p.total) {
            self.bar.set_length(p.total);
        }
        self.bar.set_position(p.done);
        self.bar.set_message(p.stage.clone());
    }

    fn metric(&self, _series: &str, _step: f64, _value: f64) {}

    fn log(&self, msg: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("{msg}"));
        }
    }
}
