//! **rote** shows what a machine-learning model memorized from its training data.
//!
//! The crate is one library with a thin binary (`src/main.rs`). Everything outside [`ui`] is the
//! headless core and builds with `--no-default-features`:
//!
//! * [`data`]: the [`data::Dataset`] type, loaders (IDX, image folder, NPY, CIFAR binary, text, CSV)
//!   and the bundled data sets in `assets/`.
//! * [`model`]: MLP and CNN classifiers as explicit candle structs, model cards, checkpoints.
//! * [`train`]: deterministic training on an index subset, SGD-momentum and AdamW.
//! * [`invert`]: model inversion (MI-FACE, a TV-prior variant, ART-compatible MIFace) and its
//!   evaluation by an independent classifier.
//! * [`ssl`]: SimCLR encoder pairs and LayerMem / UnitMem / ClassMem (memorization inside SSL
//!   encoders), and UnitMem of supervised MLPs for comparison.
//! * [`canary`]: Secret Sharer exposure (rank, perplexities, TF Privacy's estimates).
//! * [`lm`]: Hugging Face causal language models (GPT-2, GPT-NeoX, Llama, Qwen2) and tokenizers.
//! * [`gpu`]: wgpu compute kernels from `shaders/`, each with a CPU twin.
//! * [`icl`]: in-context learning kinetics (Nguyen & Reddy): memorization vs ICL across task
//!   diversity.
//! * [`job`]: cancellable, progress-reporting background jobs.
//! * [`study`]: the on-disk study folder (atomic writes).
//! * [`demo`]: the bundled demo study.
//! * [`report`]: a study as an HTML page with PNG galleries and CSV tables.
//! * [`cli`]: the command-line interface.
//! * [`ui`] (feature `gui`): the egui front end.

pub mod bench;
pub mod bench_dp;
pub mod canary;
pub mod cli;
mod cpu_gemm;
mod cpu_slices;
pub mod data;
pub mod defence;
pub mod demo;
pub mod diffusion;
pub mod error;
pub mod fast_math;
pub mod gpu;
pub mod icl;
pub mod invert;
pub mod job;
pub mod lm;
pub mod measure;
pub mod model;
pub mod paths;
pub mod report;
pub mod ssl;
pub mod story;
pub mod study;
pub mod tabular;
pub mod train;

#[cfg(feature = "gui")]
pub mod ui;

pub use error::{CoreError, CoreResult};

/// The version recorded in every model card.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
