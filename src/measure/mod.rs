//! Measurements of memorization and privacy over a model zoo. Each module cites its paper and
//! equations.

pub mod audit;
pub mod compare;
pub mod extraction;
pub mod fairness;
pub mod fairness_memorization;
pub mod fairness_model;
pub mod memorization;
pub mod mia;
pub mod roc;
pub mod serde_nan;
pub mod zoo_report;
