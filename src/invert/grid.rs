//! The "Invert all" grid as one PNG: every inverted person's image in a labelled-by-position grid
//! (row-major by class), with a green frame where the evaluation classifier identified the person
//! and a red one where it did not.

use std::path::Path;

use super::run::InversionReport;
use crate::error::{CoreError, CoreResult};
use crate::study::write_atomic;

/// Frame width in pixels around each cell.
const FRAME: usize = 2;

/// The grid image (RGB8, `cols` cells per row) of a report.
pub fn grid_image(report: &InversionReport, cols: usize) -> CoreResult<image::RgbImage> {
    let [c, h, w] = report.shape;
    if report.classes.is_empty() {
        return Err(CoreError::Invalid("the report holds no inversion".into()));
    }
    if c != 1 && c != 3 {
        return Err(CoreError::Invalid(format!(
            "cannot draw {c}-channel images (1 or 3)"
        )));
    }
    let cols = cols.clamp(1, report.classes.len());
    let rows = report.classes.len().div_ceil(cols);
    let (cw, ch) = (w + 2 * FRAME, h + 2 * FRAME);
    let mut img = image::RgbImage::from_pixel((cols * cw) as u32, (rows * ch) as u32, image::Rgb([255; 3]));
    for (n, r) in report.classes.iter().enumerate() {
        let (x0, y0) = ((n % cols) * cw, (n / cols) * ch);
        let frame = if r.eval_top1 { [40, 170, 70] } else { [210, 50, 50] };
        for y in 0..ch {
            for x in 0..cw {
                let (ix, iy) = (x as isize - FRAME as isize, y as isize - FRAME as isize);
                let px = if ix < 0 || iy < 0 || ix >= w as isize || iy >= h as isize {
                    frame
                } else {
                    let at = |k: usize| {
                        r.image
                            .get(k * h * w + iy as usize * w + ix as usize)
                            .copied()
                            .unwrap_or(0)
                    };
                    if c == 1 { [at(0); 3] } else { [at(0), at(1), at(2)] }
                };
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
            }
        }
    }
    Ok(img)
}

/// Writes the grid of `report` to `path` as PNG (atomically).
pub fn write_grid_png(report: &InversionReport, cols: usize, path: &Path) -> CoreResult<()> {
    let img = grid_image(report, cols)?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| CoreError::format(path, format!("cannot encode PNG: {e}")))?;
    write_atomic(path, &bytes)
}
