//! The inpainting membership attack on diffusion models
//! (`results/diffusion/<a>/inpaint-<b>.json`): AUC and TPR at 1% FPR, the ROC, per-image errors
//! and the first completions next to the originals.

use std::path::Path;

use super::figures::{GREEN, GREY, RED, Tile, gallery};
use super::{Report, Section, Table, html};
use crate::diffusion::attack::{InpaintReport, MemberInpaintReport};
use crate::error::CoreResult;
use crate::job::JobCtx;

/// Images shown with their completions.
const SHOWN: usize = 8;

/// Adds one section per saved inpainting attack.
pub(super) fn add(r: &mut Report<'_>, ctx: &JobCtx<'_>) -> CoreResult<()> {
    let root = r.study.results_dir().join("diffusion");
    for dir in super::list(&root, Path::is_dir) {
        for path in super::json_files(&dir) {
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else {
                continue;
            };
            let Some(other) = stem.strip_prefix("inpaint-") else {
                continue;
            };
            ctx.checkpoint()?;
            let model = super::name_of(&dir);
            if other == "members" {
                let mut body = String::new();
                if let Some(rep) = r.load::<MemberInpaintReport>(&path, &mut body) {
                    members_section(r, &model, &rep, &mut body)?;
                }
                r.sections.push(Section {
                    id: super::slug(&format!("inpaint-members-{model}")),
                    title: format!("Inpainting attack: {model}, members vs held out"),
                    body,
                });
                continue;
            }
            let mut body = String::new();
            if let Some(rep) = r.load::<InpaintReport>(&path, &mut body) {
                section(r, &model, other, &rep, &mut body)?;
            }
            r.sections.push(Section {
                id: super::slug(&format!("inpaint-{model}-{other}")),
                title: format!("Inpainting attack: {model} vs {other}"),
                body,
            });
        }
    }
    Ok(())
}

fn section(r: &mut Report<'_>, a: &str, b: &str, rep: &InpaintReport, body: &mut String) -> CoreResult<()> {
    body.push_str(&html::figures(&[
        ("images attacked", rep.rows.len().to_string()),
        ("AUC (IN vs OUT)", format!("{:.3}", rep.auc)),
        ("TPR at 1% FPR", format!("{:.3}", rep.tpr_at_1pct_fpr)),
        ("TPR at 0.1% FPR", format!("{:.3}", rep.tpr_at_0_1pct_fpr)),
        (
            "mean hidden-region error IN / OUT",
            format!("{:.4} / {:.4}", rep.mean_err_in, rep.mean_err_out),
        ),
        ("hidden region", format!("{:?}", rep.mask).to_lowercase()),
        (
            "method",
            format!(
                "{:?} with {} steps, best of {} completions per image and model",
                rep.config.method, rep.config.steps, rep.samples
            )
            .to_lowercase(),
        ),
    ]));
    let mut t = Table::new(&["index", "in_model", "out_model", "err_in", "err_out", "in_closer"]);
    for row in &rep.rows {
        t.push(vec![
            row.index.into(),
            row.in_model.as_str().into(),
            row.out_model.as_str().into(),
            row.err_in.into(),
            row.err_out.into(),
            (row.err_in < row.err_out).into(),
        ]);
    }
    let name = format!("inpaint-{a}-{b}");
    let f = r.csv(
        &name,
        &format!("{a} vs {b}: best-of-N hidden-region error per image"),
        &t,
    )?;
    let mut roc = Table::new(&["fpr", "tpr"]);
    for p in &rep.roc_points {
        roc.push(vec![p[0].into(), p[1].into()]);
    }
    let rf = r.csv(
        &format!("inpaint-roc-{a}-{b}"),
        &format!("{a} vs {b}: ROC points"),
        &roc,
    )?;
    body.push_str(&html::chart(
        &super::mia::roc_chart(&[(format!("inpainting (AUC {:.3})", rep.auc), rep.roc_points.clone())]),
        "ROC of -error (IN completions positive), log-log.",
    ));
    body.push_str(&format!("<p class=\"file\">data: {}</p>\n", html::link(&rf)));
    match super::extraction::model_data(&crate::diffusion::diffusion_dir(&r.study.root).join(a)) {
        Ok((_, ds)) => {
            let shape = [ds.c, ds.h, ds.w];
            let hw = ds.h * ds.w;
            let mut tiles = Vec::new();
            for row in rep.rows.iter().take(SHOWN) {
                let orig = ds.image(row.index).unwrap_or(&[]);
                let masked: Vec<u8> = orig
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| {
                        if rep.keep.get(k % hw).is_some_and(|&m| m > 0.5) {
                            v
                        } else {
                            ds.max_value / 2
                        }
                    })
                    .collect();
                let win = if row.err_in < row.err_out { GREEN } else { RED };
                tiles.extend([
                    Tile::from_chw(orig, shape, ds.max_value, GREY),
                    Tile::from_chw(&masked, shape, ds.max_value, GREY),
                    Tile::from_chw(&row.completion_in, shape, ds.max_value, win),
                    Tile::from_chw(&row.completion_out, shape, ds.max_value, GREY),
                ]);
            }
            let png = r.png(
                &name,
                &format!("{a} vs {b}: originals and completions"),
                &gallery(&tiles, 8, 4),
            )?;
            body.push_str(&html::img(
                &png,
                "Per image (first rows of the table): original, hidden region greyed, best IN \
                 completion (green frame when it is closer than OUT's), best OUT completion.",
            ));
        }
        Err(e) => {
            body.push_str(&r.note(format!("{a}: completions gallery left out ({e})")));
        }
    }
    body.push_str(&html::table(&t, SHOWN, Some(&f)));
    Ok(())
}

/// One model's completions of its members against held-out images (`rote inpaint --in-model M`
/// without `--out-model`).
fn members_section(
    r: &mut Report<'_>,
    model: &str,
    rep: &MemberInpaintReport,
    body: &mut String,
) -> CoreResult<()> {
    let n_in = rep.rows.iter().filter(|x| x.member).count();
    body.push_str(&html::figures(&[
        (
            "images attacked",
            format!("{n_in} members, {} held out", rep.rows.len() - n_in),
        ),
        ("AUC (members vs held out)", format!("{:.3}", rep.auc)),
        ("TPR at 1% FPR", format!("{:.3}", rep.tpr_at_1pct_fpr)),
        (
            "mean hidden-region error, members / held out",
            format!("{:.4} / {:.4}", rep.mean_err_member, rep.mean_err_heldout),
        ),
        ("hidden region", format!("{:?}", rep.mask).to_lowercase()),
        (
            "method",
            format!(
                "{:?} with {} steps, best of {} completions per image",
                rep.config.method, rep.config.steps, rep.samples
            )
            .to_lowercase(),
        ),
    ]));
    let mut t = Table::new(&["index", "member", "err"]);
    for row in &rep.rows {
        t.push(vec![row.index.into(), row.member.into(), row.err.into()]);
    }
    let name = format!("inpaint-members-{model}");
    let f = r.csv(
        &name,
        &format!("{model}: best-of-N hidden-region error per image"),
        &t,
    )?;
    let tiles: Vec<Tile> = [true, false]
        .iter()
        .flat_map(|&m| rep.rows.iter().filter(move |x| x.member == m).take(SHOWN))
        .map(|x| {
            let frame = if x.member { GREEN } else { GREY };
            Tile::from_chw(&x.completion, rep.shape, rep.max_value, frame)
        })
        .collect();
    if !tiles.is_empty() {
        let png = r.png(
            &name,
            &format!("{model}: completions"),
            &gallery(&tiles, SHOWN, SHOWN),
        )?;
        body.push_str(&html::img(
            &png,
            "Best completions, row-major: up to 8 members (green frames), then up to 8 held-out images \
             (grey frames).",
        ));
    }
    body.push_str(&html::table(&t, 2 * SHOWN, Some(&f)));
    Ok(())
}
