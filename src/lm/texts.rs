//! Documents for the LLM memorization measures (`rote lm-extract --texts`, `rote lm-mia
//! --members/--nonmembers`), read from user files:
//!
//! * a `.txt` file: one document per paragraph, paragraphs separated by one or more blank lines
//!   (lines holding only whitespace count as blank); the lines of a paragraph are joined with `\n`
//!   as they stand, so the text the model sees is the text in the file;
//! * a `.jsonl` file: one JSON object per line with a string field `text` (other fields are
//!   ignored; blank lines are skipped), as the Hugging Face `datasets` JSON Lines export writes;
//! * a folder: every `.txt` file directly in it, sorted by name, each split into paragraphs as
//!   above. So a folder of files gives the same documents as those files concatenated with a
//!   blank line between them (one document per paragraph, whichever way the text was stored).
//!
//! Every document remembers where it came from (`file:line` of its first line). Every problem
//! is one error naming the file and, where there is one, the line: a missing path, a file that
//! is not UTF-8, a JSON line that does not parse, has no `text` or an empty one, a file or folder
//! without a single document, an unsupported extension.

use std::path::{Path, PathBuf};

use crate::error::{CoreError, CoreResult};

/// One document of a text set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextDoc {
    /// The text exactly as the model sees it.
    pub text: String,
    /// Where it came from: `file:line` of its first line (or `card passage <i>` for a card's).
    pub source: String,
}

/// An error on line `line` (1-based) of `path`: `path:line: msg`.
fn at_line(path: &Path, line: usize, msg: impl Into<String>) -> CoreError {
    CoreError::format(PathBuf::from(format!("{}:{line}", path.display())), msg)
}

/// Reads the documents of `path` (a `.txt` file, a `.jsonl` file or a folder of `.txt` files;
/// see the module docs). Fails when there is not a single document.
pub fn read_texts(path: &Path) -> CoreResult<Vec<TextDoc>> {
    if !path.exists() {
        return Err(CoreError::format(
            path,
            "not found (expected a .txt file, a .jsonl file or a folder of .txt files)",
        ));
    }
    let docs = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| CoreError::io(path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CoreError::format(path, "holds no .txt files"));
        }
        let mut docs = Vec::new();
        for f in &files {
            docs.extend(paragraphs(f, &read_utf8(f)?));
        }
        docs
    } else {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let text = read_utf8(path)?;
        match ext.as_str() {
            "txt" => paragraphs(path, &text),
            "jsonl" => jsonl(path, &text)?,
            _ => {
                return Err(CoreError::format(
                    path,
                    "unsupported text file: expected .txt (one document per paragraph) or .jsonl \
                     (one {\"text\": ...} object per line), or a folder of .txt files",
                ));
            }
        }
    };
    if docs.is_empty() {
        return Err(CoreError::format(path, "holds no documents (only blank lines)"));
    }
    Ok(docs)
}

/// The file as UTF-8 text; invalid bytes are an error naming the line they are on.
fn read_utf8(path: &Path) -> CoreResult<String> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..good].iter().filter(|&&b| b == b'\n').count();
        at_line(
            path,
            line,
            format!("not UTF-8 text (invalid byte at offset {good})"),
        )
    })
}

/// One document per blank-line-separated paragraph (a UTF-8 BOM and `\r\n` tolerated).
pub fn paragraphs(path: &Path, text: &str) -> Vec<TextDoc> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut flush = |cur: &mut Vec<&str>, start: usize| {
        if !cur.is_empty() {
            docs.push(TextDoc {
                text: cur.join("\n"),
                source: format!("{}:{start}", path.display()),
            });
            cur.clear();
        }
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            flush(&mut cur, start);
        } else {
            if cur.is_empty() {
                start = i + 1;
            }
            cur.push(line);
        }
    }
    flush(&mut cur, start);
    docs
}

/// One document per JSON Lines record's `text`.
fn jsonl(path: &Path, text: &str) -> CoreResult<Vec<TextDoc>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| at_line(path, n, format!("not a JSON object: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| at_line(path, n, "expected a JSON object like {\"text\": \"...\"}"))?;
        let t = match obj.get("text") {
            None => return Err(at_line(path, n, "has no \"text\" field")),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(at_line(
                    path,
                    n,
                    format!("\"text\" must be a string, found {}", json_kind(other)),
                ));
            }
        };
        if t.trim().is_empty() {
            return Err(at_line(path, n, "\"text\" is empty"));
        }
        docs.push(TextDoc {
            text: t.clone(),
            source: format!("{}:{n}", path.display()),
        });
    }
    Ok(docs)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn paragraphs_jsonl_and_folders() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(
            dir.path(),
            "b.txt",
            b"\xef\xbb\xbfFirst line\r\nsecond line\r\n\r\n  \n\nThird\n\n",
        );
        let docs = read_texts(&txt).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "First line\nsecond line");
        assert_eq!(docs[1].text, "Third");
        assert!(docs[1].source.ends_with("b.txt:6"), "{}", docs[1].source);

        let jl = write(
            dir.path(),
            "d.jsonl",
            b"{\"text\": \"one\", \"id\": 3}\n\n{\"text\": \"two\\nlines\"}\n",
        );
        let docs = read_texts(&jl).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].text, "two\nlines");
        assert!(docs[1].source.ends_with("d.jsonl:3"));

        write(dir.path(), "a.txt", b"Alpha\n\nBeta\n");
        write(dir.path(), ".hidden.txt", b"never read\n");
        let docs = read_texts(dir.path()).unwrap();
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["Alpha", "Beta", "First line\nsecond line", "Third"]);
    }

    /// Each planted bad input must be one error that names the file (and the line).
    #[test]
    fn bad_inputs_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: Vec<(PathBuf, &str)> = vec![
            (d.join("missing.txt"), "missing.txt: not found"),
            (
                write(d, "blank.txt", b"\n  \n\n"),
                "blank.txt: holds no documents",
            ),
            (
                write(d, "latin1.txt", b"ok\n\ncaf\xe9\n"),
                "latin1.txt:3: not UTF-8",
            ),
            (
                write(d, "broken.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"b\"\n"),
                "broken.jsonl:2: not a JSON object",
            ),
            (
                write(d, "notext.jsonl", b"{\"body\": \"a\"}\n"),
                "notext.jsonl:1: has no \"text\"",
            ),
            (
                write(d, "number.jsonl", b"{\"text\": \"a\"}\n\n{\"text\": 7}\n"),
                "number.jsonl:3: \"text\" must be a string, found a number",
            ),
            (
                write(d, "empty.jsonl", b"{\"text\": \" \"}\n"),
                "empty.jsonl:1: \"text\" is empty",
            ),
            (
                write(d, "array.jsonl", b"[1, 2]\n"),
                "array.jsonl:1: expected a JSON object",
            ),
            (
                write(d, "data.csv", b"text\nhello\n"),
                "data.csv: unsupported text file",
            ),
        ];
        for (path, want) in cases {
            let e = read_texts(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{}: got '{e}', want '{want}'", path.display());
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let empty = d.join("empty_dir");
        std::fs::create_dir(&empty).unwrap();
        let e = read_texts(&empty).unwrap_err().to_string();
        assert!(e.contains("empty_dir: holds no .txt files"), "{e}");
    }
}
