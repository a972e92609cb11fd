//! GPT-NeoX (Black et al. 2022), the architecture of Pythia (Biderman et al. 2023), as
//! transformers' `GPTNeoXForCausalLM` computes it.
//!
//! Quirks: the fused `attention.query_key_value` output is laid out per head, `[q_h, k_h, v_h]`
//! for each head h in turn (not all queries, then all keys); rotary embeddings turn only the first
//! `rotary_pct` (transformers 5: `rope_parameters.partial_rotary_factor`) of each head's
//! dimensions; with `use_parallel_residual` a block adds attention and MLP of the same input
//! (`x + attn(ln1 x) + mlp(ln2 x)`); the output head `embed_out` is untied.

use std::path::Path;

use candle_core::{Device, Module as _, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde_json::Value;

use super::hf::{act, dim, flag, float, rope};
use super::layers::{Act, KvCache, Rotary, causal_attention, causal_mask, check_ids, linear};
use super::{CausalLm, Trace};
use crate::error::{CoreError, CoreResult};

/// The fields of a GPT-NeoX `config.json` rote uses.
#[derive(Debug, Clone)]
pub struct NeoXConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width.
    pub hidden_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Dimensions of each head that rotary embeddings turn.
    pub rotary_ndims: usize,
    rope_base: f64,
    eps: f64,
    act: Act,
    parallel_residual: bool,
    bias: bool,
    tied: bool,
}

impl NeoXConfig {
    /// Reads and checks the GPT-NeoX fields of `config.json` (`path` names it in errors).
    pub(crate) fn from_json(v: &Value, path: &Path) -> CoreResult<Self> {
        let hidden_size = dim(v, "hidden_size", None, 1, 65_536, path)?;
        let heads = dim(v, "num_attention_heads", None, 1, 1024, path)?;
        if hidden_size % heads != 0 {
            return Err(CoreError::format(
                path,
                format!("hidden_size {hidden_size} is not a multiple of num_attention_heads {heads}"),
            ));
        }
        let (rope_base, pct) = rope(v, 10_000.0, 0.25, path)?;
        let head_size = hidden_size / heads;
        let rotary_ndims = (head_size as f64 * pct) as usize;
        if !rotary_ndims.is_multiple_of(2) {
            return Err(CoreError::format(
                path,
                format!("{rotary_ndims} rotary dimensions per head is odd"),
            ));
        }
        Ok(Self {
            vocab_size: dim(v, "vocab_size", None, 1, 4_194_304, path)?,
            hidden_size,
            num_hidden_layers: dim(v, "num_hidden_layers", None, 1, 1024, path)?,
            num_attention_heads: heads,
            intermediate_size: dim(v, "intermediate_size", Some(4 * hidden_size), 1, 1_048_576, path)?,
            max_position_embeddings: dim(v, "max_position_embeddings", Some(2048), 1, 16_777_216, path)?,
            rotary_ndims,
            rope_base,
            eps: float(v, "layer_norm_eps", 1e-5, path)?,
            act: act(v, "hidden_act", "gelu", path)?,
            parallel_residual: flag(v, "use_parallel_residual", true, path)?,
            bias: flag(v, "attention_bias", true, path)?,
            tied: flag(v, "tie_word_embeddings", false, path)?,
        })
    }

    /// Every tensor read, with its shape.
    pub(crate) fn expected(&self, has: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<usize>)> {
        let (c, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let mut out = vec![
            ("gpt_neox.embed_in.weight".to_string(), vec![v, c]),
            ("gpt_neox.final_layer_norm.weight".into(), vec![c]),
            ("gpt_neox.final_layer_norm.bias".into(), vec![c]),
        ];
        for l in 0..self.num_hidden_layers {
            let h = format!("gpt_neox.layers.{l}.");
            let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{h}{name}"), shape));
            for ln in ["input_layernorm", "post_attention_layernorm"] {
                add(&format!("{ln}.weight"), vec![c]);
                add(&format!("{ln}.bias"), vec![c]);
            }
            add("attention.query_key_value.weight", vec![3 * c, c]);
            add("attention.dense.weight", vec![c, c]);
            if self.bias {
                add("attention.query_key_value.bias", vec![3 * c]);
                add("attention.dense.bias", vec![c]);
            }
            add("mlp.dense_h_to_4h.weight", vec![i, c]);
            add("mlp.dense_h_to_4h.bias", vec![i]);
            add("mlp.dense_4h_to_h.weight", vec![c, i]);
            add("mlp.dense_4h_to_h.bias", vec![c]);
        }
        if !self.tied || has("embed_out.weight") {
            out.push(("embed_out.weight".into(), vec![v, c]));
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    ln_2: LayerNorm,
    qkv: Linear,
    dense: Linear,
    fc_in: Linear,
    fc_out: Linear,
}

/// GPT-NeoX with all positions' logits.
#[derive(Debug, Clone)]
pub struct NeoX {
    cfg: NeoXConfig,
    embed: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    rotary: Rotary,
    device: Device,
}

impl NeoX {
    /// Builds the model from weights already checked against [`NeoXConfig::expected`].
    pub(crate) fn new(
        cfg: &NeoXConfig,
        vb: VarBuilder<'_>,
        has: &dyn Fn(&str) -> bool,
    ) -> candle_core::Result<Self> {
        let (c, i) = (cfg.hidden_size, cfg.intermediate_size);
        let g = vb.pp("gpt_neox");
        let embed_w = g.get((cfg.vocab_size, c), "embed_in.weight")?;
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let b = g.pp(format!("layers.{l}"));
            blocks.push(Block {
                ln_1: candle_nn::layer_norm(c, cfg.eps, b.pp("input_layernorm"))?,
                ln_2: candle_nn::layer_norm(c, cfg.eps, b.pp("post_attention_layernorm"))?,
                qkv: linear(c, 3 * c, cfg.bias, b.pp("attention.query_key_value"))?,
                dense: linear(c, c, cfg.bias, b.pp("attention.dense"))?,
                fc_in: candle_nn::linear(c, i, b.pp("mlp.dense_h_to_4h"))?,
                fc_out: candle_nn::linear(i, c, b.pp("mlp.dense_4h_to_h"))?,
            });
        }
        let head_w = if !cfg.tied || has("embed_out.weight") {
            vb.get((cfg.vocab_size, c), "embed_out.weight")?
        } else {
            embed_w.clone()
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed: Embedding::new(embed_w, c),
            blocks,
            ln_f: candle_nn::layer_norm(c, cfg.eps, g.pp("final_layer_norm"))?,
            head: Linear::new(head_w, None),
            rotary: Rotary::new(cfg.rotary_ndims, cfg.rope_base),
            device: vb.device().clone(),
        })
    }
}

impl CausalLm for NeoX {
    fn model_type(&self) -> &str {
        "gpt_neox"
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
        let nh = self.cfg.num_attention_heads;
        let hd = self.cfg.hidden_size / nh;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut x = self.embed.forward(ids)?;
        let traced = trace.is_active();
        if traced {
            x = trace.residual(0, x)?;
        }
        let mask = causal_mask(t, offset, &self.device)?;
        let angles = self.rotary.cos_sin(t, offset, &self.device)?;
        for (l, blk) in self.blocks.iter().enumerate() {
            // (B, T, 3C) -> (B, H, T, 3D): q, k, v side by side within each head.
            let qkv = blk
                .qkv
                .forward(&blk.ln_1.forward(&x)?)?
                .reshape((b, t, nh, 3 * hd))?
                .transpose(1, 2)?;
            let q = self.rotary.apply(&qkv.narrow(3, 0, hd)?, &angles)?;
            let k = self.rotary.apply(&qkv.narrow(3, hd, hd)?, &angles)?;
            let v = qkv.narrow(3, 2 * hd, hd)?.contiguous()?;
            let (k, v) = cache.append(l, k.contiguous()?, v)?;
            let a = blk
                .dense
                .forward(&causal_attention(&q, &k, &v, mask.as_ref(), scale)?)?;
            let mlp_in = if self.cfg.parallel_residual {
                blk.ln_2.forward(&x)?
            } else {
                x = (x + &a)?;
                blk.ln_2.forward(&x)?
            };
            let mut h = self.cfg.act.apply(&blk.fc_in.forward(&mlp_in)?)?;
            if traced {
                h = trace.mlp(l, h)?;
            }
            let m = blk.fc_out.forward(&h)?;
            x = if self.cfg.parallel_residual {
                ((x + a)? + m)?
            } else {
                (x + m)?
            };
            if traced {
                x = trace.residual(l + 1, x)?;
            }
        }
        cache.advance(t);
        Ok(self.head.forward(&self.ln_f.forward(&x)?)?)
    }
}
