//! Crash safety (docs/reliability.md, "Crash safety (SIGKILL)"): `crash_safety/sigkill.rs` kills
//! the real binary (SIGKILL) at seeded random moments while it writes results into a study, over
//! and over; after every kill the study must open, hold every result it held before byte for
//! byte, show no partial file, and resuming the job must give exactly the files of an
//! uninterrupted run. `crash_safety/cancel.rs` cancels every long job through its token at its
//! 1st, 3rd, 9th... event, which must leave no new file. This file holds what both use: walking a
//! study's files, hashing them, and finding the leftovers of an interrupted write.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

mod cancel;
mod sigkill;

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Every file under `root` (relative name, path), and in `dirs` (when given) every folder.
fn walk(root: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>, mut dirs: Option<&mut Vec<String>>) {
    let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in rd {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        let r = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            if let Some(d) = dirs.as_deref_mut() {
                d.push(r.clone());
            }
            walk(root, &r, out, dirs.as_deref_mut());
        } else {
            out.push((r, e.path()));
        }
    }
}

fn files(root: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    walk(root, rel, out, None);
}

/// Paths whose name marks an interrupted write (temporary files, staging folders).
fn leftovers(root: &Path) -> Vec<String> {
    let mut list = Vec::new();
    files(root, "", &mut list);
    let mut out: Vec<String> = list
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.split('/').any(|c| c.starts_with('.')))
        .collect();
    out.sort();
    out
}
