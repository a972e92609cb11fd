//! Reusable widgets.

mod curves;
mod job_progress;

pub use curves::curves_ui;
pub use job_progress::jobs_bar_ui;
