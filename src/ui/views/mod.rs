//! One file per view.

mod data;
mod data_table;
mod defences;
mod diffusion_common;
mod exposure;
mod extraction;
mod influence;
mod inpaint_report;
mod inpainting;
mod inversion;
mod layers;
mod memorization;
mod models;
mod privacy;
mod privacy_diffusion;
mod settings;
mod tabular;
mod text;
mod zoo_results;

pub use data::{DataView, SortKey, SplitFilter};
pub use defences::DefencesView;
pub use exposure::ExposureView;
pub use extraction::{ExtractionTab, ExtractionView};
pub use influence::InfluenceView;
pub use inpainting::{InpaintMode, InpaintingView};
pub use inversion::InversionView;
pub use layers::LayersView;
pub use memorization::{MemorizationView, ZooForm};
pub use models::{ModelsView, import_model};
pub use privacy::{MembershipTab, PrivacyView};
pub use privacy_diffusion::{DiffusionMiaList, load_diffusion_mia};
pub use settings::SettingsView;
pub use tabular::TabularView;
pub use text::{TextTab, TextView};
pub use zoo_results::{LoadedZooResults, ZooResults, load_zoo_results};
