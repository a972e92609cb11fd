//! The Text view: its colour map, and the view driven headlessly on a study holding the tiny GPT-2
//! fixture with a card of planted and held-out passages.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use strip::token_colour;

#[test]
fn token_colour_grows_with_log_probability() {
    let mut last = 0u8;
    for k in 0..=200 {
        let lp = -20.0 + 0.1 * k as f32;
        let a = token_colour(Some(lp)).a();
        assert!(a >= last, "opacity fell at ln p = {lp}");
        last = a;
    }
    assert!(token_colour(Some(0.0)).a() > 200);
    assert!(token_colour(Some(strip::LOGP_FLOOR)).a() < 30);
    assert!(token_colour(Some(-1.0)).a() > token_colour(Some(-4.0)).a());
    assert_eq!(token_colour(None), egui::Color32::TRANSPARENT);
}

mod app {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use egui_kittest::Harness;
    use egui_kittest::kittest::{NodeT as _, Queryable as _};

    use crate::lm::extract_report::headline;
    use crate::lm::study::LmSource;
    use crate::ui::text_jobs::{TextRequest, TextTask};
    use crate::ui::{App, Command, View};

    pub const PASSAGES: [&str; 3] = [
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
        "The family of Dashwood had long been settled in Sussex. Their estate was large, and their residence was at Norland Park, in the centre of their property, where, for many generations, they had lived in so respectable a manner as to engage the general good opinion of their acquaintance.",
        "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite some of the best blessings of existence; and had lived nearly twenty-one years in the world with very little to distress or vex her, being the youngest of the two daughters.",
    ];

    /// A study holding the tiny GPT-2 fixture as `lm/gpt-fix`, with a card of 6 planted passages
    /// (64, 64, 16, 16, 4, 1 times) and 3 held-out ones when `card` is set.
    pub fn fixture_study(root: &Path, card: bool) -> PathBuf {
        crate::study::Study::open_or_create(root).unwrap();
        let dir = root.join("lm").join("gpt-fix");
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
        }
        if card {
            let counts = [64, 64, 16, 16, 4, 1, 0, 0, 0];
            let passages: Vec<serde_json::Value> = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let text = format!("{} ({i})", PASSAGES[i % 3]);
                    serde_json::json!({"text": text, "insertions": n, "offset": i * 1000})
                })
                .collect();
            let card = serde_json::json!({
                "kind": "gpt", "id": "gpt-fix", "corpus": {"source": "austen", "hash": "h",
                "offset": 0, "chars": 10, "val_chars": 5}, "formats": [], "canaries": [],
                "passages": passages,
                "recipe": {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_ctx": 64, "vocab_size": 400,
                           "epochs": 1, "batch_size": 2, "lr": 1e-3, "seed": 0},
                "epochs": [], "seconds": 0.0, "n_params": 1, "command": "test", "rote_version": ""
            });
            std::fs::write(dir.join("card.json"), card.to_string()).unwrap();
        }
        dir
    }

    fn harness(study: &Path) -> Harness<'static, App> {
        crate::ui::test_support::harness(study, View::Text, egui::vec2(1280.0, 800.0))
    }

    fn step_until(h: &mut Harness<'_, App>, what: &str, pred: impl Fn(&App) -> bool) {
        crate::ui::test_support::step_until(h, what, Duration::from_secs(120), pred);
    }

    #[test]
    fn text_view_measures_planted_passages_and_reopens_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let study = dir.path().join("s");
        fixture_study(&study, true);
        let mut h = harness(&study);
        step_until(&mut h, "the model opened", |a| a.text_view.rows.len() == 9);
        h.get_by_label("card passage 0");
        h.get_by_label("4x");

        h.get_by_label("Run extraction").click();
        step_until(&mut h, "extraction", |a| {
            a.text_view.loaded.as_ref().is_some_and(|l| l.extract.is_some())
        });
        h.get_by_label("Run membership inference").click();
        step_until(&mut h, "membership inference", |a| {
            a.text_view.loaded.as_ref().is_some_and(|l| l.mia.is_some())
        });
        let loaded = h.state().text_view.loaded.clone().unwrap();
        let ex = loaded.extract.as_ref().unwrap();
        let finding = headline(ex);
        assert!(finding.starts_with("passages seen ≥16 times: "), "{finding}");
        assert!(finding.contains("held out: "), "{finding}");
        h.get_by_label(&finding);
        // Every row has its extraction and membership figures.
        assert!(
            h.state()
                .text_view
                .rows
                .iter()
                .all(|r| r.exact.is_some() && r.loss.is_some())
        );
        // The ROC: one curve per attack, zero rates clamped onto the log axes.
        let mia = loaded.mia.as_ref().unwrap();
        let (floor, curves) = super::plots::roc_curves(mia);
        assert_eq!(curves.len(), 4);
        assert!(
            curves
                .iter()
                .all(|(_, p)| p.iter().all(|[x, y]| *x > floor && *y > floor))
        );
        assert!(curves.iter().all(|(_, p)| p.windows(2).all(|w| w[0] != w[1])));
        h.get_by_label("Membership inference");
        assert!(h.get_all_by_label("min_k_pp").count() >= 1);

        // The selected document's token strip (most inserted by default).
        let sel = h.state().text_view.selected.unwrap();
        assert_eq!(loaded.docs[sel].insertions, Some(64));
        step_until(&mut h, "the token strip", |a| {
            a.text_view.strips.contains_key(&sel)
        });
        let strip = h.state().text_view.strips[&sel].clone();
        assert!(strip.tokens.len() >= 32);
        assert_eq!(strip.logp[0], None);
        assert!(strip.logp[1..].iter().all(|l| l.is_some_and(|x| x <= 0.0)));
        assert!(
            strip.rank[1..]
                .iter()
                .all(|r| r.is_some_and(|r| (1..=400).contains(&r)))
        );
        h.get_by_label("Token log-probabilities");
        h.get_by_label("True continuation");
        h.get_by_label("Generated (greedy)");

        // Sorting by insertions puts the held-out passages last, then first.
        h.get_by_label("Insertions").click();
        h.run_steps(2);
        assert_eq!(h.state().text_view.rows[0].insertions, Some(64));
        h.get_by_label("Insertions").click();
        h.run_steps(2);
        assert_eq!(h.state().text_view.rows[0].insertions, Some(0));

        // Selecting another document computes its strip.
        h.get_by_label("card passage 8").click();
        step_until(&mut h, "the held-out strip", |a| {
            a.text_view.strips.contains_key(&8)
        });

        // A bad text file: one error naming the file; the app keeps working.
        let bad = dir.path().join("broken.txt");
        std::fs::write(&bad, [0xff, 0xfe, 0x00, 0x41]).unwrap();
        h.state_mut().push_command(Command::Text(Box::new(TextRequest {
            dir: study.join("lm").join("gpt-fix"),
            source: Some(LmSource::Texts {
                path: bad.display().to_string(),
            }),
            task: TextTask::Open,
        })));
        step_until(&mut h, "the error", |a| a.text_view.error.is_some());
        let e = h.state().text_view.error.clone().unwrap();
        assert!(e.contains("broken.txt"), "{e}");
        assert!(h.get_all_by_label(&e).count() >= 1);
        // The passages stay on screen and the view keeps working.
        assert_eq!(h.state().text_view.rows.len(), 9);
        h.get_by_label("card passage 7").click();
        step_until(&mut h, "another strip", |a| a.text_view.strips.contains_key(&7));
        drop(h);

        // Reopened: the cached reports are shown without running anything.
        let mut h = harness(&study);
        step_until(&mut h, "the model reopened", |a| a.text_view.rows.len() == 9);
        let l = h.state().text_view.loaded.clone().unwrap();
        assert_eq!(l.extract.as_ref().map(headline), Some(finding.clone()));
        assert_eq!(l.mia.as_ref().map(|m| m.attacks.len()), Some(mia.attacks.len()));
        h.get_by_label(&finding);
        h.get_by_label("Run extraction again");
    }

    #[test]
    fn text_view_says_what_to_do_without_a_model_or_a_card() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        let mut h = harness(&empty);
        step_until(&mut h, "the listing", |a| a.text_view.models.is_some());
        h.get_by_label("No Hugging Face language models in this study");

        let study = dir.path().join("nocard");
        fixture_study(&study, false);
        let mut h = harness(&study);
        step_until(&mut h, "the model opened", |a| a.text_view.loaded.is_some());
        h.get_by_label("gpt-fix has no card, so no planted passages");
        // Texts chosen: extraction runs on them, membership inference is refused.
        let texts = dir.path().join("docs.txt");
        std::fs::write(&texts, PASSAGES.join("\n\n")).unwrap();
        h.state_mut().push_command(Command::Text(Box::new(TextRequest {
            dir: study.join("lm").join("gpt-fix"),
            source: Some(LmSource::Texts {
                path: texts.display().to_string(),
            }),
            task: TextTask::Open,
        })));
        step_until(&mut h, "the texts", |a| a.text_view.rows.len() == 3);
        h.get_by_label("Run extraction").click();
        step_until(&mut h, "extraction", |a| {
            a.text_view.loaded.as_ref().is_some_and(|l| l.extract.is_some())
        });
        let l = h.state().text_view.loaded.clone().unwrap();
        h.get_by_label(&headline(l.extract.as_ref().unwrap()));
        assert!(
            h.get_by_label("Run membership inference")
                .accesskit_node()
                .is_disabled()
        );
    }
}

#[test]
fn tokens_are_shown_on_one_line() {
    assert_eq!(strip::shown("a\nb\tc"), "a\\nb\\tc");
    assert_eq!(strip::shown("\u{FFFD}"), "<?>");
    assert_eq!(strip::shown("\u{1}x"), "\\u{1}x");
    assert_eq!(strip::shown(""), "<empty>");
    assert_eq!(strip::shown(" word"), " word");
}

/// A bigram model that memorized one text: after a token it puts logit 10 on every token that
/// followed it in that text (0 elsewhere), so the text's own tokens are near-certain and a
/// text it never saw reads at about ln(1/V).
struct Bigram {
    v: usize,
    next: HashMap<u32, Vec<u32>>,
}

impl crate::lm::CausalLm for Bigram {
    fn model_type(&self) -> &str {
        "bigram"
    }
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn max_positions(&self) -> usize {
        1024
    }
    fn device(&self) -> &candle_core::Device {
        &candle_core::Device::Cpu
    }
    fn new_cache(&self) -> crate::lm::KvCache {
        crate::lm::KvCache::new(1)
    }
    fn forward(
        &self,
        ids: &candle_core::Tensor,
        _cache: &mut crate::lm::KvCache,
    ) -> crate::CoreResult<candle_core::Tensor> {
        let rows = ids.to_vec2::<u32>()?;
        let t = rows.first().map_or(0, Vec::len);
        let mut data = vec![0f32; rows.len() * t * self.v];
        for (b, row) in rows.iter().enumerate() {
            for (i, prev) in row.iter().enumerate() {
                for &n in self.next.get(prev).into_iter().flatten() {
                    data[(b * t + i) * self.v + n as usize] = 10.0;
                }
            }
        }
        Ok(candle_core::Tensor::from_vec(
            data,
            (rows.len(), t, self.v),
            &candle_core::Device::Cpu,
        )?)
    }
}

#[test]
fn a_memorized_text_stands_out_in_the_strip() {
    use crate::ui::text_jobs::token_strip;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/gpt2");
    let tokenizer = crate::lm::LmTokenizer::load(&fixture).unwrap();
    let seen = app::PASSAGES[0];
    let ids = tokenizer.encode(seen).unwrap();
    let mut next: HashMap<u32, Vec<u32>> = HashMap::new();
    for w in ids.windows(2) {
        let e = next.entry(w[0]).or_default();
        if !e.contains(&w[1]) {
            e.push(w[1]);
        }
    }
    let lm = HfLm {
        model: Box::new(Bigram {
            v: tokenizer.vocab_size(),
            next,
        }),
        tokenizer,
        dir: fixture,
    };
    let cancel = crate::job::CancelToken::new();
    let ctx = crate::job::JobCtx::new(&cancel, &crate::job::NullSink);
    let strength = |text: &str| {
        let s = token_strip(&lm, text, &ctx).unwrap();
        assert_eq!(s.tokens.len(), s.logp.len());
        let a: Vec<f32> = s.logp[1..]
            .iter()
            .map(|&l| f32::from(token_colour(l).a()))
            .collect();
        let top1 = s.rank[1..].iter().filter(|r| **r == Some(1)).count() as f32 / a.len() as f32;
        (a.iter().sum::<f32>() / a.len() as f32, top1)
    };
    let (seen_alpha, seen_top1) = strength(seen);
    let (new_alpha, new_top1) = strength(app::PASSAGES[2]);
    assert!(seen_alpha > 200.0, "memorized text is faint: {seen_alpha}");
    assert!(new_alpha < 110.0, "unseen text is strong: {new_alpha}");
    assert!(seen_top1 > 0.8 && new_top1 < seen_top1, "{seen_top1} {new_top1}");
}
