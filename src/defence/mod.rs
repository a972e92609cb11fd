//! Defences against memorization and what they cost: DP-SGD with its Rényi-DP accountant
//! (`accountant`, `dp_sgd`), deduplication of a diffusion model's training set (`dedup`), and
//! the comparison of a baseline with its defended variants (`compare`), where the audited ε lower
//! bound (`measure::audit`) sits beside the accountant's. Spec: `../shared/specs/13-mitigations.md`.

pub mod accountant;
pub mod compare;
pub mod dedup;
pub mod demem;
pub mod dp_sgd;
pub mod mat;
pub mod spurious;
