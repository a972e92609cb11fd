//! The real binary killed (SIGKILL) at 36 seeded random moments while it writes zoo records,
//! models and reports into a study: after every kill the study must open, hold every result it
//! held before byte for byte, show no partial file, and resuming the job must give exactly the
//! files of an uninterrupted run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};

use rote::study::Study;

use super::{files, hex, leftovers};

/// Seed of the kill delays.
const SEED: u64 = 0x2026_1123;
/// Kills per step of the plan: more where results are written continuously (a zoo writes one
/// record per model), fewer where one report is written at the end; 36 in all.
fn kills_per_step(label: &str) -> usize {
    if label.starts_with("zoo") { 6 } else { 2 }
}

/// One file of a study: the hash of its bytes, and of its content with what legitimately differs
/// between two studies (the study path, wall-clock times) taken out.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    raw: String,
    norm: String,
}

type State = BTreeMap<String, Entry>;

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("seconds");
            m.remove("created_unix");
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Every visible file under `root` (no component starting with a dot) with its hashes. Every JSON
/// file must parse: a torn file fails here.
fn snapshot(root: &Path) -> State {
    let root_str = root.display().to_string();
    let mut list = Vec::new();
    files(root, "", &mut list);
    list.into_iter()
        .filter(|(rel, _)| !rel.split('/').any(|c| c.starts_with('.')))
        .map(|(rel, path)| {
            let bytes = std::fs::read(&path).unwrap();
            let norm = if rel.ends_with(".json") {
                let text = String::from_utf8(bytes.clone())
                    .unwrap_or_else(|e| panic!("{rel} is not UTF-8: {e}"))
                    .replace(&root_str, "STUDY");
                let mut v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{rel} does not parse ({e}): a partial file"));
                strip_times(&mut v);
                hex(v.to_string().as_bytes())
            } else {
                hex(&bytes)
            };
            (
                rel,
                Entry {
                    raw: hex(&bytes),
                    norm,
                },
            )
        })
        .collect()
}

/// The plan: jobs run one after the other on the same study (`{S}` is the study folder).
fn plan() -> Vec<(&'static str, Vec<String>)> {
    let zoo = |k: u32| {
        let mut v: Vec<String> = [
            "zoo",
            "--family",
            "mlp",
            "--data",
            "digits8x8",
            "--subset-ratio",
            "0.5",
            "--epochs",
            "4",
            "--batch-size",
            "64",
            "--group",
            "1",
            "--json",
            "--out",
            "{S}",
            "--models",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        v.push(k.to_string());
        v
    };
    let train = |id: &str, family: &str, seed: u64| {
        [
            "train",
            "--family",
            family,
            "--data",
            "digits8x8",
            "--epochs",
            "2",
            "--json",
            "--out",
            "{S}",
            "--id",
            id,
            "--seed",
            &seed.to_string(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<String>>();
    vec![
        ("zoo to 6 models", zoo(6)),
        ("train m0", train("m0", "mlp", 0)),
        ("memorization", s(&["memorization", "{S}", "--json"])),
        ("mia loss", s(&["mia", "{S}", "--attack", "loss", "--json"])),
        ("zoo to 12 models", zoo(12)),
        ("train m1", train("m1", "softmax", 1)),
        ("memorization", s(&["memorization", "{S}", "--json"])),
        ("mia rmia", s(&["mia", "{S}", "--attack", "rmia", "--json"])),
        ("zoo to 16 models", zoo(16)),
        ("mia lira", s(&["mia", "{S}", "--attack", "lira", "--json"])),
        ("train m2", train("m2", "mlp", 2)),
        ("memorization", s(&["memorization", "{S}", "--json"])),
    ]
}

fn command(args: &[String], study: &Path, home: &Path) -> Command {
    let s = study.display().to_string();
    let mut c = Command::new(env!("CARGO_BIN_EXE_rote"));
    c.args(
        args.iter()
            .map(|a| if a == "{S}" { s.clone() } else { a.clone() }),
    )
    .env("ROTE_HOME", home);
    c
}

/// Runs a step to completion; panics with its stderr if it fails.
fn run_step(args: &[String], study: &Path, home: &Path) {
    let out = command(args, study, home).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the library must see in a study after a kill: it opens (which removes the leftovers of
/// the killed process), every model loads, the zoo's records load.
fn check_opens(root: &Path) {
    let study = Study::open(root).unwrap_or_else(|e| panic!("the study does not open: {e}"));
    assert_eq!(leftovers(root), Vec::<String>::new(), "leftovers after opening");
    let (good, bad) = study.models();
    assert!(bad.is_empty(), "broken models listed: {bad:?}");
    for m in &good {
        rote::model::load_model(&m.dir, None, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("model {} does not load: {e}", m.id));
    }
    let zoos = root.join("zoos");
    for e in std::fs::read_dir(&zoos).into_iter().flatten() {
        let dir = e.unwrap().path();
        if dir.join("zoo.json").is_file() {
            let zoo = rote::train::zoo::Zoo::open(&dir).unwrap();
            let models = zoo.load_models().unwrap();
            assert_eq!(models.len(), zoo.model_indices().len());
        }
    }
}

/// The state after a kill during a step that turns `before` into `after`: every file is the
/// version of before or of after (nothing torn, nothing foreign), nothing of before is missing,
/// and files the step does not change are byte-identical to what the study held before the kill.
fn check_between(label: &str, got: &State, held: &State, before: &State, after: &State) {
    for (p, e) in got {
        let ok =
            before.get(p).is_some_and(|b| b.norm == e.norm) || after.get(p).is_some_and(|a| a.norm == e.norm);
        assert!(ok, "{label}: {p} is neither the old nor the new version");
    }
    for (p, e) in held {
        let now = got
            .get(p)
            .unwrap_or_else(|| panic!("{label}: {p}, complete before the kill, is gone"));
        let rewritten = after
            .get(p)
            .is_some_and(|a| before.get(p).is_none_or(|b| b.norm != a.norm));
        if !rewritten {
            assert_eq!(now.raw, e.raw, "{label}: {p} changed");
        }
    }
}

/// Zoo records in a state.
fn records(state: &State) -> usize {
    state
        .keys()
        .filter(|p| p.starts_with("zoos/") && p.ends_with(".bin"))
        .count()
}

fn same_content(a: &State, b: &State) -> bool {
    a.len() == b.len() && a.iter().all(|(p, e)| b.get(p).is_some_and(|x| x.norm == e.norm))
}

fn same_results(label: &str, got: &State, want: &State) {
    let a: Vec<_> = got.keys().collect();
    let b: Vec<_> = want.keys().collect();
    assert_eq!(a, b, "{label}: other files than an uninterrupted run");
    for (p, e) in got {
        assert_eq!(
            e.norm, want[p].norm,
            "{label}: {p} differs from an uninterrupted run"
        );
        if !p.ends_with(".json") {
            assert_eq!(e.raw, want[p].raw, "{label}: {p} is not byte-identical");
        }
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_or_tears_a_result() {
    let home = tempfile::tempdir().unwrap();
    let plan = plan();

    // The uninterrupted run: the state after every step, and how long each step takes (after one
    // run that pages the binary in, so the first step is not timed cold).
    run_step(&["--version".to_string()], home.path(), home.path());
    let reference = home.path().join("ref").join("s");
    Study::open_or_create(&reference).unwrap();
    let mut states = vec![snapshot(&reference)];
    let mut times = Vec::new();
    for (_, args) in &plan {
        let t = Instant::now();
        run_step(args, &reference, home.path());
        times.push(t.elapsed());
        states.push(snapshot(&reference));
    }

    let startup = times.iter().copied().min().unwrap();
    let study = home.path().join("crash").join("s");
    Study::open_or_create(&study).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let (mut kills, mut finished, mut cleaned) = (0usize, 0usize, 0usize);
    let mut delays = Vec::new();
    for (j, (label, args)) in plan.iter().enumerate() {
        let (before, after) = (&states[j], &states[j + 1]);
        for attempt in 0..kills_per_step(label) {
            let held = snapshot(&study);
            // A fifth of the kills land in the first 25 ms (start-up, opening, the first write);
            // the rest uniformly over the step's uninterrupted duration (up to 0.9 of it, since a
            // run's duration varies).
            // A resumed zoo skips the records already written, so its expected duration is the
            // start-up plus the share of the records still missing.
            let missing = records(after).saturating_sub(records(&held));
            let new = records(after).saturating_sub(records(before));
            let expected = if new > 0 {
                startup + (times[j].saturating_sub(startup)).mul_f64(missing as f64 / new as f64)
            } else {
                times[j]
            };
            let delay = if rng.random_bool(0.2) {
                Duration::from_secs_f64(rng.random_range(0.0..0.025))
            } else {
                expected.mul_f64(rng.random_range(0.0..0.9))
            };
            delays.push(delay.as_secs_f64());
            let mut child = command(args, &study, home.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_some() {
                finished += 1;
            } else {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
            let tag = format!("{label} (attempt {attempt}, {:.0} ms)", delay.as_secs_f64() * 1e3);
            cleaned += leftovers(&study).len();
            let got = snapshot(&study);
            check_between(&tag, &got, &held, before, after);
            check_opens(&study);
        }
        // Resuming: the same command again, unless the step had already finished.
        if !same_content(&snapshot(&study), after) {
            run_step(args, &study, home.path());
        }
        check_opens(&study);
        same_results(label, &snapshot(&study), after);
    }
    delays.sort_by(f64::total_cmp);
    let total: f64 = times.iter().map(Duration::as_secs_f64).sum();
    eprintln!(
        "{} iterations over {} steps ({total:.1} s uninterrupted): {kills} killed, {finished} finished first, \
         {cleaned} leftover files seen after kills; delays {:.0}-{:.0} ms, median {:.0} ms",
        delays.len(),
        plan.len(),
        delays[0] * 1e3,
        delays[delays.len() - 1] * 1e3,
        delays[delays.len() / 2] * 1e3,
    );
    let ms: Vec<String> = times
        .iter()
        .map(|t| format!("{:.0}", t.as_secs_f64() * 1e3))
        .collect();
    eprintln!("uninterrupted step times (ms): {}", ms.join(", "));
    assert!(delays.len() >= 36);
    assert!(kills >= 15, "most iterations must kill a running job: {kills}");
}
