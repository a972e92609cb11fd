//! Parity with the official RePaint code: `jump_schedule` against `get_schedule_jump` of
//! `andreas128/RePaint` (`guided_diffusion/scheduler.py`), evaluated by
//! `benches/peers/fidelity/repaint_schedule.py` into `benches/peers/fidelity/repaint_schedule.json`
//! (see `docs/fidelity.md`).

use sha2::{Digest, Sha256};

use super::jump_schedule;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/peers/fidelity/repaint_schedule.json"
));

#[derive(serde::Deserialize)]
struct Fixture {
    sets: Vec<Set>,
}

#[derive(serde::Deserialize)]
struct Set {
    #[serde(rename = "t_T")]
    t_t: usize,
    jump_length: usize,
    jump_n_sample: usize,
    len: usize,
    reverse: usize,
    undo: usize,
    head: Vec<i64>,
    tail: Vec<i64>,
    sha256: String,
    full: Option<Vec<i64>>,
}

#[test]
fn jump_schedule_equals_repaint_get_schedule_jump_for_every_fixture_set() {
    let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap();
    assert!(fixture.sets.len() >= 8);
    let defaults = fixture
        .sets
        .iter()
        .find(|s| (s.t_t, s.jump_length, s.jump_n_sample) == (250, 10, 10))
        .expect("the paper's defaults are in the fixture");
    assert_eq!(
        (defaults.len, defaults.reverse, defaults.undo),
        (4571, 2410, 2160)
    );
    for s in &fixture.sets {
        let what = format!(
            "t_T {} jump_length {} jump_n_sample {}",
            s.t_t, s.jump_length, s.jump_n_sample
        );
        let ts = jump_schedule(s.t_t, s.jump_length, s.jump_n_sample);
        assert_eq!(ts.len(), s.len, "{what}: length");
        let reverse = ts.windows(2).filter(|p| p[1] < p[0]).count();
        let undo = ts.windows(2).filter(|p| p[1] > p[0]).count();
        assert_eq!((reverse, undo), (s.reverse, s.undo), "{what}: transitions");
        assert_eq!(&ts[..s.head.len()], s.head.as_slice(), "{what}: head");
        assert_eq!(&ts[ts.len() - s.tail.len()..], s.tail.as_slice(), "{what}: tail");
        let joined = ts.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let digest: String = Sha256::digest(joined.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, s.sha256, "{what}: SHA-256 of the sequence");
        if let Some(full) = &s.full {
            assert_eq!(&ts, full, "{what}: sequence");
        }
    }
}
