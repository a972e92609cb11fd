//! Optimisers: SGD with momentum (PyTorch's formulation, written here because candle-nn's SGD has
//! no momentum) and AdamW (candle-nn's).

use candle_core::{Tensor, Var, backprop::GradStore};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};

use crate::error::CoreResult;

/// Which optimiser to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum.
    Sgd,
    /// AdamW.
    Adamw,
}

impl OptimizerKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sgd => "sgd",
            Self::Adamw => "adamw",
        }
    }
}

/// SGD with momentum and weight decay: g <- g + wd p; v <- mu v + g; p <- p - lr v.
pub struct SgdMomentum {
    vars: Vec<(Var, Option<Tensor>)>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl SgdMomentum {
    /// Over `vars`.
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            vars: vars.into_iter().map(|v| (v, None)).collect(),
            lr,
            momentum,
            weight_decay,
        }
    }

    /// One step from gradients.
    pub fn step(&mut self, grads: &GradStore) -> CoreResult<()> {
        let hyper = (self.lr, self.momentum, self.weight_decay);
        for (var, velocity) in &mut self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                update(var, velocity, g, hyper)?;
            }
        }
        Ok(())
    }

    /// One step from the gradients of the parameters in the order they were given to
    /// [`SgdMomentum::new`] (a hand-written backward pass).
    pub fn step_grads(&mut self, grads: &[Tensor]) -> CoreResult<()> {
        if grads.len() != self.vars.len() {
            return Err(crate::error::CoreError::Invalid(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.vars.len()
            )));
        }
        let hyper = (self.lr, self.momentum, self.weight_decay);
        for ((var, velocity), g) in self.vars.iter_mut().zip(grads) {
            update(var, velocity, g, hyper)?;
        }
        Ok(())
    }
}

/// g <- g + wd p; v <- mu v + g; p <- p - lr v for one parameter.
fn update(
    var: &Var,
    velocity: &mut Option<Tensor>,
    g: &Tensor,
    (lr, mu, wd): (f64, f64, f64),
) -> CoreResult<()> {
    if super::sgd_cpu::applies(var.as_tensor(), g) {
        // The same update in place (bit-identical; `sgd_cpu`).
        super::sgd_cpu::step(var.as_tensor(), g, velocity, (lr, mu, wd))?;
        return Ok(());
    }
    let g = if wd > 0.0 {
        (g + (var.as_tensor() * wd)?)?
    } else {
        g.clone()
    };
    // Detached, or every step's velocity would keep the previous one alive through the op graph
    // (memory grows with the number of steps).
    let v = match velocity.take() {
        Some(v) if mu > 0.0 => ((v * mu)? + g)?,
        _ => g,
    }
    .detach();
    var.set(&(var.as_tensor() - (&v * lr)?)?)?;
    *velocity = Some(v);
    Ok(())
}

/// Either optimiser behind one interface.
pub enum Optimizer {
    /// SGD with momentum.
    Sgd(SgdMomentum),
    /// AdamW.
    Adamw(AdamW),
}

impl Optimizer {
    /// Builds the optimiser of `kind` over `vars`.
    pub fn new(
        kind: OptimizerKind,
        vars: Vec<Var>,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> CoreResult<Self> {
        Ok(match kind {
            OptimizerKind::Sgd => Self::Sgd(SgdMomentum::new(vars, lr, momentum, weight_decay)),
            OptimizerKind::Adamw => Self::Adamw(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    weight_decay,
                    ..ParamsAdamW::default()
                },
            )?),
        })
    }

    /// The SGD optimiser, for a step from hand-computed gradients
    /// ([`SgdMomentum::step_grads`]); None for AdamW.
    pub fn as_sgd(&mut self) -> Option<&mut SgdMomentum> {
        match self {
            Self::Sgd(o) => Some(o),
            Self::Adamw(_) => None,
        }
    }

    /// Back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> CoreResult<()> {
        let grads = loss.backward()?;
        match self {
            Self::Sgd(o) => o.step(&grads),
            Self::Adamw(o) => Ok(o.step(&grads)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The in-place CPU step (`sgd_cpu`) against the tensor-op formulation it stands in for
    /// (`g <- g + p * wd; v <- v * mu + g; p <- p - v * lr` as candle ops): the same parameters
    /// bit for bit after a few steps, with and without weight decay.
    #[test]
    fn in_place_sgd_is_bit_identical_to_the_tensor_ops() {
        for wd in [0.0, 5e-4] {
            let init: Vec<f32> = (0..24).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.173).collect();
            let var = Var::from_vec(init.clone(), (4, 6), &Device::Cpu).unwrap();
            assert!(super::super::sgd_cpu::applies(var.as_tensor(), var.as_tensor()));
            let mut opt = SgdMomentum::new(vec![var.clone()], 0.1, 0.9, wd);
            let mut p = Tensor::from_vec(init, (4, 6), &Device::Cpu).unwrap();
            let mut v: Option<Tensor> = None;
            for step in 0..4 {
                // loss = sum(p * c): its gradient is exactly c, a different one every step.
                let c: Vec<f32> = (0..24)
                    .map(|i| ((i * 7 + step * 5) % 13) as f32 * 0.31 - 1.7)
                    .collect();
                let c = Tensor::from_vec(c, (4, 6), &Device::Cpu).unwrap();
                let loss = (var.as_tensor() * &c).unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
                let g = c;
                let g = if wd > 0.0 {
                    (g + (&p * wd).unwrap()).unwrap()
                } else {
                    g
                };
                let nv = match v.take() {
                    Some(v) => ((v * 0.9).unwrap() + g).unwrap(),
                    None => g,
                };
                p = (&p - (&nv * 0.1).unwrap()).unwrap();
                v = Some(nv);
                let a = var.as_tensor().to_vec2::<f32>().unwrap();
                assert_eq!(a, p.to_vec2::<f32>().unwrap(), "step {step}, wd {wd}");
            }
        }
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        // p0 = 1, loss = p^2 / 2 so g = p. lr 0.1, mu 0.9:
        // step 1: v = 1, p = 0.9; step 2: g = 0.9, v = 0.9*1 + 0.9 = 1.8, p = 0.9 - 0.18 = 0.72.
        let var = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut opt = SgdMomentum::new(vec![var.clone()], 0.1, 0.9, 0.0);
        for _ in 0..2 {
            let loss = (var.as_tensor().sqr().unwrap() * 0.5).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let p = var.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((p - 0.72).abs() < 1e-12, "{p}");
    }
}
