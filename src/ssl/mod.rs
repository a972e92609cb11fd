//! Memorization inside self-supervised encoders: SimCLR training of an encoder pair on the
//! shared / candidate / independent split, and the per-layer and per-unit measurements of
//!
//! * W. Wang, M. A. Kaleem, A. Dziedzic, M. Backes, N. Papernot, F. Boenisch, *Memorization in
//!   Self-Supervised Learning Improves Downstream Generalization*, ICLR 2024: SSLMem(x) =
//!   L_align(g, x) - L_align(f, x) with L_align(h, x) = E d(h(x'), h(x'')) over augmentations;
//! * W. Wang, A. Dziedzic, M. Backes, F. Boenisch, *Localizing Memorization in SSL Vision
//!   Encoders*, NeurIPS 2024: LayerMem_l (SSLMem on the output of layer l, normalised, averaged
//!   over the candidates), ΔLayerMem_l = LayerMem_l - LayerMem_{l-1}, and UnitMem(u) =
//!   (μ_max - μ_-max) / (μ_max + μ_-max) per unit (class selectivity of Morcos et al. 2018
//!   applied to single data points).
//!
//! Defaults follow the reference code (`sprintml/LocalizingMemorizationInSSL`): clean image vs
//! augmented view in L_align, 5 draws, division by the range, UnitMem over 10 draws with the
//! median as μ_-max; the alternatives are options and the report names what was used.
//!
//! * `augment.rs`: seeded augmentations on CPU buffers; `ntxent.rs`: the SimCLR loss;
//!   `encoder.rs`: the residual CNN and its measured layers; `split.rs`: S_S / S_C / S_I and
//!   planted outliers; `card.rs`: encoders on disk; `train.rs`: SimCLR training of the pair;
//!   `measure.rs`: the forward passes; `stats.rs`: the metrics' arithmetic; `report.rs`: the
//!   JSON report; `supervised.rs`: UnitMem and ClassMem of a supervised MLP's hidden units.

pub mod augment;
pub mod card;
pub mod encoder;
pub mod measure;
pub mod ntxent;
pub mod report;
pub mod split;
pub mod stats;
pub mod supervised;
pub mod train;

pub use card::{SslCard, SslEncoder, SslRecipe, ssl_dir};
pub use report::{LayerMemConfig, LayerMemReport, layermem, layermem_into_study};
pub use split::{Role, SplitConfig, SslSplit};
pub use train::{SslPairConfig, pair_dirs, train_pair_into_study};
