//! `rote bench ...`.

use serde_json::json;

use super::{BenchWhich, CliSink};
use crate::bench::{bench_nn, bench_train};
use crate::data;
use crate::error::CoreResult;
use crate::job::{CancelToken, JobCtx};
use crate::train::TrainConfig;

/// Runs a benchmark and prints its figures.
pub fn run(which: BenchWhich, json: bool) -> CoreResult<()> {
    if let BenchWhich::All { device } = which {
        return super::bench_all::run_all(&device, json);
    }
    if let BenchWhich::Icl { seed, sequential } = which {
        return super::icl::bench(seed, sequential, json);
    }
    if matches!(which, BenchWhich::Frames { .. }) {
        return bench_frames(which, json);
    }
    if let BenchWhich::Invert { iters, device } = which {
        return bench_invert(iters, &device, json);
    }
    if let BenchWhich::Exposure {
        digits,
        hidden,
        references,
        device,
    } = which
    {
        return bench_exposure(digits, hidden, references, &device, json);
    }
    if let BenchWhich::Lm {
        model,
        batch,
        seq,
        reps,
        device,
    } = which
    {
        return bench_lm(model.as_deref(), batch, seq, reps, &device, json);
    }
    if let BenchWhich::Diffusers {
        model,
        samples,
        steps,
        images,
        iterations,
        device,
    } = &which
    {
        let cancel = CancelToken::new();
        let sink = CliSink::new(json);
        let ctx = JobCtx::new(&cancel, &sink);
        let r = crate::diffusion::bench::bench_diffusers(
            model,
            *samples,
            *steps,
            *images,
            *iterations,
            device,
            &ctx,
        );
        sink.finish();
        let r = r?;
        let value = json!({"bench": "diffusers", "result": r});
        super::commands::print(json, &value, || {
            format!(
                "{} ({:?}): DDIM {} images x {} steps in {:.2} s ({:.1} UNet evaluations/s); sharpness \
                 {:.2} s per image ({} Lanczos iterations)",
                r.model,
                r.shape,
                r.samples,
                r.steps,
                r.ddim_seconds,
                r.evals_per_sec,
                r.sharpness_seconds_per_image,
                r.iterations
            )
        });
        return Ok(());
    }
    if let BenchWhich::DpZoo {
        models,
        epochs,
        data,
        dp_noise,
        dp_clip,
    } = &which
    {
        let ds = data::load(data)?;
        let cancel = CancelToken::new();
        let sink = CliSink::new(true);
        let ctx = JobCtx::new(&cancel, &sink);
        let r = crate::bench_dp::bench_dp_zoo(&ds, *models, *epochs, *dp_noise, *dp_clip, &ctx);
        sink.finish();
        let r = r?;
        if super::bench_peers::emit(json!({ "bench": "dp-zoo", "result": r }), json) {
            r.lines().iter().for_each(|l| println!("{l}"));
        }
        return Ok(());
    }
    if let BenchWhich::Tabular {
        rows,
        epochs,
        samples,
    } = which
    {
        return super::tabular::bench_tabular_cmd(rows, epochs, samples, json);
    }
    if let BenchWhich::Layermem {
        augmentations,
        unit_augmentations,
    } = which
    {
        return bench_layermem(augmentations, unit_augmentations, json);
    }
    let ds = data::load("mnist10k")?;
    match which {
        BenchWhich::Ddim {
            samples,
            steps,
            base,
            side,
            device,
        } => {
            let cancel = CancelToken::new();
            let sink = CliSink::new(json);
            let ctx = JobCtx::new(&cancel, &sink);
            let r = crate::diffusion::bench::bench_ddim([1, side, side], base, samples, steps, &device, &ctx);
            sink.finish();
            let r = r?;
            if super::bench_peers::emit(json!({ "bench": "ddim", "result": r }), json) {
                println!(
                    "DDIM, {} steps, UNet base {} ({} parameters) on {}x{}x{}, {}: {} images in {:.2} s = {:.2} images/s ({:.0} UNet evals/s)",
                    r.steps,
                    r.base,
                    r.n_params,
                    r.shape[0],
                    r.shape[1],
                    r.shape[2],
                    r.device,
                    r.samples,
                    r.secs,
                    r.images_per_sec,
                    r.evals_per_sec
                );
            }
        }
        BenchWhich::DdpmTrain {
            data,
            base,
            steps,
            batch_size,
            device,
        } => {
            let cancel = CancelToken::new();
            let sink = CliSink::new(json);
            let ctx = JobCtx::new(&cancel, &sink);
            let r = crate::diffusion::bench::bench_ddpm_train(&data, base, steps, batch_size, &device, &ctx);
            sink.finish();
            let r = r?;
            if super::bench_peers::emit(json!({ "bench": "ddpm-train", "result": r }), json) {
                println!(
                    "DDPM training on {} ({}x{}x{}), UNet base {} ({} parameters), batch {}, {}: {} steps in {:.2} s = {:.1} images/s",
                    r.data,
                    r.shape[0],
                    r.shape[1],
                    r.shape[2],
                    r.base,
                    r.n_params,
                    r.batch_size,
                    r.device,
                    r.steps,
                    r.secs,
                    r.images_per_sec
                );
            }
        }
        BenchWhich::Tiled { m, n } => {
            let r = crate::diffusion::bench::bench_tiled(&ds, m, n, 4)?;
            if json {
                println!("{}", json!({ "bench": "tiled", "result": r }));
            } else {
                println!("tiled l2 (4x4 tiles), {} x {} MNIST images", r.m, r.n);
                println!("full matrix read back");
                println!("  cpu twin : {:>8.3} s", r.cpu_secs);
                match (r.gpu_secs, &r.gpu_adapter) {
                    (Some(s), Some(a)) => println!(
                        "  {a}: {s:>8.3} s, speed-up {:.2}x, identical: {}",
                        r.cpu_secs / s,
                        r.identical.unwrap_or(false)
                    ),
                    _ => println!(
                        "  wgpu     : unavailable ({})",
                        r.gpu_unavailable.unwrap_or_default()
                    ),
                }
                println!(
                    "top-{} search (only k pairs per query read back on the GPU)",
                    r.search_k
                );
                println!("  cpu twin : {:>8.3} s", r.cpu_search_secs);
                if let (Some(s), Some(a)) = (r.gpu_search_secs, &r.gpu_adapter) {
                    println!(
                        "  {a}: {s:>8.3} s, speed-up {:.2}x, identical neighbours: {}",
                        r.cpu_search_secs / s,
                        r.search_identical.unwrap_or(false)
                    );
                }
            }
        }
        BenchWhich::Nn { m, n } => {
            let r = bench_nn(&ds, m, n)?;
            if json {
                println!("{}", json!({ "bench": "nn", "result": r }));
            } else {
                println!(
                    "nearest neighbours (k=10), {} x {} MNIST images of {} pixels",
                    r.m, r.n, r.dim
                );
                println!(
                    "  cpu twin : {:>8.3} s  ({:.2} G sq-diff/s)",
                    r.cpu_secs, r.cpu_gops
                );
                match (r.gpu_secs, &r.gpu_adapter) {
                    (Some(s), Some(a)) => println!(
                        "  {a}: {s:>8.3} s  ({:.2} G sq-diff/s), speed-up {:.2}x, identical neighbours: {}",
                        r.gpu_gops.unwrap_or(0.0),
                        r.cpu_secs / s,
                        r.identical.unwrap_or(false)
                    ),
                    _ => println!(
                        "  wgpu     : unavailable ({})",
                        r.gpu_unavailable.unwrap_or_default()
                    ),
                }
            }
        }
        BenchWhich::Zoo {
            models,
            epochs,
            device,
            batched_only,
        } => {
            let cancel = CancelToken::new();
            let sink = CliSink::new(true);
            let ctx = JobCtx::new(&cancel, &sink);
            let r = crate::bench::bench_zoo(&ds, models, epochs, &device, !batched_only, &ctx);
            sink.finish();
            let r = r?;
            if super::bench_peers::emit(json!({ "bench": "zoo", "result": r }), json) {
                println!(
                    "zoo of {} MLPs 784-512-256-10 x {} epochs on {} samples each ({}):",
                    r.models, r.epochs, r.n_per_model, r.device
                );
                println!(
                    "  batched    : {:>8.2} s, {:.2} model-epochs/s",
                    r.batched_secs, r.batched_model_epochs_per_sec
                );
                if let (Some(s), Some(rate)) = (r.sequential_secs, r.sequential_model_epochs_per_sec) {
                    println!(
                        "  one by one : {s:>8.2} s, {rate:.2} model-epochs/s (batched is {:.2}x)",
                        s / r.batched_secs
                    );
                }
            }
        }
        BenchWhich::Invert { .. }
        | BenchWhich::Frames { .. }
        | BenchWhich::Layermem { .. }
        | BenchWhich::Exposure { .. }
        | BenchWhich::All { .. }
        | BenchWhich::Lm { .. }
        | BenchWhich::DpZoo { .. }
        | BenchWhich::Tabular { .. }
        | BenchWhich::Diffusers { .. }
        | BenchWhich::Icl { .. } => {}
        BenchWhich::Train {
            family,
            epochs,
            device,
        } => {
            let cfg = TrainConfig {
                family,
                epochs,
                device,
                ..TrainConfig::default()
            };
            let cancel = CancelToken::new();
            let sink = CliSink::new(true);
            let ctx = JobCtx::new(&cancel, &sink);
            let r = bench_train(&cfg, &ds, &ctx);
            sink.finish();
            let r = r?;
            if json {
                println!("{}", json!({ "bench": "train", "result": r }));
            } else {
                println!(
                    "{} on mnist10k ({} samples), {}: {:.2} s/epoch, {:.0} samples/s, test acc {:.4}",
                    r.family, r.n_train, r.device, r.secs_per_epoch, r.samples_per_sec, r.test_acc
                );
            }
        }
    }
    Ok(())
}

/// `rote bench frames`: the GUI's frame times and peak RSS on a 60k-image data set.
#[cfg(feature = "gui")]
fn bench_frames(which: BenchWhich, json: bool) -> CoreResult<()> {
    use crate::ui::frame_bench::{FrameBenchOptions, run};
    let BenchWhich::Frames {
        images,
        seconds,
        no_job,
        no_select,
        no_scroll,
    } = which
    else {
        return Ok(());
    };
    let r = run(&FrameBenchOptions {
        images,
        seconds,
        no_job,
        no_select,
        no_scroll,
    })?;
    if json {
        println!("{}", json!({ "bench": "frames", "result": r }));
    } else {
        for line in r.lines() {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(not(feature = "gui"))]
fn bench_frames(_which: BenchWhich, _json: bool) -> CoreResult<()> {
    Err(crate::error::CoreError::Invalid(
        "`rote bench frames` opens the window: this build has no GUI (built without the 'gui' feature)"
            .into(),
    ))
}

/// `rote bench invert`.
fn bench_invert(iters: usize, device: &str, json: bool) -> CoreResult<()> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let r = crate::invert::bench::bench_miface(iters, device, &ctx);
    sink.finish();
    let r = r?;
    if super::bench_peers::emit(json!({ "bench": "invert", "result": r }), json) {
        println!(
            "MI-FACE on softmax regression ({} classes, {}x{}x{}), {}: {} steps in {:.2} s = {:.1} steps/s \
             ({:.0} image-steps/s; training took {:.1} s)",
            r.classes,
            r.shape[0],
            r.shape[1],
            r.shape[2],
            r.device,
            r.steps,
            r.seconds,
            r.steps_per_s,
            r.image_steps_per_s,
            r.train_seconds
        );
    }
    Ok(())
}

/// `rote bench layermem`: the demo pair measured in a temporary copy of the demo study.
fn bench_layermem(augmentations: usize, unit_augmentations: usize, json: bool) -> CoreResult<()> {
    let dir = std::env::temp_dir().join(format!("rote-bench-layermem-{}", std::process::id()));
    let study = crate::demo::write_demo(&dir)?;
    let (_, mcfg) = crate::demo::ssl::demo_ssl_config();
    let mcfg = crate::ssl::LayerMemConfig {
        augmentations,
        unit_augmentations,
        ..mcfg
    };
    let [f, g] = crate::ssl::pair_dirs(&study.root, crate::demo::ssl::DEMO_SSL_PAIR);
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let t0 = std::time::Instant::now();
    let r = crate::ssl::layermem(&f, &g, &mcfg, &ctx);
    sink.finish();
    let seconds = t0.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).ok();
    let r = r?;
    if json {
        println!(
            "{}",
            json!({ "bench": "layermem", "candidates": r.candidates.len(), "layers": r.layers.len(),
                    "augmentations": augmentations, "unit_augmentations": unit_augmentations,
                    "seconds_per_candidate_layermem": r.seconds_per_candidate_layermem,
                    "seconds_per_candidate_unitmem": r.seconds_per_candidate_unitmem, "seconds": seconds })
        );
    } else {
        println!(
            "LayerMem on the demo pair ({} candidates, {} layers, f and g): {:.4} s per candidate with {augmentations} \
             draws; UnitMem {:.4} s per candidate with {unit_augmentations} draws ({seconds:.1} s in all)",
            r.candidates.len(),
            r.layers.len(),
            r.seconds_per_candidate_layermem,
            r.seconds_per_candidate_unitmem
        );
    }
    Ok(())
}

fn bench_lm(
    model: Option<&std::path::Path>,
    batch: usize,
    seq: usize,
    reps: usize,
    device: &str,
    json: bool,
) -> CoreResult<()> {
    let r = crate::lm::bench::bench_lm(model, batch, seq, reps, device)?;
    if super::bench_peers::emit(json!({ "bench": "lm", "result": r }), json) {
        println!(
            "LM scoring, {} ({}, {:.1}M parameters) on {}: {} x {} tokens x {} passes in {:.2} s = {:.0} tokens/s (mean ln p {:.3})",
            r.model,
            r.model_type,
            r.params as f64 / 1e6,
            r.device,
            r.batch,
            r.seq,
            r.reps,
            r.seconds,
            r.tokens_per_sec,
            r.mean_logprob
        );
    }
    Ok(())
}

fn bench_exposure(
    digits: usize,
    hidden: Option<usize>,
    references: usize,
    device: &str,
    json: bool,
) -> CoreResult<()> {
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let r = crate::canary::bench::bench_exposure(digits, hidden, references, device, &ctx);
    sink.finish();
    let r = r?;
    if json {
        println!("{}", json!({ "bench": "exposure", "result": r }));
    } else {
        println!(
            "Exposure, LSTM {} units on {}: exact rank over 10^{} candidates in {:.2} s = {:.0} candidates/s; {} references at {:.0}/s; Dijkstra finds the top candidate in {:.3} s ({} expansions)",
            r.hidden,
            r.device,
            r.digits,
            r.exact_seconds,
            r.candidates_per_sec,
            r.references,
            r.references_per_sec,
            r.search_seconds,
            r.search_expanded
        );
    }
    Ok(())
}
