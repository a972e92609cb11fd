//! Reading and editing a transformer's activations during a forward pass, for the activation
//! probes of [`super::probe`] (spec 11 §B).
//!
//! Every family's forward pass calls [`Trace::residual`] on the residual stream after the
//! embeddings (layer 0) and after each block (layer `l + 1` for block `l`), and [`Trace::mlp`] on
//! each block's MLP hidden activations after the nonlinearity (layer `l` for block `l`; for gated
//! MLPs, the product `act(gate) · up` that the down projection reads). A trace records them, edits
//! them, or does neither (the plain forward pass).
//!
//! The edit is the projection ablation of spec 11 §B.4: `h ← h − α ((h − c)·ŵ) ŵ` with `ŵ` a unit
//! direction and `c` a centre (0 for the spec's plain projection; the class-0 mean to clamp the
//! component to what non-memorized tokens show). [`Edited`] wraps a model so that every measure
//! written against [`CausalLm`] (greedy extraction, perplexity) runs on the edited network.

use candle_core::{Device, Tensor};

use super::{CausalLm, KvCache};
use crate::error::{CoreError, CoreResult};

/// Where in a block an activation is read or edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// The residual stream (width d): layer 0 after the embeddings, layer `l + 1` after block `l`.
    Residual,
    /// The MLP hidden activations after the nonlinearity (width of the MLP) of block `l`.
    Mlp,
}

impl Site {
    /// The name used in reports (`residual`, `mlp`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Residual => "residual",
            Self::Mlp => "mlp",
        }
    }
}

/// A projection ablation at one layer: `h ← h − α ((h − c)·ŵ) ŵ` at every position.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// The site.
    pub site: Site,
    /// The layer (as [`Site`] counts them).
    pub layer: usize,
    /// The direction (normalised to unit length when the edit is applied).
    pub direction: Vec<f32>,
    /// The component's value the edit moves towards (0: remove the component).
    pub center: f32,
    /// Strength α in [0, 1] (1 removes the component entirely).
    pub alpha: f32,
}

/// An edit with its direction as a tensor on the model's device.
struct ReadyEdit {
    site: Site,
    layer: usize,
    unit: Tensor,
    center: f64,
    alpha: f64,
}

/// What a forward pass records and edits.
#[derive(Default)]
pub struct Trace {
    record: bool,
    /// Residual stream `(B, T, d)` per layer (0 = embeddings), when recording.
    pub residual: Vec<Tensor>,
    /// MLP activations `(B, T, d_mlp)` per block, when recording.
    pub mlp: Vec<Tensor>,
    edits: Vec<ReadyEdit>,
}

impl Trace {
    /// A trace that neither records nor edits (the plain forward pass).
    pub fn none() -> Self {
        Self::default()
    }

    /// A trace that records every layer's residual stream and MLP activations.
    pub fn recording() -> Self {
        Self {
            record: true,
            ..Self::default()
        }
    }

    /// A trace that applies `edits` (directions of zero length are refused).
    pub fn editing(edits: &[Edit], device: &Device) -> CoreResult<Self> {
        let ready = edits
            .iter()
            .map(|e| {
                let norm = e.direction.iter().map(|v| v * v).sum::<f32>().sqrt();
                if !(norm.is_finite() && norm > 0.0) {
                    return Err(CoreError::Invalid(format!(
                        "the {} edit at layer {} has no direction",
                        e.site.name(),
                        e.layer
                    )));
                }
                let unit: Vec<f32> = e.direction.iter().map(|v| v / norm).collect();
                Ok(ReadyEdit {
                    site: e.site,
                    layer: e.layer,
                    unit: Tensor::from_vec(unit, (e.direction.len(), 1), device)?,
                    center: f64::from(e.center),
                    alpha: f64::from(e.alpha),
                })
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Self {
            edits: ready,
            ..Self::default()
        })
    }

    /// Whether this trace does anything (a plain forward pass can skip the hooks).
    pub fn is_active(&self) -> bool {
        self.record || !self.edits.is_empty()
    }

    /// The residual stream at `layer`: edited, then recorded.
    pub(crate) fn residual(&mut self, layer: usize, x: Tensor) -> CoreResult<Tensor> {
        self.hook(Site::Residual, layer, x)
    }

    /// Block `layer`'s MLP activations: edited, then recorded.
    pub(crate) fn mlp(&mut self, layer: usize, h: Tensor) -> CoreResult<Tensor> {
        self.hook(Site::Mlp, layer, h)
    }

    fn hook(&mut self, site: Site, layer: usize, mut x: Tensor) -> CoreResult<Tensor> {
        for e in self.edits.iter().filter(|e| e.site == site && e.layer == layer) {
            let width = x.dim(candle_core::D::Minus1)?;
            if e.unit.dim(0)? != width {
                return Err(CoreError::Invalid(format!(
                    "the {} edit at layer {layer} has {} dimensions; the activations have {width}",
                    site.name(),
                    e.unit.dim(0)?
                )));
            }
            // (B, T, d) · (d, 1) -> (B, T, 1): the component along the direction.
            let component = x.broadcast_matmul(&e.unit)?;
            let shift = ((component - e.center)? * e.alpha)?;
            x = (&x - shift.broadcast_mul(&e.unit.t()?)?)?;
        }
        if self.record {
            let store = match site {
                Site::Residual => &mut self.residual,
                Site::Mlp => &mut self.mlp,
            };
            if store.len() != layer {
                return Err(CoreError::Invalid(format!(
                    "{} activations arrived for layer {layer} after {} layers",
                    site.name(),
                    store.len()
                )));
            }
            store.push(x.clone());
        }
        Ok(x)
    }
}

/// A model whose forward pass applies `edits` (spec 11 §B.4): every [`CausalLm`] measure runs on
/// it unchanged.
pub struct Edited<'a> {
    inner: &'a dyn CausalLm,
    edits: Vec<Edit>,
}

impl<'a> Edited<'a> {
    /// `inner` with `edits` applied at every position of every forward pass.
    pub fn new(inner: &'a dyn CausalLm, edits: Vec<Edit>) -> CoreResult<Self> {
        // Fail on a bad edit now rather than at the first forward pass.
        Trace::editing(&edits, inner.device())?;
        Ok(Self { inner, edits })
    }
}

impl CausalLm for Edited<'_> {
    fn model_type(&self) -> &str {
        self.inner.model_type()
    }
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn max_positions(&self) -> usize {
        self.inner.max_positions()
    }
    fn device(&self) -> &Device {
        self.inner.device()
    }
    fn new_cache(&self) -> KvCache {
        self.inner.new_cache()
    }
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        let mut trace = Trace::editing(&self.edits, self.inner.device())?;
        self.inner.forward_traced(ids, cache, &mut trace)
    }
    fn forward_traced(&self, ids: &Tensor, cache: &mut KvCache, trace: &mut Trace) -> CoreResult<Tensor> {
        if trace.is_active() {
            return Err(CoreError::Invalid(
                "an edited model cannot be traced again (record on the original)".into(),
            ));
        }
        self.forward(ids, cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> super::super::HfLm {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/lm/gpt-demo");
        super::super::HfLm::load(&dir, &Device::Cpu).unwrap()
    }

    fn ids(lm: &super::super::HfLm) -> Tensor {
        let ids = lm
            .tokenizer
            .encode("It is a truth universally acknowledged, that a single man")
            .unwrap();
        let t = ids.len();
        Tensor::from_vec(ids, (1, t), &Device::Cpu).unwrap()
    }

    #[test]
    fn recording_changes_nothing_and_sees_every_layer() {
        let lm = demo();
        let x = ids(&lm);
        let plain = lm.model.logits(&x).unwrap();
        let mut trace = Trace::recording();
        let traced = lm
            .model
            .forward_traced(&x, &mut lm.model.new_cache(), &mut trace)
            .unwrap();
        let diff = (plain - traced)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
        // 4 blocks: residual after the embeddings and after each block; MLP of each block.
        assert_eq!(trace.residual.len(), 5);
        assert_eq!(trace.mlp.len(), 4);
        assert_eq!(trace.residual[2].dims(), &[1, x.dim(1).unwrap(), 128]);
        assert_eq!(trace.mlp[0].dims(), &[1, x.dim(1).unwrap(), 512]);
    }

    #[test]
    fn a_full_projection_removes_the_component_and_alpha_zero_is_the_model() {
        let lm = demo();
        let x = ids(&lm);
        let mut dir = vec![0f32; 128];
        dir[5] = 3.0;
        dir[9] = -4.0;
        let edit = |alpha: f32| Edit {
            site: Site::Residual,
            layer: 2,
            direction: dir.clone(),
            center: 0.0,
            alpha,
        };
        // Record the layer the edit acts on, after the edit.
        let mut trace = Trace::editing(&[edit(1.0)], &Device::Cpu).unwrap();
        trace.record = true;
        lm.model
            .forward_traced(&x, &mut lm.model.new_cache(), &mut trace)
            .unwrap();
        let h = trace.residual[2].squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        for row in &h {
            let along = (row[5] * 3.0 - row[9] * 4.0) / 5.0;
            assert!(along.abs() < 1e-4, "component left: {along}");
        }
        let before = lm.model.logits(&x).unwrap();
        let same = Edited::new(lm.model.as_ref(), vec![edit(0.0)])
            .unwrap()
            .logits(&x)
            .unwrap();
        let moved = Edited::new(lm.model.as_ref(), vec![edit(1.0)])
            .unwrap()
            .logits(&x)
            .unwrap();
        let gap = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(gap(&before, &same) < 1e-5);
        assert!(gap(&before, &moved) > 1e-3);
        let bad = Edit {
            direction: vec![0.0; 128],
            ..edit(1.0)
        };
        assert!(Edited::new(lm.model.as_ref(), vec![bad]).is_err());
        let wrong = Edit {
            direction: vec![1.0; 7],
            ..edit(1.0)
        };
        let err = Edited::new(lm.model.as_ref(), vec![wrong])
            .unwrap()
            .logits(&x)
            .unwrap_err();
        assert!(err.to_string().contains("7 dimensions"), "{err}");
    }
}
