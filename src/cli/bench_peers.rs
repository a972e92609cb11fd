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
    /// Further figures printed beside each other without a ratio: (label, rote's pointer, the
    /// peer's pointer).
    also: &'static [(&'static str, &'static str, &'static str)],
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
            also: &[],
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
            also: &[],
        },
        BenchWhich::DdpmTrain {
            data,
            base,
            steps,
            batch_size,
            device,
        } if data == "mnist10k" || data == "digits8x8" => Peer {
            script: "ddpm_train.py",
            args: vec![
                "--data".into(),
                data.clone(),
                "--base".into(),
                s(base),
                "--steps".into(),
                s(steps),
                "--batch-size".into(),
                s(batch_size),
                "--device".into(),
                device.clone(),
            ],
            rote_figure: "/images_per_sec",
            peer_figure: "/items_per_sec",
            unit: "training images/s",
            also: &[],
        },
        BenchWhich::Invert { iters, device } => Peer {
            script: "miface.py",
            args: vec!["--iters".into(), s(iters), "--device".into(), device.clone()],
            rote_figure: "/steps_per_s",
            peer_figure: "/items_per_sec",
            unit: "steps/s",
            also: &[],
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
                also: &[],
            }
        }
        BenchWhich::DpZoo {
            models,
            epochs,
            data,
            dp_noise,
            dp_clip,
        } if data == "mnist10k" => Peer {
            script: "opacus_zoo.py",
            args: vec![
                "--models".into(),
                s(models),
                "--epochs".into(),
                s(epochs),
                "--noise".into(),
                s(dp_noise),
                "--clip".into(),
                s(dp_clip),
                "--device".into(),
                "cpu".into(),
            ],
            rote_figure: "/dp_model_epochs_per_sec",
            peer_figure: "/items_per_sec",
            unit: "DP-SGD model-epochs/s",
            also: &[
                (
                    "plain model-epochs/s",
                    "/plain_model_epochs_per_sec",
                    "/plain_items_per_sec",
                ),
                ("DP cost (DP s / plain s)", "/dp_cost", "/dp_cost"),
            ],
        },
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
            let figure = |v: Option<&Value>, at: &str| v.and_then(|v| v.pointer(at)).and_then(Value::as_f64);
            let also: Vec<(&str, Option<f64>, Option<f64>)> = peer
                .also
                .iter()
                .map(|&(label, r, q)| {
                    let r = figure(rote.as_ref(), &format!("/result{r}"));
                    (label, r, figure(Some(&p), q))
                })
                .collect();
            if json {
                let also: Vec<Value> = also
                    .iter()
                    .map(|(label, r, q)| json!({ "figure": label, "rote": r, "pytorch": q }))
                    .collect();
                println!(
                    "{}",
                    json!({ "bench": "peer", "script": peer.script, "args": peer.args, "result": p,
                            "rote": rote_fig, "pytorch": peer_fig, "unit": peer.unit, "ratio": ratio,
                            "also": also })
                );
            } else {
                println!(
                    "  side by side ({}): rote {} vs PyTorch {} = {}",
                    peer.unit,
                    rote_fig.map_or("?".into(), |v| format!("{v:.2}")),
                    peer_fig.map_or("?".into(), |v| format!("{v:.2}")),
                    ratio.map_or("?".into(), |v| format!("{v:.2}x")),
                );
                let show = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
                for (label, r, q) in also {
                    println!("  also, {label}: rote {} vs PyTorch {}", show(r), show(q));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]
    use super::*;

    /// The DP-zoo peer gets rote's sizes, and every figure it compares names a field of rote's
    /// result.
    #[test]
    fn dp_zoo_peer_reads_fields_rote_prints() {
        let which = BenchWhich::DpZoo {
            models: 4,
            epochs: 1,
            data: "mnist10k".into(),
            dp_noise: 1.5,
            dp_clip: 0.5,
        };
        let peer = peer_for(&which).unwrap();
        assert_eq!(peer.script, "opacus_zoo.py");
        assert!(peers_dir().join(peer.script).is_file());
        let args = peer.args.join(" ");
        assert_eq!(args, "--models 4 --epochs 1 --noise 1.5 --clip 0.5 --device cpu");
        let r = crate::bench_dp::DpZooBench {
            data: "mnist10k".into(),
            dims: vec![784, 512, 256, 10],
            models: 4,
            epochs: 1,
            n_per_model: 5600,
            device: "cpu".into(),
            noise_multiplier: 1.5,
            clip: 0.5,
            sample_rate: 128.0 / 5600.0,
            steps: 44,
            epsilon: 1.0,
            delta: 1e-5,
            plain_secs: 1.0,
            plain_model_epochs_per_sec: 4.0,
            dp_secs: 2.0,
            dp_model_epochs_per_sec: 2.0,
            dp_cost: 2.0,
        };
        let value = serde_json::to_value(&r).unwrap();
        for at in std::iter::once(peer.rote_figure).chain(peer.also.iter().map(|a| a.1)) {
            assert!(value.pointer(at).and_then(Value::as_f64).is_some(), "{at}");
        }
        let other = BenchWhich::DpZoo {
            models: 4,
            epochs: 1,
            data: "digits8x8".into(),
            dp_noise: 1.0,
            dp_clip: 1.0,
        };
        assert!(peer_for(&other).is_none(), "the peer trains on mnist10k only");
    }
}
