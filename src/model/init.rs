//! Deterministic initialisation: candle's CPU random generator cannot be seeded, so every
//! parameter is overwritten from a ChaCha stream keyed by the seed and the parameter's name, with
//! PyTorch's default distribution (uniform in +-1/sqrt(fan_in) for weights and biases; gain 1 and
//! bias 0 for normalisation layers).

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::{Rng as _, SeedableRng as _};
use sha2::Digest as _;

use crate::error::CoreResult;

/// Re-initialises every variable of `varmap` from `seed`.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> CoreResult<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    // Fan-in of a layer comes from its weight; biases share their layer's weight fan-in.
    for name in names {
        let var = &data[name];
        let layer = name.rsplit_once('.').map_or(name.as_str(), |(l, _)| l);
        let weight_dims = data
            .get(&format!("{layer}.weight"))
            .map(|w| w.dims().to_vec())
            .unwrap_or_default();
        // A 1-D weight is a normalisation gain: start at 1, its bias at 0 (PyTorch's default).
        if weight_dims.len() == 1 {
            let fill = if name.ends_with(".weight") { 1.0 } else { 0.0 };
            let t = Tensor::full(fill, var.shape(), &candle_core::Device::Cpu)?
                .to_dtype(var.dtype())?
                .to_device(var.device())?;
            var.set(&t)?;
            continue;
        }
        let fan_in: usize = weight_dims.iter().skip(1).product::<usize>().max(1);
        seeded_uniform(var, seed, name, 1.0 / (fan_in as f64).sqrt())?;
    }
    drop(data);
    Ok(())
}

/// Sets `var` to uniform(-bound, bound) draws from a ChaCha stream keyed by `seed` and `name`.
pub fn seeded_uniform(var: &candle_core::Var, seed: u64, name: &str, bound: f64) -> CoreResult<()> {
    let digest = sha2::Sha256::digest(format!("{seed}:{name}").as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    let mut rng = rand_chacha::ChaCha8Rng::from_seed(key);
    let n = var.elem_count();
    let values: Vec<f64> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
    let t = Tensor::from_vec(values, var.shape(), &candle_core::Device::Cpu)?
        .to_dtype(var.dtype())?
        .to_device(var.device())?;
    var.set(&t)?;
    Ok(())
}
