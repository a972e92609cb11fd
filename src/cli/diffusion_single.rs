//! `rote inpaint` and `rote mia-diffusion` on one model (a diffusers folder, or one of rote's):
//! its training images (`--train-data`, or a rote card's) against images it did not train on
//! (`--heldout-data`, or the rest of a rote model's data set).

use std::path::Path;

use serde_json::json;

use super::CliSink;
use super::commands::print;
use super::diffusion::{InpaintArgs, MiaDiffusionArgs, open_with_data, print_mia, results_dir};
use crate::data::Dataset;
use crate::diffusion::attack::{AttackSpec, inpaint_members};
use crate::diffusion::denoiser::Denoiser;
use crate::diffusion::inpaint::InpaintConfig;
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};

/// One model, one data set, and which of its images are members and held out.
struct OneModel {
    model: Box<dyn Denoiser>,
    ds: Dataset,
    members: Vec<usize>,
    heldout: Vec<usize>,
}

/// Seeded choice of at most `count` of `v`, ascending.
fn choose(mut v: Vec<usize>, count: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng as _;
    use rand::seq::SliceRandom as _;
    v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    v.truncate(count);
    v.sort_unstable();
    v
}

fn open_one(
    dir: &Path,
    train: Option<&str>,
    heldout: Option<&str>,
    device: &str,
    count: usize,
    seed: u64,
) -> CoreResult<OneModel> {
    let (model, members_ds) = open_with_data(dir, train, device)?;
    let (ds, members, held) = match heldout {
        Some(path) => {
            let held = crate::data::load(path)?;
            crate::diffusion::extract::check_shape(model.as_ref(), &held)?;
            let n = members_ds.n;
            let ds = members_ds.concat(&held)?;
            let total = ds.n;
            (ds, (0..n).collect(), (n..total).collect())
        }
        None => {
            let Some(card) = model.card().filter(|_| train.is_none()) else {
                return Err(CoreError::Invalid(format!(
                    "{}: give images the model did not train on with --heldout-data PATH (the \
                     attack compares them with its training images)",
                    dir.display()
                )));
            };
            let members: Vec<usize> = card.train_indices.iter().map(|&i| i as usize).collect();
            let held: Vec<usize> = (0..members_ds.n)
                .filter(|i| members.binary_search(i).is_err())
                .collect();
            if held.is_empty() {
                return Err(CoreError::Invalid(format!(
                    "{}: the model trained on every image of '{}'; give images it did not train on \
                     with --heldout-data PATH",
                    dir.display(),
                    card.dataset.name
                )));
            }
            (members_ds, members, held)
        }
    };
    Ok(OneModel {
        model,
        ds,
        members: choose(members, count, seed),
        heldout: choose(held, count, seed ^ 1),
    })
}

/// `rote inpaint --in-model MODEL` without `--out-model`.
pub fn inpaint(args: &InpaintArgs, json: bool) -> CoreResult<()> {
    let half = args.count.div_ceil(2).max(1);
    let one = open_one(
        &args.in_model,
        args.train_data.as_deref(),
        args.heldout_data.as_deref(),
        &args.device,
        half,
        args.seed,
    )?;
    let spec = AttackSpec {
        mask: args.mask,
        config: InpaintConfig {
            method: args.method,
            steps: args.steps,
            jump_length: args.jump_length,
            jump_n_sample: args.resamplings,
        },
        samples: args.samples,
        seed: args.seed,
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let report = inpaint_members(
        one.model.as_ref(),
        &one.ds,
        &one.members,
        &one.heldout,
        &spec,
        &ctx,
    );
    sink.finish();
    let report = report?;
    let out = results_dir(&args.in_model, one.model.as_ref()).join("inpaint-members.json");
    crate::study::write_json_atomic(&out, &report)?;
    let value = json!({
        "model": report.model,
        "auc": report.auc,
        "tpr_at_1pct_fpr": report.tpr_at_1pct_fpr,
        "mean_err_member": report.mean_err_member,
        "mean_err_heldout": report.mean_err_heldout,
        "n_members": one.members.len(),
        "n_heldout": one.heldout.len(),
        "method": report.config.method,
        "mask": report.mask,
        "report": out,
    });
    print(json, &value, || {
        format!(
            "{}: {} members and {} held-out images, mask {:?}, {:?}: AUC {:.3}, TPR@1%FPR {:.3}; mean \
             hidden-region l2 members {:.4} vs held out {:.4}\nreport: {}",
            report.model,
            one.members.len(),
            one.heldout.len(),
            report.mask,
            report.config.method,
            report.auc,
            report.tpr_at_1pct_fpr,
            report.mean_err_member,
            report.mean_err_heldout,
            out.display()
        )
    });
    Ok(())
}

/// `rote mia-diffusion MODEL` (one model).
pub fn mia(args: &MiaDiffusionArgs, json: bool) -> CoreResult<()> {
    let dir = &args.models[0];
    let one = open_one(
        dir,
        args.train_data.as_deref(),
        args.heldout_data.as_deref(),
        &args.device,
        args.count,
        args.seed,
    )?;
    let cfg = crate::diffusion::mia::DiffusionMiaConfig {
        timesteps: args.timesteps.clone(),
        draws: args.draws,
        seed: args.seed,
    };
    let train: Vec<u32> = one.members.iter().map(|&i| i as u32).collect();
    let mut pool: Vec<usize> = one.members.iter().chain(&one.heldout).copied().collect();
    pool.sort_unstable();
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let family = [(one.model.as_ref(), train.as_slice())];
    let report = crate::diffusion::mia::diffusion_mia_on(&family, &pool, &one.ds, &cfg, &ctx);
    sink.finish();
    let report = report?;
    let out = results_dir(dir, one.model.as_ref()).join("mia-diffusion-members.json");
    crate::study::write_json_atomic(&out, &report)?;
    print_mia(&report, &out, json);
    Ok(())
}
