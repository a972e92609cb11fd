//! The report's files are written into `OUT/.report-staging-<pid>/` and moved into `OUT` only
//! once all of them are ready; dropping an uncommitted [`Staged`] removes the staging folder
//! (and `OUT` itself when the report created it and it is still empty).

use std::path::{Path, PathBuf};

use crate::error::{CoreError, CoreResult};
use crate::study::write_atomic;

/// Files staged for a report folder.
pub(crate) struct Staged {
    out: PathBuf,
    dir: PathBuf,
    files: Vec<String>,
    committed: bool,
    created_out: bool,
}

impl Staged {
    /// Creates `out` (if missing) and an empty staging folder inside it.
    pub fn new(out: &Path) -> CoreResult<Self> {
        if out.exists() && !out.is_dir() {
            return Err(CoreError::format(out, "exists and is not a folder"));
        }
        let created_out = !out.exists();
        remove_stale(out);
        let dir = out.join(format!(".report-staging-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
        Ok(Self {
            out: out.to_path_buf(),
            dir,
            files: Vec::new(),
            committed: false,
            created_out,
        })
    }

    /// Stages one file (a plain name); a name staged twice is refused.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> CoreResult<()> {
        if self.files.iter().any(|f| f == name) {
            return Err(CoreError::Invalid(format!("report file {name} written twice")));
        }
        write_atomic(&self.dir.join(name), bytes)?;
        self.files.push(name.to_string());
        Ok(())
    }

    /// Moves every staged file into the report folder (each rename atomic, replacing an older
    /// file of the same name) and removes the staging folder; returns the names.
    pub fn commit(mut self) -> CoreResult<Vec<String>> {
        for f in &self.files {
            let to = self.out.join(f);
            std::fs::rename(self.dir.join(f), &to).map_err(|e| CoreError::io(&to, e))?;
        }
        std::fs::remove_dir_all(&self.dir).ok();
        if let Ok(d) = std::fs::File::open(&self.out) {
            d.sync_all().ok();
        }
        self.committed = true;
        Ok(std::mem::take(&mut self.files))
    }
}

/// Removes the staging folders that killed reports left in `out` (Linux: their process is gone).
fn remove_stale(out: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    for p in super::list_hidden(out, ".report-staging-") {
        let pid = p.file_name().and_then(|n| {
            n.to_string_lossy()
                .strip_prefix(".report-staging-")?
                .parse::<u32>()
                .ok()
        });
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()) {
            std::fs::remove_dir_all(&p).ok();
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            std::fs::remove_dir_all(&self.dir).ok();
            if self.created_out {
                // Only succeeds when empty: a folder this report created goes away with it.
                std::fs::remove_dir(&self.out).ok();
            }
        }
    }
}
