//! `rote bench all`: the suite the PyTorch peers mirror, each benchmark followed by its peer
//! (`bench_peers.rs`) when `PEERS_PYTHON` is set.

use serde_json::json;

use super::BenchWhich;
use super::bench::run;
use crate::error::CoreResult;

/// `rote bench all`: every workload the peers mirror, one after another (a failing one is
/// reported and the rest still run).
pub(super) fn run_all(device: &str, json: bool) -> CoreResult<()> {
    let gpu = device != "cpu";
    if gpu {
        // The CUDA driver compiles candle's PTX kernels at their first use (about 20 s in all on
        // an H100): a small untimed round first, so the timed figures are the warm ones (its
        // lines come first; readers keep the last line of each benchmark).
        if json {
            println!(
                "{}",
                json!({ "bench": "warmup", "note": "untimed round; the figures follow" })
            );
        } else {
            println!("warm-up round (untimed):");
        }
        let small = vec![
            BenchWhich::Zoo {
                models: 2,
                epochs: 1,
                device: device.into(),
                batched_only: true,
            },
            BenchWhich::Ddim {
                samples: 4,
                steps: 2,
                base: 32,
                side: 28,
                device: device.into(),
            },
            BenchWhich::Invert {
                iters: 2,
                device: device.into(),
            },
        ];
        for which in small {
            run(which, json)?;
        }
    }
    let (zoo, ddim, side, exposure_digits) = if gpu {
        (256, 256, 10_000, 7)
    } else {
        (16, 32, 2_000, 6)
    };
    let suite = vec![
        BenchWhich::Zoo {
            models: zoo,
            epochs: if gpu { 10 } else { 2 },
            device: device.into(),
            batched_only: true,
        },
        BenchWhich::Ddim {
            samples: ddim,
            steps: if gpu { 50 } else { 20 },
            base: 32,
            side: 28,
            device: device.into(),
        },
        BenchWhich::Invert {
            iters: 200,
            device: device.into(),
        },
        // DDPM training (forward, backward and AdamW) at the 28x28 demo's size and at the 8x8
        // test model's.
        BenchWhich::DdpmTrain {
            data: "mnist10k".into(),
            base: 32,
            steps: if gpu { 50 } else { 10 },
            batch_size: 32,
            device: device.into(),
        },
        BenchWhich::DdpmTrain {
            data: "digits8x8".into(),
            base: 32,
            steps: if gpu { 200 } else { 50 },
            batch_size: 32,
            device: device.into(),
        },
        BenchWhich::Tiled { m: side, n: side },
        BenchWhich::Nn { m: side, n: side },
        BenchWhich::Exposure {
            digits: exposure_digits,
            hidden: None,
            references: 65_536,
            device: device.into(),
        },
        BenchWhich::Train {
            family: crate::model::Family::Mlp,
            epochs: 2,
            device: device.into(),
        },
        BenchWhich::Tabular {
            rows: 0,
            epochs: 2,
            samples: 2000,
        },
        // DP-SGD zoos train on the CPU whatever the device; 4 x 1 keeps Opacus's side (per-sample
        // gradients materialised, the models one after another) near two minutes on two cores.
        BenchWhich::DpZoo {
            models: 4,
            epochs: 1,
            data: "mnist10k".into(),
            dp_noise: 1.0,
            dp_clip: 1.0,
        },
        BenchWhich::Lm {
            model: None,
            batch: 8,
            seq: if gpu { 1024 } else { 128 },
            reps: 3,
            device: device.into(),
        },
    ];
    let mut failed = 0;
    for which in suite {
        let name = format!("{which:?}");
        let result = run(which.clone(), json);
        if result.is_ok() {
            super::bench_peers::side_by_side(&which, json);
        }
        if let Err(e) = result {
            failed += 1;
            if json {
                println!("{}", json!({ "bench": name, "error": e.to_string() }));
            } else {
                eprintln!("{name}: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(crate::error::CoreError::Invalid(format!(
            "{failed} benchmarks failed"
        )));
    }
    Ok(())
}
