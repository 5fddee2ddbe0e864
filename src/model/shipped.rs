//! What ships inside amend for the default model, so that a fresh install needs nothing beyond
//! the model itself: the logit rectifier trained for it (`rectifiers/default.json` in the
//! repository, compiled in). [`crate::rectify::file`] reads it; the evaluation hashes it into a
//! run's identity.

use std::path::Path;

/// The path that names the shipped rectifier (write `./default` for a file of that name).
pub const DEFAULT_RECTIFIER: &str = "default";

/// The shipped rectifier's text.
const RECTIFIER: &str = include_str!("../../rectifiers/default.json");

/// The text of the rectifier file at `path`: the shipped one when `path` is
/// [`DEFAULT_RECTIFIER`].
///
/// # Errors
/// The file's read error.
pub fn rectifier_text(path: &Path) -> std::io::Result<String> {
    if path == Path::new(DEFAULT_RECTIFIER) {
        return Ok(RECTIFIER.to_string());
    }
    std::fs::read_to_string(path)
}
