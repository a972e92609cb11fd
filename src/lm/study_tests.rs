//! Planted-ground-truth tests of the study-level runs (`extract_report.rs`, `mia_report.rs`,
//! `study.rs`) and of the report's LM section, on the trigram `CausalLm` of `measure_tests.rs`:
//! 10 members planted 20 times, 30 planted once, 40 held out, all drawn from one uniform
//! generator, so what separates them is only what the model memorized.

use super::extract_report::{LmExtractOptions, finding_lines, measure_extraction};
use super::measure_tests::{Trigram, V, corpus};
use super::mia::{self, DEFAULT_K};
use super::mia_report::{LmMiaOptions, measure_mia, token_stats_batch};
use super::study::{
    LmDoc, LmSource, LmUnderTest, TextCodec, extract_path, list_results, load_extract_report,
    load_mia_report, mia_path, save_report,
};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx, NullSink};

/// Token ids written as decimal numbers separated by spaces.
struct Numbers;

impl TextCodec for Numbers {
    fn encode(&self, text: &str) -> CoreResult<Vec<u32>> {
        text.split_whitespace()
            .map(|w| {
                w.parse()
                    .map_err(|_| CoreError::Invalid(format!("not a token id: {w}")))
            })
            .collect()
    }
    fn token_text(&self, id: u32) -> Option<String> {
        (id < V as u32).then(|| format!("{id} "))
    }
}

fn text(s: &[u32]) -> String {
    s.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

/// The model and its documents: members 0..10 planted 20 times, 10..40 once, 40 held out.
fn planted() -> (Trigram, Vec<LmDoc>, Trigram) {
    let (members, held, other) = corpus();
    let data: Vec<(&[u32], usize)> = members
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_slice(), if i < 10 { 20 } else { 1 }))
        .collect();
    let model = Trigram::train(V, &data);
    let odata: Vec<(&[u32], usize)> = other.iter().map(|s| (s.as_slice(), 20)).collect();
    let control = Trigram::train(V, &odata);
    let mut docs = Vec::new();
    for (i, s) in members.iter().enumerate() {
        docs.push(LmDoc {
            text: text(s),
            source: format!("member {i}"),
            insertions: Some(if i < 10 { 20 } else { 1 }),
        });
    }
    for (i, s) in held.iter().enumerate() {
        docs.push(LmDoc {
            text: text(s),
            source: format!("held {i}"),
            insertions: Some(0),
        });
    }
    (model, docs, control)
}

fn opts() -> LmExtractOptions {
    LmExtractOptions {
        prefix_tokens: 12,
        suffix_tokens: 16,
        batch: 16,
        sweep_prefix: vec![2, 6, 12],
        sweep_suffix: vec![4, 16, 20, 40],
        ..LmExtractOptions::default()
    }
}

fn ut(model: &Trigram) -> LmUnderTest<'_> {
    LmUnderTest {
        model,
        codec: &Numbers,
        id: "trigram",
    }
}

fn ctx_run<T>(f: impl FnOnce(&JobCtx<'_>) -> CoreResult<T>) -> CoreResult<T> {
    let cancel = CancelToken::new();
    f(&JobCtx::new(&cancel, &NullSink))
}

#[test]
fn planted_groups_are_extracted_and_held_out_is_not() -> CoreResult<()> {
    let (model, docs, _) = planted();
    let rep = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &opts(), c))?;
    assert_eq!(rep.overall.n, 80);
    assert!(rep.skipped.is_empty());
    let ins: Vec<u32> = rep.groups.iter().map(|g| g.insertions).collect();
    assert_eq!(ins, [0, 1, 20]);
    let heavy = rep
        .group(20)
        .ok_or_else(|| CoreError::Invalid("no group 20".into()))?;
    assert_eq!((heavy.figures.n, heavy.figures.exact), (10, 10));
    assert_eq!(heavy.figures.exact_frac, 1.0);
    assert_eq!(heavy.figures.token_match, 1.0);
    assert_eq!(heavy.figures.longest_match, 16);
    let held = rep
        .group(0)
        .ok_or_else(|| CoreError::Invalid("no group 0".into()))?;
    assert_eq!((held.figures.n, held.figures.exact), (40, 0));
    assert!(held.figures.token_match < 0.1, "{}", held.figures.token_match);
    // (n, p): the held-out continuations (p_z ≈ 1024^-16) are not extractable at any n ≤ 1e6.
    assert!(held.figures.np_rates.iter().all(|r| r.rate == 0.0));
    let at = |g: &super::extract_report::ExtractGroup, n: f64, p: f64| {
        g.figures
            .np_rates
            .iter()
            .find(|r| r.n == n && r.p == p)
            .map_or(f64::NAN, |r| r.rate)
    };
    assert_eq!(at(heavy, 100.0, 0.9), 1.0);
    // Side by side: a planted document's generated tokens equal its true continuation.
    let d = &rep.documents[0];
    assert_eq!(d.insertions, Some(20));
    assert_eq!(d.prefix.len(), 12);
    assert_eq!(d.generated, d.truth);
    assert!(d.matches.iter().all(|&m| m) && d.matches.len() == 16);
    assert_eq!(d.truth_tokens.len(), 16);
    assert_eq!(d.truth_tokens[0], format!("{} ", d.truth[0]));
    let h = &rep.documents[40];
    assert_eq!(h.insertions, Some(0));
    assert!(!h.exact);
    assert_eq!(
        h.matches.iter().filter(|&&m| m).count() as f64 / 16.0,
        h.token_match
    );
    // The finding, most-inserted group first.
    let lines = finding_lines(&rep);
    assert!(
        lines[0].starts_with("passages seen 20 times: 10/10 reproduced verbatim"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("held out (never trained on): 0/40"),
        "{lines:?}"
    );
    // The sweep: 2+16, 6+16, 12+16 (prefix) and 12+4, 12+20 (suffix; 12+16 once, 12+40 longer
    // than every document and so left out). The planted group stays extracted at every point.
    let pts: Vec<(usize, usize)> = rep.sweep.iter().map(|p| (p.k, p.m)).collect();
    assert_eq!(pts, [(2, 16), (6, 16), (12, 16), (12, 4), (12, 20)]);
    for p in &rep.sweep {
        let g = p.groups.iter().find(|g| g.insertions == 20);
        assert_eq!(g.map(|g| g.figures.exact_frac), Some(1.0), "k {} m {}", p.k, p.m);
        let g = p.groups.iter().find(|g| g.insertions == 0);
        assert_eq!(g.map(|g| g.figures.exact), Some(0), "k {} m {}", p.k, p.m);
    }
    Ok(())
}

#[test]
fn batching_gives_the_same_report_and_short_documents_are_skipped() -> CoreResult<()> {
    let (model, mut docs, _) = planted();
    docs.push(LmDoc {
        text: "1 2 3".into(),
        source: "short".into(),
        insertions: Some(0),
    });
    let mut o = opts();
    o.sweep_prefix.clear();
    o.sweep_suffix.clear();
    let a = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &o, c))?;
    o.batch = 1;
    let b = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &o, c))?;
    assert_eq!(a.documents, b.documents);
    assert_eq!(a.groups, b.groups);
    assert_eq!(a.skipped, ["short"]);
    // Too long for the context, and nothing long enough: one clear error each.
    o.prefix_tokens = 2000;
    let e = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &o, c)).unwrap_err();
    assert!(e.to_string().contains("more than the model's context"), "{e}");
    o.prefix_tokens = 30;
    let e = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &o, c)).unwrap_err();
    assert!(
        e.to_string().contains("no document has prefix 30 + suffix 16"),
        "{e}"
    );
    Ok(())
}

#[test]
fn mia_separates_planted_from_held_out() -> CoreResult<()> {
    let (model, docs, control) = planted();
    let (members, held): (Vec<LmDoc>, Vec<LmDoc>) = docs.into_iter().partition(|d| d.insertions > Some(0));
    let ctrl = LmUnderTest {
        model: &control,
        codec: &Numbers,
        id: "control",
    };
    let rep = ctx_run(|c| {
        measure_mia(
            ut(&model),
            Some(ctrl),
            LmSource::Card,
            &members,
            &held,
            &LmMiaOptions::default(),
            c,
        )
    })?;
    assert_eq!((rep.n_members, rep.n_nonmembers), (40, 40));
    let names: Vec<&str> = rep.attacks.iter().map(|a| a.attack.as_str()).collect();
    assert_eq!(names, ["loss", "zlib", "min_k", "min_k_pp", "reference"]);
    for a in &rep.attacks {
        assert!(a.auc > 0.9, "{}: AUC {}", a.attack, a.auc);
        assert!(a.auc_ci[0] <= a.auc && a.auc <= a.auc_ci[1], "{a:?}");
        assert!(a.tpr_at_0_1pct_fpr <= a.tpr_at_1pct_fpr);
        assert_eq!(a.roc.fpr.first(), Some(&0.0));
    }
    // The twenty-times group is perfectly separated by LOSS.
    let g20 = rep.by_insertions.iter().find(|g| g.insertions == 20);
    assert_eq!(g20.map(|g| (g.n, g.auc[0].1)), Some((10, 1.0)));
    // The per-document scores are the ones `mia::mia_scores` gives one by one.
    let one = mia::mia_scores(
        &model,
        Some(&control),
        &Numbers.encode(&members[3].text)?,
        &members[3].text,
        DEFAULT_K,
    )?;
    let got = rep.documents[3].scores;
    for name in mia::SCORE_NAMES {
        let (a, b) = (
            got.get(name).unwrap_or(f64::NAN),
            one.get(name).unwrap_or(f64::NAN),
        );
        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{name}: {a} vs {b}");
    }
    assert!(rep.documents[3].member && !rep.documents[45].member);
    // No reference: four attacks; no non-members: an error.
    let rep4 = ctx_run(|c| {
        measure_mia(
            ut(&model),
            None,
            LmSource::Card,
            &members,
            &held,
            &LmMiaOptions::default(),
            c,
        )
    })?;
    assert_eq!(rep4.attacks.len(), 4);
    assert!(rep4.reference.is_none());
    let e = ctx_run(|c| {
        measure_mia(
            ut(&model),
            None,
            LmSource::Card,
            &members,
            &[],
            &LmMiaOptions::default(),
            c,
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("needs members and non-members"), "{e}");
    Ok(())
}

#[test]
fn batched_token_stats_equal_one_by_one() -> CoreResult<()> {
    let (model, docs, _) = planted();
    let ids: Vec<Vec<u32>> = docs[..5]
        .iter()
        .map(|d| Numbers.encode(&d.text))
        .collect::<CoreResult<_>>()?;
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let batch = token_stats_batch(&model, &seqs)?;
    for (s, b) in seqs.iter().zip(&batch) {
        let one = mia::token_stats(&model, s)?;
        assert_eq!(&one, b);
    }
    Ok(())
}

#[test]
fn cancelled_runs_stop() {
    let (model, docs, _) = planted();
    let cancel = CancelToken::new();
    cancel.cancel();
    let ctx = JobCtx::new(&cancel, &NullSink);
    let e = measure_extraction(ut(&model), LmSource::Card, &docs, &opts(), &ctx).unwrap_err();
    assert!(e.is_cancelled());
    let e = measure_mia(
        ut(&model),
        None,
        LmSource::Card,
        &docs[..40],
        &docs[40..],
        &LmMiaOptions::default(),
        &ctx,
    )
    .unwrap_err();
    assert!(e.is_cancelled());
}

/// Reports cached in a study are listed, read back identically, and drawn by `rote report`:
/// the extraction table by insertion group, a side-by-side document, the MIA table and the ROC.
#[test]
fn cached_reports_round_trip_and_make_the_report_section() -> CoreResult<()> {
    let (model, docs, _) = planted();
    let tmp = tempfile::tempdir().map_err(|e| CoreError::io("tempdir", e))?;
    let root = tmp.path().join("study");
    crate::study::Study::open_or_create(&root)?;
    let ext = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &opts(), c))?;
    let (members, held) = docs.split_at(40);
    let mia_rep = ctx_run(|c| {
        measure_mia(
            ut(&model),
            None,
            LmSource::Card,
            members,
            held,
            &LmMiaOptions::default(),
            c,
        )
    })?;
    let ep = extract_path(&root, "trigram", &LmSource::Card, 12, 16);
    let mp = mia_path(&root, "trigram", &LmSource::Card, None);
    assert!(
        ep.ends_with("results/lm/trigram/extract-card-k12-m16.json"),
        "{}",
        ep.display()
    );
    assert!(mp.ends_with("results/lm/trigram/mia-card.json"));
    save_report(&ep, &ext)?;
    save_report(&mp, &mia_rep)?;
    std::fs::write(ep.with_file_name("mia-broken.json"), "{").map_err(|e| CoreError::io(&ep, e))?;
    // Read back (serde_json may round a float's last bit, so compare what the views use).
    let back = load_extract_report(&ep)?;
    assert_eq!(
        (back.groups.len(), back.documents.len()),
        (ext.groups.len(), ext.documents.len())
    );
    assert!(
        back.groups
            .iter()
            .zip(&ext.groups)
            .all(|(a, b)| a.figures.exact == b.figures.exact)
    );
    assert!(
        back.documents
            .iter()
            .zip(&ext.documents)
            .all(|(a, b)| a.generated == b.generated
                && a.matches == b.matches
                && (a.ln_p_z - b.ln_p_z).abs() < 1e-9)
    );
    let back = load_mia_report(&mp)?;
    assert_eq!(back.attacks.len(), mia_rep.attacks.len());
    for (a, b) in back.attacks.iter().zip(&mia_rep.attacks) {
        assert_eq!(a.attack, b.attack);
        assert!((a.auc - b.auc).abs() < 1e-12 && a.roc.fpr.len() == b.roc.fpr.len());
    }
    let listed = list_results(&root);
    assert_eq!(listed.extract, [("trigram".to_string(), ep.clone())]);
    assert_eq!(listed.mia.len(), 2);

    let out = tmp.path().join("report");
    let summary = ctx_run(|c| crate::report::write_report(&root, &out, c))?;
    assert!(
        summary.sections.iter().any(|s| s == "Language model: trigram"),
        "{:?}",
        summary.sections
    );
    assert!(
        summary.notes.iter().any(|n| n.contains("mia-broken.json")),
        "{:?}",
        summary.notes
    );
    let html = std::fs::read_to_string(out.join("index.html")).map_err(|e| CoreError::io(&out, e))?;
    for want in [
        "passages seen ≥16 times: 10/10 reproduced verbatim; held out: 0/40",
        "passages seen 20 times: 10/10 reproduced verbatim",
        "<mark>",
        "min_k_pp",
        "false-positive rate",
    ] {
        assert!(html.contains(want), "page lacks {want}");
    }
    for f in ["lm-trigram-extract-card-k12-m16.csv", "lm-trigram-mia-card.csv"] {
        assert!(
            summary.files.iter().any(|x| x == f),
            "{f} not in {:?}",
            summary.files
        );
    }
    Ok(())
}

#[test]
fn headline_states_the_finding() -> CoreResult<()> {
    let (model, docs, _) = planted();
    let mut o = opts();
    o.sweep_prefix.clear();
    o.sweep_suffix.clear();
    let rep = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &docs, &o, c))?;
    assert_eq!(
        super::extract_report::headline(&rep),
        "passages seen ≥16 times: 10/10 reproduced verbatim; held out: 0/40 (16 tokens after the 12-token prefix)"
    );
    let plain: Vec<LmDoc> = docs[..10]
        .iter()
        .map(|d| LmDoc {
            insertions: None,
            ..d.clone()
        })
        .collect();
    let rep = ctx_run(|c| measure_extraction(ut(&model), LmSource::Card, &plain, &o, c))?;
    assert!(rep.groups.is_empty());
    assert!(super::extract_report::headline(&rep).starts_with("10/10 documents reproduced verbatim"));
    Ok(())
}

#[test]
fn batches_shrink_for_large_vocabularies() {
    use super::study::rows_per_batch;
    assert_eq!(rows_per_batch(16, 64, 400), 16);
    // GPT-2's 50,257 tokens at 1,024 positions: 128 MiB of logits is not even one row.
    assert_eq!(rows_per_batch(16, 1024, 50_257), 1);
    assert_eq!(rows_per_batch(16, 64, 50_257), 10);
    assert_eq!(rows_per_batch(0, 1, 1), 1);
}
