//! Atomic file writes: write a temporary file in the same folder, sync it, rename it over the
//! target, sync the folder. A reader sees the old file or the new one, never a torn one.

use std::io::Write as _;
use std::path::Path;

use crate::error::{CoreError, CoreResult};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> CoreResult<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| CoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> CoreResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CoreError::format(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, text.as_bytes())
}

/// Syncs a folder so a rename inside it is durable (best effort: not every platform allows it).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        f.sync_all().ok();
    }
}

/// The name of a staging folder for `id` written by this process: `.staging-<id>-<pid>`. Names
/// starting with a dot are never listed as models or results, and [`clean_stale`] removes the
/// folder once its process is gone.
pub fn staging_name(id: &str) -> String {
    format!(".staging-{id}-{}", std::process::id())
}

/// Moves the complete folder `staging` to `dest`, replacing any folder there, so that a kill at
/// any point leaves either the old `dest` or the new one: the old folder is first renamed to
/// `.replaced-<name>-<pid>` beside it (which [`clean_stale`] renames back if `dest` is missing),
/// then `staging` is renamed into place and the old copy removed.
pub fn replace_dir(staging: &Path, dest: &Path) -> CoreResult<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let old = parent.join(format!(".replaced-{name}-{}", std::process::id()));
    let had_old = dest.exists();
    if had_old {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| CoreError::io(&old, e))?;
        }
        std::fs::rename(dest, &old).map_err(|e| CoreError::io(dest, e))?;
    }
    if let Err(e) = std::fs::rename(staging, dest) {
        if had_old {
            std::fs::rename(&old, dest).ok();
        }
        return Err(CoreError::io(dest, e));
    }
    sync_dir(parent);
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| CoreError::io(&old, e))?;
    }
    Ok(())
}

/// Leftovers older than this are stale when the platform cannot say whether their process lives.
const STALE_AGE: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// What an interrupted write leaves behind, recognised by its name.
#[derive(Debug, PartialEq)]
enum Leftover<'a> {
    /// `.<name>.tmp-<pid>`: a file of [`write_atomic`].
    Temp(Option<u32>),
    /// `.staging-<id>-<pid>` (or `.staging-<id>` from older versions), or `.report-staging-<pid>`
    /// (`rote report` into a folder of the study): a folder not yet committed.
    Staging(Option<u32>),
    /// `.replaced-<name>-<pid>`: the previous version of `<name>` during [`replace_dir`].
    Replaced(&'a str, u32),
}

fn pid_suffix(s: &str) -> Option<(&str, u32)> {
    let (head, tail) = s.rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head, tail.parse().ok()?))
}

fn leftover(name: &str) -> Option<Leftover<'_>> {
    let rest = name.strip_prefix('.')?;
    if let Some(r) = rest.strip_prefix("staging-") {
        return Some(Leftover::Staging(pid_suffix(r).map(|(_, p)| p)));
    }
    if let Some(pid) = rest.strip_prefix("report-staging-") {
        return Some(Leftover::Staging(pid.parse().ok()));
    }
    if let Some(r) = rest.strip_prefix("replaced-") {
        let (orig, pid) = pid_suffix(r)?;
        return Some(Leftover::Replaced(orig, pid));
    }
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    Some(Leftover::Temp(tail.parse().ok()))
}

/// Whether the process that left `path` behind is gone: never for this process; on Linux when
/// `/proc/<pid>` is missing; elsewhere (or without a pid) when the leftover is old.
fn is_stale(pid: Option<u32>, path: &Path) -> bool {
    if pid == Some(std::process::id()) {
        return false;
    }
    let proc_fs = Path::new("/proc/self").exists();
    match pid {
        Some(pid) if proc_fs => !Path::new("/proc").join(pid.to_string()).exists(),
        _ => std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AGE),
    }
}

/// Removes what killed or crashed writers left under `root` (temporary files, staging folders)
/// and puts back a folder whose replacement was interrupted before the new one was in place.
/// Leftovers of processes still running (this one included) are kept. Returns how many entries
/// were removed or restored. Symbolic links are not followed.
pub fn clean_stale(root: &Path) -> usize {
    clean_stale_in(root, 0)
}

fn clean_stale_in(dir: &Path, depth: usize) -> usize {
    const MAX_DEPTH: usize = 12;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    let mut subdirs = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        match leftover(&name) {
            Some(Leftover::Temp(pid)) if kind.is_file() && is_stale(pid, &path) => {
                n += usize::from(std::fs::remove_file(&path).is_ok());
            }
            Some(Leftover::Staging(pid)) if kind.is_dir() && is_stale(pid, &path) => {
                n += usize::from(std::fs::remove_dir_all(&path).is_ok());
            }
            Some(Leftover::Replaced(orig, pid)) if kind.is_dir() && is_stale(Some(pid), &path) => {
                let dest = dir.join(orig);
                let done = if dest.exists() {
                    std::fs::remove_dir_all(&path).is_ok()
                } else {
                    std::fs::rename(&path, &dest).is_ok()
                };
                n += usize::from(done);
            }
            None if kind.is_dir() && depth < MAX_DEPTH => subdirs.push(path),
            _ => {}
        }
    }
    for d in subdirs {
        n += clean_stale_in(&d, depth + 1);
    }
    if n > 0 {
        sync_dir(dir);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn leftovers_are_recognised_by_name() {
        assert_eq!(leftover(".a.json.tmp-12"), Some(Leftover::Temp(Some(12))));
        assert_eq!(leftover(".m00003.bin.tmp-7"), Some(Leftover::Temp(Some(7))));
        assert_eq!(
            leftover(".staging-mlp-digits8x8-s0-99"),
            Some(Leftover::Staging(Some(99)))
        );
        assert_eq!(leftover(".staging-ddpm-a"), Some(Leftover::Staging(None)));
        assert_eq!(leftover(".report-staging-42"), Some(Leftover::Staging(Some(42))));
        assert_eq!(
            leftover(".replaced-ddpm-a-5"),
            Some(Leftover::Replaced("ddpm-a", 5))
        );
        for plain in ["a.json", "m00001.bin", "models", ".hidden", "x.tmp-3"] {
            assert_eq!(leftover(plain), None, "{plain}");
        }
    }

    #[test]
    fn stale_leftovers_are_removed_and_an_interrupted_replace_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A pid that cannot be running (above the Linux maximum of 2^22).
        let dead = 4_194_999u32;
        let own = std::process::id();
        std::fs::create_dir_all(root.join("results/z")).unwrap();
        std::fs::write(root.join("results/z/r.json"), b"{}").unwrap();
        std::fs::write(root.join(format!("results/z/.r.json.tmp-{dead}")), b"{").unwrap();
        std::fs::write(root.join(format!("results/z/.q.json.tmp-{own}")), b"{").unwrap();
        std::fs::create_dir_all(root.join(format!("models/.staging-m-{dead}"))).unwrap();
        std::fs::create_dir_all(root.join(format!("models/.staging-n-{own}"))).unwrap();
        // Killed between the two renames of replace_dir: the old folder comes back.
        std::fs::create_dir_all(root.join(format!("lm/.replaced-tiny-{dead}"))).unwrap();
        std::fs::write(root.join(format!("lm/.replaced-tiny-{dead}/card.json")), b"old").unwrap();
        // Killed after them: the old copy goes.
        std::fs::create_dir_all(root.join("ssl/f")).unwrap();
        std::fs::create_dir_all(root.join(format!("ssl/.replaced-f-{dead}"))).unwrap();
        let n = clean_stale(root);
        if !Path::new("/proc/self").exists() {
            return;
        }
        assert_eq!(n, 4);
        assert!(root.join("results/z/r.json").is_file());
        assert!(!root.join(format!("results/z/.r.json.tmp-{dead}")).exists());
        assert!(
            root.join(format!("results/z/.q.json.tmp-{own}")).exists(),
            "own writes stay"
        );
        assert!(!root.join(format!("models/.staging-m-{dead}")).exists());
        assert!(root.join(format!("models/.staging-n-{own}")).exists());
        assert_eq!(std::fs::read(root.join("lm/tiny/card.json")).unwrap(), b"old");
        assert!(root.join("ssl/f").is_dir());
        assert!(!root.join(format!("ssl/.replaced-f-{dead}")).exists());
    }

    #[test]
    fn replace_dir_swaps_whole_folders() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m");
        for v in [b"one", b"two"] {
            let staging = dir.path().join(staging_name("m"));
            std::fs::create_dir_all(&staging).unwrap();
            std::fs::write(staging.join("card.json"), v).unwrap();
            replace_dir(&staging, &dest).unwrap();
            assert_eq!(std::fs::read(dest.join("card.json")).unwrap(), v);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m")]);
    }
}
