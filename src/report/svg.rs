//! Small inline SVG charts drawn by hand: line charts (linear or log axes) for ROC curves and
//! curves over t, and bar charts for per-layer figures.

use super::html::esc;

/// Series colours, in order.
const PALETTE: [&str; 6] = ["#2b6cb0", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#495057"];

const W: f64 = 520.0;
const H: f64 = 340.0;
const L: f64 = 62.0;
const R: f64 = 16.0;
const T: f64 = 16.0;
const B: f64 = 46.0;

/// One axis.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    /// Label.
    pub label: String,
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
    /// Logarithmic (base 10; values below `min` are drawn at `min`).
    pub log: bool,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: &str, min: f64, max: f64) -> Self {
        Self {
            label: label.into(),
            min,
            max: if max > min { max } else { min + 1.0 },
            log: false,
        }
    }

    /// A log axis from `min` (> 0) to `max`.
    pub fn log(label: &str, min: f64, max: f64) -> Self {
        Self {
            label: label.into(),
            min,
            max: max.max(min * 10.0),
            log: true,
        }
    }

    /// Position of `v` in [0, 1].
    fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            let v = v.max(self.min);
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        f.clamp(0.0, 1.0)
    }

    /// Tick values.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.min.log10().ceil() as i32, self.max.log10().floor() as i32);
            (a..=b).take(24).map(|e| 10f64.powi(e)).collect()
        } else {
            nice_ticks(self.min, self.max)
        }
    }
}

/// Ticks at a round step (1, 2 or 5 times a power of ten), about 3 to 6 of them over [min, max].
fn nice_ticks(min: f64, max: f64) -> Vec<f64> {
    let span = max - min;
    if !(span.is_finite() && span > 0.0) {
        return vec![min];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (min / step).ceil() as i64;
    let last = (max / step + 1e-9).floor() as i64;
    // Round away binary noise (0.6000000000000001) through the step's decimal places.
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (first..=last)
        .take(12)
        .map(|k| {
            let v = k as f64 * step;
            format!("{v:.decimals$}").parse().unwrap_or(v)
        })
        .collect()
}

fn tick_label(v: f64, log: bool) -> String {
    if log && !(1e-2..=1e3).contains(&v) {
        format!("1e{}", v.log10().round() as i32)
    } else if v.fract() == 0.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A named series of (x, y) points.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// Legend entry.
    pub name: String,
    /// Points.
    pub points: Vec<[f64; 2]>,
    /// Dashed grey (a reference such as chance).
    pub reference: bool,
}

impl Series {
    /// A data series.
    pub fn new(name: &str, points: Vec<[f64; 2]>) -> Self {
        Self {
            name: name.into(),
            points,
            reference: false,
        }
    }

    /// A dashed reference line.
    pub fn reference(name: &str, points: Vec<[f64; 2]>) -> Self {
        Self {
            name: name.into(),
            points,
            reference: true,
        }
    }
}

/// The plot frame, grid and tick labels; a bar chart has no x axis (`x` None).
fn frame(x: Option<&Axis>, y: &Axis, s: &mut String) {
    let (pw, ph) = (W - L - R, H - T - B);
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n"
    ));
    for v in x.map(Axis::ticks).unwrap_or_default() {
        let px = L + x.map_or(0.0, |x| x.frac(v)) * pw;
        let log = x.is_some_and(|x| x.log);
        s.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{T}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            T + ph,
            T + ph + 14.0,
            tick_label(v, log)
        ));
    }
    for v in y.ticks() {
        let py = T + (1.0 - y.frac(v)) * ph;
        s.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            L + pw,
            L - 5.0,
            py + 4.0,
            tick_label(v, y.log)
        ));
    }
    s.push_str(&format!(
        "<rect x=\"{L}\" y=\"{T}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>\n\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        T + ph / 2.0,
        esc(&y.label)
    ));
    if let Some(x) = x.filter(|x| !x.label.is_empty()) {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            L + pw / 2.0,
            H - 8.0,
            esc(&x.label)
        ));
    }
}

/// A line chart of `series`.
pub(crate) fn line_chart(series: &[Series], x: &Axis, y: &Axis) -> String {
    let (pw, ph) = (W - L - R, H - T - B);
    let mut s = String::new();
    frame(Some(x), y, &mut s);
    let mut colour = 0;
    let mut legend = Vec::new();
    for se in series {
        let c = if se.reference {
            "#999"
        } else {
            let c = PALETTE[colour % PALETTE.len()];
            colour += 1;
            c
        };
        let xy: Vec<[f64; 2]> = se
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .map(|p| [L + x.frac(p[0]) * pw, T + (1.0 - y.frac(p[1])) * ph])
            .collect();
        // A point within half a pixel of the last one kept adds nothing (ROC curves hold
        // thousands); the last point is always kept.
        let mut kept: Vec<[f64; 2]> = Vec::new();
        for (k, p) in xy.iter().enumerate() {
            let far = kept
                .last()
                .is_none_or(|q| (p[0] - q[0]).abs() + (p[1] - q[1]).abs() >= 0.5);
            if far || k + 1 == xy.len() {
                kept.push(*p);
            }
        }
        let pts: Vec<String> = kept.iter().map(|p| format!("{:.1},{:.1}", p[0], p[1])).collect();
        let dash = if se.reference {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>\n",
            pts.join(" ")
        ));
        if pts.len() <= 12 && !se.reference {
            for p in &pts {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                s.push_str(&format!(
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{c}\"/>\n"
                ));
            }
        }
        legend.push((c, se.name.clone()));
    }
    for (k, (c, name)) in legend.iter().enumerate() {
        let ly = T + 12.0 + 14.0 * k as f64;
        s.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            L + 8.0,
            L + 26.0,
            L + 30.0,
            ly + 4.0,
            esc(name)
        ));
    }
    s.push_str("</svg>");
    s
}

/// A bar chart: one bar per label, an optional dashed reference level.
pub(crate) fn bar_chart(
    labels: &[String],
    values: &[f64],
    y_label: &str,
    reference: Option<(f64, &str)>,
) -> String {
    let (pw, ph) = (W - L - R, H - T - B);
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(0.0f64, f64::min);
    let hi = finite.fold(0.0f64, f64::max).max(reference.map_or(0.0, |r| r.0)) * 1.08;
    let y = Axis::linear(y_label, lo * 1.08, if hi > lo * 1.08 { hi } else { lo + 1.0 });
    let mut s = String::new();
    frame(None, &y, &mut s);
    let n = labels.len().max(1) as f64;
    let slot = pw / n;
    let zero = T + (1.0 - y.frac(0.0)) * ph;
    if y.min < 0.0 {
        s.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{zero:.1}\" x2=\"{:.1}\" y2=\"{zero:.1}\" stroke=\"#555\"/>\n",
            L + pw
        ));
    }
    for (k, (label, &v)) in labels.iter().zip(values).enumerate() {
        let cx = L + slot * (k as f64 + 0.5);
        if v.is_finite() {
            let top = T + (1.0 - y.frac(v)) * ph;
            let (y0, hgt) = if top < zero {
                (top, zero - top)
            } else {
                (zero, top - zero)
            };
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{hgt:.1}\" fill=\"{}\"><title>{}: {v:.3}</title></rect>\n",
                cx - slot * 0.35,
                slot * 0.7,
                PALETTE[0],
                esc(label)
            ));
        }
        let rotate = if labels.len() > 8 {
            format!(
                " transform=\"rotate(-35 {cx:.1} {:.1})\" text-anchor=\"end\"",
                T + ph + 12.0
            )
        } else {
            " text-anchor=\"middle\"".into()
        };
        s.push_str(&format!(
            "<text x=\"{cx:.1}\" y=\"{:.1}\"{rotate}>{}</text>\n",
            T + ph + 12.0,
            esc(label)
        ));
    }
    if let Some((level, name)) = reference {
        let py = T + (1.0 - y.frac(level)) * ph;
        s.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666\">{}</text>\n",
            L + pw,
            L + pw - 4.0,
            py - 4.0,
            esc(name)
        ));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.0, 32.0), vec![0.0, 10.0, 20.0, 30.0]);
        assert_eq!(nice_ticks(-0.0076, 0.0533), vec![0.0, 0.02, 0.04]);
        assert_eq!(nice_ticks(0.4, 1.0), vec![0.4, 0.6, 0.8, 1.0]);
        assert_eq!(tick_label(0.02, false), "0.02");
    }
}
