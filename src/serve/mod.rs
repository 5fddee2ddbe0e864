//! `amend serve`: an OpenAI-compatible chat server that answers each call through a correction
//! strategy.
//!
//! [`router`] builds the whole HTTP surface as an axum `Router` over an [`App`] (testable
//! without a socket); [`run`] serves it on a listener until a shutdown signal, then lets the
//! requests in flight finish within the grace period. Routes: `POST /v1/chat/completions`
//! (stream and non-stream), `GET /v1/models`, `GET /health`, `GET /metrics` (OpenMetrics text)
//! and `GET /openapi.json`. Every error is an OpenAI-style error body ([`ApiError`]).
//!
//! Mistakes the requests' critics locate go to the store given by [`App::with_mistakes`];
//! while the server holds it, `GET /v1/amend/mistakes[/{id}]` serve it to other processes
//! (see [`Remote`]).
//!
//! `response_format` is honoured everywhere: relayed to an API upstream with `strategy: none`,
//! otherwise enforced after the correction by checked formatting turns ([`format`]).
//!
//! What this server does not do (each a clear 400, never faked): tools, tool messages and
//! non-text content parts with a strategy or on the local model.

mod auth;
mod chat;
mod error;
pub mod format;
mod metrics;
mod mistakes;
mod openapi;
mod policy;
mod relay;
mod retention;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use auth::Key;
pub use error::ApiError;
pub use metrics::{Metrics, RequestLabels};
pub use mistakes::{Holder, ListQuery, Remote, RemoteError, HOLDER_FILE};
pub use openapi::document as openapi_document;
pub use policy::{Ceilings, Choice, Policy, PolicyBudget};
pub use relay::{scrub, Relay};
pub use wire::{ChatCompletion, ChatRequest, Chunk, WireUsage};

use crate::model::Model;
use crate::Prompts;

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
    pub rectifiers: std::collections::BTreeMap<String, PathBuf>,
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
            rectifiers: std::collections::BTreeMap::new(),
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

    fn load_rectifiers(
        &self,
        model: &dyn Model,
    ) -> Result<std::collections::BTreeMap<String, crate::rectify::file::RectifierFile>, ServeError>
    {
        let mut out = std::collections::BTreeMap::new();
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
            let f = crate::rectify::file::RectifierFile::load_for(path, &model.id().key).map_err(
                |e| ServeError::Option {
                    option: format!("rectifiers.{name}"),
                    reason: e.to_string(),
                },
            )?;
            out.insert(name.clone(), f);
        }
        Ok(out)
    }

    fn keys(&self) -> Result<Vec<Key>, ServeError> {
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

/// What the server answers with: its settings, the model, the relay of an API upstream, and
/// its running state.
pub struct App {
    config: Config,
    keys: Vec<Key>,
    model: Arc<dyn Model>,
    served: Vec<String>,
    relay: Option<Relay>,
    prompts: Arc<Prompts>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    mistakes: Option<(Arc<dyn crate::mistakes::Store>, PathBuf)>,
    retention: retention::Retention,
    rectifiers: std::collections::BTreeMap<String, crate::rectify::file::RectifierFile>,
}

impl App {
    /// A server for `model`, called `name` (and the config's aliases); with `relay`, requests
    /// with `strategy: none` are relayed to that API untouched.
    ///
    /// # Errors
    /// [`ServeError::Option`] for keys that cannot be read, or a non-loopback bind without
    /// keys.
    pub fn new(
        config: Config,
        model: Arc<dyn Model>,
        name: &str,
        relay: Option<Relay>,
        prompts: Arc<Prompts>,
    ) -> Result<Self, ServeError> {
        let keys = config.keys()?;
        let rectifiers = config.load_rectifiers(model.as_ref())?;
        let mut served = vec![name.to_string()];
        served.extend(config.aliases.iter().cloned());
        Ok(Self {
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            keys,
            model,
            served,
            relay,
            prompts,
            metrics: Metrics::new(),
            mistakes: None,
            retention: retention::Retention::new(
                &config.trace_dir,
                config.trace_keep,
                (config.trace_max_age_s > 0.0 && config.trace_max_age_s.is_finite())
                    .then(|| Duration::from_secs_f64(config.trace_max_age_s.min(1e12))),
            ),
            rectifiers,
            config,
        })
    }

    /// Record the mistakes requests locate into `store` (kept at `path`, where [`run`]
    /// writes the [`Holder`] file while it serves), each tagged with task `serve` or
    /// `serve:KEY_NAME` and the request's trace id as its run.
    pub fn with_mistakes(mut self, store: Arc<dyn crate::mistakes::Store>, path: PathBuf) -> Self {
        self.mistakes = Some((store, path));
        self
    }

    /// The names the served model answers to.
    pub fn served(&self) -> &[String] {
        &self.served
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Which key made a request (its index among the server's keys), when keys are asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub Option<usize>);

/// Every route of the server, with its body limit, keys, and metrics.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics_text))
        .route("/v1/amend/mistakes", get(mistakes::list))
        .route("/v1/amend/mistakes/{id}", get(mistakes::get))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/health", get(|| async { "ok" }))
        .route(
            "/openapi.json",
            get(|State(app): State<Arc<App>>| async move {
                axum::Json(openapi::for_server(&app.served))
            }),
        )
        .fallback(|req: Request| async move { ApiError::no_route(req.uri().path()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(app.clone(), measure))
        .with_state(app)
}

async fn authenticate(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    if app.keys.is_empty() {
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    let Some(presented) = presented else {
        return ApiError::unauthorized(
            "no key: send `Authorization: Bearer KEY` (the OpenAI client's `api_key`)",
        )
        .into_response();
    };
    let Some(i) = auth::find(&app.keys, presented) else {
        return ApiError::unauthorized("the key is not one this server accepts").into_response();
    };
    if let Some(k) = app.keys.get(i) {
        if let Err(e) = k.take() {
            return e.into_response();
        }
    }
    req.extensions_mut().insert(Caller(Some(i)));
    next.run(req).await
}

async fn measure(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    app.metrics.in_flight.inc();
    let resp = next.run(req).await;
    app.metrics.in_flight.dec();
    let labels = metrics::RequestLabels {
        route,
        status: resp.status().as_u16(),
    };
    app.metrics.requests.get_or_create(&labels).inc();
    app.metrics
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn models(State(app): State<Arc<App>>) -> Response {
    let created = wire::unix_now();
    let data: Vec<_> = app
        .served
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "amend"}))
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting, give the requests
/// in flight `shutdown_grace_s` to finish, and drop (cancel) the rest.
///
/// # Errors
/// [`ServeError::Io`] when serving fails.
pub async fn run<F>(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let grace = Duration::from_secs_f64(app.config.shutdown_grace_s.clamp(0.0, 3600.0));
    let held = app.mistakes.as_ref().map(|(_, p)| p.clone());
    if let (Some(store), Ok(local)) = (&held, listener.local_addr()) {
        let holder = Holder {
            pid: std::process::id(),
            url: format!("http://{local}"),
            keys: !app.keys.is_empty(),
        };
        if let Err(e) = holder.write(store) {
            tracing::warn!(
                "cannot write {} (other processes will not find this server to read the store through): {e}",
                store.join(HOLDER_FILE).display()
            );
        }
    }
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let over = async move {
        let _ = rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server => r.map_err(|e| ServeError::Io { addr, reason: e.to_string() }),
        () = over => {
            tracing::warn!("shutdown grace period over: cancelling the requests still in flight");
            Ok(())
        }
    };
    if let Some(store) = &held {
        Holder::remove(store);
    }
    result
}

/// The name a served model answers to by default: the API's model name for `openai:NAME`,
/// `default` for the default model, else the GGUF file's stem.
pub fn served_name(spec: &crate::model::Spec) -> String {
    use crate::model::Spec;
    match spec {
        Spec::OpenAi { model } => model.clone(),
        Spec::Default => "default".into(),
        Spec::Path(p) => p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        ),
        Spec::Hf { file, .. } => file.trim_end_matches(".gguf").to_string(),
    }
}
