//! The Secret Sharer on transformers, with planted ground truth: a model that strongly prefers
//! one secret after the context (an in-memory `CausalLm`, and the tiny GPT-2 fixture wrapped the
//! same way). The digit tree through the key/value cache must equal scoring every full string
//! with `CausalLm::token_logprobs`, the exact rank and exposure must equal the brute force's, and
//! Dijkstra must type out the planted secret first.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::causal::{CausalSlots, SlotTokenizer};
use super::extract::{SearchMethod, SearchOptions, search_secret};
use super::model::{CanarySet, SlotModel};
use super::open::{CanaryModel, canaries_from_args};
use super::report::{Estimate, ExposureOptions, measure_exposure_of};
use super::score::{exact_space, score_secrets};
use super::secrets::{Canary, CanaryFormat};
use super::whole::WholeStrings;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx, NullSink};
use crate::lm::{CausalLm, HfLm, KvCache};

/// Bytes as token ids (below 128), optionally after a beginning-of-sequence id, optionally
/// merging a repeated digit into one token (as a BPE with digit merges would).
struct ByteTok {
    bos: Option<u32>,
    merge_repeats: bool,
    eos: Option<u32>,
}

impl SlotTokenizer for ByteTok {
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        let mut out: Vec<u32> = self.bos.into_iter().collect();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if self.merge_repeats && i + 1 < b.len() && b[i].is_ascii_digit() && b[i] == b[i + 1] {
                out.push(100 + u32::from(b[i] - b'0'));
                i += 2;
            } else {
                out.push(u32::from(b[i]));
                i += 1;
            }
        }
        out.extend(self.eos);
        Ok(out)
    }

    fn source(&self) -> String {
        "test/tokenizer.json".into()
    }
}

/// Appends `ids` to cache layer `layer` (ids stored as floats) and returns each row's history.
fn history(ids: &Tensor, cache: &mut KvCache, layer: usize) -> CoreResult<Vec<Vec<u32>>> {
    let (b, t) = ids.dims2()?;
    let k = ids.to_dtype(candle_core::DType::F32)?.reshape((b, 1, t, 1))?;
    let (all, _) = cache.append(layer, k.clone(), k)?;
    let s = all.dim(2)?;
    Ok(all
        .reshape((b, s))?
        .to_vec2::<f32>()?
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as u32).collect())
        .collect())
}

/// Logits of a fixed pseudo-random function of the last three tokens: far from uniform, and
/// every position depends on the history (so cache rows must follow their branch).
struct Hashed {
    v: usize,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl CausalLm for Hashed {
    fn model_type(&self) -> &str {
        "hashed"
    }
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn max_positions(&self) -> usize {
        256
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(1)
    }
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        let (b, t) = ids.dims2()?;
        let hist = history(ids, cache, 0)?;
        cache.advance(t);
        let mut out = Vec::with_capacity(b * t * self.v);
        for h in &hist {
            for i in h.len() - t..h.len() {
                let key = h[i.saturating_sub(2)..=i]
                    .iter()
                    .fold(0u64, |a, &x| mix(a ^ u64::from(x)));
                out.extend((0..self.v).map(|j| (mix(key ^ (j as u64) << 20) % 4000) as f32 / 1000.0));
            }
        }
        Ok(Tensor::from_vec(out, (b, t, self.v), &Device::Cpu)?)
    }
}

/// `inner` plus `boost` on the planted secret's next digit wherever the history ends with the
/// context and the secret's first digits (the history kept in cache layer `layer`).
struct Planted {
    inner: Box<dyn CausalLm>,
    layer: usize,
    context: Vec<u32>,
    secret: Vec<u32>,
    boost: f32,
}

impl CausalLm for Planted {
    fn model_type(&self) -> &str {
        "planted"
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
        KvCache::new(self.layer + 1)
    }
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> CoreResult<Tensor> {
        let logits = self.inner.forward(ids, cache)?;
        let (b, t, v) = logits.dims3()?;
        let hist = history(ids, cache, self.layer)?;
        let mut l = logits.to_vec3::<f32>()?;
        for (row, h) in l.iter_mut().zip(&hist) {
            for (i, pos) in row.iter_mut().enumerate() {
                let seen = &h[..h.len() - t + i + 1];
                for k in 0..self.secret.len() {
                    let want: Vec<u32> = self.context.iter().chain(&self.secret[..k]).copied().collect();
                    if seen.ends_with(&want) {
                        pos[self.secret[k] as usize] += self.boost;
                    }
                }
            }
        }
        let flat: Vec<f32> = l.into_iter().flatten().flatten().collect();
        Ok(Tensor::from_vec(flat, (b, t, v), self.inner.device())?)
    }
}

fn ctx_parts() -> (CancelToken, NullSink) {
    (CancelToken::new(), NullSink)
}

/// Every candidate's slot cost in bits by scoring the whole string with `token_logprobs`.
fn brute_force(model: &dyn CausalLm, context: &[u32], digit_ids: &[u32; 10], digits: usize) -> Vec<f64> {
    let total = 10usize.pow(digits as u32);
    let seqs: Vec<Vec<u32>> = (0..total)
        .map(|i| {
            let s = format!("{i:0digits$}");
            context
                .iter()
                .copied()
                .chain(s.bytes().map(|b| digit_ids[usize::from(b - b'0')]))
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(total);
    for chunk in seqs.chunks(500) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        for lp in model.token_logprobs_batch(&refs).unwrap() {
            let slot: f64 = lp[lp.len() - digits..].iter().map(|&x| f64::from(x)).sum();
            out.push(-slot * std::f64::consts::LOG2_E);
        }
    }
    out
}

fn rank_in(space: &[f64], i: usize) -> u64 {
    space.iter().filter(|&&c| c <= space[i]).count() as u64
}

fn set_for(prefix: &str, digits: usize, secrets: &[(&str, u32)]) -> CanarySet {
    CanarySet {
        id: "t".into(),
        formats: vec![CanaryFormat {
            prefix: prefix.into(),
            digits,
            insertions: secrets.iter().map(|s| s.1).collect(),
            secrets: secrets.iter().map(|s| s.0.to_string()).collect(),
        }],
        canaries: secrets
            .iter()
            .map(|&(s, n)| Canary {
                format: 0,
                secret: s.into(),
                insertions: n,
            })
            .collect(),
    }
}

/// Checks tree = brute force, exact rank and exposure of every canary = brute force, the planted
/// secret first for Dijkstra and beam search.
fn check_planted(
    model: &dyn CausalLm,
    tok: &dyn SlotTokenizer,
    prefix: &str,
    digits: usize,
    planted: &str,
    control: &str,
) {
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let slots = CausalSlots::new(model, tok, false);
    let (context, ids) = slots.context_and_digits(prefix).unwrap();
    let set = set_for(prefix, digits, &[(control, 0), (planted, 8)]);
    let fmt = &set.formats[0];
    let tree = exact_space(&slots, fmt, &ctx).unwrap();
    let brute = brute_force(model, &context, &ids, digits);
    assert_eq!(tree.len(), brute.len());
    for (i, (&t, &b)) in tree.iter().zip(&brute).enumerate() {
        assert!(
            (f64::from(t) - b).abs() < 1e-3,
            "candidate {i}: tree {t} vs full string {b}"
        );
    }
    let scored = score_secrets(&slots, fmt, &[planted.to_string(), control.to_string()], &ctx).unwrap();
    let rep = measure_exposure_of(
        &slots,
        &set,
        &ExposureOptions {
            estimate: Estimate::Both,
            references: 200,
            ..ExposureOptions::default()
        },
        &ctx,
    )
    .unwrap();
    let space = 10f64.powi(digits as i32);
    for (ce, sc) in rep.canaries.iter().zip([scored[1], scored[0]]) {
        let i: usize = ce.secret.parse().unwrap();
        let rank = rank_in(&brute, i);
        assert_eq!(ce.exact_rank, Some(rank), "{ce:?}");
        assert!((ce.exact.unwrap() - (space.log2() - (rank as f64).log2())).abs() < 1e-9);
        assert!((ce.px_bits - brute[i]).abs() < 1e-3 && (sc - brute[i]).abs() < 1e-3);
    }
    let top = &rep.canaries[1];
    assert_eq!((top.secret.as_str(), top.exact_rank), (planted, Some(1)));
    assert!(rep.canaries[0].exact.unwrap() < top.exact.unwrap());
    // Dijkstra types out the planted secret first; its first candidates follow the brute force.
    let opts = SearchOptions {
        candidates: 5,
        batch: 7,
        ..SearchOptions::default()
    };
    let r = search_secret(&slots, prefix, digits, &opts, &mut |_| {}, &ctx).unwrap();
    assert_eq!(r.candidates[0].secret, planted);
    let mut order: Vec<usize> = (0..brute.len()).collect();
    order.sort_by(|&a, &b| brute[a].total_cmp(&brute[b]));
    for (k, cand) in r.candidates.iter().enumerate() {
        assert!(
            (cand.bits - brute[order[k]]).abs() < 1e-3,
            "candidate {k}: {cand:?}"
        );
    }
    assert!(r.expanded < 200, "{} expansions", r.expanded);
    let b = search_secret(
        &slots,
        prefix,
        digits,
        &SearchOptions {
            method: SearchMethod::Beam,
            beam: 8,
            ..opts
        },
        &mut |_| {},
        &ctx,
    )
    .unwrap();
    assert_eq!(b.candidates[0].secret, planted);
}

#[test]
fn in_memory_transformer_planted_secret_matches_brute_force() {
    let tok = ByteTok {
        bos: Some(1),
        merge_repeats: false,
        eos: None,
    };
    let prefix = "pin: ";
    let planted = "4071";
    let probe = CausalSlots::new(&Hashed { v: 128 }, &tok, false);
    let (context, ids) = probe.context_and_digits(prefix).unwrap();
    let model = Planted {
        inner: Box::new(Hashed { v: 128 }),
        layer: 1,
        context,
        secret: planted.bytes().map(|b| ids[usize::from(b - b'0')]).collect(),
        boost: 6.0,
    };
    check_planted(&model, &tok, prefix, 4, planted, "1234");
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm")
        .join(name)
}

#[test]
fn tiny_gpt2_with_a_planted_secret_matches_brute_force() {
    let lm = HfLm::load(&fixture("gpt2"), &Device::Cpu).unwrap();
    let prefix = "my pin is ";
    let planted = "907";
    let probe = CausalSlots::new(lm.model.as_ref(), &lm.tokenizer, false);
    let (context, ids) = probe.context_and_digits(prefix).unwrap();
    assert_eq!(lm.tokenizer.encode("7").unwrap(), vec![ids[7]]);
    let model = Planted {
        inner: lm.model,
        layer: 2, // the fixture has two layers
        context,
        secret: planted.bytes().map(|b| ids[usize::from(b - b'0')]).collect(),
        boost: 5.0,
    };
    check_planted(&model, &lm.tokenizer, prefix, 3, planted, "123");
}

#[test]
fn raw_gpt2_tree_equals_full_strings_with_line_start() {
    // The fixture's own (random) preferences, the context after a line break, 4 digits.
    let lm = HfLm::load(&fixture("gpt2"), &Device::Cpu).unwrap();
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let slots = CausalSlots::new(lm.model.as_ref(), &lm.tokenizer, true);
    let fmt = set_for("code ", 4, &[("0042", 0)]).formats.remove(0);
    let (context, ids) = slots.context_and_digits("code ").unwrap();
    assert_eq!(context, lm.tokenizer.encode("\ncode ").unwrap());
    let tree = exact_space(&slots, &fmt, &ctx).unwrap();
    let brute = brute_force(lm.model.as_ref(), &context, &ids, 4);
    let worst = tree
        .iter()
        .zip(&brute)
        .map(|(&t, &b)| (f64::from(t) - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "largest difference {worst} bits");
    let (root, _) = slots.start("code ").unwrap();
    assert!(slots.block_rows(&root) >= 10);
    // Nats of the context for TF Privacy's mean: the context's own log-probabilities.
    let (nats, n) = slots.prefix_nats("code ").unwrap();
    let lp = lm.model.token_logprobs(&context).unwrap();
    assert_eq!(n, context.len() - 1);
    assert!((nats + lp.iter().map(|&x| f64::from(x)).sum::<f64>()).abs() < 1e-6);
}

#[test]
fn merged_digits_are_refused_naming_the_tokenizer() {
    let tok = ByteTok {
        bos: None,
        merge_repeats: true,
        eos: None,
    };
    let model = Hashed { v: 128 };
    let slots = CausalSlots::new(&model, &tok, false);
    let Err(e) = slots.start("pin: ") else {
        panic!("a merging tokenizer was accepted");
    };
    let e = e.to_string();
    assert!(
        e.contains("test/tokenizer.json") && e.contains("one token per digit"),
        "{e}"
    );
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let err = search_secret(&slots, "pin: ", 4, &SearchOptions::default(), &mut |_| {}, &ctx).unwrap_err();
    assert!(err.to_string().contains("test/tokenizer.json"), "{err}");
}

#[test]
fn hf_folder_without_card_takes_canaries_from_the_command_line() {
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let m = CanaryModel::load(&fixture("gpt2"), &Device::Cpu).unwrap();
    assert!(m.card_set().is_none());
    assert_eq!(m.id(), "gpt2");
    let set = canaries_from_args(&m.id(), &["my pin is :3".into()], &["123".into(), "456".into()]).unwrap();
    assert_eq!(set.canaries.len(), 2);
    let rep = m
        .measure(
            &set,
            &ExposureOptions {
                estimate: Estimate::Both,
                references: 100,
                ..ExposureOptions::default()
            },
            &ctx,
        )
        .unwrap();
    assert_eq!(rep.model, "gpt2");
    assert!(
        rep.canaries
            .iter()
            .all(|c| c.exact_rank.is_some() && c.skew_normal.is_some())
    );
    let r = m
        .search("my pin is ", 3, &SearchOptions::default(), &mut |_| {}, &ctx)
        .unwrap();
    assert_eq!(r.candidates.len(), 10);
    assert!(r.candidates.windows(2).all(|w| w[0].bits <= w[1].bits + 1e-9));
    // Command-line formats: full train-lm syntax, secrets to every format of their length.
    let full = canaries_from_args("x", &["a :2:0,4:11,22".into(), "b :2".into()], &["33".into()]).unwrap();
    assert_eq!(full.canaries.len(), 4);
    assert_eq!(full.formats[1].secrets, vec!["33".to_string()]);
    for (f, sec) in [
        (vec![], vec![]),
        (vec!["a :2".to_string()], vec![]),
        (vec!["a :2".to_string()], vec!["123".to_string()]),
        (vec!["a :2:0,4".to_string()], vec![]),
    ] {
        assert!(canaries_from_args("x", &f, &sec).is_err(), "{f:?} {sec:?}");
    }
}

#[test]
fn merged_digits_fall_back_to_whole_strings_for_the_exact_rank() {
    let (c, s) = ctx_parts();
    let ctx = JobCtx::new(&c, &s);
    let model = Hashed { v: 128 };
    let set = set_for("pin: ", 3, &[("447", 2), ("120", 0)]);
    let fmt = &set.formats[0];
    // A tokenizer that merges repeated digits: every string scored whole.
    let merging = ByteTok {
        bos: Some(1),
        merge_repeats: true,
        eos: None,
    };
    let whole = WholeStrings::new(&model, &merging, false, &set).unwrap();
    let tree = exact_space(&whole, fmt, &ctx).unwrap();
    let brute: Vec<f64> = (0..1000)
        .map(|i| {
            let ids = merging.encode(&format!("pin: {i:03}")).unwrap();
            let lp = model.token_logprobs(&ids).unwrap();
            -lp.iter().map(|&x| f64::from(x)).sum::<f64>() * std::f64::consts::LOG2_E
        })
        .collect();
    for (i, (&t, &b)) in tree.iter().zip(&brute).enumerate() {
        assert!((f64::from(t) - b).abs() < 1e-3, "candidate {i}: {t} vs {b}");
    }
    let rep = measure_exposure_of(
        &whole,
        &set,
        &ExposureOptions {
            estimate: Estimate::Exact,
            ..ExposureOptions::default()
        },
        &ctx,
    )
    .unwrap();
    for ce in &rep.canaries {
        let i: usize = ce.secret.parse().unwrap();
        assert_eq!(ce.exact_rank, Some(rank_in(&brute, i)), "{ce:?}");
    }
    // With a tokenizer that splits digits, whole strings and the digit tree rank alike: the
    // costs differ by the context's own cost only.
    let split = ByteTok {
        bos: Some(1),
        merge_repeats: false,
        eos: None,
    };
    let a = exact_space(
        &WholeStrings::new(&model, &split, false, &set).unwrap(),
        fmt,
        &ctx,
    )
    .unwrap();
    let b = exact_space(&CausalSlots::new(&model, &split, false), fmt, &ctx).unwrap();
    // A tokenizer that appends an end-of-sequence id: the slot follows the context before it.
    let closing = ByteTok {
        bos: Some(1),
        merge_repeats: false,
        eos: Some(2),
    };
    let with_eos = CausalSlots::new(&model, &closing, false);
    let (context, _) = with_eos.context_and_digits("pin: ").unwrap();
    assert_eq!(context, split.encode("pin: ").unwrap());
    assert_eq!(exact_space(&with_eos, fmt, &ctx).unwrap(), b);
    let shift = a[0] - b[0];
    assert!(shift > 0.0);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y - shift).abs() < 1e-3));
}
