//! One error type for every way a request can fail, written as the OpenAI API writes its
//! errors (`{"error": {"message", "type", "param", "code"}}`) with the matching status, so
//! every OpenAI client raises it as it raises the API's own.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that failed: the HTTP status and the OpenAI-style error body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The OpenAI error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A short machine-readable code (`model_not_found`, `rate_limit_exceeded`, ...).
    pub code: Option<&'static str>,
    /// Seconds to wait before retrying (a 429's `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: a malformed body or an option that cannot be honoured; `param` names the field.
    pub fn bad_request(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            param: param.map(str::to_string),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// 401: no key, or a key the server does not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
        }
    }

    /// 404: the request names a model this server does not serve.
    pub fn model_not_found(model: &str, served: &[String]) -> Self {
        Self {
            param: Some("model".into()),
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "The model `{model}` does not exist on this server; it serves {}",
                    served
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    }

    /// 404: a thing the request names is not here (a mistake record, the store).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 404 for a path the server does not have.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no route {path}; amend serves /v1/chat/completions, /v1/models, /v1/amend/mistakes, /health, /metrics and /openapi.json"),
        )
    }

    /// 413: the body is larger than the server's `max_body_bytes`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is larger than this server's limit of {limit} bytes (`max_body_bytes`)"),
        )
    }

    /// 429: too many requests in flight, or the key's rate is used up; retry after `secs`.
    pub fn rate_limited(message: impl Into<String>, secs: u64) -> Self {
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after: Some(secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    /// 504: the request ran past the server's `request_timeout_s`.
    pub fn timeout(secs: f64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            format!("the request ran past this server's limit of {secs} s (`request_timeout_s`); ask for less (a `budget` in the `amend` object) or raise the limit"),
        )
    }

    /// 502: the upstream model failed; `message` says how (never with its key).
    pub fn upstream(message: impl Into<String>) -> Self {
        Self {
            code: Some("upstream_error"),
            ..Self::new(StatusCode::BAD_GATEWAY, "api_error", message)
        }
    }

    /// 503: the server is shutting down, or its model is busy past its queue.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
    }

    /// 500: amend itself failed (a trace that cannot be written, a prompt that fails).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    /// The OpenAI-style body: `{"error": {...}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}
