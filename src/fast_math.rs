//! Elementary functions written so that loops over them vectorise (no library call per element),
//! shared by the fused CPU kernels (`diffusion::cpu_kernels`, `diffusion::fused_norm`,
//! `lm::cpu_kernels`). The reference they are tested against is the standard library's.

/// e^x in f32 without a library call, so that loops over it vectorize (Cephes' expf: x = n ln 2 + r,
/// |r| <= ln 2 / 2, a degree-6 polynomial for e^r, 2^n from the exponent bits); within 2 ulp of
/// `f32::exp` on [-87, 88], x clamped to that range (e^-87 and e^88 outside it).
#[inline]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Plain products and sums, not mul_add: without FMA in the target that is a library call.
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let i = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    // ln 2 in two parts (Cody-Waite), the first exact in f32 (355 / 512).
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((i + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exp_f32 is within 2 ulp (relative 2.5e-7) of f32::exp over the range SiLU meets, and clamps.
    #[test]
    fn exp_f32_matches_the_library_exp() {
        let mut worst = 0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = f64::from(x).exp();
            let got = f64::from(exp_f32(x));
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "{worst}");
        assert_eq!(exp_f32(-1000.0), exp_f32(-87.0));
        assert!(exp_f32(1000.0).is_finite());
    }
}
