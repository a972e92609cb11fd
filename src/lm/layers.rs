//! What the transformer families share: the key/value cache, causal attention over cached keys,
//! rotary position embeddings (the "rotate half" form of GPT-NeoX and Llama, optionally on only
//! the first dimensions of each head) and the activation functions named by `config.json`.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::error::{CoreError, CoreResult};

/// Keys and values `(B, H_kv, S, D)` of every layer for the tokens seen so far.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            len: 0,
        }
    }

    /// Tokens already in the cache (the position of the next one).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been seen yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k`, `v` `(B, H_kv, T, D)` to layer `layer` and returns all keys and values so far.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> CoreResult<(Tensor, Tensor)> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| CoreError::Invalid(format!("cache has no layer {layer}")))?;
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Records that `t` more tokens went through every layer.
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// A cache holding rows `rows` (u32 indices, repeats allowed) of this one's batch: one
    /// context run once and continued along many branches (the Secret Sharer's digit tree).
    pub fn select_rows(&self, rows: &Tensor) -> CoreResult<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((k.index_select(rows, 0)?, v.index_select(rows, 0)?))),
                None => Ok(None),
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: self.len,
        })
    }

    /// Bytes of the keys and values held (all rows, all layers).
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| {
                k.elem_count() * k.dtype().size_in_bytes() + v.elem_count() * v.dtype().size_in_bytes()
            })
            .sum()
    }
}

/// The additive causal mask `(T, S)` for `T` queries at positions `offset..offset+T` over keys at
/// `0..S` (`S = offset + T`): `-inf` where the key comes after the query. `None` for one query,
/// which sees every key.
pub(crate) fn causal_mask(t: usize, offset: usize, device: &Device) -> CoreResult<Option<Tensor>> {
    if t <= 1 {
        return Ok(None);
    }
    let s = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..s).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Some(Tensor::from_vec(mask, (t, s), device)?))
}

/// Scaled dot-product attention of queries `q` `(B, H, T, D)` over keys and values
/// `(B, H_kv, S, D)` with the [`causal_mask`] `mask`. `H` must be a multiple of `H_kv` (grouped
/// heads). Returns `(B, T, H * D)`.
pub(crate) fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> CoreResult<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let h_kv = k.dim(1)?;
    let (k, v) = if h_kv == h {
        (k.clone(), v.clone())
    } else {
        (repeat_kv(k, h / h_kv)?, repeat_kv(v, h / h_kv)?)
    };
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let p = super::cpu_kernels::softmax_last_dim(&scores)?;
    let out = p.matmul(&v.contiguous()?)?;
    Ok(out.transpose(1, 2)?.reshape((b, t, h * d))?)
}

/// `(B, H_kv, S, D)` -> `(B, H_kv * n_rep, S, D)`, each key head repeated for its query group.
fn repeat_kv(x: &Tensor, n_rep: usize) -> CoreResult<Tensor> {
    let (b, h_kv, s, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, h_kv, n_rep, s, d))?
        .reshape((b, h_kv * n_rep, s, d))?)
}

/// Rotary position embedding on the first `rot_dim` dimensions of each head.
#[derive(Debug, Clone)]
pub(crate) struct Rotary {
    inv_freq: Vec<f32>,
    rot_dim: usize,
}

impl Rotary {
    /// Frequencies `base^(-2i/rot_dim)` as transformers computes them.
    pub(crate) fn new(rot_dim: usize, base: f64) -> Self {
        let inv_freq = (0..rot_dim / 2)
            .map(|i| (1.0 / base.powf((2 * i) as f64 / rot_dim as f64)) as f32)
            .collect();
        Self { inv_freq, rot_dim }
    }

    /// The cosines and sines `(T, rot_dim / 2)` for positions `offset..offset+T`.
    pub(crate) fn cos_sin(&self, t: usize, offset: usize, device: &Device) -> CoreResult<(Tensor, Tensor)> {
        let half = self.rot_dim / 2;
        let freqs: Vec<f32> = (0..t)
            .flat_map(|p| {
                let pos = (offset + p) as f32;
                self.inv_freq.iter().map(move |f| pos * f)
            })
            .collect();
        let freqs = Tensor::from_vec(freqs, (t, half), device)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }

    /// Rotates the first `rot_dim` dimensions of `x` `(B, H, T, D)` by [`Self::cos_sin`]'s angles.
    pub(crate) fn apply(&self, x: &Tensor, (cos, sin): &(Tensor, Tensor)) -> CoreResult<Tensor> {
        let d = x.dim(3)?;
        if self.rot_dim == 0 {
            return Ok(x.clone());
        }
        if self.rot_dim == d {
            return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
        }
        let rot = x.narrow(D::Minus1, 0, self.rot_dim)?.contiguous()?;
        let pass = x.narrow(D::Minus1, self.rot_dim, d - self.rot_dim)?;
        let rot = candle_nn::rotary_emb::rope(&rot, cos, sin)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}

/// A hidden-layer activation as `config.json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// Exact GELU (`gelu`).
    GeluErf,
    /// SiLU / swish.
    Silu,
    /// ReLU.
    Relu,
}

impl Act {
    /// Parses a transformers activation name; `None` for one rote does not implement.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "gelu" => Self::GeluErf,
            "silu" | "swish" => Self::Silu,
            "relu" => Self::Relu,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, x: &Tensor) -> CoreResult<Tensor> {
        Ok(match self {
            // Vectorised on the CPU when no gradient is wanted (`cpu_kernels`).
            Self::GeluTanh => super::cpu_kernels::gelu_tanh(x)?,
            Self::GeluErf => x.gelu_erf()?,
            Self::Silu => super::cpu_kernels::silu(x)?,
            Self::Relu => x.relu()?,
        })
    }
}

/// Token ids `(B, T)` checked to be u32 and on `device`.
pub(crate) fn check_ids(ids: &Tensor, device: &Device) -> CoreResult<(usize, usize)> {
    if ids.dtype() != DType::U32 {
        return Err(CoreError::Invalid(format!(
            "token ids must be u32, got {:?}",
            ids.dtype()
        )));
    }
    if !ids.device().same_device(device) {
        return Err(CoreError::Invalid(
            "token ids are on another device than the model".into(),
        ));
    }
    Ok(ids.dims2()?)
}

/// A linear layer `n_in -> n_out` read from `vb`, with or without a bias.
pub(crate) fn linear(
    n_in: usize,
    n_out: usize,
    bias: bool,
    vb: VarBuilder<'_>,
) -> candle_core::Result<Linear> {
    if bias {
        candle_nn::linear(n_in, n_out, vb)
    } else {
        candle_nn::linear_no_bias(n_in, n_out, vb)
    }
}
