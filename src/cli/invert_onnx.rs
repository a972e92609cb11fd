//! `rote invert --onnx FILE`: model inversion of an ONNX image classifier (feature `onnx`).

use std::path::Path;

use super::invert::InvertArgs;
use crate::error::{CoreError, CoreResult};
use crate::invert::{EvalConfig, InvertConfig};

/// Inverts the ONNX classifier `file` with the method of `config` and prints the result.
#[cfg(feature = "onnx")]
pub fn invert_onnx(
    file: &Path,
    args: &InvertArgs,
    config: InvertConfig,
    eval: EvalConfig,
    json: bool,
) -> CoreResult<()> {
    use super::CliSink;
    use crate::invert::onnx::{OnnxInvertOptions, OnnxOptions, invert_onnx};
    use crate::job::{CancelToken, JobCtx};

    let input_shape = match args.input_shape.as_deref() {
        None => None,
        Some(&[c, h, w]) => Some([c, h, w]),
        Some(other) => {
            return Err(CoreError::Invalid(format!(
                "--input-shape takes C,H,W (three numbers), got {other:?}"
            )));
        }
    };
    let opts = OnnxInvertOptions {
        onnx: OnnxOptions {
            input_shape,
            fallback_shape: None,
            mean: args.mean.clone(),
            std: args.std.clone(),
        },
        config,
        classes: if args.all || args.class.is_empty() {
            None
        } else {
            Some(args.class.clone())
        },
        data: args.data.clone(),
        eval_model: args.eval_model.clone(),
        eval,
        out: args.out.clone(),
    };
    let cancel = CancelToken::new();
    let sink = CliSink::new(json);
    let ctx = JobCtx::new(&cancel, &sink);
    let done = invert_onnx(file, &opts, &ctx);
    sink.finish();
    let (r, path) = done?;
    if json {
        let mut v = serde_json::to_value(&r)
            .map_err(|e| CoreError::Invalid(format!("cannot serialise the report: {e}")))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("path".into(), serde_json::json!(path));
            obj.insert("method".into(), serde_json::json!(r.config.method.as_str()));
        }
        println!("{v}");
    } else {
        for c in &r.classes {
            let id = c.eval.as_ref().map_or(String::new(), |e| {
                format!(
                    " rank {:>2}{}",
                    e.identification.rank,
                    if e.identification.top1 { " identified" } else { "" }
                )
            });
            println!(
                "{:>4} {:<8} p_target {:.3} -> {:.3} steps {:>5} {:?}{id}  {}",
                c.class, c.name, c.target_p_start, c.target_p, c.steps, c.stop, c.png
            );
        }
        if let (Some(t1), Some(t5)) = (r.eval_top1, r.eval_top5) {
            println!(
                "evaluation classifier top-1 {t1:.3}, top-5 {t5:.3} of {} classes",
                r.classes.len()
            );
        }
        println!(
            "{} on {} ({} classes, input {:?}, {:.1} s)\nwritten to {}",
            r.config.method.as_str(),
            r.file,
            r.n_classes,
            r.shape,
            r.seconds,
            path.display()
        );
    }
    Ok(())
}

/// Without the `onnx` feature: a clear error.
#[cfg(not(feature = "onnx"))]
pub fn invert_onnx(
    _file: &Path,
    _args: &InvertArgs,
    _config: InvertConfig,
    _eval: EvalConfig,
    _json: bool,
) -> CoreResult<()> {
    Err(CoreError::Invalid(
        "rote was built without the `onnx` feature: cargo build --features onnx (building it needs protoc)"
            .into(),
    ))
}
