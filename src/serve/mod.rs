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
mod config;
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;

pub use auth::Key;
pub use config::{Config, KeyConfig, ServeError};
pub use error::ApiError;
pub use metrics::{Metrics, RequestLabels};
pub use mistakes::{Holder, ListQuery, Remote, RemoteError, HOLDER_FILE};
pub use openapi::document as openapi_document;
pub use policy::{Ceilings, Choice, Policy, PolicyBudget};
pub use relay::{scrub, Relay};
pub use wire::{ChatCompletion, ChatRequest, Chunk, WireUsage};

use crate::model::Model;
use crate::Prompts;

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
