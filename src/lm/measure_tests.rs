//! Planted-ground-truth tests of `extract.rs` and `mia.rs` on small deterministic n-gram models.

use candle_core::{Device, Tensor};
use rand::{Rng as _, SeedableRng as _};

use super::extract::{extract_greedy, min_queries, prob_at_least_once, summarize};
use super::mia::{DEFAULT_K, evaluate, mia_scores, zlib_len};
use super::{CausalLm, KvCache};
use crate::error::CoreResult;

/// Reads the whole history `(B, S)` from a cache that stores token ids as its one "layer".
fn history(ids: &Tensor, cache: &mut KvCache) -> CoreResult<Vec<Vec<u32>>> {
    let (b, t) = ids.dims2()?;
    let k = ids.to_dtype(candle_core::DType::F32)?.reshape((b, 1, t, 1))?;
    let (all, _) = cache.append(0, k.clone(), k)?;
    cache.advance(t);
    let s = all.dim(2)?;
    let rows = all.reshape((b, s))?.to_vec2::<f32>()?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as u32).collect())
        .collect())
}

/// Logits `(B, T, V)` for the last `t` positions of each history, from `f(context) -> ln p`.
fn logits_of(hist: &[Vec<u32>], t: usize, v: usize, f: impl Fn(&[u32]) -> Vec<f32>) -> CoreResult<Tensor> {
    let b = hist.len();
    let mut out = Vec::with_capacity(b * t * v);
    for h in hist {
        for i in h.len() - t..h.len() {
            out.extend(f(&h[..=i]));
        }
    }
    Ok(Tensor::from_vec(out, (b, t, v), &Device::Cpu)?)
}

/// An add-α smoothed 3-gram model (2-gram for the second token) trained on token sequences.
pub(super) struct Trigram {
    v: usize,
    alpha: f64,
    tri: std::collections::HashMap<(u32, u32), Vec<f64>>,
    bi: std::collections::HashMap<u32, Vec<f64>>,
}

impl Trigram {
    pub(super) fn train(v: usize, data: &[(&[u32], usize)]) -> Self {
        let mut m = Self {
            v,
            alpha: 0.001,
            tri: Default::default(),
            bi: Default::default(),
        };
        for &(s, times) in data {
            for w in s.windows(2) {
                m.bi.entry(w[0]).or_insert_with(|| vec![0.0; v])[w[1] as usize] += times as f64;
            }
            for w in s.windows(3) {
                m.tri.entry((w[0], w[1])).or_insert_with(|| vec![0.0; v])[w[2] as usize] += times as f64;
            }
        }
        m
    }

    fn logp(&self, ctx: &[u32]) -> Vec<f32> {
        let n = ctx.len();
        let counts = if n >= 2 {
            self.tri.get(&(ctx[n - 2], ctx[n - 1]))
        } else {
            self.bi.get(&ctx[n - 1])
        };
        let zero = vec![0.0; self.v];
        let c = counts.unwrap_or(&zero);
        let total: f64 = c.iter().sum::<f64>() + self.alpha * self.v as f64;
        c.iter().map(|x| ((x + self.alpha) / total).ln() as f32).collect()
    }
}

impl CausalLm for Trigram {
    fn model_type(&self) -> &str {
        "trigram"
    }
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn max_positions(&self) -> usize {
        1024
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(1)
    }
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        let t = ids.dim(1)?;
        let hist = history(ids, cache)?;
        logits_of(&hist, t, self.v, |ctx| self.logp(ctx))
    }
}

pub(super) const V: usize = 1024;
const LEN: usize = 32;
const K: usize = 12;
const M: usize = 16;

fn draw(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| (0..LEN).map(|_| rng.random_range(0..V as u32)).collect())
        .collect()
}

/// Members (the first 10 inserted 20 times, the other 30 once), held-out non-members and a
/// disjoint third set, all from one uniform generator.
pub(super) type Seqs = Vec<Vec<u32>>;

pub(super) fn corpus() -> (Seqs, Seqs, Seqs) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    (draw(&mut rng, 40), draw(&mut rng, 40), draw(&mut rng, 40))
}

fn train(seqs: &[Vec<u32>], heavy: usize) -> Trigram {
    let data: Vec<(&[u32], usize)> = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_slice(), if i < heavy { 20 } else { 1 }))
        .collect();
    Trigram::train(V, &data)
}

fn refs(s: &[Vec<u32>]) -> Vec<&[u32]> {
    s.iter().map(Vec::as_slice).collect()
}

#[test]
fn repeated_members_are_extracted_and_nonmembers_are_not() -> CoreResult<()> {
    let (members, nonmembers, _) = corpus();
    let model = train(&members, 10);
    let heavy = extract_greedy(&model, &refs(&members[..10]), K, M, 4)?;
    let mut n_unique = 0;
    for (i, r) in heavy.iter().enumerate() {
        assert!(r.exact, "member {i} inserted 20 times not extracted: {r:?}");
        assert_eq!(r.generated, members[i][K..K + M]);
        assert_eq!(r.longest_match, M);
        assert_eq!(r.match_fraction, 1.0);
        // Where each suffix context (two tokens) occurs in no other training position, it was
        // seen 20 times, always followed by the true token: probability (20 + α)/(20 + αV) with
        // α = 0.001, V = 1024.
        let ctx = |s: &[u32], j: usize| (s[j - 2], s[j - 1]);
        let unique = (K..K + M).all(|j| {
            let c = ctx(&members[i], j);
            let hits: usize = members
                .iter()
                .map(|s| (2..LEN).filter(|&q| ctx(s, q) == c).count())
                .sum();
            hits == 1
        });
        if unique {
            n_unique += 1;
            let p_z = (20.001f64 / 21.024).powi(M as i32);
            assert!((r.p_z() / p_z - 1.0).abs() < 1e-4, "p_z {} vs {p_z}", r.p_z());
        }
        let n = (0.5f64.ln() / (1.0 - r.p_z()).ln()).ceil();
        assert_eq!(r.min_queries(0.5), n);
        assert!(r.prob_at(n) >= 0.5 && r.prob_at(n - 1.0) < 0.5);
    }
    assert!(n_unique >= 8, "only {n_unique} members with unique contexts");
    let held = extract_greedy(&model, &refs(&nonmembers), K, M, 7)?;
    assert_eq!(held.len(), 40);
    for r in &held {
        assert!(!r.exact);
        assert!(r.match_fraction < 0.5);
        // Unseen contexts give ~1/V per token: p_z ≈ 1024^-16.
        assert!(r.ln_p_z < -60.0, "{}", r.ln_p_z);
        assert!(r.min_queries(0.5) > 1e20);
    }
    // p_z ≈ 0.951^16 ≈ 0.45 for the heavy members: not (1, 0.5)- but (100, 0.9)-extractable.
    let s = summarize(&heavy, &[(1.0, 0.5), (100.0, 0.9)]);
    assert_eq!(s.exact_rate, 1.0);
    assert_eq!(s.mean_match_fraction, 1.0);
    assert!(s.np_rates[0].rate < 1.0);
    assert_eq!(s.np_rates[1].rate, 1.0);
    let s = summarize(&held, &[(1.0, 0.5), (1e6, 0.5)]);
    assert_eq!(s.exact_rate, 0.0);
    assert_eq!(s.np_rates[1].rate, 0.0);
    Ok(())
}

#[test]
fn batched_extraction_equals_one_by_one() -> CoreResult<()> {
    let (members, _, _) = corpus();
    let model = train(&members, 10);
    let all = extract_greedy(&model, &refs(&members[5..15]), K, M, 10)?;
    let one = extract_greedy(&model, &refs(&members[5..15]), K, M, 1)?;
    assert_eq!(all, one);
    // Singly-inserted members sit in between: partly extracted at least somewhere.
    assert!(all[5..].iter().any(|r| r.longest_match > 0));
    Ok(())
}

#[test]
fn bad_requests_are_errors() -> CoreResult<()> {
    let (members, _, _) = corpus();
    let model = train(&members, 10);
    // Too short for prefix + suffix, empty suffix, a lone token, a token outside the vocabulary.
    assert!(extract_greedy(&model, &[&members[0][..20]], K, M, 4).is_err());
    assert!(extract_greedy(&model, &refs(&members), K, 0, 4).is_err());
    assert!(mia_scores(&model, None, &[3], "x", DEFAULT_K).is_err());
    assert!(mia_scores(&model, None, &[3, V as u32], "x", DEFAULT_K).is_err());
    assert!(evaluate(&[1.0], &[], 0).is_err());
    Ok(())
}

#[test]
fn np_extraction_formulas() {
    // p_z = 0.1, p = 0.5: 1 − 0.9^n ≥ 0.5 first at n = 7 (0.9^6 = 0.531, 0.9^7 = 0.478).
    let l = 0.1f64.ln();
    assert_eq!(min_queries(l, 0.5), 7.0);
    assert!((prob_at_least_once(l, 7.0) - (1.0 - 0.9f64.powi(7))).abs() < 1e-12);
    assert!(prob_at_least_once(l, 6.0) < 0.5);
    // p_z = 0.5, p = 0.75: exactly n = 2 (a boundary hit despite rounding).
    assert_eq!(min_queries(0.5f64.ln(), 0.75), 2.0);
    // Tiny p_z = e^-700 (1 − p_z rounds to 1): n ≈ ln 2 · e^700, from the log-space branch.
    let n = min_queries(-700.0, 0.5);
    assert!(((n.ln() - (700.0 + 2f64.ln().ln())) / 700.0).abs() < 1e-9, "{n}");
    assert!((prob_at_least_once(-700.0, n) - 0.5).abs() < 1e-9);
    assert_eq!(min_queries(f64::NEG_INFINITY, 0.5), f64::INFINITY);
    assert_eq!(min_queries(0.0, 0.99), 1.0);
}

#[test]
fn mia_separates_members_and_control_is_at_chance() -> CoreResult<()> {
    let (members, nonmembers, other) = corpus();
    let text = |s: &[u32]| s.iter().map(|t| format!("{t} ")).collect::<String>();
    let run = |model: &Trigram, reference: Option<&Trigram>| -> CoreResult<[Vec<f64>; 6]> {
        let mut out: [Vec<f64>; 6] = Default::default();
        for s in members.iter().chain(&nonmembers) {
            let sc = mia_scores(
                model,
                reference.map(|r| r as &dyn CausalLm),
                s,
                &text(s),
                DEFAULT_K,
            )?;
            out[0].push(sc.loss);
            out[1].push(sc.zlib);
            out[2].push(sc.min_k);
            out[3].push(sc.min_k_pp);
            out[4].push(sc.reference.unwrap_or(f64::NAN));
        }
        Ok(out)
    };
    let target = train(&members, 10);
    let control = train(&other, 10);
    let scores = run(&target, Some(&control))?;
    for (name, s) in ["loss", "zlib", "min_k", "min_k_pp", "reference"]
        .iter()
        .zip(&scores)
    {
        let e = evaluate(&s[..40], &s[40..], 7)?;
        assert!(e.auc > 0.9, "{name}: AUC {}", e.auc);
        assert!(e.auc_ci95[0] <= e.auc && e.auc <= e.auc_ci95[1], "{name}: {e:?}");
        assert!(e.tpr_at_1pct >= 0.0 && e.tpr_at_0_1pct <= e.tpr_at_1pct);
    }
    // The control model saw neither half: LOSS and Min-K% at chance.
    let ctrl = run(&control, None)?;
    for (name, s) in ["loss", "min_k"].iter().zip([&ctrl[0], &ctrl[2]]) {
        let e = evaluate(&s[..40], &s[40..], 7)?;
        assert!((e.auc - 0.5).abs() < 0.2, "control {name}: AUC {}", e.auc);
        assert!(e.auc_ci95[0] <= e.auc && e.auc <= e.auc_ci95[1]);
        assert!(e.auc_ci95[1] > e.auc_ci95[0]);
    }
    Ok(())
}

#[test]
fn bootstrap_interval_has_width_and_is_seeded() -> CoreResult<()> {
    // Overlapping classes, so resamples differ and the interval has width.
    let m = [0.9, 0.6, 0.4, 0.8];
    let n = [0.5, 0.3, 0.7, 0.1];
    // Wins: 0.9 beats 4, 0.6 beats 3, 0.4 beats 2, 0.8 beats 4 → 13 of 16.
    let e = evaluate(&m, &n, 3)?;
    assert!((e.auc - 13.0 / 16.0).abs() < 1e-12);
    assert!(e.auc_ci95[0] < e.auc && e.auc < e.auc_ci95[1], "{e:?}");
    assert!(e.auc_se > 0.0);
    assert_eq!(evaluate(&m, &n, 3)?, e);
    Ok(())
}

/// A model whose next-token distribution depends only on the position.
struct Table(Vec<Vec<f64>>);

impl CausalLm for Table {
    fn model_type(&self) -> &str {
        "table"
    }
    fn vocab_size(&self) -> usize {
        3
    }
    fn max_positions(&self) -> usize {
        self.0.len() + 1
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(1)
    }
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        let t = ids.dim(1)?;
        let hist = history(ids, cache)?;
        logits_of(&hist, t, 3, |ctx| {
            let row = self.0.get(ctx.len() - 1).cloned().unwrap_or(vec![1.0 / 3.0; 3]);
            row.iter().map(|p| p.ln() as f32).collect()
        })
    }
}

#[test]
fn min_k_pp_and_zlib_by_hand() -> CoreResult<()> {
    let model = Table(vec![vec![0.5, 0.25, 0.25], vec![0.7, 0.2, 0.1]]);
    let ids = [0, 1, 2];
    let text = "aaaaaaaaaa";
    // Position 1: token 1 with p = 0.25 under [0.5, 0.25, 0.25].
    let l1 = 0.25f64.ln();
    let mu1 = 0.5 * 0.5f64.ln() + 2.0 * 0.25 * 0.25f64.ln();
    let s1 = (0.5 * 0.5f64.ln().powi(2) + 2.0 * 0.25 * 0.25f64.ln().powi(2) - mu1 * mu1).sqrt();
    // Position 2: token 2 with p = 0.1 under [0.7, 0.2, 0.1].
    let l2 = 0.1f64.ln();
    let mu2 = 0.7 * 0.7f64.ln() + 0.2 * 0.2f64.ln() + 0.1 * 0.1f64.ln();
    let s2 = (0.7 * 0.7f64.ln().powi(2) + 0.2 * 0.2f64.ln().powi(2) + 0.1 * 0.1f64.ln().powi(2) - mu2 * mu2)
        .sqrt();
    let (z1, z2) = ((l1 - mu1) / s1, (l2 - mu2) / s2);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5 * (1.0 + b.abs());

    let all = mia_scores(&model, None, &ids, text, 1.0)?;
    assert!(
        close(all.min_k_pp, (z1 + z2) / 2.0),
        "{} vs {}",
        all.min_k_pp,
        (z1 + z2) / 2.0
    );
    assert!(close(all.min_k, (l1 + l2) / 2.0));
    // k = 0.5 keeps ⌊0.5·2⌋ = 1 token: the smaller z and the smaller ln p.
    let half = mia_scores(&model, None, &ids, text, 0.5)?;
    assert!(close(half.min_k_pp, z1.min(z2)));
    assert!(close(half.min_k, l2));
    // LOSS = −mean NLL; zlib = LOSS / 11 (Python: len(zlib.compress(b"a" * 10)) == 11).
    let nll = -(l1 + l2) / 2.0;
    assert_eq!(zlib_len(text)?, 11);
    assert_eq!(zlib_len("the cat sat on the mat")?, 27);
    assert!(close(all.loss, -nll));
    assert!(close(all.zlib, -nll / 11.0));
    // A reference model identical to the target: score 0.
    let same = mia_scores(&model, Some(&model), &ids, text, DEFAULT_K)?;
    assert!(same.reference.is_some_and(|r| r.abs() < 1e-6));
    Ok(())
}
