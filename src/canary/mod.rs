//! Canary exposure and extraction for language models (the Secret Sharer, issues 7 and 16): rote's
//! character LSTM and any causal transformer.
//!
//! N. Carlini, C. Liu, Ú. Erlingsson, J. Kos, D. Song, *The Secret Sharer: Evaluating and Testing
//! Unintended Memorization in Neural Networks*, USENIX Security 2019 (arXiv:1802.08232), measure how
//! much a model memorized an inserted secret `s[r]` by its **exposure**
//!
//! ```text
//! rank(s[r])     = |{ r' in R : Px(s[r']) <= Px(s[r]) }|      (rank 1 = lowest log-perplexity)
//! exposure(s[r]) = log2 |R| - log2 rank(s[r])
//!                = -log2 Pr_{t in R}[ Px(s[t]) <= Px(s[r]) ]
//! ```
//!
//! (the paper's exposure definition and its estimation section; see
//! `shared/specs/05-secret-sharer.md`, sections 1-4).
//!
//! * [`model`]: [`model::SlotModel`], what any model offers the measures (a context, batches of
//!   branches continued one digit at a time, search expansions), for the LSTM and, in
//!   [`causal`], any `lm::CausalLm` through its key/value cache ([`whole`]: whole strings for a
//!   tokenizer that merges digits, exposure only); [`open`] loads either kind of folder with its
//!   canaries (card or command line);
//! * [`secrets`]: canary formats, secrets and their insertion into the corpus;
//! * [`lm`], [`card`], [`train`]: the character LSTM, on disk under `STUDY/lm/<id>/`, trained
//!   with the exposure of every canary measured after each epoch;
//! * [`score`]: slot log-perplexities, the whole space through the digit tree;
//! * [`exposure`]: exposure from ranks and perplexities, and TF Privacy's interpolation and
//!   skew-normal extrapolation (`tensorflow_privacy/.../secret_sharer/exposures.py`);
//! * [`report`]: every canary's exact, skew-normal, interpolated and TF-Privacy exposures;
//! * [`extract`]: Dijkstra and beam search for the most likely secrets.

pub mod bench;
pub mod card;
pub mod causal;
pub mod exposure;
pub mod extract;
pub mod lm;
pub mod model;
pub mod open;
pub mod report;
pub mod score;
pub mod secrets;
pub mod train;
pub mod whole;

#[cfg(test)]
mod causal_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tf_privacy_vectors_tests;
