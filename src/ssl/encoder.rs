//! The SSL encoder: a small residual CNN without normalisation layers, so training and
//! evaluation compute the same function. Layout (28x28 grey input, default widths [16, 32, 64]):
//!
//! `stem` conv3x3 + ReLU (28x28) -> `block1` (28x28) -> 2x2 average pool -> `block2` (14x14)
//! -> 2x2 average pool -> `block3` (7x7) -> `gap` (global average pool, the representation)
//! -> projection head: linear + ReLU (`head`) -> linear (z, the loss's space).
//!
//! A block is `conv1` + ReLU, `conv2`, plus the input (through a 1x1 projection when the width
//! changes), then ReLU. Measured layers (all post-ReLU, so UnitMem's activations are
//! non-negative): `stem`, `block{k}.conv1`, `block{k}` for each block, `gap`, and, counted as
//! the last layer, `head` (the projection head's post-ReLU hidden layer). The papers measure the
//! encoder only; `head` is kept apart as the final entry because SimCLR's loss acts right after
//! it, so that is where per-image view alignment is trained. `gap`'s units are `block3`'s
//! channels spatially averaged, so their UnitMem equals `block3`'s.
//!
//! 3x3 convolutions run through the im2col custom op on the CPU (candle's CPU conv2d backward is
//! slow); average pooling is a reshape and a mean (candle's max-pool backward is mis-scaled).

use candle_core::{Module as _, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use crate::diffusion::unet::{Conv3, avg_down, conv3};

/// Architecture of the encoder: everything needed to rebuild it before loading weights.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncoderConfig {
    /// Image channels.
    pub channels: usize,
    /// Image height (divisible by 2^(blocks - 1)).
    pub height: usize,
    /// Image width (divisible by 2^(blocks - 1)).
    pub width: usize,
    /// Width of the stem and of each block (the stem takes the first block's width).
    pub widths: Vec<usize>,
    /// Hidden units of the projection head.
    pub proj_hidden: usize,
    /// Output dimension of the projection head (the loss's space).
    pub proj_dim: usize,
}

impl EncoderConfig {
    /// The default architecture for an image shape.
    pub fn for_image(channels: usize, height: usize, width: usize, widths: Vec<usize>) -> Self {
        Self {
            channels,
            height,
            width,
            widths,
            proj_hidden: 64,
            proj_dim: 32,
        }
    }

    /// Checks that the image halves cleanly between blocks.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.widths.is_empty() || self.widths.contains(&0) || self.channels == 0 {
            return Err("the encoder needs at least one block, non-zero widths and channels".into());
        }
        let f = 1usize << (self.widths.len() - 1);
        if !self.height.is_multiple_of(f) || !self.width.is_multiple_of(f) {
            return Err(format!(
                "a {}-block encoder needs image sides divisible by {f}, got {}x{}",
                self.widths.len(),
                self.height,
                self.width
            ));
        }
        Ok(())
    }

    /// Names of the measured layers, in order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string()];
        for k in 1..=self.widths.len() {
            names.push(format!("block{k}.conv1"));
            names.push(format!("block{k}"));
        }
        names.push("gap".into());
        names.push("head".into());
        names
    }
}

impl crate::model::limits::Architecture for EncoderConfig {
    fn kind(&self) -> &'static str {
        "SSL encoder"
    }

    fn check_sizes(&self) -> std::result::Result<(), String> {
        use crate::model::limits::{
            LEVELS, MAX_ACTIVATIONS, WIDTH, all_in_range, check_image, in_range, product,
        };
        check_image("arch.", self.channels, self.height, self.width)?;
        all_in_range("arch.widths", &self.widths, LEVELS, WIDTH)?;
        in_range("arch.proj_hidden", self.proj_hidden, WIDTH)?;
        in_range("arch.proj_dim", self.proj_dim, WIDTH)?;
        let widest = self.widths.iter().copied().max().unwrap_or(1);
        product(
            "arch.widths x height x width (activations of one image)",
            &[widest, self.height, self.width],
            MAX_ACTIVATIONS,
        )?;
        self.validate()
    }

    fn declare(&self, vb: VarBuilder<'_>) -> crate::error::CoreResult<()> {
        Ok(Encoder::new(self, vb).map(|_| ())?)
    }

    fn size_fields(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .widths
            .iter()
            .enumerate()
            .map(|(k, &w)| (format!("arch.widths[{k}]"), w))
            .collect();
        v.push(("arch.channels".into(), self.channels));
        v.push(("arch.proj_hidden".into(), self.proj_hidden));
        v.push(("arch.proj_dim".into(), self.proj_dim));
        v
    }

    fn with_size(&self, field: &str, value: usize) -> Option<Self> {
        let mut c = self.clone();
        match field {
            "arch.channels" => c.channels = value,
            "arch.proj_hidden" => c.proj_hidden = value,
            "arch.proj_dim" => c.proj_dim = value,
            _ => {
                let k: usize = field
                    .strip_prefix("arch.widths[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?;
                *c.widths.get_mut(k)? = value;
            }
        }
        Some(c)
    }
}

/// A 1x1 convolution as a matrix product (the residual projection).
struct Conv1 {
    weight: Tensor,
}

impl Conv1 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let o = self.weight.dim(0)?;
        self.weight
            .broadcast_matmul(&x.reshape((b, c, h * w))?)?
            .reshape((b, o, h, w))
    }
}

struct Block {
    conv1: Conv3,
    conv2: Conv3,
    skip: Option<Conv1>,
}

impl Block {
    fn new(in_c: usize, out_c: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let skip = if in_c == out_c {
            None
        } else {
            let bound = 1.0 / (in_c as f64).sqrt();
            let init = candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            Some(Conv1 {
                weight: vb.pp("skip").get_with_hints((out_c, in_c), "weight", init)?,
            })
        };
        Ok(Self {
            conv1: conv3(in_c, out_c, vb.pp("conv1"))?,
            conv2: conv3(out_c, out_c, vb.pp("conv2"))?,
            skip,
        })
    }

    /// (post-ReLU conv1 output, block output).
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.conv1.forward(x)?.relu()?;
        let y = self.conv2.forward(&h)?;
        let s = match &self.skip {
            Some(p) => p.forward(x)?,
            None => x.clone(),
        };
        Ok((h, (y + s)?.relu()?))
    }
}

/// The encoder with its projection head.
pub struct Encoder {
    cfg: EncoderConfig,
    stem: Conv3,
    blocks: Vec<Block>,
    proj1: Linear,
    proj2: Linear,
}

impl Encoder {
    /// Builds the encoder of `cfg` (parameter names are the checkpoint format).
    pub fn new(cfg: &EncoderConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let stem = conv3(cfg.channels, cfg.widths[0], vb.pp("stem"))?;
        let mut blocks = Vec::new();
        let mut c = cfg.widths[0];
        for (k, &w) in cfg.widths.iter().enumerate() {
            blocks.push(Block::new(c, w, vb.pp(format!("block{}", k + 1)))?);
            c = w;
        }
        let proj1 = linear(c, cfg.proj_hidden, vb.pp("proj1"))?;
        let proj2 = linear(cfg.proj_hidden, cfg.proj_dim, vb.pp("proj2"))?;
        Ok(Self {
            cfg: cfg.clone(),
            stem,
            blocks,
            proj1,
            proj2,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Outputs of every measured layer (see [`EncoderConfig::layer_names`]) for images
    /// `x` (B x C x H x W, normalised input); `gap` is the representation (B x width), `head`
    /// the projection head's hidden layer.
    pub fn layers(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(2 * self.blocks.len() + 2);
        let mut h = self.stem.forward(x)?.relu()?;
        outs.push(h.clone());
        for (k, block) in self.blocks.iter().enumerate() {
            if k > 0 {
                h = avg_down(&h)?;
            }
            let (inner, out) = block.forward(&h)?;
            outs.push(inner);
            outs.push(out.clone());
            h = out;
        }
        let rep = h.mean((2, 3))?;
        outs.push(self.proj1.forward(&rep)?.relu()?);
        outs.insert(outs.len() - 1, rep);
        Ok(outs)
    }

    /// The projection z of images `x` (B x proj_dim), for the contrastive loss.
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.stem.forward(x)?.relu()?;
        for (k, block) in self.blocks.iter().enumerate() {
            if k > 0 {
                h = avg_down(&h)?;
            }
            h = block.forward(&h)?.1;
        }
        let rep = h.mean((2, 3))?;
        self.proj2.forward(&self.proj1.forward(&rep)?.relu()?)
    }
}

/// Pixels in [0, 1] to the encoder's input range [-1, 1] (Normalize(0.5, 0.5)).
pub fn to_input(
    pixels01: Vec<f32>,
    n: usize,
    shape: [usize; 3],
    device: &candle_core::Device,
) -> Result<Tensor> {
    let v: Vec<f32> = pixels01.into_iter().map(|p| p * 2.0 - 1.0).collect();
    Tensor::from_vec(v, (n, shape[0], shape[1], shape[2]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn layer_shapes_and_names() {
        let cfg = EncoderConfig::for_image(1, 28, 28, vec![4, 8, 8]);
        let vm = VarMap::new();
        let enc = Encoder::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let outs = enc.layers(&x).unwrap();
        let names = cfg.layer_names();
        assert_eq!(outs.len(), names.len());
        assert_eq!(names.len(), 9);
        assert_eq!(outs[0].dims(), &[2, 4, 28, 28]);
        assert_eq!(outs[4].dims(), &[2, 8, 14, 14]);
        assert_eq!(outs[6].dims(), &[2, 8, 7, 7]);
        assert_eq!(outs[7].dims(), &[2, 8]);
        assert_eq!(outs[8].dims(), &[2, 64]);
        assert_eq!(enc.project(&x).unwrap().dims(), &[2, 32]);
        assert!(
            EncoderConfig::for_image(1, 30, 30, vec![4, 8, 8])
                .validate()
                .is_err()
        );
    }
}
