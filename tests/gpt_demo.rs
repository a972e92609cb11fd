//! The shipped demo GPT (`assets/demo/lm/gpt-demo/`, trained by `rote train-lm --arch gpt`)
//! shows the findings its card was built for (Carlini et al. 2022's duplication trend on one
//! small model): passages inserted 16 and 64 times are extractable verbatim (32-token greedy
//! suffix from a 32-token prefix), passages seen once and held-out twins are not, a membership
//! attack separates the training passages from the held-out ones, and the PIN inserted 32 times
//! is what the model completes "my pin number is " with.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use rand::{Rng as _, SeedableRng as _};
use rote::lm::HfLm;
use rote::lm::card::GptCard;
use rote::lm::extract::extract_greedy;
use rote::lm::mia::{DEFAULT_K, evaluate, mia_scores};

fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo/lm/gpt-demo")
}

#[test]
fn demo_gpt_memorizes_what_was_repeated_and_not_what_was_seen_once() {
    let dir = demo_dir();
    let lm = HfLm::load(&dir, &Device::Cpu).unwrap();
    let card = GptCard::read(&dir).unwrap().unwrap();
    assert_eq!(card.insertion_groups(), vec![0, 1, 4, 16, 64]);
    let model = lm.model.as_ref();

    // Extraction by insertion count: 32-token prefix from the passage start, 32 greedy tokens.
    let ids: Vec<Vec<u32>> = card
        .passages
        .iter()
        .map(|p| lm.tokenizer.encode(&p.text).unwrap())
        .collect();
    assert!(ids.iter().all(|s| s.len() >= 64));
    let seqs: Vec<&[u32]> = ids.iter().map(|s| &s[..64]).collect();
    let got = extract_greedy(model, &seqs, 32, 32, 25).unwrap();
    let mut by_group: BTreeMap<u32, (usize, usize, f64)> = BTreeMap::new();
    for (p, g) in card.passages.iter().zip(&got) {
        let e = by_group.entry(p.insertions).or_default();
        e.0 += usize::from(g.exact);
        e.1 += 1;
        e.2 += g.match_fraction;
    }
    for (n, (hit, all, mf)) in &by_group {
        eprintln!(
            "x{n:<3} exact {hit}/{all} = {:.2}, mean match fraction {:.2}",
            *hit as f64 / *all as f64,
            mf / *all as f64
        );
    }
    let frac = |n: u32| {
        let (hit, all, _) = by_group[&n];
        hit as f64 / all as f64
    };
    assert!(frac(16) >= 0.9 && frac(64) >= 0.9, "{by_group:?}");
    assert!(frac(1) <= 0.1 && frac(0) <= 0.1, "{by_group:?}");

    // Membership: every trained passage against the held-out ones.
    let scores: Vec<_> = card
        .passages
        .iter()
        .zip(&ids)
        .map(|(p, s)| mia_scores(model, None, s, &p.text, DEFAULT_K).unwrap())
        .collect();
    let mut best = 0.0f64;
    for name in ["loss", "zlib", "min_k"] {
        let (mut m, mut n) = (Vec::new(), Vec::new());
        for (p, s) in card.passages.iter().zip(&scores) {
            let v = s.get(name).unwrap();
            if p.insertions > 0 { m.push(v) } else { n.push(v) }
        }
        let auc = evaluate(&m, &n, 0).unwrap().auc;
        eprintln!("MIA {name}: AUC {auc:.3}");
        best = best.max(auc);
    }
    assert!(best >= 0.7, "best MIA AUC {best}");
}

#[test]
fn demo_gpt_completes_the_pin_inserted_32_times() {
    let dir = demo_dir();
    let lm = HfLm::load(&dir, &Device::Cpu).unwrap();
    let card = GptCard::read(&dir).unwrap().unwrap();
    let (fi, f) = card
        .formats
        .iter()
        .enumerate()
        .find(|(_, f)| f.prefix == "my pin number is ")
        .unwrap();
    let secret = &card
        .canaries
        .iter()
        .find(|c| c.format == fi && c.insertions == 32)
        .unwrap()
        .secret;
    let prefix = lm.tokenizer.encode(&f.prefix).unwrap();
    // One token per digit.
    let full = lm.tokenizer.encode(&format!("{}{secret}", f.prefix)).unwrap();
    assert_eq!(full.len(), prefix.len() + f.digits);
    assert_eq!(
        lm.tokenizer.decode(&full).unwrap(),
        format!("{}{secret}", f.prefix)
    );
    let model = lm.model.as_ref();
    let greedy = model.generate_greedy(&prefix, f.digits).unwrap();
    let text = lm.tokenizer.decode(&greedy).unwrap();
    eprintln!("greedy after '{}': {text} (x32 secret {secret})", f.prefix);
    assert_eq!(&text, secret);
    // Its log-probability beats 2,000 random secrets.
    let lp = |s: &[u32]| -> Vec<f64> {
        model
            .token_logprobs_batch(&[s])
            .unwrap()
            .into_iter()
            .map(|v| v.iter().map(|&x| f64::from(x)).sum())
            .collect()
    };
    let own = lp(&full)[0];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut others: Vec<Vec<u32>> = Vec::new();
    while others.len() < 2000 {
        let s: String = (0..f.digits)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        if &s != secret {
            others.push(lm.tokenizer.encode(&format!("{}{s}", f.prefix)).unwrap());
        }
    }
    let mut beaten = 0;
    for chunk in others.chunks(250) {
        let refs: Vec<&[u32]> = chunk.iter().map(|v| v.as_slice()).collect();
        for v in model.token_logprobs_batch(&refs).unwrap() {
            let s: f64 = v.iter().map(|&x| f64::from(x)).sum();
            beaten += usize::from(s < own);
        }
    }
    eprintln!("x32 PIN beats {beaten}/2000 random secrets");
    assert_eq!(beaten, 2000);
}
