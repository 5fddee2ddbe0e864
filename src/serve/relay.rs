//! `strategy: none` on an API upstream: the client's body goes to the upstream as it was sent
//! (only `model` is set to the upstream's name and the `amend` object taken out), and the
//! upstream's answer comes back as it arrives, its stream byte for byte. Tools, content parts
//! and `response_format` pass through untouched.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::error::ApiError;

/// An OpenAI-compatible upstream reached over HTTP.
#[derive(Debug, Clone)]
pub struct Relay {
    /// e.g. `http://127.0.0.1:8000/v1` (no trailing slash).
    base_url: String,
    /// The upstream's model name.
    model: String,
    /// The upstream's key (never written to a trace, a log or an error).
    key: Option<String>,
    http: reqwest::Client,
}

impl Relay {
    /// A relay to `model` at `base_url`, sending `key` as a bearer token when given.
    ///
    /// # Errors
    /// 500 when the HTTP client cannot be built.
    pub fn new(base_url: &str, model: &str, key: Option<String>) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ApiError::internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The upstream's model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Send `body` (the client's JSON object, `amend` already removed) to the upstream's
    /// `/chat/completions` and answer with its status, content type and body as they come.
    ///
    /// # Errors
    /// 502 when the upstream cannot be reached (the message names the URL, not the key).
    pub async fn forward(&self, mut body: Map<String, Value>) -> Result<Response, ApiError> {
        body.insert("model".into(), Value::String(self.model.clone()));
        let url = format!("{}/chat/completions", self.base_url);
        let mut req = self.http.post(&url).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let up = req.send().await.map_err(|e| {
            ApiError::upstream(format!(
                "the upstream at {url} could not be reached: {}",
                scrub(&e.to_string(), self.key.as_deref())
            ))
        })?;
        // The upstream's own failure is this server's bad gateway (its body is kept); every
        // other status (a 400 about the request, a 429) goes back as it came.
        let status = match StatusCode::from_u16(up.status().as_u16()) {
            Ok(s) if !s.is_server_error() => s,
            _ => StatusCode::BAD_GATEWAY,
        };
        let content_type = up.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let stream = futures::stream::unfold(up, |mut up| async move {
            match up.chunk().await {
                Ok(Some(b)) => Some((Ok(b), up)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), up)),
            }
        });
        let mut resp = Response::new(Body::from_stream(stream));
        *resp.status_mut() = status;
        if let Some(ct) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            resp.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        Ok(resp)
    }
}

/// `text` with every occurrence of `secret` replaced, so an upstream error that echoes the
/// key never reaches a client or a log.
pub fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => text.replace(s, "[key]"),
        None => text.to_string(),
    }
}
