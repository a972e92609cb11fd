//! A small CNN: 3x3 convolutions (the 2nd and 3rd with stride 2 instead of max-pooling, whose
//! backward pass is mis-scaled in candle 0.11), a hidden fully connected layer and the output.
//!
//! Before a stride-2 convolution an odd height or width is zero-padded by one row/column at the
//! end: candle 0.11's conv2d backward derives one output padding for both dimensions, so a
//! stride-2 input whose height and width differ in parity gets a wrongly shaped input gradient.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, conv2d, linear};

use super::{Layer, ModelSpec, Tap};

/// The CNN: `conv1` (stride 1), `conv2`, `conv3` (stride 2), `fc1`, `out`.
pub struct Cnn {
    convs: Vec<Conv2d>,
    fc1: Linear,
    out: Linear,
}

/// Output size of a 3x3, padding-1 convolution with `stride` (after evening odd sizes for
/// stride 2).
fn conv_out(n: usize, stride: usize) -> usize {
    let n = if stride == 2 { n + n % 2 } else { n };
    (n + 2 - 3) / stride + 1
}

/// Pads odd spatial dimensions to even with a trailing zero row/column.
fn even_spatial(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = if h % 2 == 1 {
        x.pad_with_zeros(2, 0, 1)?
    } else {
        x.clone()
    };
    if w % 2 == 1 {
        x.pad_with_zeros(3, 0, 1)
    } else {
        Ok(x)
    }
}

impl Cnn {
    /// Builds the CNN of `spec`: widths are [conv1, conv2, conv3, fc1] channels/units.
    pub fn new(spec: &ModelSpec, vb: VarBuilder<'_>) -> Result<Self> {
        let [c, mut h, mut w] = spec.input;
        let widths = if spec.widths.len() == 4 {
            spec.widths.clone()
        } else {
            vec![32, 64, 64, 128]
        };
        let mut in_c = c;
        let mut convs = Vec::new();
        for (k, &out_c) in widths[..3].iter().enumerate() {
            let stride = if k == 0 { 1 } else { 2 };
            let cfg = Conv2dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            convs.push(conv2d(in_c, out_c, 3, cfg, vb.pp(format!("conv{}", k + 1)))?);
            h = conv_out(h, stride);
            w = conv_out(w, stride);
            in_c = out_c;
        }
        let fc1 = linear(in_c * h * w, widths[3], vb.pp("fc1"))?;
        let out = linear(widths[3], spec.n_classes, vb.pp("out"))?;
        Ok(Self { convs, fc1, out })
    }
}

impl Cnn {
    /// The forward pass with every parameterised layer's input (after any padding) and output
    /// (before the activation) shown to `tap`, which returns the output to continue with.
    pub fn forward_tapped(&self, xs: &Tensor, tap: Tap<'_>) -> Result<Tensor> {
        let mut x = xs.clone();
        for (k, conv) in self.convs.iter().enumerate() {
            if k > 0 {
                x = even_spatial(&x)?;
            }
            let y = conv.forward(&x)?;
            x = tap(Layer::Conv(conv), &x, y)?.relu()?;
        }
        let x = x.flatten_from(1)?;
        let y = self.fc1.forward(&x)?;
        let x = tap(Layer::Linear(&self.fc1), &x, y)?.relu()?;
        let y = self.out.forward(&x)?;
        tap(Layer::Linear(&self.out), &x, y)
    }
}

impl Module for Cnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, &mut |_, _, y| Ok(y))
    }
}
