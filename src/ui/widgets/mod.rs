//! Reusable widgets.

mod curves;
mod heatmap;
mod job_progress;

pub use curves::curves_ui;
pub use heatmap::{HeatmapData, colour, colour_bar_ui, heatmap_ui};
pub use job_progress::{job_row_ui, jobs_bar_ui};
