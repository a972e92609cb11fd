//! `rote mat`: memorization-aware training (Bayat et al., ICLR 2025) against plain ERM on the
//! coloured digits, with average and worst-group accuracy.

use std::path::PathBuf;

use super::CliSink;
use crate::defence::mat::{Figures, MatConfig, MatReport, run, save};
use crate::defence::spurious::{GROUPS, SpuriousConfig};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::study::Study;

/// `rote mat`.
#[derive(Debug, clap::Args)]
pub struct MatArgs {
    /// Grey digit set the coloured digits are built from (mnist10k or digits8x8).
    #[arg(long, default_value = "mnist10k")]
    pub data: String,
    /// Temperature T of the held-out softmax in MAT's logit shift.
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f64,
    /// Fraction of training labels flipped before the colours are drawn.
    #[arg(long, default_value_t = 0.1)]
    pub label_noise: f64,
    /// Optimiser steps of each phase (ERM, XRM twins, MAT).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Seed of the data set's random choices and of the training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Study folder (created if missing): saves results/defences/mat.json there.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl MatArgs {
    fn config(&self) -> MatConfig {
        MatConfig {
            data: SpuriousConfig {
                data: self.data.clone(),
                label_noise: self.label_noise,
                seed: self.seed,
                ..SpuriousConfig::default()
            },
            erm_steps: self.steps,
            xrm_steps: self.steps,
            mat_steps: self.steps,
            temperature: self.temperature,
            seed: self.seed,
            ..MatConfig::default()
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x))
}

fn group(f: &Figures, g: usize) -> Option<f64> {
    f.groups.get(g).and_then(|x| x.accuracy)
}

fn print_report(r: &MatReport) {
    let d = &r.data;
    println!(
        "{} from {}: {} train (colour = label {:.1}%, {:.1}% labels flipped), {} test (colour = label {:.1}%)",
        d.name,
        d.source,
        d.n_train,
        100.0 * d.train_agreement,
        100.0 * d.train_label_noise,
        d.n_test,
        100.0 * d.test_agreement
    );
    println!(
        "MLP {:?}, {} steps per phase, batch {}, lr {}, T = {}, seed {}",
        r.settings.hidden,
        r.settings.mat_steps,
        r.settings.batch_size,
        r.settings.lr,
        r.settings.temperature,
        r.settings.seed
    );
    println!();
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9}",
        "", "train avg", "train wga", "test avg", "test wga"
    );
    for (name, m) in [("ERM", &r.erm), ("MAT", &r.mat)] {
        println!(
            "{:<8} {:>9} {:>9} {:>9} {:>9}",
            name,
            pct(Some(m.train.average)),
            pct(Some(m.train.worst_group)),
            pct(Some(m.test.average)),
            pct(Some(m.test.worst_group))
        );
    }
    println!();
    println!(
        "{:<22} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "group g = 2y + m", "n train", "n test", "ERM train", "ERM test", "MAT train", "MAT test", "held-out"
    );
    for g in 0..GROUPS {
        let kind = if g == 0 || g == 3 { "majority" } else { "minority" };
        println!(
            "{:<22} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{g} (y={}, m={}, {kind})", g / 2, g % 2),
            d.train_groups[g],
            d.test_groups[g],
            pct(group(&r.erm.train, g)),
            pct(group(&r.erm.test, g)),
            pct(group(&r.mat.train, g)),
            pct(group(&r.mat.test, g)),
            pct(group(&r.xrm.held_out, g))
        );
    }
    println!();
    println!(
        "XRM flip rate {:.1}%; MAT - ERM test worst-group accuracy: {:+.1} points",
        100.0 * r.xrm.flip_rate,
        100.0 * r.worst_group_gain
    );
}

/// Runs `rote mat`.
pub fn mat(args: MatArgs, json: bool) -> CoreResult<()> {
    let study = args.out.as_deref().map(Study::open_or_create).transpose()?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let report = run(&args.config(), &ctx);
    sink.finish();
    let report = report?;
    let path = study.map(|s| save(&s, &report)).transpose()?;
    if json {
        let value = serde_json::to_value(&report)
            .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
        println!("{value}");
        return Ok(());
    }
    print_report(&report);
    if let Some(path) = path {
        println!("saved {}", path.display());
    }
    Ok(())
}
