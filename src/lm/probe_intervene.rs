//! The intervention of `rote lm-probe` (spec 11 §B.4–5): the best probe's direction projected
//! out of the activations (`h − α ((h − c)·ŵ) ŵ` at every position, [`super::trace::Edited`])
//! while the model extracts its memorized members and is scored on held-out text and on members
//! planted too rarely to be memorized, beside a random direction of the same site as a control.

use rand::SeedableRng as _;

use super::extract::extract_greedy;
use super::probe::{ProbeSeq, SeqActs, Token, features};
use super::probe_fit::{Rows, fit};
use super::probe_report::{AblatedExhibit, AlphaPoint, Fitted, Intervention, ProbeOptions};
use super::study::LmUnderTest;
use super::trace::{Edit, Edited};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Mean per-token perplexity of `seqs` under `model`.
fn perplexity(model: &dyn super::CausalLm, seqs: &[Vec<u32>]) -> CoreResult<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in seqs.chunks(16) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        for lp in model.token_logprobs_batch(&refs)? {
            sum -= lp.iter().map(|&v| f64::from(v)).sum::<f64>();
            n += lp.len();
        }
    }
    Ok((sum / n.max(1) as f64).exp())
}

/// Extraction and perplexity under `edits` (none: the model itself).
fn measure(
    model: &dyn super::CausalLm,
    members: &[&[u32]],
    rare: &[Vec<u32>],
    heldout: &[Vec<u32>],
    (k, m): (usize, usize),
    alpha: f32,
) -> CoreResult<(AlphaPoint, Vec<Vec<u32>>)> {
    let ex = extract_greedy(model, members, k, m, 8)?;
    let n = ex.len().max(1) as f64;
    Ok((
        AlphaPoint {
            alpha,
            extraction: ex.iter().filter(|e| e.exact).count() as f64 / n,
            match_fraction: ex.iter().map(|e| e.match_fraction).sum::<f64>() / n,
            heldout_ppl: perplexity(model, heldout)?,
            rare_member_ppl: if rare.is_empty() {
                None
            } else {
                Some(perplexity(model, rare)?)
            },
        },
        ex.into_iter().map(|e| e.generated).collect(),
    ))
}

/// The intervention at the best site (spec 11 §B.4–5).
#[allow(
    clippy::too_many_arguments,
    reason = "what the probes produced, passed through once"
)]
pub(crate) fn intervene(
    lm: &LmUnderTest<'_>,
    seqs: &[ProbeSeq],
    rare: &[Vec<u32>],
    windows: &[Vec<u32>],
    tokens: &[Token],
    acts: &[Option<SeqActs>],
    fitted: &[Fitted],
    best: usize,
    opts: &ProbeOptions,
    ctx: &JobCtx<'_>,
) -> CoreResult<Intervention> {
    let (k, m) = (opts.prefix, opts.suffix);
    let t = k + m;
    let (probe, _, _) = &fitted[best];
    let y: Vec<bool> = tokens.iter().map(|t| t.memorized).collect();
    let group: Vec<usize> = tokens.iter().map(|t| t.seq).collect();
    let (x, width) = features(tokens, acts, best)?;
    let rows = Rows {
        x: &x,
        d: width,
        y: &y,
        group: &group,
    };
    let all: Vec<usize> = (0..tokens.len()).collect();
    let c = probe.c.iter().copied().fold(0.0, f64::max).max(0.1);
    let direction = fit(&rows, &all, c).raw_direction();
    let norm = direction.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    let unit: Vec<f32> = direction.iter().map(|v| v / norm).collect();
    let center = if opts.clamp_to_class0 {
        let neg: Vec<f32> = x
            .chunks_exact(width)
            .zip(&y)
            .filter(|(_, y)| !**y)
            .map(|(r, _)| r.iter().zip(&unit).map(|(a, b)| a * b).sum())
            .collect();
        neg.iter().sum::<f32>() / neg.len().max(1) as f32
    } else {
        0.0
    };
    let members: Vec<&[u32]> = seqs
        .iter()
        .filter(|s| s.member)
        .map(|s| s.ids.as_slice())
        .collect();
    let heldout: Vec<Vec<u32>> = if windows.is_empty() {
        seqs.iter().filter(|s| !s.member).map(|s| s.ids.clone()).collect()
    } else {
        windows.to_vec()
    };
    let edit = |dir: &[f32], alpha: f32| Edit {
        site: probe.site,
        layer: probe.layer,
        direction: dir.to_vec(),
        center,
        alpha,
    };
    // `--neurons K`: the K units the screen ranks first (or K random units, the control), each
    // moved towards its not-memorized mean (spec 11 §B.4's second form).
    let class0_mean = |j: usize| {
        let (sum, n) = x
            .chunks_exact(width)
            .zip(&y)
            .filter(|(_, y)| !**y)
            .fold((0f32, 0usize), |(s, n), (r, _)| (s + r[j], n + 1));
        sum / n.max(1) as f32
    };
    let unit_clamps = |units: &[usize], alpha: f32| -> Vec<Edit> {
        units
            .iter()
            .map(|&j| {
                let mut d = vec![0f32; width];
                d[j] = 1.0;
                Edit {
                    site: probe.site,
                    layer: probe.layer,
                    direction: d,
                    center: class0_mean(j),
                    alpha,
                }
            })
            .collect()
    };
    let screened: Vec<usize> = super::probe_fit::screen_neurons(&rows, opts.neurons.min(width))
        .iter()
        .map(|u| u.index)
        .collect();
    let edits_at = |alpha: f32| {
        if opts.neurons > 0 {
            unit_clamps(&screened, alpha)
        } else {
            vec![edit(&unit, alpha)]
        }
    };
    let mut points = Vec::new();
    let mut generated = Vec::new();
    let total = opts.alphas.len() as u64 + 1;
    for (i, &alpha) in opts.alphas.iter().enumerate() {
        ctx.checkpoint()?;
        ctx.progress("intervention", i as u64, total);
        let edited = Edited::new(lm.model, edits_at(alpha))?;
        let (point, gen_) = measure(&edited, &members, rare, &heldout, (k, m), alpha)?;
        points.push(point);
        generated.push(gen_);
    }
    ctx.progress("intervention", total - 1, total);
    let alpha_max = opts.alphas.iter().copied().fold(0.0, f32::max);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    rng.set_stream(9300);
    let random_edits = if opts.neurons > 0 {
        let mut all: Vec<usize> = (0..width).collect();
        rand::seq::SliceRandom::shuffle(all.as_mut_slice(), &mut rng);
        all.truncate(screened.len());
        unit_clamps(&all, alpha_max)
    } else {
        let random: Vec<f32> = (0..width)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect();
        vec![edit(&random, alpha_max)]
    };
    let edited = Edited::new(lm.model, random_edits)?;
    let (random_direction, _) = measure(&edited, &members, rare, &heldout, (k, m), alpha_max)?;
    let text = |ids: &[u32]| -> String { ids.iter().filter_map(|&id| lm.codec.token_text(id)).collect() };
    let mut exhibits = Vec::new();
    if let (Some(first), Some(last)) = (generated.first(), generated.last()) {
        let member_seqs: Vec<&ProbeSeq> = seqs.iter().filter(|s| s.member).collect();
        for ((s, before), after) in member_seqs.iter().zip(first).zip(last) {
            if before.as_slice() == &s.ids[k..t] && exhibits.len() < 2 {
                exhibits.push(AblatedExhibit {
                    source: s.source.clone(),
                    prefix: text(&s.ids[..k]),
                    truth: text(&s.ids[k..t]),
                    original: text(before),
                    ablated: text(after),
                });
            }
        }
    }
    Ok(Intervention {
        site: probe.name.clone(),
        form: if opts.neurons > 0 {
            format!(
                "clamp of the top {} screened units to their not-memorized mean",
                screened.len()
            )
        } else if opts.clamp_to_class0 {
            "clamp".into()
        } else {
            "projection".into()
        },
        points,
        random_direction,
        exhibits,
    })
}
