use super::*;
use crate::canary::secrets::CanaryFormat;
use crate::job::{CancelToken, NullSink};
use crate::lm::HfLm;

fn tiny() -> GptConfig {
    GptConfig {
        data: "austen".into(),
        chars: 20_000,
        val_chars: 2_000,
        plant: PlantSpec {
            counts: vec![4],
            per_count: 2,
            held_out: 2,
            min_tokens: 16,
            formats: vec![CanaryFormat::parse("my pin number is :4:0,8").unwrap()],
        },
        recipe: GptRecipe {
            n_layer: 1,
            n_embd: 32,
            n_head: 2,
            n_ctx: 32,
            vocab_size: 400,
            epochs: 6,
            batch_size: 8,
            lr: 1e-2,
            seed: 3,
            warmup_steps: 10,
            weight_decay: 0.0,
        },
        device: "cpu".into(),
        id: "gpt-tiny".into(),
    }
}

#[test]
fn a_tiny_gpt_trains_deterministically_and_reloads_as_an_hf_folder() {
    let corpus = crate::canary::train::load_corpus("austen").unwrap();
    let cancel = CancelToken::new();
    let sink = NullSink;
    let ctx = JobCtx::new(&cancel, &sink);
    let cfg = tiny();
    let a = train_gpt_on(&cfg, &corpus, "test", &ctx).unwrap();
    let first = a.card.epochs[0].train_loss;
    let last = a.card.epochs.last().unwrap();
    assert!(last.train_loss < first - 0.5, "{:?}", a.card.epochs);
    assert!(last.val_loss < (400f64).ln() - 1.0, "{:?}", a.card.epochs);
    assert_eq!(a.card.passages.len(), 4);
    assert_eq!(a.card.insertion_groups(), vec![0, 4]);
    for p in &a.card.passages {
        assert!(a.tokenizer.encode(&p.text).unwrap().len() >= 16, "{}", p.text);
    }
    // Same seed, same weights and card (apart from the time).
    let b = train_gpt_on(&cfg, &corpus, "test", &ctx).unwrap();
    assert_eq!(a.card.epochs, b.card.epochs);
    assert_eq!(a.card.passages, b.card.passages);
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    save_gpt(&a, &da).unwrap();
    save_gpt(&b, &db).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "config.json"] {
        let (x, y) = (
            std::fs::read(da.join(f)).unwrap(),
            std::fs::read(db.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs");
    }
    // The saved folder, read as any HF model, gives the in-memory model's log-probs.
    let hf = HfLm::load(&da, &Device::Cpu).unwrap();
    assert_eq!(hf.model.model_type(), "gpt2");
    let text = &a.card.passages[0].text;
    let ids = hf.tokenizer.encode(text).unwrap();
    assert_eq!(ids, a.tokenizer.encode(text).unwrap());
    assert_eq!(hf.tokenizer.decode(&ids).unwrap(), *text);
    let ids = &ids[..ids.len().min(32)];
    let mem = a.model.token_logprobs(ids).unwrap();
    let disk = hf.model.token_logprobs(ids).unwrap();
    for (x, y) in mem.iter().zip(&disk) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    // The differentiable forward agrees with the inference one.
    let x = Tensor::from_vec(ids.to_vec(), (1, ids.len()), &Device::Cpu).unwrap();
    let d = (a.model.forward_train(&x).unwrap() - a.model.logits(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "{d}");
    // The card reads back.
    let card = GptCard::read(&da).unwrap().unwrap();
    assert_eq!(card.passages, a.card.passages);
}

#[test]
fn learning_rate_warms_up_then_decays() {
    assert!((lr_at(1.0, 10, 0, 100) - 0.1).abs() < 1e-12);
    assert!((lr_at(1.0, 10, 9, 100) - 1.0).abs() < 1e-12);
    assert!((lr_at(1.0, 10, 100, 100) - 0.1).abs() < 1e-12);
    assert!(lr_at(1.0, 10, 50, 100) < 1.0);
}
