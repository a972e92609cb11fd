//! `rote report STUDY --out DIR` and the GUI's "Export report...": one self-contained
//! `index.html` (inline CSS and SVG, no scripts, no network) with a section per measurement found
//! in the study, galleries as PNGs and every table as a CSV file (RFC 4180, header row).
//!
//! Every file is written into a staging folder inside `DIR` and moved into place only when the
//! whole report is ready, so a cancelled or failed report leaves nothing behind. A result file
//! that cannot be read becomes a one-line note (in the page and in [`ReportSummary::notes`]).

mod csv;
mod defences;
mod diffusion_mia;
mod exposure;
mod extraction;
mod figures;
mod html;
mod inpainting;
mod inversion;
mod layermem;
mod lm;
mod lm_probe;
mod memorization;
mod mia;
mod sharpness;
mod staging;
mod study_models;
mod svg;
mod tabular;

use std::path::{Path, PathBuf};

use crate::error::CoreResult;
use crate::job::JobCtx;
use crate::study::Study;

pub(crate) use csv::{Cell, Table};
use staging::Staged;

/// What [`write_report`] wrote.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReportSummary {
    /// The report folder.
    pub out: PathBuf,
    /// The page (`out/index.html`).
    pub index: PathBuf,
    /// Every file written, relative to `out` (`index.html` first).
    pub files: Vec<String>,
    /// Titles of the sections in the page.
    pub sections: Vec<String>,
    /// Result files that could not be read, and other things left out, one line each.
    pub notes: Vec<String>,
}

/// One section of the page.
pub(crate) struct Section {
    /// Anchor id.
    pub id: String,
    /// Heading.
    pub title: String,
    /// HTML body.
    pub body: String,
}

/// The report being built: the study, the staged files and the page's sections.
pub(crate) struct Report<'a> {
    /// The study.
    pub study: &'a Study,
    staged: Staged,
    /// Sections, in page order.
    pub sections: Vec<Section>,
    /// Notes (also shown at the top of the page).
    pub notes: Vec<String>,
    /// (file, description) of every file besides the page.
    pub files: Vec<(String, String)>,
}

impl Report<'_> {
    /// A file name `<name>.<ext>` not yet used by this report (`<name>-2.<ext>`, ... otherwise).
    fn free_name(&self, name: &str, ext: &str) -> String {
        let stem = slug(name);
        let mut file = format!("{stem}.{ext}");
        let mut k = 2;
        while self.files.iter().any(|(f, _)| *f == file) {
            file = format!("{stem}-{k}.{ext}");
            k += 1;
        }
        file
    }

    /// Stages `table` as `<name>.csv`; returns the file name.
    pub fn csv(&mut self, name: &str, what: &str, table: &Table) -> CoreResult<String> {
        let file = self.free_name(name, "csv");
        self.staged.write(&file, table.to_csv().as_bytes())?;
        self.files.push((file.clone(), what.to_string()));
        Ok(file)
    }

    /// Stages `img` as `<name>.png`; returns the file name.
    pub fn png(&mut self, name: &str, what: &str, img: &image::RgbImage) -> CoreResult<String> {
        let file = self.free_name(name, "png");
        self.staged.write(&file, &figures::png_bytes(img, &file)?)?;
        self.files.push((file.clone(), what.to_string()));
        Ok(file)
    }

    /// Records a note and returns it as an HTML paragraph for the section.
    pub fn note(&mut self, msg: String) -> String {
        let p = html::note(&msg);
        self.notes.push(msg);
        p
    }

    /// Reads a JSON result; a missing or broken file becomes a note (appended to `body`).
    pub fn load<T: serde::de::DeserializeOwned>(&mut self, path: &Path, body: &mut String) -> Option<T> {
        let shown = path
            .strip_prefix(&self.study.root)
            .unwrap_or(path)
            .display()
            .to_string();
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                body.push_str(&self.note(format!("{shown}: cannot read this result ({e}); left out")));
                None
            }
        }
    }
}

/// A file-name-safe version of `s` (letters, digits, `-`, `_`, `.`; others become `-`).
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Entries of `dir` (sorted by name) that pass `keep`; an unreadable folder gives none.
pub(crate) fn list(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| keep(p))
        .collect();
    out.sort();
    out
}

/// Hidden entries of `dir` whose names start with `prefix`.
pub(crate) fn list_hidden(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// The `.json` files directly in `dir`, sorted.
pub(crate) fn json_files(dir: &Path) -> Vec<PathBuf> {
    list(dir, |p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
}

/// The `.json` files named `prefix*` in the model folders of `root` (`results/diffusion/`), with
/// their folder, sorted.
pub(crate) fn prefixed_json(root: &Path, prefix: &str) -> Vec<(PathBuf, PathBuf)> {
    list(root, Path::is_dir)
        .into_iter()
        .flat_map(|dir| {
            json_files(&dir)
                .into_iter()
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .map(move |p| (dir.clone(), p))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The stages, in page order.
type Stage = fn(&mut Report<'_>, &JobCtx<'_>) -> CoreResult<()>;

const STAGES: [(&str, Stage); 13] = [
    ("models", study_models::add),
    ("memorization", memorization::add),
    ("membership", mia::add),
    ("extraction", extraction::add),
    ("sharpness", sharpness::add),
    ("inpainting", inpainting::add),
    ("diffusion membership", diffusion_mia::add),
    ("inversion", inversion::add),
    ("layermem", layermem::add),
    ("exposure", exposure::add),
    ("language models", lm::add),
    ("defences", defences::add),
    ("tabular", tabular::add),
];

/// The last component of `p` (a model or zoo folder name), lossily as text.
pub(super) fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The file name of `p` without its extension, lossily as text.
pub(super) fn stem_of(p: &Path) -> String {
    p.file_stem()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Writes the report of the study at `study` into `out` (created if missing; files of an earlier
/// report there are replaced): `index.html`, the galleries as PNG and every table as CSV. Fails
/// only when the study cannot be opened, a file cannot be written, or `ctx` is cancelled; then
/// nothing is left in `out`.
pub fn write_report(study: &Path, out: &Path, ctx: &JobCtx<'_>) -> CoreResult<ReportSummary> {
    let study = Study::open(study)?;
    let mut r = Report {
        study: &study,
        staged: Staged::new(out)?,
        sections: Vec::new(),
        notes: Vec::new(),
        files: Vec::new(),
    };
    let total = STAGES.len() as u64 + 1;
    for (k, (stage, add)) in STAGES.iter().enumerate() {
        ctx.checkpoint()?;
        ctx.progress(stage, k as u64, total);
        add(&mut r, ctx)?;
    }
    ctx.checkpoint()?;
    ctx.progress("page", STAGES.len() as u64, total);
    let page = html::page(&study, &r.sections, &r.notes, &r.files);
    r.staged.write("index.html", page.as_bytes())?;
    ctx.checkpoint()?;
    let Report {
        staged,
        sections,
        notes,
        ..
    } = r;
    let mut files = staged.commit()?;
    files.sort_by_key(|f| (f != "index.html", f.clone()));
    ctx.progress("done", total, total);
    Ok(ReportSummary {
        out: out.to_path_buf(),
        index: out.join("index.html"),
        files,
        sections: sections.into_iter().map(|s| s.title).collect(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_names_get_distinct_files_and_slugs_are_safe() {
        let dir = tempfile::tempdir().unwrap();
        let study = Study::open_or_create(&dir.path().join("s")).unwrap();
        let out = dir.path().join("out");
        let mut r = Report {
            study: &study,
            staged: Staged::new(&out).unwrap(),
            sections: Vec::new(),
            notes: Vec::new(),
            files: Vec::new(),
        };
        let t = Table::new(&["a"]);
        assert_eq!(r.csv("x/y z", "", &t).unwrap(), "x-y-z.csv");
        assert_eq!(r.csv("x/y z", "", &t).unwrap(), "x-y-z-2.csv");
        drop(r);
        assert!(!out.exists(), "an uncommitted report leaves no folder it created");
    }
}
