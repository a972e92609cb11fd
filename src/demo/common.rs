//! What the demo's parts share: the face classifier's id and the copy of shipped results. The
//! parts (`canary`, `diffusion`, `inversion`, `ssl`) and the demo root import from here, never
//! from each other.

use std::path::Path;

use crate::error::{CoreError, CoreResult};
use crate::study::{copy_tree, write_atomic};

/// The demo's face classifier (softmax regression on the ORL faces, the model-inversion target).
pub const DEMO_FACE_MODEL: &str = "softmax-orl-demo";

/// Copies every entry of `src` (files and folders) into `dest` unless one of that name is already
/// there; a missing `src` copies nothing. The shipped demo results are copied this way.
pub(super) fn copy_missing(src: &Path, dest: &Path) -> CoreResult<()> {
    let Ok(entries) = std::fs::read_dir(src) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let to = dest.join(e.file_name());
        if to.exists() {
            continue;
        }
        if e.path().is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            let bytes = std::fs::read(e.path()).map_err(|err| CoreError::io(e.path(), err))?;
            write_atomic(&to, &bytes)?;
        }
    }
    Ok(())
}
