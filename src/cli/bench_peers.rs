//! `rote bench all` beside its PyTorch peers: with `PEERS_PYTHON` pointing to a Python that has
//! torch, every benchmark of the suite that has a peer in `benches/peers/` is followed by that
//! script with the same sizes, and the two figures are printed side by side with their ratio
//! (rote / PyTorch; above 1 rote is faster). Nothing is asserted: a failing peer is one line saying
//! why, and the suite goes on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::BenchWhich;

/// The last result a benchmark printed or would have printed (`{"bench": .., "result": ..}`).
static LAST: Mutex<Option<Value>> = Mutex::new(None);

/// Records `value` as the last benchmark result and prints it in JSON mode; returns whether the
/// caller should print its text form instead.
pub(super) fn emit(value: Value, json: bool) -> bool {
    if json {
        println!("{value}");
    }
    if let Ok(mut last) = LAST.lock() {
        *last = Some(value);
    }
    !json
}

fn take_last() -> Option<Value> {
    LAST.lock().ok().and_then(|mut l| l.take())
}

/// A peer script with its arguments and where each side keeps the headline figure.
struct Peer {
    script: &'static str,
    args: Vec<String>,
    /// JSON pointer into rote's `result`.
    rote_figure: &'static str,
    /// JSON pointer into the peer's object.
    peer_figure: &'static str,
    unit: &'static str,
}

fn peer_for(which: &BenchWhich) -> Option<Peer> {
    let s = |v: &dyn ToString| v.to_string();
    Some(match which {
        BenchWhich::Zoo {
            models,
            epochs,
            device,
            ..
        } => Peer {
            script: "zoo.py",
            args: vec![
                "--models".into(),
                s(models),
                "--epochs".into(),
                s(epochs),
                "--device".into(),
                device.clone(),
            ],
            rote_figure: "/batched_model_epochs_per_sec",
            peer_figure: "/items_per_sec",
            unit: "model-epochs/s",
        },
        BenchWhich::Ddim {
            samples,
            steps,
            base,
            side,
            device,
        } => Peer {
            script: "ddim.py",
            args: vec![
                "--samples".into(),
                s(samples),
                "--steps".into(),
                s(steps),
                "--base".into(),
                s(base),
                "--side".into(),
                s(side),
                "--batch".into(),
                s(samples),
                "--device".into(),
                device.clone(),
            ],
            rote_figure: "/images_per_sec",
            peer_figure: "/items_per_sec",
            unit: "images/s",
        },
        BenchWhich::Invert { iters, device } => Peer {
            script: "miface.py",
            args: vec!["--iters".into(), s(iters), "--device".into(), device.clone()],
            rote_figure: "/steps_per_s",
            peer_figure: "/items_per_sec",
            unit: "steps/s",
        },
        BenchWhich::Lm {
            model,
            batch,
            seq,
            reps,
            device,
        } => {
            let mut args = vec![
                "--batch".into(),
                s(batch),
                "--seq".into(),
                s(seq),
                "--reps".into(),
                s(reps),
                "--device".into(),
                device.clone(),
            ];
            if let Some(m) = model {
                args.extend(["--model".into(), m.display().to_string()]);
            }
            Peer {
                script: "lm_score.py",
                args,
                rote_figure: "/tokens_per_sec",
                peer_figure: "/items_per_sec",
                unit: "tokens/s",
            }
        }
        _ => return None,
    })
}

/// The peers' folder: `benches/peers/` of this source tree.
fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join("peers")
}

/// Runs `which`'s peer (when `PEERS_PYTHON` is set and one exists) and prints it beside rote's
/// last result.
pub(super) fn side_by_side(which: &BenchWhich, json: bool) {
    let rote = take_last();
    let Some(python) = std::env::var_os("PEERS_PYTHON") else {
        return;
    };
    let Some(peer) = peer_for(which) else {
        return;
    };
    let script = peers_dir().join(peer.script);
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(&peer.args)
        .stderr(std::process::Stdio::inherit())
        .output();
    let parsed: Result<Value, String> = match out {
        Err(e) => Err(format!("could not run {}: {e}", python.to_string_lossy())),
        Ok(o) if !o.status.success() => Err(format!("{} exited with {}", script.display(), o.status)),
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .ok_or_else(|| format!("{} printed no JSON line", script.display())),
    };
    let rote_fig = rote
        .as_ref()
        .and_then(|v| v.pointer(&format!("/result{}", peer.rote_figure)))
        .and_then(Value::as_f64);
    match parsed {
        Err(e) => {
            if json {
                println!(
                    "{}",
                    json!({ "bench": "peer", "script": peer.script, "error": e })
                );
            } else {
                println!("  PyTorch peer {}: {e}", peer.script);
            }
        }
        Ok(p) => {
            let peer_fig = p.pointer(peer.peer_figure).and_then(Value::as_f64);
            let ratio = match (rote_fig, peer_fig) {
                (Some(r), Some(q)) if q > 0.0 => Some(r / q),
                _ => None,
            };
            if json {
                println!(
                    "{}",
                    json!({ "bench": "peer", "script": peer.script, "args": peer.args, "result": p,
                            "rote": rote_fig, "pytorch": peer_fig, "unit": peer.unit, "ratio": ratio })
                );
            } else {
                println!(
                    "  side by side ({}): rote {} vs PyTorch {} = {}",
                    peer.unit,
                    rote_fig.map_or("?".into(), |v| format!("{v:.2}")),
                    peer_fig.map_or("?".into(), |v| format!("{v:.2}")),
                    ratio.map_or("?".into(), |v| format!("{v:.2}x")),
                );
            }
        }
    }
}
