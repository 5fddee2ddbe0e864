//! Model identity: one key per model, used by traces, the mistakes store, evaluation run
//! identities and (later) rectifier files.
//!
//! A local GGUF model is identified by its content, not its path: `gguf-BYTES-HASH`, the file
//! size and the first 16 hex digits (64 bits) of the SHA-256 of the whole file. The same file
//! at another path or on another machine is the same model; a re-quantised or edited file is
//! another. Hashing reads the file once (it is then in the page cache for llama.cpp's own
//! load); what it costs is measured in [`fingerprint`]. An API model is
//! identified by its name at its base URL (`openai:MODEL@URL`): the endpoint does not say what
//! weights it serves, so that is the most that can be known.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelError;

/// Who a model is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelId {
    /// The identity: `gguf-BYTES-HASH` or `openai:MODEL@URL`. Compare models by this.
    pub key: String,
    /// Where it was loaded from (a path or a base URL): for information only, never compared.
    pub source: String,
}

impl ModelId {
    /// The identity of an API model `model` served at `base_url`.
    pub fn api(model: &str, base_url: &str) -> Self {
        let url = base_url.trim_end_matches('/');
        Self {
            key: format!("openai:{model}@{url}"),
            source: url.to_string(),
        }
    }

    /// Is `key` in the form of a model identity (rather than, say, a model spec string that
    /// older versions of amend recorded in its place)?
    pub fn is_key(key: &str) -> bool {
        let gguf = key.strip_prefix("gguf-").and_then(|r| r.split_once('-'));
        let gguf = gguf.is_some_and(|(bytes, hash)| {
            !bytes.is_empty()
                && bytes.bytes().all(|b| b.is_ascii_digit())
                && hash.len() == 16
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
        });
        gguf || (key.starts_with("openai:") && key.contains('@'))
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// The identity of the GGUF file at `path`: its size and the SHA-256 of its content (whole
/// file, 1 MiB reads). Costs one sequential read and its hash: 0.08 s for the 98 MB default
/// model on this project's 2-core machines (SHA-NI; `amend bench fingerprint`), a few seconds
/// for a multi-GB model.
///
/// # Errors
/// [`ModelError::NotFound`] / [`ModelError::Load`] when the file cannot be read.
pub fn fingerprint(path: &Path) -> Result<ModelId, ModelError> {
    let fail = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ModelError::Load {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        },
    };
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(ModelId {
        key: format!("gguf-{bytes}-{hex}"),
        source: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_at_two_paths_are_one_model() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (a, b, c) = (
            dir.path().join("a.gguf"),
            dir.path().join("sub-b.gguf"),
            dir.path().join("c.gguf"),
        );
        std::fs::write(&a, b"GGUF same bytes")?;
        std::fs::write(&b, b"GGUF same bytes")?;
        std::fs::write(&c, b"GGUF other byte")?;
        let (ia, ib, ic) = (fingerprint(&a)?, fingerprint(&b)?, fingerprint(&c)?);
        assert_eq!(ia.key, ib.key);
        assert_ne!(ia.source, ib.source);
        assert_ne!(ia.key, ic.key);
        assert!(ModelId::is_key(&ia.key), "{}", ia.key);
        assert!(ia.key.starts_with("gguf-15-"), "{}", ia.key);
        // SHA-256("") starts with e3b0c44298fc1c14.
        std::fs::write(&c, b"")?;
        assert_eq!(fingerprint(&c)?.key, "gguf-0-e3b0c44298fc1c14");
        assert!(matches!(
            fingerprint(&dir.path().join("none.gguf")),
            Err(ModelError::NotFound { .. })
        ));
        assert!(!ModelId::is_key("default") && !ModelId::is_key("models/x.gguf"));
        assert!(ModelId::is_key(&ModelId::api("m", "http://h/v1/").key));
        Ok(())
    }
}
