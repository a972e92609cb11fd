//! `rote report`: the demo study as an HTML page, PNG galleries and CSV tables. Every link of the
//! page resolves, every CSV parses strictly (RFC 4180) with one width, and the tables hold the
//! study's results; a broken result becomes a note; a cancelled report leaves nothing behind.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use rote::job::{CancelToken, JobCtx, JobSink, NullSink, Progress};
use rote::report::{ReportSummary, write_report};

fn demo(dir: &Path) -> std::path::PathBuf {
    let study = dir.join("demo");
    rote::demo::write_demo(&study).unwrap();
    study
}

fn report(study: &Path, out: &Path) -> ReportSummary {
    let cancel = CancelToken::new();
    let ctx = JobCtx::new(&cancel, &NullSink);
    write_report(study, out, &ctx).unwrap()
}

/// A strict RFC 4180 reader: quoted fields may hold commas, quotes (doubled) and line breaks;
/// a quote inside an unquoted field, text after a closing quote or an unterminated quote fails.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err(format!("stray quote in row {}", rows.len() + 1)),
            ',' => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                was_quoted = false;
            }
            c if was_quoted => return Err(format!("text {c:?} after a closing quote")),
            c => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// A CSV file as a header and rows of (column -> value), checked for a consistent width.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let mut rows = parse_csv(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!rows.is_empty(), "{} is empty", path.display());
        let header = rows.remove(0);
        assert!(
            header.iter().all(|h| !h.is_empty()),
            "{}: empty column name",
            path.display()
        );
        for (k, r) in rows.iter().enumerate() {
            assert_eq!(r.len(), header.len(), "{} row {}: width", path.display(), k + 1);
        }
        Self { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.col(name)]
    }

    fn f64(&self, row: &[String], name: &str) -> f64 {
        let v = self.get(row, name);
        if v.is_empty() || v == "nan" {
            return f64::NAN;
        }
        v.parse()
            .unwrap_or_else(|_| panic!("{name} = {v:?} is not a number"))
    }
}

/// Every `href="..."` and `src="..."` value of the page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + b.abs())
}

#[test]
fn demo_report_links_resolve_csvs_parse_and_match_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let study = demo(dir.path());
    let out = dir.path().join("report");
    let s = report(&study, &out);
    assert!(s.notes.is_empty(), "notes on the pristine demo: {:?}", s.notes);
    assert_eq!(s.files[0], "index.html");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("<script"), "no scripts");
    // Every reference is relative and resolves (anchors within the page aside).
    let refs = references(&html);
    for r in &refs {
        if let Some(anchor) = r.strip_prefix('#') {
            assert!(
                html.contains(&format!("id=\"{anchor}\"")),
                "dangling anchor #{anchor}"
            );
            continue;
        }
        assert!(
            !r.contains(':') && !r.starts_with('/'),
            "non-relative reference {r}"
        );
        assert!(out.join(r).is_file(), "{r} is referenced but missing");
    }
    // Every file written is in the summary, exists, and is linked from the page.
    let on_disk: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(on_disk.len(), s.files.len(), "no staging left: {on_disk:?}");
    for f in s.files.iter().skip(1) {
        assert!(refs.contains(f), "{f} is not linked from the page");
    }
    for section in [
        "Models",
        "Memorization: zoo-mnist-demo",
        "Membership inference: zoo-mnist-demo",
        "Extraction: ddpm-digits-dup32",
        "Inpainting attack: ddpm-digits-pair-k00 vs ddpm-digits-pair-k01",
        "Diffusion membership: ddpm-digits-pair-k00",
        "Model inversion: softmax-orl-demo (mi-face)",
        "LayerMem: ssl-demo-f-ssl-demo-g",
        "Exposure: lm-demo-both",
    ] {
        assert!(
            s.sections.iter().any(|t| t == section),
            "missing section {section}: {:?}",
            s.sections
        );
    }
    // Every CSV parses strictly with one width.
    let csvs: BTreeMap<String, Csv> = s
        .files
        .iter()
        .filter(|f| f.ends_with(".csv"))
        .map(|f| (f.clone(), Csv::read(&out.join(f))))
        .collect();
    assert!(csvs.len() >= 15, "{} CSV files", csvs.len());
    // The Models section lists every kind of model the demo holds.
    let all = &csvs["all-models.csv"];
    for kind in ["classifier", "zoo", "ddpm", "lm", "ssl-encoder"] {
        assert!(
            all.rows.iter().any(|r| all.get(r, "kind") == kind),
            "no {kind} in all-models.csv"
        );
    }
    for f in s.files.iter().filter(|f| f.ends_with(".png")) {
        let img = image::open(out.join(f)).unwrap();
        assert!(
            img.width() > 50 && img.height() > 50,
            "{f} is {}x{}",
            img.width(),
            img.height()
        );
    }

    let results = study.join("results");
    // Memorization: the top row holds the highest mem of the report; ranks follow mem.
    let mem_json = json(&results.join("zoo-mnist-demo/memorization.json"));
    let mem: Vec<f64> = mem_json["mem"]["mem"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let best = mem
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::MIN, f64::max);
    let c = &csvs["memorization-zoo-mnist-demo.csv"];
    let top = &c.rows[0];
    assert!(
        close(c.f64(top, "mem"), best),
        "top mem {} vs {best}",
        c.f64(top, "mem")
    );
    let top_index: usize = c.get(top, "index").parse().unwrap();
    assert!(close(mem[top_index], best));
    assert_eq!(c.rows.len(), mem.iter().filter(|v| v.is_finite()).count());
    assert!(
        c.rows
            .windows(2)
            .all(|w| c.f64(&w[0], "mem") >= c.f64(&w[1], "mem"))
    );
    let planted: Vec<usize> = mem_json["planted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    for row in &c.rows {
        let i: usize = c.get(row, "index").parse().unwrap();
        let is_planted = c.get(row, "planted") == "true";
        assert_eq!(is_planted, planted.contains(&i));
        // A planted sample shows the label it had before planting, which differs.
        assert_eq!(c.get(row, "original_label").is_empty(), !is_planted);
        if is_planted {
            assert_ne!(c.get(row, "original_label"), c.get(row, "label"));
        }
    }

    // Membership: the AUC of every attack as in its report.
    let c = &csvs["mia-zoo-mnist-demo.csv"];
    assert_eq!(c.rows.len(), 4);
    for row in &c.rows {
        let j = json(&results.join(format!("zoo-mnist-demo/mia-{}.json", c.get(row, "attack"))));
        assert!(close(c.f64(row, "auc"), j["auc"].as_f64().unwrap()));
        assert!(close(
            c.f64(row, "tpr_at_1pct_fpr"),
            j["tpr_at_1pct_fpr"].as_f64().unwrap()
        ));
    }

    // Extraction: planted duplicates marked; the extracted planted images as in the summary.
    let ex = json(&results.join("diffusion/ddpm-digits-dup32/extraction-s0-n1024.json"));
    let dup: Vec<u64> = ex["duplicated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let rows: Vec<u64> = ex["train_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let c = &csvs["extraction-ddpm-digits-dup32-extraction-s0-n1024.csv"];
    assert_eq!(c.rows.len(), 1024);
    let mut marked = 0;
    for row in &c.rows {
        let idx: u64 = c.get(row, "nearest_index").parse().unwrap();
        let r: usize = c.get(row, "nearest_train_row").parse().unwrap();
        assert_eq!(rows[r], idx);
        let is_dup = c.get(row, "planted_duplicate") == "true";
        assert_eq!(is_dup, dup.contains(&idx));
        marked += usize::from(is_dup);
    }
    assert!(marked > 0, "some generations are nearest to planted duplicates");
    let scores: Vec<f64> = c.rows.iter().map(|r| c.f64(r, "score")).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "closest first");
    let e = &csvs["extracted-ddpm-digits-dup32-extraction-s0-n1024.csv"];
    let dup_hit = e
        .rows
        .iter()
        .filter(|r| e.get(r, "planted_duplicate") == "true")
        .count();
    let frac = ex["report"]["summary"]["planted_dup_extracted_frac"]
        .as_f64()
        .unwrap();
    assert_eq!(dup_hit, (frac * dup.len() as f64).round() as usize);
    assert!(dup_hit > 0, "the demo extracts planted duplicates");

    // Inversion: identification accuracy as in the report.
    let inv = json(&results.join("inversion/softmax-orl-demo/mi-face.json"));
    let c = &csvs["inversion-softmax-orl-demo-mi-face.csv"];
    let hits = c.rows.iter().filter(|r| c.get(r, "eval_top1") == "true").count();
    assert!(close(
        hits as f64 / c.rows.len() as f64,
        inv["eval_top1"].as_f64().unwrap()
    ));
    let grid = image::open(out.join("inversion-softmax-orl-demo-mi-face.png")).unwrap();
    assert_eq!(grid.width(), 10 * (92 + 4), "the all-people grid, 10 per row");

    // Exposure: every canary with its exposure.
    let exp = json(&results.join("exposure/lm-demo-both.json"));
    let c = &csvs["exposure-lm-demo-both.csv"];
    let canaries = exp["canaries"].as_array().unwrap();
    assert_eq!(c.rows.len(), canaries.len());
    for (row, j) in c.rows.iter().zip(canaries) {
        assert_eq!(c.get(row, "secret"), j["secret"].as_str().unwrap());
        assert_eq!(c.get(row, "insertions"), j["insertions"].to_string());
        let want = j["exact"].as_f64().or(j["skew_normal"].as_f64()).unwrap();
        assert!(close(c.f64(row, "exposure"), want), "canary {}", j["canary"]);
        match j["exact"].as_f64() {
            Some(v) => assert!(close(c.f64(row, "exact"), v)),
            None => assert_eq!(c.get(row, "exact"), "", "missing values are empty fields"),
        }
    }

    // LayerMem: one row per layer with the report's means.
    let lm = json(&results.join("layermem/ssl-demo-f-ssl-demo-g.json"));
    let c = &csvs["layermem-ssl-demo-f-ssl-demo-g.csv"];
    let means = lm["layermem_mean"].as_array().unwrap();
    assert_eq!(c.rows.len(), means.len());
    for (row, m) in c.rows.iter().zip(means) {
        assert!(close(c.f64(row, "layermem"), m.as_f64().unwrap()));
    }
}

#[test]
fn broken_results_become_notes_and_the_rest_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let study = demo(dir.path());
    std::fs::write(study.join("results/exposure/lm-demo-both.json"), "{not json").unwrap();
    std::fs::write(study.join("results/zoo-mnist-demo/mia-rmia.json"), "").unwrap();
    let out = dir.path().join("report");
    let s = report(&study, &out);
    assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
    assert!(s.notes.iter().any(|n| n.contains("lm-demo-both.json")));
    assert!(s.notes.iter().any(|n| n.contains("mia-rmia.json")));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("lm-demo-both.json: cannot read this result"));
    assert!(!out.join("exposure-lm-demo-both.csv").exists());
    // The other attacks and measurements are still there.
    let mia = std::fs::read_to_string(out.join("mia-zoo-mnist-demo.csv")).unwrap();
    assert_eq!(parse_csv(&mia).unwrap().len(), 1 + 3);
    assert!(out.join("memorization-zoo-mnist-demo.csv").is_file());
}

/// Cancels its token at the `at`-th progress report.
struct CancelAt {
    token: CancelToken,
    at: usize,
    seen: std::sync::atomic::AtomicUsize,
}

impl JobSink for CancelAt {
    fn progress(&self, _: &Progress) {
        if self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.at {
            self.token.cancel();
        }
    }
    fn metric(&self, _: &str, _: f64, _: f64) {}
    fn log(&self, _: &str) {}
}

#[test]
fn a_cancelled_report_leaves_nothing_and_a_rerun_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let study = demo(dir.path());
    for at in [2, 6] {
        let out = dir.path().join(format!("cancelled-{at}"));
        let token = CancelToken::new();
        let sink = CancelAt {
            token: token.clone(),
            at,
            seen: 0.into(),
        };
        let ctx = JobCtx::new(&token, &sink);
        let err = write_report(&study, &out, &ctx).unwrap_err();
        assert!(matches!(err, rote::CoreError::Cancelled), "{err}");
        assert!(!out.exists(), "a cancelled report leaves no folder behind");
    }
    // Into a folder with other files: they stay, the report's files are replaced.
    let out = dir.path().join("existing");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "keep").unwrap();
    std::fs::write(out.join("index.html"), "old").unwrap();
    // What a killed report left (its process is gone) is cleared.
    std::fs::create_dir_all(out.join(".report-staging-4999999/x")).unwrap();
    let s = report(&study, &out);
    assert_eq!(std::fs::read_to_string(out.join("mine.txt")).unwrap(), "keep");
    assert!(
        std::fs::read_to_string(out.join("index.html"))
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), s.files.len() + 1);
}

#[test]
fn cli_report_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let study = demo(dir.path());
    let out = dir.path().join("r");
    let o = common::rote(
        &[
            "report",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    let v = common::json_of(&o);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0], "index.html");
    assert!(files.iter().all(|f| out.join(f.as_str().unwrap()).is_file()));
    assert_eq!(v["notes"].as_array().unwrap().len(), 0);
    let o = common::rote(
        &["report", study.to_str().unwrap(), "--out", out.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("files") && text.contains("index.html"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
}

/// The GUI's Export report... runs the same body as a job (the folder picker is skipped by
/// sending the command the button sends) and says where the report went.
#[cfg(feature = "gui")]
#[test]
fn gui_export_report_writes_the_folder_and_toasts() {
    use std::time::{Duration, Instant};

    use egui_kittest::kittest::Queryable as _;
    use rote::ui::{App, AppOptions, Command, View};
    let dir = tempfile::tempdir().unwrap();
    let study = demo(dir.path());
    let options = AppOptions {
        study: Some(study),
        view: View::Data,
        ..AppOptions::default()
    };
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));
    // The button is in the top bar once a study is open.
    let _ = h.get_by_label("Export report…");
    let out = dir.path().join("exported");
    h.state_mut().push_command(Command::ExportReport(out.clone()));
    let t0 = Instant::now();
    loop {
        h.step();
        let done = h
            .state()
            .toasts
            .visible()
            .iter()
            .any(|t| t.text.starts_with("Report written to"));
        if done {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no report toast");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        h.state().toasts.error_log.is_empty(),
        "{:?}",
        h.state().toasts.error_log
    );
    assert!(out.join("index.html").is_file());
    assert!(out.join("memorization-zoo-mnist-demo.csv").is_file());
}
