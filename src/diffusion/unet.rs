//! The denoiser: a small UNet with a sinusoidal time embedding (Ho et al. 2020, section 4 and
//! appendix B, scaled down): residual blocks with GroupNorm and SiLU, the time embedding added
//! inside every block, 2x2 average-pool downsampling followed by a convolution, nearest-neighbour upsampling and skip
//! connections. No attention layers (they cost a lot on the CPU and small images do not need
//! them to memorize). Predicts the noise eps.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, VarBuilder, conv2d, group_norm, linear};

/// Architecture of the UNet: everything needed to rebuild it before loading weights.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UNetConfig {
    /// Image channels (1 grey, 3 colour).
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels of the first level.
    pub base: usize,
    /// Channel multiplier per level; the image is halved between levels.
    pub mults: Vec<usize>,
}

impl UNetConfig {
    /// Default levels for an image size: 3 levels when the size halves twice, else 2.
    pub fn for_image(channels: usize, height: usize, width: usize, base: usize) -> Self {
        let mults = if height.is_multiple_of(4) && width.is_multiple_of(4) && height >= 16 {
            vec![1, 2, 2]
        } else {
            vec![1, 2]
        };
        Self {
            channels,
            height,
            width,
            base,
            mults,
        }
    }

    /// Checks that the image halves cleanly between levels.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let f = 1usize << self.mults.len().saturating_sub(1);
        if self.mults.is_empty() || self.base == 0 || self.channels == 0 {
            return Err("the UNet needs at least one level, a base width and image channels".into());
        }
        if !self.height.is_multiple_of(f) || !self.width.is_multiple_of(f) {
            return Err(format!(
                "a {}-level UNet needs image sides divisible by {f}, got {}x{}",
                self.mults.len(),
                self.height,
                self.width
            ));
        }
        Ok(())
    }
}

/// Groups for GroupNorm: the largest of 8, 4, 2, 1 that divides `ch`.
fn groups(ch: usize) -> usize {
    [8, 4, 2, 1]
        .into_iter()
        .find(|&g| ch.is_multiple_of(g))
        .unwrap_or(1)
}

/// A 3x3, padding-1 convolution (`weight` O x C x 3 x 3 and `bias` O, the same numbers as
/// conv2d): on the CPU `cpu_kernels::conv3x3` (channel-major im2col, one GEMM for the whole batch,
/// bias and time embedding added on the way back; fast backward too); on CUDA our im2col kernel
/// and one batched matrix product when sampling, candle's conv2d when training.
pub(crate) struct Conv3 {
    weight: Tensor,
    bias: Tensor,
}

pub(crate) fn conv3(in_c: usize, out_c: usize, vb: VarBuilder<'_>) -> Result<Conv3> {
    let bound = 1.0 / ((in_c * 9) as f64).sqrt();
    let init = candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    Ok(Conv3 {
        weight: vb.get_with_hints((out_c, in_c, 3, 3), "weight", init)?,
        bias: vb.get_with_hints(out_c, "bias", init)?,
    })
}

impl Conv3 {
    /// y = conv3x3(x) + bias.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, false)
    }

    /// [`Conv3::forward`]; with `sampling` on CUDA (f32) it uses our im2col kernel and one batched
    /// matrix product too (candle's CUDA im2col is slow; ours has no backward there).
    fn forward_with(&self, x: &Tensor, sampling: bool) -> Result<Tensor> {
        self.forward_plus(x, sampling, None)
    }

    /// [`Conv3::forward_with`] plus `t` (B x O) per image and channel when given; on CUDA when
    /// sampling, bias and `t` are added by one kernel.
    fn forward_plus(&self, x: &Tensor, sampling: bool, t: Option<&Tensor>) -> Result<Tensor> {
        if x.device().is_cpu() {
            return super::cpu_kernels::conv3x3(x, &self.weight, &self.bias, t);
        }
        let cuda_sampling = sampling && x.device().is_cuda() && x.dtype() == candle_core::DType::F32;
        if !cuda_sampling {
            let y = x
                .conv2d(&self.weight, 1, 1, 1, 1)?
                .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
            return match t {
                Some(t) => y.broadcast_add(&t.unsqueeze(2)?.unsqueeze(3)?),
                None => Ok(y),
            };
        }
        let (b, c, h, w) = x.dims4()?;
        let o = self.weight.dim(0)?;
        let cols = x.contiguous()?.apply_op1(super::im2col::Im2Col)?;
        // Column row (dy*3 + dx)*C + c matches the weight permuted to O x 3 x 3 x C.
        let wm = self.weight.permute((0, 2, 3, 1))?.reshape((o, 9 * c))?;
        let y = wm.broadcast_matmul(&cols)?.reshape((b, o, h, w))?;
        super::fused_norm::add_channel(&y, &self.bias, t)
    }
}

/// Halves height and width by averaging 2x2 blocks (reshape and mean, cheap in both directions).
/// On the CPU one pass (`resample.rs`).
pub(crate) fn avg_down(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(super::resample::Down2x);
    }
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.mean(5)?.mean(3)
}

/// Doubles height and width by repeating pixels (broadcast and reshape).
/// On the CPU one pass (`resample.rs`).
fn nearest_up(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(super::resample::Up2x);
    }
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, h * 2, w * 2))
}

/// candle_nn's GroupNorm with its parameters at hand, so that sampling (on CUDA and the CPU, f32)
/// can run GroupNorm and the SiLU after it as one fused operation (`fused_norm.rs`; no gradient,
/// same numbers).
struct Norm {
    gn: GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl Norm {
    fn new(ch: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let g = groups(ch);
        let gn = group_norm(g, ch, 1e-5, vb.clone())?;
        Ok(Self {
            gn,
            weight: vb.get(ch, "weight")?,
            bias: vb.get(ch, "bias")?,
            groups: g,
        })
    }

    /// SiLU(GroupNorm(x)); fused on CUDA when `fused` (inference only) and always on the CPU in
    /// f32 (with its own backward there, `group_norm_grad.rs`).
    fn norm_silu(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        use super::fused_norm::{GroupNormSilu, group_norm_silu, group_norm_silu_tracked};
        let op = GroupNormSilu {
            groups: self.groups,
            eps: 1e-5,
            silu: true,
        };
        let f32 = x.dtype() == candle_core::DType::F32;
        if f32 && x.device().is_cpu() && !fused {
            return group_norm_silu_tracked(x, &self.weight, &self.bias, op);
        }
        if f32 && fused && (x.device().is_cpu() || x.device().is_cuda()) {
            return group_norm_silu(x, &self.weight, &self.bias, op);
        }
        self.gn.forward(x)?.silu()
    }
}

/// GroupNorm, SiLU, conv; time embedding added; GroupNorm, SiLU, conv; plus a (1x1) skip.
struct ResBlock {
    norm1: Norm,
    conv1: Conv3,
    temb: Linear,
    norm2: Norm,
    conv2: Conv3,
    skip: Option<Conv2d>,
}

impl ResBlock {
    fn new(in_c: usize, out_c: usize, temb_dim: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let skip = if in_c == out_c {
            None
        } else {
            Some(conv2d(in_c, out_c, 1, Conv2dConfig::default(), vb.pp("skip"))?)
        };
        Ok(Self {
            norm1: Norm::new(in_c, vb.pp("norm1"))?,
            conv1: conv3(in_c, out_c, vb.pp("conv1"))?,
            temb: linear(temb_dim, out_c, vb.pp("temb"))?,
            norm2: Norm::new(out_c, vb.pp("norm2"))?,
            conv2: conv3(out_c, out_c, vb.pp("conv2"))?,
            skip,
        })
    }

    /// This block's projection of the time embedding after its SiLU (`temb_act`, B x 4 base):
    /// B x out channels, added after the first convolution.
    fn time(&self, temb_act: &Tensor) -> Result<Tensor> {
        self.temb.forward(temb_act)
    }

    /// The block on `x` with its time projection `t` ([`ResBlock::time`]).
    fn forward(&self, x: &Tensor, t: &Tensor, fused: bool) -> Result<Tensor> {
        let h = self
            .conv1
            .forward_plus(&self.norm1.norm_silu(x, fused)?, fused, Some(t))?;
        let h = self
            .conv2
            .forward_with(&self.norm2.norm_silu(&h, fused)?, fused)?;
        let s = match &self.skip {
            Some(c) => match (x.device().is_cpu(), c.bias()) {
                (true, Some(bias)) => super::cpu_kernels::conv1x1(x, c.weight(), bias)?,
                _ => c.forward(x)?,
            },
            None => x.clone(),
        };
        h + s
    }
}

/// The UNet.
pub struct UNet {
    cfg: UNetConfig,
    t1: Linear,
    t2: Linear,
    conv_in: Conv3,
    down: Vec<ResBlock>,
    downsample: Vec<Conv3>,
    mid: ResBlock,
    up: Vec<ResBlock>,
    upsample: Vec<Conv3>,
    norm_out: Norm,
    conv_out: Conv3,
}

/// Sinusoidal embedding of the (float) timesteps `t` (shape B) into `dim` features.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?;
    Tensor::cat(&[args.cos()?, args.sin()?], 1)
}

impl UNet {
    /// Builds the UNet of `cfg`.
    pub fn new(cfg: &UNetConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let b = cfg.base;
        let temb_dim = 4 * b;
        let t1 = linear(b, temb_dim, vb.pp("time.l1"))?;
        let t2 = linear(temb_dim, temb_dim, vb.pp("time.l2"))?;
        let conv_in = conv3(cfg.channels, b, vb.pp("conv_in"))?;
        let mut down = Vec::new();
        let mut downsample = Vec::new();
        let mut ch = b;
        let mut skips = Vec::new();
        for (l, &m) in cfg.mults.iter().enumerate() {
            let out = b * m;
            down.push(ResBlock::new(ch, out, temb_dim, vb.pp(format!("down{l}")))?);
            ch = out;
            skips.push(ch);
            if l + 1 < cfg.mults.len() {
                downsample.push(conv3(ch, ch, vb.pp(format!("downsample{l}")))?);
            }
        }
        let mid = ResBlock::new(ch, ch, temb_dim, vb.pp("mid"))?;
        let mut up = Vec::new();
        let mut upsample = Vec::new();
        for (l, &m) in cfg.mults.iter().enumerate().rev() {
            let out = b * m;
            let skip = skips[l];
            up.push(ResBlock::new(ch + skip, out, temb_dim, vb.pp(format!("up{l}")))?);
            ch = out;
            if l > 0 {
                upsample.push(conv3(ch, ch, vb.pp(format!("upsample{l}")))?);
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            t1,
            t2,
            conv_in,
            down,
            downsample,
            mid,
            up,
            upsample,
            norm_out: Norm::new(ch, vb.pp("norm_out"))?,
            conv_out: conv3(ch, cfg.channels, vb.pp("conv_out"))?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// Predicted noise for noisy images `x` (B x C x H x W) at timesteps `t` (B, any numeric dtype).
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.forward_with(x, t, false)
    }

    /// [`UNet::forward`] for sampling: on CUDA and the CPU (f32), GroupNorm and SiLU run as one
    /// fused operation (the same numbers to rounding; no gradient flows through it).
    ///
    /// On the CPU the batch is cut into chunks of a few images that run side by side on the
    /// thread pool, each chunk through the whole UNet: every activation and im2col buffer of a
    /// chunk stays in the core's cache, and the small ops need no thread hand-offs (each image's
    /// numbers do not depend on the others in the batch).
    pub fn forward_inference(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        use rayon::prelude::*;
        let b = x.dim(0)?;
        let k = self.cpu_chunk();
        let times = self.block_times(t, x.dtype())?;
        if !x.device().is_cpu() || b <= k {
            return self.forward_blocks(x, &times, true);
        }
        let starts: Vec<usize> = (0..b).step_by(k).collect();
        let parts = starts
            .into_par_iter()
            .map(|s| {
                let n = k.min(b - s);
                let times = times
                    .iter()
                    .map(|t| t.narrow(0, s, n))
                    .collect::<Result<Vec<_>>>()?;
                self.forward_blocks(&x.narrow(0, s, n)?, &times, true)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    /// Images per chunk on the CPU: the widest activation (the first level's up block input,
    /// 3 x base channels) of a chunk within about 48k values, so that its 3x3 im2col (9 times
    /// that) stays near 1.7 MB, within a core's L2 (8x8 images at base 32: 8 images; 5 and 10
    /// ran as fast on dev-2c, 16 and 32 were 25% and 40% slower).
    fn cpu_chunk(&self) -> usize {
        let per_image = 3 * self.cfg.base * self.cfg.height * self.cfg.width;
        (49_152 / per_image.max(1)).max(1)
    }

    fn forward_with(&self, x: &Tensor, t: &Tensor, fused: bool) -> Result<Tensor> {
        self.forward_blocks(x, &self.block_times(t, x.dtype())?, fused)
    }

    /// Every block's time projection (down blocks, mid, up blocks, in that order) for timesteps
    /// `t`: the embedding, its MLP and each block's Linear, all on the whole batch at once.
    fn block_times(&self, t: &Tensor, dtype: DType) -> Result<Vec<Tensor>> {
        let temb = timestep_embedding(t, self.cfg.base)?.to_dtype(dtype)?;
        let act = self.t2.forward(&self.t1.forward(&temb)?.silu()?)?.silu()?;
        self.down
            .iter()
            .chain(std::iter::once(&self.mid))
            .chain(&self.up)
            .map(|b| b.time(&act))
            .collect()
    }

    /// The UNet on `x` given [`UNet::block_times`] of its timesteps.
    fn forward_blocks(&self, x: &Tensor, times: &[Tensor], fused: bool) -> Result<Tensor> {
        let (nd, nu) = (self.down.len(), self.up.len());
        if times.len() != nd + 1 + nu {
            return Err(candle_core::Error::Msg(
                "UNet: one time projection per block".into(),
            ));
        }
        let mut h = self.conv_in.forward_with(x, fused)?;
        let mut skips = Vec::with_capacity(self.down.len());
        for (l, block) in self.down.iter().enumerate() {
            h = block.forward(&h, &times[l], fused)?;
            skips.push(h.clone());
            if let Some(ds) = self.downsample.get(l) {
                h = ds.forward_with(&avg_down(&h)?, fused)?;
            }
        }
        h = self.mid.forward(&h, &times[nd], fused)?;
        for (k, block) in self.up.iter().enumerate() {
            let Some(skip) = skips.pop() else {
                return Err(candle_core::Error::Msg("UNet skip stack underflow".into()));
            };
            h = block.forward(&Tensor::cat(&[&h, &skip], 1)?, &times[nd + 1 + k], fused)?;
            if let Some(us) = self.upsample.get(k) {
                h = us.forward_with(&nearest_up(&h)?, fused)?;
            }
        }
        self.conv_out
            .forward_with(&self.norm_out.norm_silu(&h, fused)?, fused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn shapes_round_trip_for_grey_and_colour() {
        for (c, h, w) in [(1, 28, 28), (3, 32, 32), (1, 8, 8)] {
            let cfg = UNetConfig::for_image(c, h, w, 8);
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            let net = UNet::new(&cfg, vb).unwrap();
            let x = Tensor::zeros((2, c, h, w), DType::F32, &Device::Cpu).unwrap();
            let t = Tensor::new(&[3u32, 900], &Device::Cpu).unwrap();
            assert_eq!(net.forward(&x, &t).unwrap().dims(), &[2, c, h, w]);
        }
    }

    /// The CPU sampling forward (f32: fused GroupNorm + SiLU, batch cut into chunks across
    /// threads) equals the training forward computed in f64 (candle's GroupNorm, no chunks) on
    /// the same weights, to f32 rounding.
    #[test]
    fn cpu_sampling_forward_matches_the_f64_training_forward() {
        let dev = Device::Cpu;
        let cfg = UNetConfig::for_image(1, 8, 8, 32);
        let (vm32, vm64) = (VarMap::new(), VarMap::new());
        let net32 = UNet::new(&cfg, VarBuilder::from_varmap(&vm32, DType::F32, &dev)).unwrap();
        let net64 = UNet::new(&cfg, VarBuilder::from_varmap(&vm64, DType::F64, &dev)).unwrap();
        crate::model::seeded_init(&vm32, 7).unwrap();
        {
            let (d32, d64) = (vm32.data().lock().unwrap(), vm64.data().lock().unwrap());
            for (name, v) in d32.iter() {
                d64[name].set(&v.to_dtype(DType::F64).unwrap()).unwrap();
            }
        }
        let b = 3 * net32.cpu_chunk() - 1;
        let x = Tensor::randn(0f32, 1., (b, 1, 8, 8), &dev).unwrap();
        let t: Vec<u32> = (0..b as u32).map(|i| (i * 97) % 1000).collect();
        let t = Tensor::new(t.as_slice(), &dev).unwrap();
        let got = net32
            .forward_inference(&x, &t)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let want = net64.forward(&x.to_dtype(DType::F64).unwrap(), &t).unwrap();
        let d = (&got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let m = want.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(d <= 1e-5 * m.max(1.0), "max |diff| {d}, max |want| {m}");
    }

    #[test]
    fn odd_sizes_are_refused_with_the_reason() {
        let cfg = UNetConfig {
            channels: 1,
            height: 30,
            width: 30,
            base: 8,
            mults: vec![1, 2, 2],
        };
        assert!(cfg.validate().unwrap_err().contains("divisible by 4"));
    }

    /// The input gradient matches finite differences (the layers we use: conv, stride-2 conv,
    /// GroupNorm, SiLU, nearest upsampling, concat).
    #[test]
    fn input_gradient_matches_finite_differences() {
        let cfg = UNetConfig::for_image(1, 8, 8, 4);
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let net = UNet::new(&cfg, vb).unwrap();
        let vals: Vec<f64> = (0..64).map(|i| ((i * 37 % 17) as f64 / 17.0) - 0.5).collect();
        let x = Var::from_vec(vals.clone(), (1, 1, 8, 8), &Device::Cpu).unwrap();
        let t = Tensor::new(&[17u32], &Device::Cpu).unwrap();
        let loss = |x: &Tensor| -> Tensor {
            let y = net.forward(x, &t).unwrap();
            (y.clone() * y).unwrap().sum_all().unwrap()
        };
        let grads = loss(x.as_tensor()).backward().unwrap();
        let g = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for &i in &[0usize, 9, 27, 45, 63] {
            let eps = 1e-5;
            let mut p = vals.clone();
            p[i] += eps;
            let mut m = vals.clone();
            m[i] -= eps;
            let f = |v: Vec<f64>| {
                let t = Tensor::from_vec(v, (1, 1, 8, 8), &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f64>().unwrap()
            };
            let fd = (f(p) - f(m)) / (2.0 * eps);
            assert!(
                (fd - g[i]).abs() <= 1e-4 * (1.0 + fd.abs()),
                "pixel {i}: fd {fd} vs {}",
                g[i]
            );
        }
    }
}
