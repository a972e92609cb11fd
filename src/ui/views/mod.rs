//! One file per view.

mod data;
mod models;
mod settings;

pub use data::{DataView, SortKey, SplitFilter};
pub use models::{ModelsView, import_model};
pub use settings::SettingsView;
