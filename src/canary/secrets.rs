//! Canaries and the training text they are hidden in (Secret Sharer, section 1 of the spec).
//!
//! A **format** is a prefix followed by a slot of `digits` decimal digits, so its randomness space
//! is |R| = 10^digits. Every canary of a format is one secret `s[r]` drawn uniformly (distinct within
//! the format) and inserted `insertions` times as its own line at seeded line boundaries of the
//! corpus ("append as separate lines" in the spec's explorer). A canary with 0 insertions is a
//! control: never seen in training, it must stay near the baseline exposure. References sampled for
//! the estimates never equal an inserted secret.

use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};

use crate::error::{CoreError, CoreResult};

/// A canary format: `prefix` then `digits` random decimal digits, with the insertion counts of its
/// canaries (one canary per count) and optionally fixed secrets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CanaryFormat {
    /// Text before the slot, e.g. `my pin number is `.
    pub prefix: String,
    /// Digits in the slot (|R| = 10^digits).
    pub digits: usize,
    /// One canary per entry: how often it is inserted (0 = control).
    pub insertions: Vec<u32>,
    /// Fixed secrets, one per insertion count (drawn from the seed when empty).
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl CanaryFormat {
    /// Parses `PREFIX:DIGITS:COUNTS[:SECRETS]` (counts and secrets comma separated), e.g.
    /// `my pin number is :6:0,1,2,4,8,16,32`. The prefix may itself contain `:`.
    pub fn parse(spec: &str) -> CoreResult<Self> {
        let bad = |why: &str| CoreError::Invalid(format!("--format '{spec}': {why}"));
        let parts: Vec<&str> = spec.rsplitn(4, ':').collect();
        // rsplitn gives the pieces from the right; with secrets there are 4, else 3.
        let (prefix, digits, counts, secrets) = match parts.as_slice() {
            [s, c, d, p]
                if s.chars().all(|ch| ch.is_ascii_digit() || ch == ',') && d.parse::<usize>().is_ok() =>
            {
                (p.to_string(), *d, *c, Some(*s))
            }
            [c, d, rest] => (rest.to_string(), *d, *c, None),
            [c, d, p1, p2] => (format!("{p2}:{p1}"), *d, *c, None),
            _ => return Err(bad("expected PREFIX:DIGITS:COUNTS[:SECRETS]")),
        };
        let digits: usize = digits.parse().map_err(|_| bad("DIGITS is not a number"))?;
        let insertions = counts
            .split(',')
            .map(|c| c.trim().parse::<u32>().map_err(|_| bad("COUNTS must be numbers")))
            .collect::<CoreResult<Vec<_>>>()?;
        let secrets = secrets
            .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default();
        let f = Self {
            prefix,
            digits,
            insertions,
            secrets,
        };
        f.validate()?;
        Ok(f)
    }

    /// Checks digits, counts and fixed secrets.
    pub fn validate(&self) -> CoreResult<()> {
        let bad = |why: String| CoreError::Invalid(format!("canary format '{}': {why}", self.prefix));
        if !(1..=12).contains(&self.digits) {
            return Err(bad(format!("{} digits (1 to 12 allowed)", self.digits)));
        }
        if self.insertions.is_empty() {
            return Err(bad("no insertion counts".into()));
        }
        if self.prefix.chars().any(|c| c == '\n') || self.prefix.is_empty() {
            return Err(bad("the prefix must be one non-empty line".into()));
        }
        if !self.secrets.is_empty() {
            if self.secrets.len() != self.insertions.len() {
                return Err(bad("give one secret per insertion count".into()));
            }
            for s in &self.secrets {
                if s.len() != self.digits || !s.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad(format!("secret '{s}' is not {} digits", self.digits)));
                }
            }
            let mut u = self.secrets.clone();
            u.sort();
            u.dedup();
            if u.len() != self.secrets.len() {
                return Err(bad("secrets must differ".into()));
            }
        }
        Ok(())
    }

    /// |R| = 10^digits.
    pub fn space(&self) -> u64 {
        10u64.pow(self.digits as u32)
    }
}

/// One inserted (or control) secret.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Canary {
    /// Index into the card's formats.
    pub format: usize,
    /// The secret digits.
    pub secret: String,
    /// Times inserted into the training text.
    pub insertions: u32,
}

/// Draws the canaries of every format: fixed secrets where given, else distinct uniform digit
/// strings from `seed` (one stream per format).
pub fn draw_canaries(formats: &[CanaryFormat], seed: u64) -> CoreResult<Vec<Canary>> {
    let mut out = Vec::new();
    for (fi, f) in formats.iter().enumerate() {
        f.validate()?;
        let secrets = if f.secrets.is_empty() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(7000 + fi as u64);
            let mut seen = std::collections::BTreeSet::new();
            let mut v = Vec::new();
            while v.len() < f.insertions.len() {
                let s = random_digits(&mut rng, f.digits);
                if seen.insert(s.clone()) {
                    v.push(s);
                }
            }
            v
        } else {
            f.secrets.clone()
        };
        for (secret, &insertions) in secrets.into_iter().zip(&f.insertions) {
            out.push(Canary {
                format: fi,
                secret,
                insertions,
            });
        }
    }
    Ok(out)
}

/// `n` uniform decimal digits.
pub fn random_digits(rng: &mut impl rand::Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// The full line of a canary: prefix and secret.
pub fn canary_line(formats: &[CanaryFormat], c: &Canary) -> String {
    format!("{}{}", formats[c.format].prefix, c.secret)
}

/// Inserts every canary's line `insertions` times into `text` at seeded line starts (each copy its
/// own line). Returns the new text and how many lines were inserted.
pub fn insert_canaries(
    text: &str,
    formats: &[CanaryFormat],
    canaries: &[Canary],
    seed: u64,
) -> CoreResult<(String, usize)> {
    // Offsets just after each '\n' (and 0): where a line may be inserted.
    let mut starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| i <= text.len())
        .collect();
    starts.dedup();
    let mut copies: Vec<String> = Vec::new();
    for c in canaries {
        for _ in 0..c.insertions {
            copies.push(canary_line(formats, c));
        }
    }
    if copies.is_empty() {
        return Ok((text.to_string(), 0));
    }
    if starts.len() < 2 {
        return Err(CoreError::Invalid(
            "the training text has no line breaks to insert canaries at".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7100);
    let mut placed: Vec<(usize, usize)> = copies
        .iter()
        .enumerate()
        .map(|(k, _)| (starts[rng.random_range(0..starts.len())], k))
        .collect();
    // Shuffle copies first so equal positions hold different canaries in a seeded order.
    placed.shuffle(&mut rng);
    placed.sort_by_key(|&(pos, _)| pos);
    let extra: usize = copies.iter().map(|c| c.len() + 1).sum();
    let mut out = String::with_capacity(text.len() + extra);
    let mut last = 0;
    for (pos, k) in placed {
        out.push_str(&text[last..pos]);
        out.push_str(&copies[k]);
        out.push('\n');
        last = pos;
    }
    out.push_str(&text[last..]);
    Ok((out, copies.len()))
}

/// Takes `chars` characters of `text` starting at a seeded line start, and the `val_chars` that
/// follow as validation text. Errors if the corpus is too short.
pub fn seeded_slice(
    text: &str,
    chars: usize,
    val_chars: usize,
    seed: u64,
) -> CoreResult<(String, String, usize)> {
    let total: usize = text.chars().count();
    let need = chars + val_chars;
    if total < need.max(1) {
        return Err(CoreError::Invalid(format!(
            "the corpus has {total} characters; {need} were asked for"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(7200);
    let max_start = total - need;
    let mut start = if max_start == 0 {
        0
    } else {
        rng.random_range(0..=max_start)
    };
    let chars_vec: Vec<char> = text.chars().collect();
    // Move to the next line start (if one is near) so the slice begins with a whole line.
    if let Some(off) = chars_vec[start..=max_start.max(start)]
        .iter()
        .position(|&c| c == '\n')
    {
        start += off + 1;
        start = start.min(max_start);
    }
    let train: String = chars_vec[start..start + chars].iter().collect();
    let val: String = chars_vec[start + chars..start + need].iter().collect();
    Ok((train, val, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_formats() {
        let f = CanaryFormat::parse("my pin number is :6:0,1,32").unwrap();
        assert_eq!(f.prefix, "my pin number is ");
        assert_eq!(f.digits, 6);
        assert_eq!(f.insertions, vec![0, 1, 32]);
        let g = CanaryFormat::parse("code: :4:2,8:1234,9876").unwrap();
        assert_eq!(g.prefix, "code: ");
        assert_eq!(g.secrets, vec!["1234", "9876"]);
        let h = CanaryFormat::parse("a:b :3:1").unwrap();
        assert_eq!(h.prefix, "a:b ");
        assert!(CanaryFormat::parse("x :6:1,2:123").is_err());
        assert!(CanaryFormat::parse("x :0:1").is_err());
        assert!(CanaryFormat::parse("x :6:one").is_err());
    }

    #[test]
    fn canaries_are_inserted_exactly_as_often_as_recorded() {
        let formats = vec![CanaryFormat::parse("the code is :5:0,1,3,7").unwrap()];
        let canaries = draw_canaries(&formats, 11).unwrap();
        assert_eq!(canaries.len(), 4);
        let text: String = (0..200).map(|i| format!("line {i} of text\n")).collect();
        let (out, n) = insert_canaries(&text, &formats, &canaries, 11).unwrap();
        assert_eq!(n, 11);
        for c in &canaries {
            let line = canary_line(&formats, c);
            let count = out.lines().filter(|l| *l == line).count();
            assert_eq!(count as u32, c.insertions, "{line}");
        }
        // The original text is intact once the canary lines are removed.
        let kept: String = out
            .lines()
            .filter(|l| !l.starts_with("the code is "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(kept, text);
        // Deterministic.
        assert_eq!(insert_canaries(&text, &formats, &canaries, 11).unwrap().0, out);
    }

    #[test]
    fn slices_start_at_a_line() {
        let text: String = (0..500).map(|i| format!("row {i}\n")).collect();
        let (train, val, _) = seeded_slice(&text, 300, 50, 3).unwrap();
        assert_eq!(train.chars().count(), 300);
        assert_eq!(val.chars().count(), 50);
        assert!(train.starts_with("row "));
        assert!(seeded_slice("short", 300, 0, 1).is_err());
    }
}
