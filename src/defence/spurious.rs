//! A spurious-correlation set, "coloured digits" (spec 13 §A.5, design 3), built from a bundled
//! digit set: the label is y = 1 when the digit is below 5, else 0; each image is drawn into one of
//! two channels (its "colour" m), and the colour agrees with y for a stated fraction of the
//! examples (90 % in training, 50 % in test, exact counts). The groups are g = 2·y + m: groups 0
//! and 3 are the majority (colour = label) in training, 1 and 2 the minority. Label noise (10 % by
//! default, 0 turns it off) flips a stated fraction of the *training* labels before the colours
//! are drawn, as XRM's ColorMNIST does, so the colour agrees with the label the model trains on;
//! test labels stay clean (the true digit class). MNIST images are subsampled by a stride
//! (28×28 → 14×14 at 2, as XRM's ColorMNIST), so a row is 2 × 14 × 14 = 392 floats in [0, 1].
//!
//! Everything random (the training subset, which labels flip, which colours disagree) comes from
//! ChaCha streams keyed by the seed, so a seed gives the same set on every machine.

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use rand_chacha::ChaCha8Rng;

use crate::data::{Dataset, load};
use crate::error::{CoreError, CoreResult};

/// Groups g = 2·y + m.
pub const GROUPS: usize = 4;

/// How to build the set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SpuriousConfig {
    /// Bundled grey digit set (`mnist10k` or `digits8x8`) or a path `data::load` reads.
    pub data: String,
    /// Fraction of training examples whose colour agrees with their (possibly noisy) label.
    pub train_agreement: f64,
    /// Fraction of test examples whose colour agrees with their label.
    pub test_agreement: f64,
    /// Fraction of training labels flipped (before the colours are drawn).
    pub label_noise: f64,
    /// Subsampling stride of the images (1 keeps every pixel; 2 takes every other row and
    /// column); 0 picks 2 for images of 28 pixels or more (MNIST → 14×14) and 1 below (8×8 digits).
    pub stride: usize,
    /// Training examples drawn (seeded) from the data set's training split; 0 = all.
    pub max_train: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for SpuriousConfig {
    fn default() -> Self {
        Self {
            data: "mnist10k".into(),
            train_agreement: 0.9,
            test_agreement: 0.5,
            label_noise: 0.1,
            stride: 0,
            max_train: 0,
            seed: 0,
        }
    }
}

/// One side (train or test) of the set: plain f32 feature rows and their labels and groups.
#[derive(Clone, Debug, Default)]
pub struct SpuriousPart {
    /// Examples.
    pub n: usize,
    /// Floats per row (2 × H × W).
    pub dim: usize,
    /// n × dim features in [0, 1]: the image in channel m, zeros in the other.
    pub features: Vec<f32>,
    /// The label a model sees (training labels after noise).
    pub labels: Vec<u32>,
    /// The label of the true digit (digit < 5).
    pub clean_labels: Vec<u32>,
    /// The spurious attribute m (the channel the digit is drawn in).
    pub attribute: Vec<u32>,
    /// g = 2·label + m.
    pub groups: Vec<u32>,
    /// Row of the source data set.
    pub source_rows: Vec<usize>,
}

impl SpuriousPart {
    /// Examples per group.
    pub fn group_counts(&self) -> [usize; GROUPS] {
        let mut counts = [0; GROUPS];
        for &g in &self.groups {
            if let Some(c) = counts.get_mut(g as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Fraction of examples whose colour agrees with their label.
    pub fn agreement(&self) -> f64 {
        let agree = self
            .labels
            .iter()
            .zip(&self.attribute)
            .filter(|(y, m)| y == m)
            .count();
        agree as f64 / self.n.max(1) as f64
    }

    /// Fraction of labels that differ from the true digit class.
    pub fn noise(&self) -> f64 {
        let noisy = self
            .labels
            .iter()
            .zip(&self.clean_labels)
            .filter(|(a, b)| a != b)
            .count();
        noisy as f64 / self.n.max(1) as f64
    }
}

/// What the set is, for reports.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpuriousDescription {
    /// "coloured digits".
    pub name: String,
    /// Source data set and its content hash.
    pub source: String,
    /// The label, the attribute and the groups in words.
    pub definition: String,
    /// Channels, height, width of a row.
    pub shape: [usize; 3],
    /// Training examples.
    pub n_train: usize,
    /// Test examples.
    pub n_test: usize,
    /// Measured colour–label agreement in training.
    pub train_agreement: f64,
    /// Measured colour–label agreement in test.
    pub test_agreement: f64,
    /// Measured fraction of flipped training labels.
    pub train_label_noise: f64,
    /// Training examples per group g = 2·y + m.
    pub train_groups: [usize; GROUPS],
    /// Test examples per group.
    pub test_groups: [usize; GROUPS],
}

/// The coloured-digit set.
#[derive(Clone, Debug)]
pub struct SpuriousSet {
    /// How it was built.
    pub config: SpuriousConfig,
    /// Channels (2), height and width of a row.
    pub shape: [usize; 3],
    /// Training side.
    pub train: SpuriousPart,
    /// Test side.
    pub test: SpuriousPart,
    /// Summary.
    pub description: SpuriousDescription,
}

fn check_fraction(name: &str, v: f64) -> CoreResult<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!("{name} must be in [0, 1], got {v}")))
    }
}

/// A ChaCha stream for one purpose of one seed.
fn stream(seed: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose);
    rng
}

/// `round(frac · n)` distinct positions of 0..n, seeded.
fn pick(n: usize, frac: f64, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let k = ((n as f64) * frac).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut chosen = vec![false; n];
    for &i in order.iter().take(k.min(n)) {
        chosen[i] = true;
    }
    chosen
}

/// Builds one side from the data set's `rows`.
fn build_part(
    ds: &Dataset,
    rows: Vec<usize>,
    (agreement, noise): (f64, f64),
    stride: usize,
    rngs: (&mut ChaCha8Rng, &mut ChaCha8Rng),
) -> SpuriousPart {
    let n = rows.len();
    let (h, w) = (ds.h.div_ceil(stride), ds.w.div_ceil(stride));
    let plane = h * w;
    let dim = 2 * plane;
    let flipped = pick(n, noise, rngs.0);
    let disagree = pick(n, 1.0 - agreement, rngs.1);
    let scale = 1.0 / f32::from(ds.max_value.max(1));
    let mut part = SpuriousPart {
        n,
        dim,
        features: vec![0.0; n * dim],
        ..SpuriousPart::default()
    };
    for (k, &row) in rows.iter().enumerate() {
        let clean = u32::from(ds.labels[row] < 5);
        let label = clean ^ u32::from(flipped[k]);
        let m = label ^ u32::from(disagree[k]);
        let offset = k * dim + m as usize * plane;
        if let Some(px) = ds.image(row) {
            let out = &mut part.features[offset..offset + plane];
            for (r, out_row) in out.chunks_exact_mut(w).enumerate() {
                for (c, v) in out_row.iter_mut().enumerate() {
                    *v = f32::from(px[r * stride * ds.w + c * stride]) * scale;
                }
            }
        }
        part.labels.push(label);
        part.clean_labels.push(clean);
        part.attribute.push(m);
        part.groups.push(2 * label + m);
        part.source_rows.push(row);
    }
    part
}

/// Builds the coloured-digit set of `cfg`.
pub fn build(cfg: &SpuriousConfig) -> CoreResult<SpuriousSet> {
    check_fraction("the training agreement", cfg.train_agreement)?;
    check_fraction("the test agreement", cfg.test_agreement)?;
    check_fraction("the label noise", cfg.label_noise)?;
    if cfg.stride > 8 {
        return Err(CoreError::Invalid(format!(
            "the stride must be 0 (automatic) to 8, got {}",
            cfg.stride
        )));
    }
    let ds = load(&cfg.data)?;
    let stride = match cfg.stride {
        0 if ds.h.min(ds.w) >= 28 => 2,
        0 => 1,
        s => s,
    };
    if ds.c != 1 {
        return Err(CoreError::Invalid(format!(
            "{}: coloured digits need grey images, this set has {} channels",
            cfg.data, ds.c
        )));
    }
    if ds.n_classes() != 10 {
        return Err(CoreError::Invalid(format!(
            "{}: coloured digits need the 10 digit classes, this set has {}",
            cfg.data,
            ds.n_classes()
        )));
    }
    let mut train_rows = ds.train_indices();
    if cfg.max_train > 0 && cfg.max_train < train_rows.len() {
        train_rows.shuffle(&mut stream(cfg.seed, 0));
        train_rows.truncate(cfg.max_train);
        train_rows.sort_unstable();
    }
    let test_rows = ds.test_indices();
    if train_rows.is_empty() || test_rows.is_empty() {
        return Err(CoreError::Invalid(format!(
            "{}: needs both a training and a test split",
            cfg.data
        )));
    }
    let train = build_part(
        &ds,
        train_rows,
        (cfg.train_agreement, cfg.label_noise),
        stride,
        (&mut stream(cfg.seed, 1), &mut stream(cfg.seed, 2)),
    );
    let test = build_part(
        &ds,
        test_rows,
        (cfg.test_agreement, 0.0),
        stride,
        (&mut stream(cfg.seed, 3), &mut stream(cfg.seed, 4)),
    );
    let shape = [2, ds.h.div_ceil(stride), ds.w.div_ceil(stride)];
    let description = SpuriousDescription {
        name: "coloured digits".into(),
        source: format!("{} ({})", ds.name, ds.hash),
        definition: "y = 1 if digit < 5; m = colour (channel of the digit); g = 2y + m; \
                     majority groups 0 and 3 (colour = label)"
            .into(),
        shape,
        n_train: train.n,
        n_test: test.n,
        train_agreement: train.agreement(),
        test_agreement: test.agreement(),
        train_label_noise: train.noise(),
        train_groups: train.group_counts(),
        test_groups: test.group_counts(),
    };
    Ok(SpuriousSet {
        config: cfg.clone(),
        shape,
        train,
        test,
        description,
    })
}
