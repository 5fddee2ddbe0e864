//! The rectifier file: a versioned JSON document with the model identity it was trained for
//! (the content fingerprint key, never a path), K, the network's dimensions and weights, λ,
//! a hash of the training records and the held-out metrics. A file for another model is
//! refused naming both identities.
//!
//! One file ships inside amend: the path `default` ([`DEFAULT`]) names the rectifier trained
//! for the default model (SmolLM2-135M-Instruct, Q4_1), `rectifiers/default.json` in the
//! repository, compiled into the binary so it needs no download. Like any file it is matched
//! to the model by the content fingerprint it records. To use a file named `default` in the
//! working directory, write `./default`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::train::{Metrics, Trained};
use super::RectifyError;

/// The format written; older formats are read as long as this module knows them. Format 2
/// added the `logit` objective and the token bias; a format-1 file reads as `rmse` without a
/// token bias, which is what it was. Format 3 added the scope (a file trained for the digits
/// of computed results); a format-2 file reads as one for every position.
pub const FORMAT: u32 = 3;

/// The path that names the rectifier shipped with amend (write `./default` for a file of
/// that name).
pub const DEFAULT: &str = crate::model::shipped::DEFAULT_RECTIFIER;

/// The text of the rectifier at `path`: the shipped one when `path` is [`DEFAULT`].
///
/// # Errors
/// [`RectifyError::File`] when the file cannot be read.
pub fn text(path: &Path) -> Result<String, RectifyError> {
    crate::model::shipped::rectifier_text(path).map_err(|e| RectifyError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A trained rectifier and what it was trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RectifierFile {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// The model identity key (content fingerprint) it was trained for.
    pub model: String,
    /// Candidates per position.
    pub k: usize,
    /// The hidden state's width (0 for the bias-only ablation).
    pub hidden_dim: usize,
    /// The collections (`--set`) it was trained on.
    pub train_sets: Vec<String>,
    /// Training records (positions).
    pub train_tokens: u64,
    /// FNV-1a hash of the training records' ids, positions and gold tokens.
    pub data_hash: String,
    /// The network, its features and λ (with the development metrics).
    pub trained: Trained,
    /// Metrics on held-out collections, by name.
    pub held_out: Vec<(String, Metrics)>,
}

impl RectifierFile {
    /// Write it (pretty JSON).
    ///
    /// # Errors
    /// [`RectifyError::File`] when it cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), RectifyError> {
        let bad = |e: &dyn std::fmt::Display| RectifyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let text = serde_json::to_string(self).map_err(|e| bad(&e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| bad(&e))?;
        }
        std::fs::write(path, text).map_err(|e| bad(&e))
    }

    /// Read a rectifier file (`default`: the one shipped with amend, see [`DEFAULT`]).
    ///
    /// # Errors
    /// [`RectifyError::File`] for a missing, unreadable or corrupt file, or a newer format.
    pub fn load(path: &Path) -> Result<Self, RectifyError> {
        let bad = |reason: String| RectifyError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = text(path)?;
        let f: Self =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a rectifier file ({e})")))?;
        if f.format > FORMAT {
            return Err(bad(format!(
                "format {} is newer than this amend reads ({FORMAT}): upgrade amend",
                f.format
            )));
        }
        Ok(f)
    }

    /// Read a rectifier file for the model with identity key `model`.
    ///
    /// # Errors
    /// As [`RectifierFile::load`]; [`RectifyError::ModelMismatch`] when it was trained for
    /// another model.
    pub fn load_for(path: &Path, model: &str) -> Result<Self, RectifyError> {
        let f = Self::load(path)?;
        if f.model != model {
            return Err(RectifyError::ModelMismatch {
                path: path.display().to_string(),
                file: f.model,
                model: model.to_string(),
            });
        }
        Ok(f)
    }
}

/// FNV-1a over the training records' ids, positions and gold tokens, as hex.
pub fn data_hash<'a>(records: impl IntoIterator<Item = (&'a str, u32, i32)>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (id, pos, gold) in records {
        eat(id.as_bytes());
        eat(&pos.to_le_bytes());
        eat(&gold.to_le_bytes());
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rectify::net::Mlp;
    use crate::rectify::train::{Features, Scope};

    fn file(model: &str) -> RectifierFile {
        RectifierFile {
            format: FORMAT,
            model: model.into(),
            k: 2,
            hidden_dim: 3,
            train_sets: vec!["gsm8k-train".into()],
            train_tokens: 10,
            data_hash: data_hash([("a", 0, 5)]),
            trained: Trained {
                features: Features {
                    k: 2,
                    use_hidden: true,
                    mean: vec![0.0; 3],
                    std: vec![1.0; 3],
                },
                net: Mlp::new(5, 4, 2, 1),
                lambda: 1.0,
                dev: Metrics::default(),
                objective: Default::default(),
                token_bias: Default::default(),
                scope: Default::default(),
            },
            held_out: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_a_file_for_another_model_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("r.json");
        file("gguf-aaa").save(&p).expect("save");
        let back = RectifierFile::load_for(&p, "gguf-aaa").expect("load");
        assert_eq!(back.trained.net, file("x").trained.net);
        let e = RectifierFile::load_for(&p, "gguf-bbb").expect_err("mismatch");
        let msg = e.to_string();
        assert!(
            msg.contains("gguf-aaa") && msg.contains("gguf-bbb"),
            "{msg}"
        );
        std::fs::write(&p, "{").expect("write");
        assert!(RectifierFile::load(&p).is_err());
        let mut newer = file("gguf-aaa");
        newer.format = FORMAT + 1;
        newer.save(&p).expect("save");
        let e = RectifierFile::load(&p).expect_err("newer");
        assert!(e.to_string().contains("upgrade"), "{e}");
        assert_ne!(data_hash([("a", 0, 5)]), data_hash([("a", 1, 5)]));
        // A format-1 file (no objective, no token bias) still reads, as what it was.
        let mut old = serde_json::to_value(file("gguf-aaa")).expect("json");
        old["format"] = 1.into();
        old["trained"]
            .as_object_mut()
            .expect("trained")
            .remove("objective");
        std::fs::write(&p, old.to_string()).expect("write");
        let back = RectifierFile::load_for(&p, "gguf-aaa").expect("format 1 reads");
        assert_eq!(back.format, 1);
        assert_eq!(back.trained.objective, Default::default());
        assert!(back.trained.token_bias.is_empty());
        // A format-3 file keeps its scope; one for every position writes none (as format 2).
        let mut scoped = file("gguf-aaa");
        scoped.trained.scope = Scope::Results;
        scoped.save(&p).expect("save");
        let back = RectifierFile::load_for(&p, "gguf-aaa").expect("load");
        assert_eq!(back.trained.scope, Scope::Results);
        let plain = serde_json::to_value(file("gguf-aaa")).expect("json");
        assert!(plain["trained"].get("scope").is_none());
        assert!(std::fs::read_to_string(&p)
            .expect("read")
            .contains("\"results\""));
    }
}
