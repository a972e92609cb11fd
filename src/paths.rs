//! Where rote finds its bundled assets and keeps its default study.

use std::path::PathBuf;

/// The `assets/` folder: `$ROTE_ASSETS` if set, else next to the executable (installed layout),
/// else the source tree this binary was built from.
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROTE_ASSETS") {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(4) {
            let cand = anc.join("assets");
            if cand.join("README.md").is_file() && cand.join("mnist10k").is_dir() {
                return cand;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The folder where the GUI writes the demo study on first launch: `$ROTE_HOME` if set, else
/// `$XDG_DATA_HOME/rote` or `~/.local/share/rote`.
pub fn data_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROTE_HOME") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("rote");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/rote");
    }
    std::env::temp_dir().join("rote")
}

/// The default demo study location.
pub fn default_demo_study() -> PathBuf {
    data_home().join("demo-study")
}
