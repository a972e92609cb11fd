//! Every integration test in one binary: one link instead of one per file, and the two test
//! threads stay busy across files (CI machines have two cores). Each module is one file of
//! `tests/` (its submodules, if any, in the folder of the same name), named for what it checks;
//! run one with `cargo test --test all <module>::`.
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

mod common;

mod bad_inputs;
mod canary;
mod cli;
mod crash_safety;
mod defences;
mod demem;
mod diffusers_attacks;
mod diffusers_interop;
mod diffusion;
mod dp_epsilon;
mod fairness;
mod fairness_memorization;
mod gpt_demo;
mod gpu_parity;
mod gui_data_table;
mod icl;
mod invert;
mod invert_onnx;
mod layermem;
mod lm_dataset_test;
mod lm_interop;
mod lm_measure;
mod lm_probe;
mod mat;
mod present_export;
mod present_fit;
mod report;
mod tabular;
mod ui_app;
mod window_smoke;
mod zoo;
mod zoo_subsets;
