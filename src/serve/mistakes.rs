//! The mistakes store under a running server. sled lets one process hold a store at a time,
//! so while `amend serve` records into a store, other processes read it through the server:
//! the server answers `GET /v1/amend/mistakes` (the records passing a filter, oldest first)
//! and `GET /v1/amend/mistakes/{id}`, and writes a [`Holder`] file (`serve.json`) into the
//! store's directory saying where it listens, removed when it stops. A reader that finds the
//! store locked reads the holder file and goes through [`Remote`] (`amend mistakes list |
//! show | stats | export` do).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::App;
use crate::mistakes::{Filter, Mistake, Outcome};

/// The holder file's name inside the store's directory.
pub const HOLDER_FILE: &str = "serve.json";

/// What a server holding a store writes next to it: where to read the store meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The server's process id.
    pub pid: u32,
    /// Its base URL (`http://ADDR`; the routes are under `/v1/amend/mistakes`).
    pub url: String,
    /// Whether it asks for a bearer key.
    pub keys: bool,
}

impl Holder {
    /// The holder file of the store at `store`, if a server wrote one.
    pub fn read(store: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(store.join(HOLDER_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Write it into `store` (replacing an older one atomically).
    ///
    /// # Errors
    /// The I/O error when the file cannot be written.
    pub fn write(&self, store: &Path) -> std::io::Result<()> {
        let tmp = store.join(format!(".{HOLDER_FILE}.{}", self.pid));
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(&tmp, store.join(HOLDER_FILE))
    }

    /// Remove the holder file of `store` if it is this process's.
    pub fn remove(store: &Path) {
        if Self::read(store).is_some_and(|h| h.pid == std::process::id()) {
            let _ = std::fs::remove_file(store.join(HOLDER_FILE));
        }
    }
}

/// The query of `GET /v1/amend/mistakes`: the fields of a [`Filter`] (one model name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this task.
    pub task: Option<String>,
    /// Only this model (its identity key, or the spec older records carry).
    pub model: Option<String>,
    /// Only this outcome (`fixed`, `not_fixed`, `made_worse`, `unverified`).
    pub outcome: Option<String>,
    /// Only records at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only this run (a request's trace id).
    pub run: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let outcome = match &self.outcome {
            None => None,
            Some(o) => Some(
                o.parse::<Outcome>()
                    .map_err(|e| ApiError::bad_request(Some("outcome"), e))?,
            ),
        };
        let since = match &self.since {
            None => None,
            Some(s) => Some(
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        ApiError::bad_request(
                            Some("since"),
                            format!("`since` must be an RFC 3339 time: {e}"),
                        )
                    })?,
            ),
        };
        Ok(Filter {
            task: self.task.clone(),
            models: self.model.iter().cloned().collect(),
            outcome,
            since,
            run: self.run.clone(),
        })
    }
}

fn no_store() -> ApiError {
    ApiError::not_found("this server records no mistakes (it was started without a store)")
}

/// `GET /v1/amend/mistakes`.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        let Query(q) = query.map_err(|e| ApiError::bad_request(None, e.body_text()))?;
        let (store, _) = app.mistakes.as_ref().ok_or_else(no_store)?;
        let records = store
            .list(&q.filter()?)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(axum::Json(serde_json::json!({"object": "list", "data": records})).into_response())
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/amend/mistakes/{id}`.
pub(super) async fn get(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let run = || -> Result<Response, ApiError> {
        let (store, _) = app.mistakes.as_ref().ok_or_else(no_store)?;
        match store
            .get(&id)
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Some(m) => Ok(axum::Json(m).into_response()),
            None => Err(ApiError::not_found(format!("no mistake with id {id:?}"))),
        }
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// Why a store could not be read through its server.
#[derive(Debug, thiserror::Error)]
#[error("the mistakes store at {store} is held by amend serve (pid {pid}, {url}): {reason}")]
pub struct RemoteError {
    /// The store's directory.
    pub store: String,
    /// The server's pid.
    pub pid: u32,
    /// Its URL.
    pub url: String,
    /// What failed and what to do.
    pub reason: String,
}

/// A store read through the server that holds it.
#[derive(Debug, Clone)]
pub struct Remote {
    store: PathBuf,
    holder: Holder,
    key: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    /// Read the store at `store` through the server its holder file names, sending `key` when
    /// the server asks for one. `None` when no server holds it.
    pub fn for_store(store: &Path, key: Option<String>) -> Option<Self> {
        let holder = Holder::read(store)?;
        Some(Self {
            store: store.to_path_buf(),
            holder,
            key: key.filter(|k| !k.is_empty()),
            http: reqwest::Client::new(),
        })
    }

    /// The server holding the store.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    fn fail(&self, reason: impl Into<String>) -> RemoteError {
        RemoteError {
            store: self.store.display().to_string(),
            pid: self.holder.pid,
            url: self.holder.url.clone(),
            reason: reason.into(),
        }
    }

    async fn fetch(&self, path: &str) -> Result<Option<serde_json::Value>, RemoteError> {
        let url = format!("{}{path}", self.holder.url);
        let mut req = self.http.get(&url);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| {
            self.fail(format!(
                "it cannot be reached ({e}); if it is gone, remove {} and retry",
                self.store.join(HOLDER_FILE).display()
            ))
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(
                self.fail("it asks for a key: set AMEND_API_KEY to one of the server's keys")
            );
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| self.fail(format!("its answer is not JSON: {e}")))?;
        if !status.is_success() {
            return Err(self.fail(format!(
                "it answered {status}: {}",
                body.pointer("/error/message").unwrap_or(&body)
            )));
        }
        Ok(Some(body))
    }

    /// The records passing `filter`, oldest first (the filter is applied here, so every
    /// field of it works, several model names included).
    ///
    /// # Errors
    /// [`RemoteError`] when the server cannot be reached or refuses.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Mistake>, RemoteError> {
        let body = self
            .fetch("/v1/amend/mistakes")
            .await?
            .ok_or_else(|| self.fail("it records no mistakes"))?;
        let all: Vec<Mistake> =
            serde_json::from_value(body.get("data").cloned().unwrap_or_default())
                .map_err(|e| self.fail(format!("its records do not decode: {e}")))?;
        Ok(all.into_iter().filter(|m| filter.matches(m)).collect())
    }

    /// The record with this id.
    ///
    /// # Errors
    /// [`RemoteError`] when the server cannot be reached or refuses.
    pub async fn get(&self, id: &str) -> Result<Option<Mistake>, RemoteError> {
        let id: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        match self.fetch(&format!("/v1/amend/mistakes/{id}")).await? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| self.fail(format!("the record does not decode: {e}"))),
        }
    }
}
