//! The synthetic in-context task of Nguyen & Reddy (arXiv:2412.00104, spec 12 §2): K item vectors
//! with a fixed balanced label assignment, sequences of N context items plus a query, and the two
//! evaluation sets that separate the circuits (spec 12 §2 "Evaluation sets", §6 first pitfall).

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{CoreError, CoreResult};

/// Item dimension D of the paper ("match omniglot input dim").
pub const ITEM_DIM: usize = 63;

/// Most items in the ICL test bank (the reference's `K_test = min(20000, K)`).
pub const MAX_TEST_ITEMS: usize = 20_000;

/// K items with their labels: the item bank of one run.
#[derive(Clone, Debug)]
pub struct ItemBank {
    dim: usize,
    labels: usize,
    /// K x D, row-major; item k is `items[k * dim..(k + 1) * dim]`.
    items: Vec<f32>,
    /// The label of each item.
    item_labels: Vec<usize>,
}

impl ItemBank {
    /// K items μ_k ~ N(0, I_D / D) drawn from `item_seed`, and a balanced random assignment of `labels`
    /// labels (K / L copies of each, shuffled) drawn from `label_seed`. K must be a positive
    /// multiple of L (the paper keeps K even for L = 2, spec 12 §6).
    pub fn new(k: usize, dim: usize, labels: usize, item_seed: u64, label_seed: u64) -> CoreResult<Self> {
        if labels < 2 {
            return Err(CoreError::Invalid(format!(
                "ICL task: need at least 2 labels, got {labels}"
            )));
        }
        if k == 0 || !k.is_multiple_of(labels) {
            return Err(CoreError::Invalid(format!(
                "ICL task: the number of items K = {k} must be a positive multiple of the {labels} labels (balanced labels)"
            )));
        }
        if dim == 0 {
            return Err(CoreError::Invalid("ICL task: item dimension is 0".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(item_seed);
        let scale = 1.0 / (dim as f32).sqrt();
        let items = (0..k * dim)
            .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(label_seed);
        let mut item_labels: Vec<usize> = (0..k).map(|i| i % labels).collect();
        item_labels.shuffle(&mut rng);
        Ok(Self {
            dim,
            labels,
            items,
            item_labels,
        })
    }

    /// Number of items K.
    pub fn len(&self) -> usize {
        self.item_labels.len()
    }

    /// Whether the bank is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.item_labels.is_empty()
    }

    /// Item dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of labels L.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// Token dimension D + L.
    pub fn token_dim(&self) -> usize {
        self.dim + self.labels
    }

    /// The label of every item.
    pub fn item_labels(&self) -> &[usize] {
        &self.item_labels
    }

    /// The vector of item `k`.
    pub fn item(&self, k: usize) -> &[f32] {
        &self.items[k * self.dim..(k + 1) * self.dim]
    }
}

/// How the item ids of a sequence are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// Uniform with replacement; if the query's id is not among the context ids, the query is
    /// replaced by a random context item ("burstiness 1": the label can be copied from context).
    QueryInContext,
    /// Without replacement, so the query never occurs in the context (IWL test; needs K > N).
    QueryAbsent,
}

/// Draws the N + 1 item ids of one sequence (N context items, then the query).
pub fn draw_ids(bank_len: usize, context: usize, draw: Draw, rng: &mut ChaCha8Rng) -> Vec<usize> {
    match draw {
        Draw::QueryInContext => {
            let mut ids: Vec<usize> = (0..=context).map(|_| rng.random_range(0..bank_len)).collect();
            let query = ids[context];
            if !ids[..context].contains(&query) {
                ids[context] = ids[rng.random_range(0..context)];
            }
            ids
        }
        Draw::QueryAbsent => rand::seq::index::sample(rng, bank_len, context + 1).into_vec(),
    }
}

/// A batch of sequences as tokens x ⊕ onehot(label), with the query's label slot zeroed.
#[derive(Clone, Debug)]
pub struct Batch {
    /// B x (N + 1) x (D + L).
    pub tokens: Tensor,
    /// The query labels, B (u32).
    pub targets: Tensor,
    /// The query labels as numbers (for tests and accuracy).
    pub target_values: Vec<u32>,
}

/// Builds `count` sequences from `bank`, drawing ids with `draw`.
pub fn make_batch(
    bank: &ItemBank,
    context: usize,
    count: usize,
    draw: Draw,
    rng: &mut ChaCha8Rng,
) -> CoreResult<Batch> {
    check_context(bank, context, draw)?;
    let e = bank.token_dim();
    let positions = context + 1;
    let mut tokens = Vec::with_capacity(count * positions * e);
    let mut target_values = Vec::with_capacity(count);
    for _ in 0..count {
        let ids = draw_ids(bank.len(), context, draw, rng);
        for (pos, &id) in ids.iter().enumerate() {
            tokens.extend_from_slice(bank.item(id));
            let label = bank.item_labels[id];
            tokens.extend((0..bank.labels).map(|l| if pos < context && l == label { 1.0f32 } else { 0.0 }));
        }
        target_values.push(bank.item_labels[ids[context]] as u32);
    }
    let tokens = Tensor::from_vec(tokens, (count, positions, e), &Device::Cpu)?;
    let targets = Tensor::new(target_values.as_slice(), &Device::Cpu)?;
    Ok(Batch {
        tokens,
        targets,
        target_values,
    })
}

fn check_context(bank: &ItemBank, context: usize, draw: Draw) -> CoreResult<()> {
    if context == 0 {
        return Err(CoreError::Invalid("ICL task: context length is 0".into()));
    }
    if draw == Draw::QueryAbsent && bank.len() <= context {
        return Err(CoreError::Invalid(format!(
            "ICL task: the memorization test draws N + 1 = {} distinct items, but K = {}; use K > N",
            context + 1,
            bank.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_of(bank: &ItemBank, batch: &Batch, context: usize) -> Vec<Vec<usize>> {
        // Recover each position's item id by exact match of its vector.
        let t: Vec<Vec<Vec<f32>>> = batch.tokens.to_vec3().unwrap();
        t.iter()
            .map(|seq| {
                (0..=context)
                    .map(|p| {
                        (0..bank.len())
                            .find(|&k| bank.item(k) == &seq[p][..bank.dim()])
                            .unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn labels_are_balanced_and_seeded_apart() {
        let bank = ItemBank::new(64, ITEM_DIM, 4, 1, 2).unwrap();
        for l in 0..4 {
            assert_eq!(bank.item_labels().iter().filter(|&&x| x == l).count(), 16);
        }
        // Same label seed, another item seed: same labels, other items.
        let other = ItemBank::new(64, ITEM_DIM, 4, 9, 2).unwrap();
        assert_eq!(bank.item_labels(), other.item_labels());
        assert_ne!(bank.item(0), other.item(0));
        // Items have squared norm about 1 (N(0, I/D)).
        let n2: f32 = (0..64)
            .map(|k| bank.item(k).iter().map(|v| v * v).sum::<f32>())
            .sum::<f32>()
            / 64.0;
        assert!((n2 - 1.0).abs() < 0.1, "mean squared norm {n2}");
        assert!(ItemBank::new(10, ITEM_DIM, 4, 0, 0).is_err());
    }

    #[test]
    fn icl_sequences_contain_the_query_and_iwl_sequences_do_not() {
        let context = 8;
        let bank = ItemBank::new(40, 7, 4, 3, 4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let icl = make_batch(&bank, context, 200, Draw::QueryInContext, &mut rng).unwrap();
        let iwl = make_batch(&bank, context, 200, Draw::QueryAbsent, &mut rng).unwrap();
        for ids in ids_of(&bank, &icl, context) {
            assert!(ids[..context].contains(&ids[context]));
        }
        for ids in ids_of(&bank, &iwl, context) {
            assert!(!ids[..context].contains(&ids[context]));
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), context + 1, "drawn without replacement");
        }
        // Tokens: context label slots one-hot and matching the item, query slot zeroed.
        let t: Vec<Vec<Vec<f32>>> = icl.tokens.to_vec3().unwrap();
        let ids = ids_of(&bank, &icl, context);
        for (seq, ids) in t.iter().zip(&ids) {
            for p in 0..context {
                let slots = &seq[p][7..];
                assert_eq!(slots.iter().sum::<f32>(), 1.0);
                assert_eq!(slots[bank.item_labels()[ids[p]]], 1.0);
            }
            assert!(seq[context][7..].iter().all(|&v| v == 0.0));
        }
        for (target, ids) in icl.target_values.iter().zip(&ids) {
            assert_eq!(*target as usize, bank.item_labels()[ids[context]]);
        }
        // The IWL test needs K > N.
        let small = ItemBank::new(8, 7, 4, 0, 0).unwrap();
        assert!(make_batch(&small, context, 1, Draw::QueryAbsent, &mut rng).is_err());
    }
}
