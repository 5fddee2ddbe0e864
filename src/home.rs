//! Where amend keeps its files: `$AMEND_HOME`, or `~/.amend` when it is unset.

use std::path::PathBuf;

/// The environment variable that overrides amend's home directory.
pub const HOME_ENV: &str = "AMEND_HOME";

/// amend's home directory (`$AMEND_HOME`, else `~/.amend`, else `./.amend`).
pub fn dir() -> PathBuf {
    if let Some(p) = std::env::var_os(HOME_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::home_dir()
        .map(|h| h.join(".amend"))
        .unwrap_or_else(|| PathBuf::from(".amend"))
}

/// The model cache: downloaded and fetched GGUF files.
pub fn models_dir() -> PathBuf {
    dir().join("models")
}
