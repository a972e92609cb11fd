//! Multi-layer perceptron on flattened pixels (the Feldman-Zhang MNIST recipe is 784-512-256-10).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::{Layer, ModelSpec, Tap};

/// An MLP: `fc1 .. fcN` with ReLU, then `out`.
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
}

impl Mlp {
    /// Builds the MLP of `spec` (widths are the hidden layer sizes).
    pub fn new(spec: &ModelSpec, vb: VarBuilder<'_>) -> Result<Self> {
        let [c, h, w] = spec.input;
        let mut in_dim = c * h * w;
        let mut hidden = Vec::with_capacity(spec.widths.len());
        for (k, &width) in spec.widths.iter().enumerate() {
            hidden.push(linear(in_dim, width, vb.pp(format!("fc{}", k + 1)))?);
            in_dim = width;
        }
        let out = linear(in_dim, spec.n_classes, vb.pp("out"))?;
        Ok(Self { hidden, out })
    }

    /// The output layer's weight (K, D) and bias (K) when there is no hidden layer (softmax
    /// regression: the logits are affine in the input).
    pub fn affine(&self) -> Option<(&Tensor, &Tensor)> {
        if self.hidden.is_empty() {
            Some((self.out.weight(), self.out.bias()?))
        } else {
            None
        }
    }
}

impl Mlp {
    /// The forward pass with every layer's input and output (before the activation) shown to
    /// `tap`, which returns the output to continue with.
    pub fn forward_tapped(&self, xs: &Tensor, tap: Tap<'_>) -> Result<Tensor> {
        let mut x = xs.flatten_from(1)?;
        for layer in &self.hidden {
            let y = layer.forward(&x)?;
            x = tap(Layer::Linear(layer), &x, y)?.relu()?;
        }
        let y = self.out.forward(&x)?;
        tap(Layer::Linear(&self.out), &x, y)
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_tapped(xs, &mut |_, _, y| Ok(y))
    }
}
