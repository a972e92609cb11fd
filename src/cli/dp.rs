//! `rote dp-epsilon`: the (ε, δ) of DP-SGD from the Rényi-DP accountant of the Poisson-subsampled
//! Gaussian mechanism (`defence::accountant`), or, with `--epsilon`, the noise multiplier that
//! reaches a target ε.

use serde_json::json;

use super::commands::print;
use crate::defence::accountant::{
    AccountantOptions, FractionalSeries, OrderSet, epsilon_with, noise_for_epsilon_with,
};
use crate::error::CoreResult;

/// The conversion from RDP to (ε, δ), named in every report.
const CONVERSION: &str = "Balle et al. 2020 Thm 21";

/// Options of `rote dp-epsilon`.
#[derive(Debug, clap::Args)]
pub struct DpEpsilonArgs {
    /// Sampling rate q: each example's probability of being in a batch (expected batch size over
    /// the data-set size).
    #[arg(long, allow_negative_numbers = true)]
    pub sample_rate: f64,
    /// Noise multiplier σ: the noise standard deviation over the clipping norm.
    #[arg(long, allow_negative_numbers = true, required_unless_present = "epsilon")]
    pub noise_multiplier: Option<f64>,
    /// Target ε: print the smallest noise multiplier that reaches it (to 0.01) instead.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "noise_multiplier")]
    pub epsilon: Option<f64>,
    /// Number of steps T (epochs / q).
    #[arg(long)]
    pub steps: u64,
    /// δ.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub delta: f64,
    /// Orders α to minimise over: dp_accounting's (1.1–10.9, 11–63, 128–1024) or Opacus's
    /// (1.1–10.9, 12–63).
    #[arg(long, value_enum, default_value_t = OrderSet::DpAccounting)]
    pub orders: OrderSet,
    /// Fractional-order series: magnitudes of the binomial coefficients (dp_accounting, an upper
    /// bound) or signed (Opacus, exact).
    #[arg(long, value_enum, default_value_t = FractionalSeries::Magnitude)]
    pub fractional: FractionalSeries,
}

/// `rote dp-epsilon`.
pub fn dp_epsilon(args: DpEpsilonArgs, json: bool) -> CoreResult<()> {
    let options = AccountantOptions {
        orders: args.orders,
        series: args.fractional,
    };
    let (q, steps, delta) = (args.sample_rate, args.steps, args.delta);
    let target = args.epsilon;
    let sigma = match (target, args.noise_multiplier) {
        (Some(target), _) => noise_for_epsilon_with(target, q, steps, delta, options)?,
        (None, Some(sigma)) => sigma,
        // clap requires one of the two; this keeps the error in one place anyway.
        (None, None) => {
            return Err(crate::error::CoreError::Invalid(
                "give --noise-multiplier or --epsilon".to_owned(),
            ));
        }
    };
    let acc = epsilon_with(q, sigma, steps, delta, options)?;
    let mut value = json!({
        "epsilon": acc.epsilon,
        "order": acc.order,
        "delta": acc.delta,
        "noise_multiplier": acc.noise_multiplier,
        "sample_rate": acc.sample_rate,
        "steps": acc.steps,
        "orders": acc.orders.label(),
        "fractional": acc.fractional.label(),
        "conversion": CONVERSION,
        "note": acc.note,
    });
    if let Some(target) = target {
        value["target_epsilon"] = json!(target);
    }
    print(json, &value, || {
        let conventions = format!(
            "orders {}, {} series, {CONVERSION}",
            acc.orders.label(),
            acc.fractional.label()
        );
        let head = match target {
            Some(target) => format!(
                "noise multiplier σ = {sigma} reaches ε = {:.4} ≤ {target} at δ = {delta:e} (α = {}) after {steps} steps with q = {q} ({conventions})",
                acc.epsilon, acc.order
            ),
            None => format!(
                "ε = {:.4} at δ = {delta:e} (α = {}) after {steps} steps with q = {q}, σ = {sigma} ({conventions})",
                acc.epsilon, acc.order
            ),
        };
        match &acc.note {
            Some(note) => format!("{head}\nnote: {note}"),
            None => head,
        }
    });
    Ok(())
}
