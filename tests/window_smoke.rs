//! A real window: the binary under Xvfb stays up and draws. Skips (or fails under CI) without Xvfb.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn gui_runs_in_a_real_window_under_xvfb() {
    if Command::new("Xvfb")
        .arg("-help")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI must install xvfb");
        eprintln!("skipping: Xvfb not installed");
        return;
    }
    let display = format!(":{}", 150 + std::process::id() % 100);
    let mut xvfb = Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    std::thread::sleep(Duration::from_millis(800));
    let home = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut app = Command::new(env!("CARGO_BIN_EXE_rote"))
        .env("DISPLAY", &display)
        .env("ROTE_HOME", home.path())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rote");
    // The window must stay up, and the demo study must be written on first launch.
    let t0 = Instant::now();
    let mut alive = true;
    while t0.elapsed() < Duration::from_secs(8) {
        if let Ok(Some(_)) = app.try_wait() {
            alive = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let demo_written = home
        .path()
        .join("demo-study/models/mlp-mnist10k-demo/card.json")
        .is_file();
    app.kill().ok();
    let out = app.wait_with_output().expect("wait");
    xvfb.kill().ok();
    xvfb.wait().ok();
    assert!(
        alive,
        "the app exited early: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(demo_written, "the demo study is written on first launch");
}
