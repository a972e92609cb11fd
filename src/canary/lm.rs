//! The character language model: embedding, one LSTM layer (candle-nn's, PyTorch's gate layout)
//! and a linear read-out over the vocabulary. Training unrolls it over windows of the text;
//! scoring steps it one character at a time for many candidates at once, so the digit tree of the
//! exact rank and the search can share every prefix's state.

use candle_core::{D, DType, Device, IndexOp as _, Tensor};
use candle_nn::rnn::{LSTMConfig, LSTMState, RNN as _};
use candle_nn::{Embedding, LSTM, Linear, Module as _, VarBuilder, VarMap};

use crate::error::{CoreError, CoreResult};

/// Layer sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LmArch {
    /// Characters in the vocabulary.
    pub vocab: usize,
    /// Embedding width.
    pub embed: usize,
    /// LSTM hidden units.
    pub hidden: usize,
}

impl crate::model::limits::Architecture for LmArch {
    fn kind(&self) -> &'static str {
        "character LM"
    }

    fn check_sizes(&self) -> Result<(), String> {
        use crate::model::limits::{VOCAB, WIDTH, in_range};
        in_range("arch.vocab", self.vocab, VOCAB)?;
        in_range("arch.embed", self.embed, WIDTH)?;
        in_range("arch.hidden", self.hidden, WIDTH)
    }

    fn declare(&self, vb: VarBuilder<'_>) -> CoreResult<()> {
        CharLm::new(*self, vb).map(|_| ())
    }

    fn size_fields(&self) -> Vec<(String, usize)> {
        vec![
            ("arch.hidden".into(), self.hidden),
            ("arch.embed".into(), self.embed),
            ("arch.vocab".into(), self.vocab),
        ]
    }

    fn with_size(&self, field: &str, value: usize) -> Option<Self> {
        let mut a = *self;
        *match field {
            "arch.hidden" => &mut a.hidden,
            "arch.embed" => &mut a.embed,
            "arch.vocab" => &mut a.vocab,
            _ => return None,
        } = value;
        Some(a)
    }
}

/// The network.
pub struct CharLm {
    embed: Embedding,
    lstm: LSTM,
    out: Linear,
    /// Sizes.
    pub arch: LmArch,
}

/// A batch of LSTM states as host rows (h then c, each `hidden` wide), for searches that keep
/// states in a queue.
pub type HostState = Vec<f32>;

impl CharLm {
    /// Builds the layers from `vb` (parameter names `embed.weight`, `lstm.weight_ih_l0`, ...,
    /// `out.weight`, `out.bias`).
    pub fn new(arch: LmArch, vb: VarBuilder<'_>) -> CoreResult<Self> {
        if arch.vocab == 0 || arch.embed == 0 || arch.hidden == 0 {
            return Err(CoreError::Invalid(format!(
                "empty language model layers: {arch:?}"
            )));
        }
        let embed = candle_nn::embedding(arch.vocab, arch.embed, vb.pp("embed"))?;
        let lstm = candle_nn::lstm(arch.embed, arch.hidden, LSTMConfig::default(), vb.pp("lstm"))?;
        let out = candle_nn::linear(arch.hidden, arch.vocab, vb.pp("out"))?;
        Ok(Self {
            embed,
            lstm,
            out,
            arch,
        })
    }

    /// Seeded initialisation: PyTorch's defaults (LSTM weights and biases uniform in
    /// +-1/sqrt(hidden), read-out uniform in +-1/sqrt(fan_in)), the embedding uniform in +-1.
    pub fn init(varmap: &VarMap, arch: LmArch, seed: u64) -> CoreResult<()> {
        crate::model::seeded_init(varmap, seed)?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
        for (name, var) in data.iter() {
            if name.starts_with("lstm.") {
                crate::model::seeded_uniform(var, seed, name, 1.0 / (arch.hidden as f64).sqrt())?;
            } else if name.starts_with("embed.") {
                crate::model::seeded_uniform(var, seed, name, 1.0)?;
            }
        }
        Ok(())
    }

    /// Logits `(B, T, vocab)` for the ids `(B, T)` from a zero state.
    pub fn forward_seq(&self, ids: &Tensor) -> CoreResult<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self.embed.forward(ids)?;
        let states = self.lstm.seq(&x)?;
        let h = self.lstm.states_to_tensor(&states)?; // (B, T, H)
        let logits = self.out.forward(&h.reshape((b * t, self.arch.hidden))?)?;
        Ok(logits.reshape((b, t, self.arch.vocab))?)
    }

    /// Zero states for `n` rows.
    pub fn zero_state(&self, n: usize) -> CoreResult<LSTMState> {
        Ok(self.lstm.zero_state(n)?)
    }

    /// Feeds one id per row.
    pub fn step(&self, ids: &Tensor, state: &LSTMState) -> CoreResult<LSTMState> {
        let x = self.embed.forward(ids)?;
        Ok(self.lstm.step(&x, state)?)
    }

    /// Log-probabilities (natural log) of the next character for every row: `(n, vocab)`.
    pub fn next_log_probs(&self, state: &LSTMState) -> CoreResult<Tensor> {
        let logits = self.out.forward(state.h())?;
        Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
    }

    /// The state after feeding `ids` to one row from a zero state, and the natural-log
    /// probability of each id after the first given the ones before it.
    pub fn run_prefix(&self, ids: &[u32], device: &Device) -> CoreResult<(LSTMState, Vec<f64>)> {
        let mut state = self.zero_state(1)?;
        let mut lps = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if i > 0 {
                let lp = self.next_log_probs(&state)?;
                lps.push(f64::from(lp.i((0, id as usize))?.to_scalar::<f32>()?));
            }
            let t = Tensor::new(&[id], device)?;
            state = self.step(&t, &state)?;
        }
        Ok((state, lps))
    }

    /// Repeats a one-row state `n` times.
    pub fn repeat_state(state: &LSTMState, n: usize) -> CoreResult<LSTMState> {
        Ok(LSTMState::new(
            state.h().repeat((n, 1))?.contiguous()?,
            state.c().repeat((n, 1))?.contiguous()?,
        ))
    }

    /// Rows of a state as host vectors (h then c).
    pub fn state_rows(state: &LSTMState) -> CoreResult<Vec<HostState>> {
        let h = state.h().to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let c = state.c().to_dtype(DType::F32)?.to_vec2::<f32>()?;
        Ok(h.into_iter()
            .zip(c)
            .map(|(mut a, b)| {
                a.extend(b);
                a
            })
            .collect())
    }

    /// A device state from host rows.
    pub fn state_from_rows(&self, rows: &[&HostState], device: &Device) -> CoreResult<LSTMState> {
        let hd = self.arch.hidden;
        let n = rows.len();
        let mut h = Vec::with_capacity(n * hd);
        let mut c = Vec::with_capacity(n * hd);
        for r in rows {
            if r.len() != 2 * hd {
                return Err(CoreError::Invalid("LSTM state of the wrong width".into()));
            }
            h.extend_from_slice(&r[..hd]);
            c.extend_from_slice(&r[hd..]);
        }
        Ok(LSTMState::new(
            Tensor::from_vec(h, (n, hd), device)?,
            Tensor::from_vec(c, (n, hd), device)?,
        ))
    }
}
