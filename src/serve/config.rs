//! The server's settings (`Config`, read from TOML), the keys as the file gives them, and why a
//! server cannot start ([`ServeError`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::auth::Key;
use super::policy::{Ceilings, Policy};
use crate::model::Model;
use crate::rectify::file::RectifierFile;

/// A key as the config file gives it: its name, where its secret is, its rate and ceilings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// What traces and logs call requests made with this key.
    pub name: String,
    /// The environment variable that holds the secret (preferred: the config file then holds
    /// no secret).
    #[serde(default)]
    pub key_env: Option<String>,
    /// The secret itself.
    #[serde(default)]
    pub key: Option<String>,
    /// Requests a minute (bursts up to as many); none: no limit.
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// The most one request may spend.
    #[serde(default)]
    pub ceilings: Ceilings,
}

/// The server's settings (`amend serve --config FILE`, TOML); every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`). A bind address that is not loopback
    /// needs at least one key.
    pub bind: SocketAddr,
    /// Other names the served model answers to (e.g. `gpt-4o-mini`, so a client's default
    /// model name works).
    pub aliases: Vec<String>,
    /// Bearer keys; none: no key is asked for (loopback only).
    pub keys: Vec<KeyConfig>,
    /// Largest request body, bytes (413 past it).
    pub max_body_bytes: usize,
    /// Longest a request may take, seconds (504 past it; a stream ends with an error event).
    pub request_timeout_s: f64,
    /// Most chat requests answered at once (429 past it).
    pub max_in_flight: usize,
    /// Seconds the requests in flight get to finish after SIGTERM or Ctrl-C.
    pub shutdown_grace_s: f64,
    /// Most generated tokens per model call when the request does not say.
    pub max_tokens: u32,
    /// Where each request's trace is written (`DIR/RUN_ID.jsonl`).
    pub trace_dir: PathBuf,
    /// Keep at most this many trace files (the oldest are deleted first); 0: no count limit.
    pub trace_keep: usize,
    /// Delete trace files older than this many seconds (default 14 days); 0: no age limit.
    pub trace_max_age_s: f64,
    /// Leave the messages and answers out of traces (usage, strategy, mistakes stay).
    pub redact: bool,
    /// The mistakes store requests record into (default: `$AMEND_HOME/mistakes`); while the
    /// server holds it, other processes read it through the server (`GET /v1/amend/mistakes`).
    pub mistakes: Option<PathBuf>,
    /// Record located mistakes at all (off: no store is opened).
    pub record_mistakes: bool,
    /// Reuse the KV cache of a shared prompt prefix (off: each answer depends only on its
    /// request, as `--no-prefix-reuse` elsewhere).
    pub prefix_reuse: bool,
    /// Logit rectifiers a request may name (`amend.rectifier`), by name: files `amend rectify
    /// train` wrote for the served model (local model only; loaded and checked at start).
    pub rectifiers: BTreeMap<String, PathBuf>,
    /// The policy of a request that does not set one (its fields under the request's own).
    pub defaults: Policy,
    /// The most any request may spend (each key's ceilings apply under these). Default: 64
    /// samples in any one place, 256 model calls.
    pub ceilings: Ceilings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            aliases: Vec::new(),
            keys: Vec::new(),
            max_body_bytes: 1 << 20,
            request_timeout_s: 600.0,
            max_in_flight: 64,
            shutdown_grace_s: 30.0,
            max_tokens: crate::run::DEFAULT_MAX_TOKENS,
            trace_dir: PathBuf::from("traces/serve"),
            trace_keep: 10_000,
            trace_max_age_s: 14.0 * 86_400.0,
            redact: false,
            mistakes: None,
            record_mistakes: true,
            prefix_reuse: true,
            rectifiers: BTreeMap::new(),
            defaults: Policy::default(),
            ceilings: Ceilings {
                max_samples: Some(64),
                max_calls: Some(256),
                ..Ceilings::default()
            },
        }
    }
}

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file cannot be read or parsed.
    #[error("server config {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting that cannot work; names the option.
    #[error("`{option}`: {reason}")]
    Option {
        /// The option.
        option: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Listening or serving failed.
    #[error("serving on {addr}: {reason}")]
    Io {
        /// The address.
        addr: String,
        /// What failed.
        reason: String,
    },
}

impl Config {
    /// Read a TOML config file.
    ///
    /// # Errors
    /// [`ServeError::Config`] naming the file and the field.
    pub fn load(path: &std::path::Path) -> Result<Self, ServeError> {
        let bad = |reason: String| ServeError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        toml::from_str(&text).map_err(|e| bad(e.to_string()))
    }

    /// Where the server records mistakes: `mistakes`, else the default store; `None` when
    /// `record_mistakes` is off or the server redacts (mistakes hold the messages).
    pub fn mistakes_path(&self) -> Option<PathBuf> {
        (self.record_mistakes && !self.redact).then(|| {
            self.mistakes
                .clone()
                .unwrap_or_else(crate::mistakes::default_path)
        })
    }

    pub(super) fn load_rectifiers(
        &self,
        model: &dyn Model,
    ) -> Result<BTreeMap<String, RectifierFile>, ServeError> {
        let mut out = BTreeMap::new();
        if self.rectifiers.is_empty() {
            return Ok(out);
        }
        if !model.capabilities().logits_hidden {
            return Err(ServeError::Option {
                option: "rectifiers".into(),
                reason: format!(
                    "a logit rectifier reads every token's logits and hidden state, which only the local model exposes; {} cannot run one",
                    model.id()
                ),
            });
        }
        for (name, path) in &self.rectifiers {
            let f =
                RectifierFile::load_for(path, &model.id().key).map_err(|e| ServeError::Option {
                    option: format!("rectifiers.{name}"),
                    reason: e.to_string(),
                })?;
            out.insert(name.clone(), f);
        }
        Ok(out)
    }

    pub(super) fn keys(&self) -> Result<Vec<Key>, ServeError> {
        let mut out = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let bad = |reason: String| ServeError::Option {
                option: format!("keys.{}", k.name),
                reason,
            };
            let secret = match (&k.key, &k.key_env) {
                (Some(s), None) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    bad(format!(
                        "`key_env` names ${var}, which is not set; export it or give `key`"
                    ))
                })?,
                _ => return Err(bad("give exactly one of `key` and `key_env`".into())),
            };
            if secret.len() < 8 {
                return Err(bad("a key must be at least 8 characters".into()));
            }
            out.push(Key::new(&k.name, &secret, k.rate_per_minute, k.ceilings));
        }
        if out.is_empty() && !self.bind.ip().is_loopback() {
            return Err(ServeError::Option {
                option: "keys".into(),
                reason: format!(
                    "binding {} (not loopback) needs at least one key: add a [[keys]] entry to the config",
                    self.bind
                ),
            });
        }
        Ok(out)
    }
}
