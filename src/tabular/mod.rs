//! Tabular generative models and what they memorize (issue 20): a TabDDPM-style diffusion model
//! over mixed numeric and categorical rows, the TabCutMix and TabCutMixPlus augmentations, the
//! memorization ratio of Fang et al. per epoch checkpoint, and the quality of the synthetic rows
//! (marginal fidelity, correlation difference, train-on-synthetic-test-on-real accuracy).
//!
//! One capability, one name: this module, `rote train-tabular` / `rote tab-memorization`, the
//! Tabular view and the report's Tabular section.

pub mod augment;
pub mod bench;
pub mod ddpm;
pub mod memorization;
pub mod quality;
pub mod quantile;
pub mod sample;
pub mod table;
pub mod train;
pub mod twins;

pub use table::{ColumnRef, MixedTable, Schema};
