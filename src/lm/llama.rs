//! Llama-style decoders (Touvron et al. 2023) as transformers' `LlamaForCausalLM` and
//! `Qwen2ForCausalLM` compute them; SmolLM2 is a Llama. RMSNorm before attention and MLP, rotary
//! embeddings on whole heads, grouped key/value heads (`num_key_value_heads` below
//! `num_attention_heads`), a gated SiLU MLP, and a head tied to the embedding or not.
//!
//! Differences between the two: Qwen2 always has q/k/v biases and never an `o_proj` bias; Llama
//! has biases on all four projections only with `attention_bias`, and on the MLP with `mlp_bias`.
//! Sliding-window attention (Qwen2 `use_sliding_window`) and scaled RoPE are refused.

use std::path::Path;

use candle_core::{Device, Module as _, Tensor};
use candle_nn::{Embedding, Linear, RmsNorm, VarBuilder};
use serde_json::Value;

use super::hf::{act, dim, flag, float, rope};
use super::layers::{Act, KvCache, Rotary, causal_attention, causal_mask, check_ids, linear};
use super::{CausalLm, Trace};
use crate::error::{CoreError, CoreResult};

/// The fields of a Llama or Qwen2 `config.json` rote uses.
#[derive(Debug, Clone)]
pub struct LlamaConfig {
    /// `llama` or `qwen2`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (a divisor of the query heads).
    pub num_key_value_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    rope_base: f64,
    eps: f64,
    act: Act,
    qkv_bias: bool,
    o_bias: bool,
    mlp_bias: bool,
    tied: bool,
}

impl LlamaConfig {
    /// Reads and checks the fields of `config.json` (`path` names it in errors).
    pub(crate) fn from_json(v: &Value, model_type: &str, path: &Path) -> CoreResult<Self> {
        let qwen = model_type == "qwen2";
        let hidden_size = dim(v, "hidden_size", None, 1, 65_536, path)?;
        let heads = dim(v, "num_attention_heads", None, 1, 1024, path)?;
        let kv_heads = dim(v, "num_key_value_heads", Some(heads), 1, 1024, path)?;
        if heads % kv_heads != 0 {
            return Err(CoreError::format(
                path,
                format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"),
            ));
        }
        let head_dim = dim(v, "head_dim", Some((hidden_size / heads).max(1)), 2, 4096, path)?;
        if !head_dim.is_multiple_of(2) {
            return Err(CoreError::format(
                path,
                format!("head_dim {head_dim} is odd (RoPE turns pairs)"),
            ));
        }
        if qwen && flag(v, "use_sliding_window", false, path)? {
            return Err(CoreError::format(
                path,
                "sliding-window attention (use_sliding_window) is not supported",
            ));
        }
        let (rope_base, pct) = rope(v, 10_000.0, 1.0, path)?;
        if pct < 1.0 {
            return Err(CoreError::format(
                path,
                "partial rotary embeddings are not supported for this model type",
            ));
        }
        let attention_bias = flag(v, "attention_bias", false, path)?;
        Ok(Self {
            model_type: model_type.to_string(),
            vocab_size: dim(v, "vocab_size", None, 1, 4_194_304, path)?,
            hidden_size,
            intermediate_size: dim(v, "intermediate_size", None, 1, 1_048_576, path)?,
            num_hidden_layers: dim(v, "num_hidden_layers", None, 1, 1024, path)?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            max_position_embeddings: dim(v, "max_position_embeddings", Some(2048), 1, 16_777_216, path)?,
            rope_base,
            eps: float(v, "rms_norm_eps", 1e-6, path)?,
            act: act(v, "hidden_act", "silu", path)?,
            qkv_bias: qwen || attention_bias,
            o_bias: !qwen && attention_bias,
            mlp_bias: !qwen && flag(v, "mlp_bias", false, path)?,
            tied: flag(v, "tie_word_embeddings", false, path)?,
        })
    }

    /// Every tensor read, with its shape.
    pub(crate) fn expected(&self, has: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<usize>)> {
        let (c, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut out = vec![
            ("model.embed_tokens.weight".to_string(), vec![v, c]),
            ("model.norm.weight".into(), vec![c]),
        ];
        for l in 0..self.num_hidden_layers {
            let h = format!("model.layers.{l}.");
            let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{h}{name}"), shape));
            add("input_layernorm.weight", vec![c]);
            add("post_attention_layernorm.weight", vec![c]);
            for (name, n_out, n_in, bias) in [
                ("self_attn.q_proj", q, c, self.qkv_bias),
                ("self_attn.k_proj", kv, c, self.qkv_bias),
                ("self_attn.v_proj", kv, c, self.qkv_bias),
                ("self_attn.o_proj", c, q, self.o_bias),
                ("mlp.gate_proj", i, c, self.mlp_bias),
                ("mlp.up_proj", i, c, self.mlp_bias),
                ("mlp.down_proj", c, i, self.mlp_bias),
            ] {
                add(&format!("{name}.weight"), vec![n_out, n_in]);
                if bias {
                    add(&format!("{name}.bias"), vec![n_out]);
                }
            }
        }
        if !self.tied || has("lm_head.weight") {
            out.push(("lm_head.weight".into(), vec![v, c]));
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: RmsNorm,
    ln_2: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-style decoder with all positions' logits.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Linear,
    rotary: Rotary,
    device: Device,
}

impl Llama {
    /// Builds the model from weights already checked against [`LlamaConfig::expected`].
    pub(crate) fn new(
        cfg: &LlamaConfig,
        vb: VarBuilder<'_>,
        has: &dyn Fn(&str) -> bool,
    ) -> candle_core::Result<Self> {
        let (c, i) = (cfg.hidden_size, cfg.intermediate_size);
        let q = cfg.num_attention_heads * cfg.head_dim;
        let kv = cfg.num_key_value_heads * cfg.head_dim;
        let m = vb.pp("model");
        let embed_w = m.get((cfg.vocab_size, c), "embed_tokens.weight")?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let b = m.pp(format!("layers.{l}"));
            blocks.push(Block {
                ln_1: candle_nn::rms_norm(c, cfg.eps, b.pp("input_layernorm"))?,
                ln_2: candle_nn::rms_norm(c, cfg.eps, b.pp("post_attention_layernorm"))?,
                q: linear(c, q, cfg.qkv_bias, b.pp("self_attn.q_proj"))?,
                k: linear(c, kv, cfg.qkv_bias, b.pp("self_attn.k_proj"))?,
                v: linear(c, kv, cfg.qkv_bias, b.pp("self_attn.v_proj"))?,
                o: linear(q, c, cfg.o_bias, b.pp("self_attn.o_proj"))?,
                gate: linear(c, i, cfg.mlp_bias, b.pp("mlp.gate_proj"))?,
                up: linear(c, i, cfg.mlp_bias, b.pp("mlp.up_proj"))?,
                down: linear(i, c, cfg.mlp_bias, b.pp("mlp.down_proj"))?,
            });
        }
        let head_w = if !cfg.tied || has("lm_head.weight") {
            vb.get((cfg.vocab_size, c), "lm_head.weight")?
        } else {
            embed_w.clone()
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, c),
            blocks,
            norm: candle_nn::rms_norm(c, cfg.eps, m.pp("norm"))?,
            head: Linear::new(head_w, None),
            rotary: Rotary::new(cfg.head_dim, cfg.rope_base),
            device: vb.device().clone(),
        })
    }
}

impl CausalLm for Llama {
    fn model_type(&self) -> &str {
        &self.cfg.model_type
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_hidden_layers)
    }

    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        self.forward_traced(ids, cache, &mut Trace::none())
    }

    fn forward_traced(&self, ids: &Tensor, cache: &mut KvCache, trace: &mut Trace) -> CoreResult<Tensor> {
        let (b, t) = check_ids(ids, &self.device)?;
        let offset = cache.len();
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim,
        );
        let scale = 1.0 / (hd as f64).sqrt();
        let mut x = self.embed.forward(ids)?;
        let traced = trace.is_active();
        if traced {
            x = trace.residual(0, x)?;
        }
        let mask = causal_mask(t, offset, &self.device)?;
        let angles = self.rotary.cos_sin(t, offset, &self.device)?;
        for (l, blk) in self.blocks.iter().enumerate() {
            let h = blk.ln_1.forward(&x)?;
            let heads = |lin: &Linear, n: usize| -> CoreResult<Tensor> {
                Ok(lin
                    .forward(&h)?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = self.rotary.apply(&heads(&blk.q, nh)?, &angles)?;
            let k = self.rotary.apply(&heads(&blk.k, nkv)?, &angles)?;
            let v = heads(&blk.v, nkv)?;
            let (k, v) = cache.append(l, k, v)?;
            x = (&x
                + blk
                    .o
                    .forward(&causal_attention(&q, &k, &v, mask.as_ref(), scale)?)?)?;
            let h = blk.ln_2.forward(&x)?;
            let g = self.cfg.act.apply(&blk.gate.forward(&h)?)?;
            let mut h = (g * blk.up.forward(&h)?)?;
            if traced {
                h = trace.mlp(l, h)?;
            }
            x = (&x + blk.down.forward(&h)?)?;
            if traced {
                x = trace.residual(l + 1, x)?;
            }
        }
        cache.advance(t);
        Ok(self.head.forward(&self.norm.forward(&x)?)?)
    }
}
