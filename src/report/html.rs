//! The page: inline CSS, no scripts, images and CSV files referenced by relative names.

use super::{Section, Table};
use crate::study::Study;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A note paragraph.
pub(crate) fn note(msg: &str) -> String {
    format!("<p class=\"note\">{}</p>\n", esc(msg))
}

/// A paragraph of plain text.
pub(crate) fn p(text: &str) -> String {
    format!("<p>{}</p>\n", esc(text))
}

/// A sub-heading.
pub(crate) fn h3(text: &str) -> String {
    format!("<h3>{}</h3>\n", esc(text))
}

/// A link to a file of the report.
pub(crate) fn link(file: &str) -> String {
    format!("<a href=\"{0}\">{0}</a>", esc(file))
}

/// The first `max` rows of `t` as an HTML table, with a line naming the CSV file holding all of
/// them.
pub(crate) fn table(t: &Table, max: usize, csv_file: Option<&str>) -> String {
    let mut s = String::from("<table>\n<tr>");
    for h in &t.header {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr>\n");
    for row in t.rows.iter().take(max) {
        s.push_str("<tr>");
        for c in row {
            let class = match c {
                super::Cell::Text(_) | super::Cell::Bool(_) => "",
                _ => " class=\"num\"",
            };
            s.push_str(&format!("<td{class}>{}</td>", esc(&c.display())));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    if let Some(f) = csv_file {
        let shown = if t.rows.len() > max {
            format!("first {max} of {} rows; ", t.rows.len())
        } else {
            String::new()
        };
        s.push_str(&format!("<p class=\"file\">{shown}all rows: {}</p>\n", link(f)));
    }
    s
}

/// A two-column table of figures.
pub(crate) fn figures(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<table class=\"kv\">\n");
    for (k, v) in rows {
        s.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), esc(v)));
    }
    s.push_str("</table>\n");
    s
}

/// An image of the report with a caption.
pub(crate) fn img(file: &str, caption: &str) -> String {
    format!(
        "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption>{1}</figcaption></figure>\n",
        esc(file),
        esc(caption)
    )
}

/// An inline SVG chart with a caption.
pub(crate) fn chart(svg: &str, caption: &str) -> String {
    format!(
        "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
        esc(caption)
    )
}

const CSS: &str = "
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d2330;
  max-width: 1100px; margin: 0 auto; padding: 1.5em; background: #fbfbfd; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #d8dce6; padding-bottom: 0.2em;
  margin-top: 2.2em; } h3 { margin-top: 1.5em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #d8dce6; padding: 3px 8px; text-align: left; }
th { background: #eef0f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 16em; }
figure { margin: 0.8em 0; display: inline-block; vertical-align: top; }
figcaption { font-size: 13px; color: #555c6b; max-width: 640px; }
img { image-rendering: pixelated; max-width: 100%; border: 1px solid #d8dce6; }
.note { background: #fff4e5; border-left: 4px solid #e69a28; padding: 0.4em 0.8em; }
.file { font-size: 13px; color: #555c6b; }
.muted { color: #6b7280; }
svg { background: #fff; border: 1px solid #d8dce6; }
";

/// The whole page.
pub(crate) fn page(
    study: &Study,
    sections: &[Section],
    notes: &[String],
    files: &[(String, String)],
) -> String {
    let m = &study.manifest;
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str(&format!(
        "<title>rote report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&m.name)
    ));
    s.push_str(&format!("<h1>rote report: {}</h1>\n", esc(&m.name)));
    if !m.description.is_empty() {
        s.push_str(&p(&m.description));
    }
    s.push_str(&format!(
        "<p class=\"muted\">Study folder {} &middot; written by rote {}</p>\n",
        esc(&std::fs::canonicalize(&study.root)
            .unwrap_or_else(|_| study.root.clone())
            .display()
            .to_string()),
        esc(crate::VERSION)
    ));
    s.push_str("<nav>");
    for sec in sections {
        s.push_str(&format!("<a href=\"#{}\">{}</a>", esc(&sec.id), esc(&sec.title)));
    }
    s.push_str("<a href=\"#files\">Files</a></nav>\n");
    if !notes.is_empty() {
        s.push_str("<h2 id=\"notes\">Notes</h2>\n");
        for n in notes {
            s.push_str(&note(n));
        }
    }
    for sec in sections {
        s.push_str(&format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            esc(&sec.id),
            esc(&sec.title),
            sec.body
        ));
    }
    s.push_str("<h2 id=\"files\">Files</h2>\n<table>\n<tr><th>file</th><th>what</th></tr>\n");
    for (f, what) in files {
        s.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>\n", link(f), esc(what)));
    }
    s.push_str("</table>\n</body>\n</html>\n");
    s
}
