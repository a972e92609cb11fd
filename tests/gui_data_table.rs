//! The Data view on the bundled UCI Adult table, driven headlessly with egui_kittest: it shows the
//! rows with their original values, a text filter narrows them, and a header click sorts.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::io::Read as _;
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use rote::data::ColumnValues;
use rote::ui::{App, AppOptions, Command, SplitFilter, View};

/// The raw Adult rows, fields trimmed (read here, independently of the data layer).
fn raw_adult() -> Vec<Vec<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tabular/adult.data.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .collect()
}

fn step_until(h: &mut Harness<'_, App>, what: &str, pred: impl Fn(&Harness<'_, App>) -> bool) {
    let t0 = Instant::now();
    while !pred(h) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "timed out waiting for: {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
}

#[test]
fn data_view_shows_sorts_and_filters_the_adult_table() {
    let raw = raw_adult();
    assert_eq!(raw.len(), 32561);
    let dir = tempfile::tempdir().unwrap();
    let options = AppOptions {
        study: Some(dir.path().join("s")),
        view: View::Data,
        ..AppOptions::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| App::new(cc, options));
    rote::ui::screenshot::settle(&mut h, Duration::from_secs(60));

    // Adult is offered in the Data set combo next to the image sets.
    h.get_by_role_and_label(Role::ComboBox, "Data set").click();
    h.run_steps(2);
    h.get_by_label("adult").click();
    h.run_steps(2);
    step_until(&mut h, "adult loaded", |h| {
        h.state().current.as_deref() == Some("adult") && h.state().is_idle()
    });
    assert!(h.state().current_dataset().unwrap().is_tabular());
    step_until(&mut h, "the table read", |h| {
        h.query_by_label("32561 of 32561 rows").is_some()
    });
    let t0 = Instant::now();
    h.run();
    eprintln!("one settled frame with the table: {:?}", t0.elapsed());

    // Row 0 with its original values: 39, State-gov, 77516, Bachelors, ...
    assert_eq!(raw[0][1], "State-gov");
    assert_eq!(raw[0][2], "77516");
    h.get_by_label("77516");
    assert!(!h.get_all_by_label("State-gov").collect::<Vec<_>>().is_empty());
    assert!(!h.get_all_by_label("Bachelors").collect::<Vec<_>>().is_empty());
    // No thumbnail controls for a table.
    assert!(h.query_by_label("descending").is_none());
    assert!(h.query_by_label("mean intensity").is_none());

    // Sort by age, twice: descending, the oldest first.
    let max_age: u32 = raw.iter().map(|r| r[0].parse::<u32>().unwrap()).max().unwrap();
    h.get_by_label("age").click();
    h.run_steps(2);
    h.get_by_label("age").click();
    h.run_steps(3);
    {
        let app = h.state_mut();
        let ds = app.current_dataset().cloned().unwrap();
        let t = app.data_view.table.table("adult", &ds).unwrap().unwrap();
        let order = app.data_view.table.order(&t, &ds, None, SplitFilter::All, &[]);
        let ColumnValues::Numeric(age) = &t.data.column("age").unwrap().values else {
            panic!("age is numeric")
        };
        assert_eq!(age[order[0]], Some(f64::from(max_age)));
        assert!(
            order.windows(2).all(|w| age[w[0]] >= age[w[1]]),
            "descending ages"
        );
    }
    assert!(h.get_all_by_label(&max_age.to_string()).next().is_some());

    // A filter keeps the rows where any cell contains the text, case-insensitively.
    let needle = "state-gov";
    let expected = raw
        .iter()
        .filter(|r| r.iter().any(|f| f.to_lowercase().contains(needle)))
        .count();
    assert!(expected > 0 && expected < raw.len());
    let input = h.get_by_role_and_label(Role::TextInput, "Filter");
    input.focus();
    h.run();
    h.get_by_role_and_label(Role::TextInput, "Filter")
        .type_text("State-GOV");
    h.run_steps(3);
    h.get_by_label(&format!("{expected} of 32561 rows"));

    // The split filter applies too.
    let ds = h.state().current_dataset().cloned().unwrap();
    let test_rows = raw
        .iter()
        .enumerate()
        .filter(|(i, r)| ds.split[*i] == rote::data::Split::Test && r[1] == "State-gov")
        .count();
    h.state_mut().data_view.split_filter = SplitFilter::Test;
    h.run_steps(3);
    h.get_by_label(&format!("{test_rows} of 32561 rows"));

    // Clicking a row selects it (no pixel neighbour search for tables).
    h.get_all_by_label("State-gov").next().unwrap().click();
    h.run_steps(3);
    let sel = h.state().data_view.selected.unwrap();
    assert_eq!(raw[sel][1], "State-gov");
    assert_eq!(ds.split[sel], rote::data::Split::Test);
    step_until(&mut h, "idle after the selection", |h| h.state().is_idle());
    assert_eq!(h.state().data_view.selected, Some(sel));
    h.state_mut().push_command(Command::ShowView(View::Data));
    h.run_steps(2);
}
