//! `rote defences`: a study's zoos side by side, baseline and defended variants (utility, LiRA,
//! robust accuracy, audited and accountant ε, mem, planted recall), optionally training a
//! defended variant (DP-SGD, PGD adversarial training, DeMem) first.

use std::path::PathBuf;

use super::CliSink;
use super::zoo::{AdvTrainArgs, DpTrainArgs};
use crate::defence::compare::{
    DEMEM_NO_EFFECT, Defence, DefenceRow, defences_report, demem_comparisons, train_variant,
};
use crate::error::{CoreError, CoreResult};
use crate::job::{CancelToken, JobCtx};
use crate::study::Study;

/// `rote defences`.
#[derive(Debug, clap::Args)]
pub struct DefencesArgs {
    /// Study folder.
    pub study: PathBuf,
    /// Train a defended variant of this zoo first (its recipe and model count with the --dp-*
    /// options, or --adversarial/--demem), then compare.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Models of the variant (default: as many as the baseline has).
    #[arg(long)]
    pub models: Option<u32>,
    /// DP-SGD to train (with --baseline).
    #[command(flatten)]
    pub dp: DpTrainArgs,
    /// Adversarial training or DeMem to train (with --baseline).
    #[command(flatten)]
    pub adv: AdvTrainArgs,
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn line(r: &DefenceRow) -> String {
    format!(
        "{:<28} {:>6.1}% {:>7} {:>6.3} {:>8.3}% {:>7} {:>7} {:>6.3} {:>6}  {}",
        r.zoo,
        100.0 * r.test_accuracy,
        r.robust_accuracy
            .map_or_else(|| "-".into(), |v| format!("{:.1}%", 100.0 * v)),
        r.lira_auc,
        100.0 * r.lira_tpr_at_0_1pct_fpr,
        cell(r.audited_epsilon, 2),
        cell(r.accountant_epsilon, 2),
        r.mem_mean,
        cell(r.planted_recall, 2),
        r.defence
    )
}

/// Runs `rote defences`.
pub fn defences(args: DefencesArgs, json: bool) -> CoreResult<()> {
    let study = Study::open(&args.study)?;
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let defence = match (args.dp.settings(), args.adv.settings()) {
        (Some(_), Some(_)) => {
            sink.finish();
            return Err(CoreError::Invalid(
                "one defence per variant: DP-SGD (--dp-*) or adversarial training (--adversarial/--demem)"
                    .into(),
            ));
        }
        (Some(dp), None) => Some(Defence::Dp(dp)),
        (None, Some(adv)) => Some(Defence::Adversarial(adv)),
        (None, None) => None,
    };
    let trained = match (&args.baseline, defence) {
        (Some(base), Some(defence)) => Some(train_variant(&study, base, &defence, args.models, &ctx)),
        (Some(_), None) => {
            sink.finish();
            return Err(CoreError::Invalid(
                "--baseline trains a defended variant: give --dp-epsilon E, --dp-noise S, --adversarial or --demem"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            sink.finish();
            return Err(CoreError::Invalid(
                "--dp-epsilon/--dp-noise/--adversarial/--demem train a variant of a zoo: name it with --baseline".into(),
            ));
        }
        (None, None) => None,
    };
    let report = trained.transpose().and_then(|_| defences_report(&study, &ctx));
    sink.finish();
    let report = report?;
    if report.rows.is_empty() && report.diffusion.is_empty() {
        return Err(CoreError::Invalid(format!(
            "{} has no zoo with two or more models and no diffusion model with an extraction; \
             train one with `rote zoo`, or extract from a DDPM with `rote extract`",
            args.study.display()
        )));
    }
    let path = crate::defence::compare::save(&study, &report)?;
    if json {
        let value = serde_json::to_value(&report)
            .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
        println!("{value}");
        return Ok(());
    }
    println!(
        "{:<28} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7} {:>6} {:>6}  defence",
        "zoo", "test", "robust", "AUC", "TPR@.1%", "audit ε", "DP ε", "mem", "recall"
    );
    for r in &report.rows {
        println!("{}", line(r));
    }
    if !report.diffusion.is_empty() {
        println!(
            "\n{:<28} {:>8} {:>9} {:>9} {:>9} {:>8}  defence",
            "diffusion model", "samples", "extracted", "planted", "singles", "loss"
        );
        for r in &report.diffusion {
            println!(
                "{:<28} {:>8} {:>9} {:>9} {:>9} {:>8}  {}",
                r.model,
                r.samples,
                r.n_extracted,
                cell(r.planted_dup_extracted_frac, 2),
                cell(r.singleton_extracted_frac, 2),
                cell(r.final_loss, 4),
                r.defence
            );
        }
    }
    let dp_over = report
        .rows
        .iter()
        .filter(|r| matches!((r.audited_epsilon, r.accountant_epsilon), (Some(a), Some(e)) if a > e));
    for r in dp_over {
        println!(
            "warning: {}: the audited lower bound exceeds the accountant's ε; the accountant or the training is wrong",
            r.zoo
        );
    }
    for line in demem_lines(&report.rows) {
        println!("{line}");
    }
    println!("saved {}", path.display());
    Ok(())
}

/// For each DeMem-style variant with a PGD-AT sibling: what DeMem changed, and why when it did
/// not lower LiRA.
fn demem_lines(rows: &[DefenceRow]) -> Vec<String> {
    demem_comparisons(rows)
        .iter()
        .map(|c| {
            let (d, a) = (c.demem, c.pgd_at);
            let mut line = format!(
                "DeMem-style vs {}: LiRA AUC {:.3} -> {:.3}, TPR@0.1% {:.3}% -> {:.3}%, test {:.1}% -> {:.1}%, robust {} -> {}",
                a.defence,
                a.lira_auc,
                d.lira_auc,
                100.0 * a.lira_tpr_at_0_1pct_fpr,
                100.0 * d.lira_tpr_at_0_1pct_fpr,
                100.0 * a.test_accuracy,
                100.0 * d.test_accuracy,
                cell(a.robust_accuracy.map(|v| 100.0 * v), 1),
                cell(d.robust_accuracy.map(|v| 100.0 * v), 1),
            );
            if !c.lowered_lira() {
                line.push_str(&format!(
                    "\n  DeMem did not lower LiRA here: {DEMEM_NO_EFFECT}; try a smaller --adv-epsilon or a larger --demem-lambda."
                ));
            }
            line
        })
        .collect()
}
