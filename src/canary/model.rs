//! One interface for every model whose canaries are measured: a model that scores the digits of
//! a canary slot after a context (Carlini et al. 2019, *The Secret Sharer*, the log-perplexity
//! `Px(s[r]) = sum_i -log2 Pr(r_i | context, r_1..r_{i-1})` of the slot).
//!
//! [`SlotModel`] has two halves:
//!
//! * **batches** for the digit tree ([`super::score::exact_space`]) and batched scoring: the
//!   context's state as one row, then rows of a batch each continued by one digit. The character
//!   LSTM steps its state (`CanaryLm`, here); a transformer extends its key/value cache, the
//!   context run once and its cache rows repeated along the batch ([`super::causal`]);
//! * **search expansions** for Dijkstra and beam search ([`super::extract`]): nodes popped from a
//!   queue, each with what the model chose to keep of its parent ([`SlotModel::Memo`]): the LSTM's
//!   state as host floats, nothing for a transformer, which re-reads the (short) filling after
//!   the cached context.
//!
//! Costs are bits (`-log2 p`), always non-negative, so the search stays exact.

use candle_core::{DType, Tensor};
use candle_nn::rnn::LSTMState;

use super::card::CanaryLm;
use super::lm::{CharLm, HostState};
use super::secrets::{Canary, CanaryFormat};
use crate::error::{CoreError, CoreResult};

/// Ten digit costs in bits (`-log2 Pr(digit | context, filling so far)`), digit `d` at index `d`.
pub type DigitBits = [f32; 10];

/// A model that scores the digits of a slot after a context.
pub trait SlotModel: Sync {
    /// States of a batch of partial fillings, one row each, on the model's device.
    type Batch;
    /// What a search node keeps of its parent's computation.
    type Memo: Send + Sync;

    /// The context of `prefix` (how a canary line starts) as a one-row batch, and the costs of
    /// the slot's first digit.
    fn start(&self, prefix: &str) -> CoreResult<(Self::Batch, DigitBits)>;

    /// Rows per forward step when enumerating from `root` (bounded by memory).
    fn block_rows(&self, root: &Self::Batch) -> usize;

    /// Row `parents[i]` of `batch` continued by digit `digits[i]`, for every `i`: the new batch
    /// (row `i` is that continuation) and each new row's next-digit costs.
    fn extend(
        &self,
        batch: &Self::Batch,
        parents: &[u32],
        digits: &[u8],
    ) -> CoreResult<(Self::Batch, Vec<DigitBits>)>;

    /// What the root's children keep (the context's state).
    fn root_memo(&self, root: &Self::Batch) -> CoreResult<Self::Memo>;

    /// Search expansions: for each node, given its parent's memo and its (non-empty) filling,
    /// the node's memo and its next-digit costs. `root` is [`Self::start`]'s batch.
    fn expand(
        &self,
        root: &Self::Batch,
        nodes: &[(&Self::Memo, &[u8])],
    ) -> CoreResult<Vec<(Self::Memo, DigitBits)>>;

    /// The cost in nats of the context's predicted tokens (all but the first) and how many they
    /// are (TF Privacy's mean per-token cross-entropy over the whole canary needs it).
    fn prefix_nats(&self, prefix: &str) -> CoreResult<(f64, usize)>;
}

/// What is measured on a model: its canary formats and the secrets to test (from its card, or
/// from the command line for a model rote did not train).
#[derive(Clone, Debug, PartialEq)]
pub struct CanarySet {
    /// Model id (the report's name).
    pub id: String,
    /// Formats.
    pub formats: Vec<CanaryFormat>,
    /// Secrets, with their insertion counts (0 also when unknown).
    pub canaries: Vec<Canary>,
}

impl CanarySet {
    /// Checks the formats and that every canary names one and fills its slot.
    pub fn validate(&self) -> CoreResult<()> {
        for f in &self.formats {
            f.validate()?;
        }
        for c in &self.canaries {
            let f = self
                .formats
                .get(c.format)
                .ok_or_else(|| CoreError::Invalid(format!("secret {} names a missing format", c.secret)))?;
            if c.secret.len() != f.digits || !c.secret.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CoreError::Invalid(format!(
                    "secret '{}' is not {} digits (format '{}')",
                    c.secret, f.digits, f.prefix
                )));
            }
        }
        Ok(())
    }
}

/// The ten digits' columns of log-probabilities `(n, vocab)` (natural log), as bits.
pub fn bits_of(log_probs: &Tensor, digit_ids: &Tensor) -> CoreResult<Vec<DigitBits>> {
    let lp = log_probs.index_select(digit_ids, 1)?;
    let bits = (lp * (-std::f64::consts::LOG2_E))?.to_dtype(DType::F32)?;
    bits.to_vec2::<f32>()?
        .into_iter()
        .map(|row| {
            <DigitBits>::try_from(row.as_slice())
                .map_err(|_| CoreError::Invalid("digit costs: expected ten columns".into()))
        })
        .collect()
}

impl CanaryLm {
    /// The card's formats and canaries.
    pub fn canary_set(&self) -> CanarySet {
        CanarySet {
            id: self.card.id.clone(),
            formats: self.card.formats.clone(),
            canaries: self.card.canaries.clone(),
        }
    }

    fn digit_tensor(&self) -> CoreResult<Tensor> {
        Ok(Tensor::new(&self.card.digit_ids()?[..], &self.device)?)
    }

    fn costs(&self, state: &LSTMState) -> CoreResult<Vec<DigitBits>> {
        bits_of(&self.net.next_log_probs(state)?, &self.digit_tensor()?)
    }

    fn feed(&self, state: &LSTMState, digits: impl Iterator<Item = u8>) -> CoreResult<LSTMState> {
        let ids = self.card.digit_ids()?;
        let input: Vec<u32> = digits.map(|d| ids[usize::from(d.min(9))]).collect();
        self.net.step(&Tensor::new(input, &self.device)?, state)
    }
}

/// The character LSTM: a line break then the prefix, one character per step; the state of a
/// row is its `(h, c)`.
impl SlotModel for CanaryLm {
    type Batch = LSTMState;
    type Memo = HostState;

    fn start(&self, prefix: &str) -> CoreResult<(LSTMState, DigitBits)> {
        let ids = self.card.encode(&format!("\n{prefix}"))?;
        let (state, _) = self.net.run_prefix(&ids, &self.device)?;
        let first = self.costs(&state)?.pop().unwrap_or([f32::INFINITY; 10]);
        Ok((state, first))
    }

    fn block_rows(&self, _root: &LSTMState) -> usize {
        super::score::BLOCK
    }

    fn extend(
        &self,
        batch: &LSTMState,
        parents: &[u32],
        digits: &[u8],
    ) -> CoreResult<(LSTMState, Vec<DigitBits>)> {
        let rows = Tensor::new(parents, &self.device)?;
        let parent = LSTMState::new(
            batch.h().index_select(&rows, 0)?,
            batch.c().index_select(&rows, 0)?,
        );
        let state = self.feed(&parent, digits.iter().copied())?;
        let costs = self.costs(&state)?;
        Ok((state, costs))
    }

    fn root_memo(&self, root: &LSTMState) -> CoreResult<HostState> {
        CharLm::state_rows(root)?
            .pop()
            .ok_or_else(|| CoreError::Invalid("empty LSTM state".into()))
    }

    fn expand(
        &self,
        _root: &LSTMState,
        nodes: &[(&HostState, &[u8])],
    ) -> CoreResult<Vec<(HostState, DigitBits)>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<&HostState> = nodes.iter().map(|(m, _)| *m).collect();
        let base = self.net.state_from_rows(&rows, &self.device)?;
        let state = self.feed(&base, nodes.iter().map(|(_, f)| f.last().copied().unwrap_or(0)))?;
        let costs = self.costs(&state)?;
        Ok(CharLm::state_rows(&state)?.into_iter().zip(costs).collect())
    }

    fn prefix_nats(&self, prefix: &str) -> CoreResult<(f64, usize)> {
        let ids = self.card.encode(&format!("\n{prefix}"))?;
        let (_, lps) = self.net.run_prefix(&ids, &self.device)?;
        Ok((-lps.iter().sum::<f64>(), lps.len()))
    }
}
