//! GPT-2 (Radford et al. 2019) as transformers' `GPT2LMHeadModel` computes it: learned token and
//! position embeddings, pre-LayerNorm blocks, fused q/k/v, tanh-GELU MLP, final LayerNorm and a
//! head tied to the token embedding.
//!
//! Weights use HF's `Conv1D`, stored `[in, out]` (`y = x W + b`), the transpose of `nn.Linear`.
//! Hub checkpoints name tensors `wte.weight`, `h.0.attn.c_attn.weight`, ...; `save_pretrained` of
//! the LM-head model prefixes them with `transformer.`: both are read. The attention-mask buffers
//! (`attn.bias`, `attn.masked_bias`) some files carry are ignored.

use std::path::Path;

use candle_core::{Device, Module as _, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde_json::Value;

use super::hf::{act, dim, flag, float};
use super::layers::{Act, KvCache, causal_attention, causal_mask, check_ids};
use super::{CausalLm, Trace};
use crate::error::{CoreError, CoreResult};

/// The fields of a GPT-2 `config.json` rote uses.
#[derive(Debug, Clone)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Positions in the learned position table.
    pub n_positions: usize,
    /// Width.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width (`n_inner`, default 4 n_embd).
    pub n_inner: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    act: Act,
    scale_attn_weights: bool,
    scale_by_layer: bool,
    tied: bool,
}

impl Gpt2Config {
    /// Reads and checks the GPT-2 fields of `config.json` (`path` names it in errors).
    pub(crate) fn from_json(v: &Value, path: &Path) -> CoreResult<Self> {
        let n_embd = dim(v, "n_embd", Some(768), 1, 65_536, path)?;
        let n_head = dim(v, "n_head", Some(12), 1, 1024, path)?;
        if n_embd % n_head != 0 {
            return Err(CoreError::format(
                path,
                format!("n_embd {n_embd} is not a multiple of n_head {n_head}"),
            ));
        }
        if flag(v, "reorder_and_upcast_attn", false, path)? {
            log::debug!("reorder_and_upcast_attn only changes precision; rote computes in f32");
        }
        Ok(Self {
            vocab_size: dim(v, "vocab_size", Some(50_257), 1, 4_194_304, path)?,
            n_positions: dim(v, "n_positions", Some(1024), 1, 1_048_576, path)?,
            n_embd,
            n_layer: dim(v, "n_layer", Some(12), 1, 1024, path)?,
            n_head,
            n_inner: dim(v, "n_inner", Some(4 * n_embd), 1, 1_048_576, path)?,
            eps: float(v, "layer_norm_epsilon", 1e-5, path)?,
            act: act(v, "activation_function", "gelu_new", path)?,
            scale_attn_weights: flag(v, "scale_attn_weights", true, path)?,
            scale_by_layer: flag(v, "scale_attn_by_inverse_layer_idx", false, path)?,
            tied: flag(v, "tie_word_embeddings", true, path)?,
        })
    }

    /// The configuration of a GPT-2 rote trains: `n_inner = 4 n_embd`, LayerNorm epsilon 1e-5,
    /// tanh-GELU, scaled attention, tied head (transformers' defaults).
    pub(crate) fn for_training(
        vocab_size: usize,
        n_positions: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
    ) -> Self {
        Self {
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: 4 * n_embd,
            eps: 1e-5,
            act: Act::GeluTanh,
            scale_attn_weights: true,
            scale_by_layer: false,
            tied: true,
        }
    }

    /// `config.json` as transformers' `GPT2Config.save_pretrained` writes it (dropout 0: rote
    /// trains without it), with `bos`/`eos` the end-of-text id.
    pub(crate) fn to_hf_json(&self, eos: u32) -> Value {
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": self.n_inner,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": self.eps,
            "initializer_range": 0.02,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "scale_attn_weights": self.scale_attn_weights,
            "scale_attn_by_inverse_layer_idx": self.scale_by_layer,
            "reorder_and_upcast_attn": false,
            "tie_word_embeddings": self.tied,
            "use_cache": true,
            "bos_token_id": eos,
            "eos_token_id": eos,
            "torch_dtype": "float32",
        })
    }

    fn prefix(has: &dyn Fn(&str) -> bool) -> &'static str {
        if has("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        }
    }

    /// Every tensor read, with its shape.
    pub(crate) fn expected(&self, has: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<usize>)> {
        let p = Self::prefix(has);
        let (c, i, v) = (self.n_embd, self.n_inner, self.vocab_size);
        let mut out = vec![
            (format!("{p}wte.weight"), vec![v, c]),
            (format!("{p}wpe.weight"), vec![self.n_positions, c]),
            (format!("{p}ln_f.weight"), vec![c]),
            (format!("{p}ln_f.bias"), vec![c]),
        ];
        for l in 0..self.n_layer {
            let h = format!("{p}h.{l}.");
            for (name, shape) in [
                ("ln_1.weight", vec![c]),
                ("ln_1.bias", vec![c]),
                ("attn.c_attn.weight", vec![c, 3 * c]),
                ("attn.c_attn.bias", vec![3 * c]),
                ("attn.c_proj.weight", vec![c, c]),
                ("attn.c_proj.bias", vec![c]),
                ("ln_2.weight", vec![c]),
                ("ln_2.bias", vec![c]),
                ("mlp.c_fc.weight", vec![c, i]),
                ("mlp.c_fc.bias", vec![i]),
                ("mlp.c_proj.weight", vec![i, c]),
                ("mlp.c_proj.bias", vec![c]),
            ] {
                out.push((format!("{h}{name}"), shape));
            }
        }
        if !self.tied || has("lm_head.weight") {
            out.push(("lm_head.weight".into(), vec![v, c]));
        }
        out
    }
}

/// A `Conv1D` weight `[in, out]` as a `Linear` (which stores `[out, in]`).
fn conv1d(n_in: usize, n_out: usize, vb: VarBuilder<'_>) -> candle_core::Result<Linear> {
    let w = vb.get((n_in, n_out), "weight")?;
    let b = vb.get(n_out, "bias")?;
    Ok(Linear::new(w.t()?, Some(b)))
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    scale: f64,
}

/// GPT-2 with all positions' logits.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    cfg: Gpt2Config,
    wte: Embedding,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    device: Device,
}

impl Gpt2 {
    /// Builds the model from weights already checked against [`Gpt2Config::expected`].
    pub(crate) fn new(
        cfg: &Gpt2Config,
        vb: VarBuilder<'_>,
        has: &dyn Fn(&str) -> bool,
    ) -> candle_core::Result<Self> {
        let (c, i) = (cfg.n_embd, cfg.n_inner);
        let root = vb.clone();
        let prefix = Gpt2Config::prefix(has);
        let vb = if prefix.is_empty() {
            vb
        } else {
            vb.pp("transformer")
        };
        let wte_w = vb.get((cfg.vocab_size, c), "wte.weight")?;
        let head_dim = c / cfg.n_head;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let b = vb.pp(format!("h.{l}"));
            let mut scale = if cfg.scale_attn_weights {
                1.0 / (head_dim as f64).sqrt()
            } else {
                1.0
            };
            if cfg.scale_by_layer {
                scale /= (l + 1) as f64;
            }
            blocks.push(Block {
                ln_1: candle_nn::layer_norm(c, cfg.eps, b.pp("ln_1"))?,
                c_attn: conv1d(c, 3 * c, b.pp("attn.c_attn"))?,
                c_proj: conv1d(c, c, b.pp("attn.c_proj"))?,
                ln_2: candle_nn::layer_norm(c, cfg.eps, b.pp("ln_2"))?,
                c_fc: conv1d(c, i, b.pp("mlp.c_fc"))?,
                mlp_proj: conv1d(i, c, b.pp("mlp.c_proj"))?,
                scale,
            });
        }
        let head_w = if !cfg.tied || has("lm_head.weight") {
            root.get((cfg.vocab_size, c), "lm_head.weight")?
        } else {
            wte_w.clone()
        };
        Ok(Self {
            cfg: cfg.clone(),
            wte: Embedding::new(wte_w, c),
            wpe: vb.get((cfg.n_positions, c), "wpe.weight")?,
            blocks,
            ln_f: candle_nn::layer_norm(c, cfg.eps, vb.pp("ln_f"))?,
            head: Linear::new(head_w, None),
            device: vb.device().clone(),
        })
    }
}

impl CausalLm for Gpt2 {
    fn model_type(&self) -> &str {
        "gpt2"
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.cfg.n_positions
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layer)
    }

    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        self.forward_impl(ids, cache, false, &mut Trace::none())
    }

    fn forward_traced(&self, ids: &Tensor, cache: &mut KvCache, trace: &mut Trace) -> CoreResult<Tensor> {
        self.forward_impl(ids, cache, false, trace)
    }
}

impl Gpt2 {
    /// Logits `(B, T, V)` of `ids` from an empty cache through ops that all have a backward pass
    /// (LayerNorm and softmax written out: candle's fused CPU kernels have none), for training.
    /// The same function as [`CausalLm::forward`] up to f32 rounding.
    pub(crate) fn forward_train(&self, ids: &Tensor) -> CoreResult<Tensor> {
        let mut cache = self.new_cache();
        self.forward_impl(ids, &mut cache, true, &mut Trace::none())
    }

    fn forward_impl(
        &self,
        ids: &Tensor,
        cache: &mut KvCache,
        diff: bool,
        trace: &mut Trace,
    ) -> CoreResult<Tensor> {
        let ln = |norm: &LayerNorm, x: &Tensor| -> CoreResult<Tensor> {
            if !diff {
                return Ok(norm.forward(x)?);
            }
            let bias = norm
                .bias()
                .ok_or_else(|| CoreError::Invalid("GPT-2 LayerNorm without a bias".into()))?;
            Ok(candle_nn::ops::layer_norm_slow(
                x,
                norm.weight(),
                bias,
                self.cfg.eps as f32,
            )?)
        };
        let (b, t) = check_ids(ids, &self.device)?;
        let offset = cache.len();
        if offset + t > self.cfg.n_positions {
            return Err(CoreError::Invalid(format!(
                "{} tokens are more than GPT-2's {} positions",
                offset + t,
                self.cfg.n_positions
            )));
        }
        let (c, nh) = (self.cfg.n_embd, self.cfg.n_head);
        let hd = c / nh;
        let pos = self.wpe.narrow(0, offset, t)?;
        let mut x = self.wte.forward(ids)?.broadcast_add(&pos)?;
        let traced = trace.is_active();
        if traced {
            x = trace.residual(0, x)?;
        }
        let mask = causal_mask(t, offset, &self.device)?;
        for (l, blk) in self.blocks.iter().enumerate() {
            let qkv = blk.c_attn.forward(&ln(&blk.ln_1, &x)?)?;
            let heads = |k: usize| -> CoreResult<Tensor> {
                Ok(qkv
                    .narrow(2, k * c, c)?
                    .reshape((b, t, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
            let (k, v) = cache.append(l, k, v)?;
            let a = if diff {
                attention_train(&q, &k, &v, mask.as_ref(), blk.scale)?
            } else {
                causal_attention(&q, &k, &v, mask.as_ref(), blk.scale)?
            };
            x = (x + blk.c_proj.forward(&a)?)?;
            let h = blk.c_fc.forward(&ln(&blk.ln_2, &x)?)?;
            let mut h = self.cfg.act.apply(&h)?;
            if traced {
                h = trace.mlp(l, h)?;
            }
            x = (&x + blk.mlp_proj.forward(&h)?)?;
            if traced {
                x = trace.residual(l + 1, x)?;
            }
        }
        cache.advance(t);
        Ok(self.head.forward(&ln(&self.ln_f, &x)?)?)
    }
}

/// [`causal_attention`] (equal heads) with the generic, differentiable softmax.
fn attention_train(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> CoreResult<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let p = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
    Ok(p.matmul(v)?.transpose(1, 2)?.reshape((b, t, h * d))?)
}
