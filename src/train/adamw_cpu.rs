//! AdamW (Loshchilov & Hutter 2019, Algorithm 2, as candle_nn implements it) as one in-place
//! pass per parameter on the CPU (fused CPU kernel).
//!
//! candle_nn's `AdamW` writes the step with tensor operations: about a dozen passes and
//! temporaries the size of each parameter, then three `Var::set` copies. On the 8x8 demo DDPM
//! that was 6.4% of a one-thread training step. Here each parameter takes one pass that reads
//! its gradient and the two moments (kept as plain vectors) and writes the moments and the
//! parameter in place, with every product and sum rounded as candle's `affine` (`x * mul + add`)
//! and binary ops round them:
//!
//! ```text
//! m <- (m * b1 + 0) + (g * (1 - b1) + 0)
//! v <- (v * b2 + 0) + ((g * g) * (1 - b2) + 0)
//! p <- (p * (1 - lr wd) + 0) - ((m * sm + 0) / (sqrt(v * sv + 0) * 1 + eps) * lr + 0)
//! ```
//!
//! with sm = 1 / (1 - b1^t), sv = 1 / (1 - b2^t) at step t, so the parameters are bit-identical
//! to candle_nn's `AdamW` (its twin and reference; the test below compares the two bit for bit).
//! Anything else than contiguous f32 on the CPU goes to candle_nn's `AdamW` unchanged.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;

use crate::cpu_slices::{slice, slice_mut};

/// Values per task when a parameter's pass is split across threads (element-wise, so the split
/// does not change a bit).
const CHUNK: usize = 1 << 15;

/// AdamW, fused on the CPU (module docs), candle_nn's otherwise.
pub enum AdamWCpu {
    Fused(Fused),
    Candle(AdamW),
}

/// The fused optimizer's state: each parameter with its first and second moments.
pub struct Fused {
    slots: Vec<(Var, Mutex<Moments>)>,
    params: ParamsAdamW,
    step_t: i32,
}

#[derive(Default)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// One step's constants, cast to f32 as candle's `affine` casts them.
#[derive(Clone, Copy)]
struct Step {
    b1: f32,
    c1: f32,
    b2: f32,
    c2: f32,
    sm: f32,
    sv: f32,
    decay: f32,
    eps: f32,
    lr: f32,
}

/// The in-place update of one parameter given its gradient (module docs).
struct Update<'a> {
    moments: &'a Mutex<Moments>,
    k: Step,
}

fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: Step) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = (*m * k.b1 + 0.0) + (g * k.c1 + 0.0);
        *v = (*v * k.b2 + 0.0) + ((g * g) * k.c2 + 0.0);
        let m_hat = *m * k.sm + 0.0;
        let v_hat = *v * k.sv + 0.0;
        let adjusted = m_hat / (v_hat.sqrt() * 1.0 + k.eps);
        *p = (*p * k.decay + 0.0) - (adjusted * k.lr + 0.0);
    }
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "adamw-cpu"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, lp: &Layout, g: &CpuStorage, lg: &Layout) -> Result<()> {
        let n = self.name();
        if lp.shape() != lg.shape() {
            candle_core::bail!("{n}: shape mismatch");
        }
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (p, g) else {
            candle_core::bail!("{n}: f32 operands");
        };
        let (p, g) = (slice_mut(p, lp, n)?, slice(g, lg, n)?);
        let mut st = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg(format!("{n}: moments lock poisoned")))?;
        let Moments { m, v } = &mut *st;
        if m.len() != p.len() {
            *m = vec![0.0; p.len()];
            *v = vec![0.0; p.len()];
        }
        let k = self.k;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| update(p, g, m, v, k));
        Ok(())
    }
}

/// Whether `var` takes the fused step: CPU, contiguous, f32.
fn fusable(var: &Var) -> bool {
    let t = var.as_tensor();
    t.device().is_cpu() && t.is_contiguous() && t.dtype() == DType::F32
}

impl Optimizer for AdamWCpu {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        if !vars.iter().all(fusable) {
            return Ok(Self::Candle(AdamW::new(vars, params)?));
        }
        let vars = vars.into_iter().filter(|v| v.dtype().is_float());
        Ok(Self::Fused(Fused {
            slots: vars.map(|v| (v, Mutex::new(Moments::default()))).collect(),
            params,
            step_t: 0,
        }))
    }

    fn learning_rate(&self) -> f64 {
        match self {
            Self::Fused(f) => f.params.lr,
            Self::Candle(a) => a.learning_rate(),
        }
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::Fused(f) => f.params.lr = lr,
            Self::Candle(a) => a.set_learning_rate(lr),
        }
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let f = match self {
            Self::Candle(a) => return a.step(grads),
            Self::Fused(f) => f,
        };
        f.step_t += 1;
        let q = &f.params;
        let k = Step {
            b1: q.beta1 as f32,
            c1: (1.0 - q.beta1) as f32,
            b2: q.beta2 as f32,
            c2: (1.0 - q.beta2) as f32,
            sm: (1.0 / (1.0 - q.beta1.powi(f.step_t))) as f32,
            sv: (1.0 / (1.0 - q.beta2.powi(f.step_t))) as f32,
            decay: (1.0 - q.lr * q.weight_decay) as f32,
            eps: q.eps as f32,
            lr: q.lr as f32,
        };
        for (var, moments) in &f.slots {
            if let Some(g) = grads.get(var) {
                let g: Tensor = g.contiguous()?;
                var.as_tensor().inplace_op2(&g, &Update { moments, k })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// Five steps of the fused AdamW leave the same bits as candle_nn's AdamW, with and without
    /// weight decay, on parameters larger than one task's chunk.
    #[test]
    fn matches_candle_adamw_bit_for_bit() {
        let dev = Device::Cpu;
        for wd in [0.0, 0.01] {
            let params = ParamsAdamW {
                lr: 3e-3,
                weight_decay: wd,
                ..Default::default()
            };
            let shapes: [&[usize]; 3] = [&[CHUNK + 37], &[7, 5], &[3]];
            let make = |seed: u64| -> Vec<Var> {
                shapes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let n: usize = s.iter().product();
                        let vals: Vec<f32> = (0..n)
                            .map(|j| ((j * 7919 + i * 131 + seed as usize) % 97) as f32 / 48.5 - 1.0)
                            .collect();
                        Var::from_vec(vals, *s, &dev).unwrap()
                    })
                    .collect()
            };
            let (ours, theirs) = (make(1), make(1));
            let mut fused = AdamWCpu::new(ours.clone(), params.clone()).unwrap();
            assert!(matches!(fused, AdamWCpu::Fused(_)));
            let mut reference = AdamW::new(theirs.clone(), params.clone()).unwrap();
            for step in 0..5 {
                let loss = |vars: &[Var]| -> Tensor {
                    let mut total = Tensor::new(0f32, &dev).unwrap();
                    for (i, v) in vars.iter().enumerate() {
                        let term = (v.as_tensor().sqr().unwrap() * (i + step + 1) as f64)
                            .unwrap()
                            .sin()
                            .unwrap()
                            .sum_all()
                            .unwrap();
                        total = (total + term).unwrap();
                    }
                    total
                };
                fused.backward_step(&loss(&ours)).unwrap();
                reference.backward_step(&loss(&theirs)).unwrap();
            }
            for (a, b) in ours.iter().zip(&theirs) {
                let a = a.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let b = b.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "wd {wd}"
                );
                assert!(a.iter().zip(&b).any(|(x, _)| *x != 0.0));
            }
        }
    }

    /// f64 parameters go to candle_nn's AdamW.
    #[test]
    fn other_dtypes_use_candle() {
        let v = Var::from_vec(vec![1f64, 2.0], 2, &Device::Cpu).unwrap();
        let opt = AdamWCpu::new(vec![v], ParamsAdamW::default()).unwrap();
        assert!(matches!(opt, AdamWCpu::Candle(_)));
    }
}
