//! Canary exposure for the Secret Sharer experiment (issue 7): the mathematics only.
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
//! `shared/specs/05-secret-sharer.md`, section 2). [`exposure`] holds the exact form from a rank or a
//! full list of perplexities, and the two estimators of TensorFlow Privacy
//! (`tensorflow_privacy/privacy/privacy_tests/secret_sharer/exposures.py`):
//! `compute_exposure_interpolation` (empirical CDF over references, [`exposure::exposure_interpolation`])
//! and `compute_exposure_extrapolation` (skew-normal fit, [`exposure::exposure_extrapolation`]).

pub mod exposure;
