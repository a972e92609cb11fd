//! The training text of a GPT rote trains, with planted duplicates: a seeded slice of the corpus
//! (and the validation text right after it), passages cut from the same books outside both and
//! inserted 1, 4, 16 and 64 times at seeded paragraph boundaries, held-out passages from the same
//! books never inserted, and the Secret Sharer canaries as lines (`canary::secrets`).
//!
//! The design follows Carlini et al. (2022), "Quantifying Memorization Across Neural Language
//! Models" (ICLR 2023, arXiv:2202.07646): extractability grows log-linearly with the number of
//! times a sequence is duplicated in the training data, so passages planted at several duplication
//! counts, with never-seen twins from the same source as negative controls, show the trend on one
//! small model (spec 10, section 7).

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use super::LmTokenizer;
use super::card::PlantedPassage;
use crate::canary::secrets::{Canary, CanaryFormat, draw_canaries, insert_canaries};
use crate::error::{CoreError, CoreResult};

/// What to plant.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlantSpec {
    /// Insertion counts of the planted passages (e.g. 1, 4, 16, 64).
    pub counts: Vec<u32>,
    /// Passages per insertion count.
    pub per_count: usize,
    /// Held-out passages (insertions 0).
    pub held_out: usize,
    /// Least tokens per passage.
    pub min_tokens: usize,
    /// Canary formats.
    pub formats: Vec<CanaryFormat>,
}

/// The text to train on and what was planted in it.
#[derive(Clone, Debug)]
pub struct Planted {
    /// The slice with passages and canaries inserted.
    pub text: String,
    /// The corpus slice before insertion (the BPE is trained on it).
    pub slice: String,
    /// The validation text (after the slice; nothing inserted).
    pub val: String,
    /// Character offset of the slice in the corpus.
    pub offset: usize,
    /// Planted and held-out passages.
    pub passages: Vec<PlantedPassage>,
    /// The canaries.
    pub canaries: Vec<Canary>,
}

/// Cuts `n` passages from `corpus` outside the characters `[lo, hi)`: each starts at a sentence
/// or paragraph start, runs over whole words (whitespace collapsed to single spaces) until it
/// has at least `min_tokens` tokens under `tok`, and stays clear of the others by 1,000
/// characters. Seeded; in the corpus' order of discovery.
pub fn cut_passages(
    corpus: &str,
    (lo, hi): (usize, usize),
    n: usize,
    min_tokens: usize,
    tok: &LmTokenizer,
    seed: u64,
) -> CoreResult<Vec<PlantedPassage>> {
    let chars: Vec<char> = corpus.chars().collect();
    let starts: Vec<usize> = (2..chars.len())
        .filter(|&i| {
            let (a, b, c) = (chars[i - 2], chars[i - 1], chars[i]);
            let para = a == '\n' && b == '\n';
            let sentence = matches!(a, '.' | '!' | '?') && b == ' ';
            (para || sentence) && (c.is_ascii_uppercase() || c == '"')
        })
        .filter(|&i| i + 4_000 < lo || i >= hi)
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7500);
    let mut order = starts;
    order.shuffle(&mut rng);
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for start in order {
        if out.len() == n {
            break;
        }
        if taken.iter().any(|&(a, b)| start + 1_000 > a && start < b + 1_000) {
            continue;
        }
        let Some((text, end)) = passage_at(&chars, start, min_tokens, tok)? else {
            continue;
        };
        if end > lo && start < hi {
            continue;
        }
        taken.push((start, end));
        out.push(PlantedPassage {
            text,
            insertions: 0,
            offset: start,
        });
    }
    if out.len() < n {
        return Err(CoreError::Invalid(format!(
            "the corpus outside the training slice holds only {} passages of {min_tokens} tokens; {n} were asked for",
            out.len()
        )));
    }
    Ok(out)
}

/// The passage starting at `start`: whole words until `min_tokens` tokens, or `None` when it
/// would run into a chapter heading, a paragraph-less wall of markup or the corpus end.
fn passage_at(
    chars: &[char],
    start: usize,
    min_tokens: usize,
    tok: &LmTokenizer,
) -> CoreResult<Option<(String, usize)>> {
    let mut text = String::new();
    let mut i = start;
    let limit = (start + 40 * min_tokens).min(chars.len());
    loop {
        while i < limit && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= limit {
            return Ok(None);
        }
        let w0 = i;
        while i < limit && !chars[i].is_whitespace() {
            i += 1;
        }
        let word: String = chars[w0..i].iter().collect();
        if word.contains("CHAPTER") || word.contains('_') || word.contains('*') {
            return Ok(None);
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&word);
        if text.len() >= 2 * min_tokens && tok.encode(&text)?.len() >= min_tokens {
            return Ok(Some((text, i)));
        }
    }
}

/// Inserts every passage `insertions` times, each copy its own paragraph (`passage` + blank
/// line) at a seeded paragraph start of `text`. Returns the new text.
pub fn insert_passages(text: &str, passages: &[PlantedPassage], seed: u64) -> CoreResult<String> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices("\n\n").map(|(i, _)| i + 2))
        .filter(|&i| i <= text.len())
        .collect();
    let copies: Vec<&str> = passages
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.text.as_str(), p.insertions as usize))
        .collect();
    if copies.is_empty() {
        return Ok(text.to_string());
    }
    if starts.len() < 2 {
        return Err(CoreError::Invalid(
            "the training text has no paragraph breaks to insert passages at".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7600);
    let mut placed: Vec<(usize, usize)> = (0..copies.len())
        .map(|k| (starts[rng.random_range(0..starts.len())], k))
        .collect();
    placed.shuffle(&mut rng);
    placed.sort_by_key(|&(pos, _)| pos);
    let extra: usize = copies.iter().map(|c| c.len() + 2).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut last = 0;
    for (pos, k) in placed {
        out.push_str(&text[last..pos]);
        out.push_str(copies[k]);
        out.push_str("\n\n");
        last = pos;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Builds the training text: the slice, passages cut outside slice and validation text (held
/// out first, then `per_count` per insertion count, assigned in a seeded order), inserted, then
/// the canaries. `tok` counts the passages' tokens.
pub fn plant(
    corpus: &str,
    (slice, val, offset): (String, String, usize),
    spec: &PlantSpec,
    tok: &LmTokenizer,
    seed: u64,
) -> CoreResult<Planted> {
    let hi = offset + slice.chars().count() + val.chars().count();
    let n = spec.held_out + spec.per_count * spec.counts.len();
    let mut passages = cut_passages(corpus, (offset, hi), n, spec.min_tokens, tok, seed)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7700);
    passages.shuffle(&mut rng);
    let groups = std::iter::repeat_n(0, spec.held_out).chain(
        spec.counts
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, spec.per_count)),
    );
    for (p, c) in passages.iter_mut().zip(groups) {
        p.insertions = c;
    }
    passages.sort_by_key(|p| (p.insertions, p.offset));
    let with_passages = insert_passages(&slice, &passages, seed)?;
    let canaries = draw_canaries(&spec.formats, seed)?;
    let (text, _) = insert_canaries(&with_passages, &spec.formats, &canaries, seed)?;
    Ok(Planted {
        text,
        slice,
        val,
        offset,
        passages,
        canaries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_are_inserted_as_often_as_recorded() {
        let text: String = (0..300)
            .map(|i| format!("Paragraph {i} says little.\nIt ends here.\n\n"))
            .collect();
        let passages = vec![
            PlantedPassage {
                text: "Alpha beta gamma.".into(),
                insertions: 3,
                offset: 0,
            },
            PlantedPassage {
                text: "Delta epsilon zeta.".into(),
                insertions: 0,
                offset: 9,
            },
            PlantedPassage {
                text: "Eta theta iota.".into(),
                insertions: 1,
                offset: 20,
            },
        ];
        let out = insert_passages(&text, &passages, 5).unwrap();
        for p in &passages {
            let n = out.split("\n\n").filter(|para| *para == p.text).count();
            assert_eq!(n as u32, p.insertions, "{}", p.text);
        }
        assert_eq!(insert_passages(&text, &passages, 5).unwrap(), out);
        let kept: String = out
            .split_inclusive("\n\n")
            .filter(|para| !passages.iter().any(|p| para.trim_end() == p.text))
            .collect();
        assert_eq!(kept, text);
    }
}
