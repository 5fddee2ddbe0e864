//! The HTTP tool: requests to one base URL, with a timeout, failures sorted into CRITICTOOL's
//! classes.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::pipeline::tool::{check_keys, ExternalClass, InternalClass, Tool, ToolError};

/// `{"method": M, "path": P, "body": JSON}` sends `M base_url+P` (GET without a body by
/// default) and gives the response body, parsed as JSON when it is JSON.
///
/// Status codes: 2xx is a result; 401/403 [`ExternalClass::Permission`]; 429
/// [`ExternalClass::RateLimit`]; 408 and 5xx [`ExternalClass::Connection`] (the server failed,
/// a retry may succeed); other 4xx [`InternalClass::BadArgumentValues`] with the body (the
/// request was wrong). A refused or broken connection is `connection`, no answer in time
/// `timeout`.
#[derive(Debug, Clone)]
pub struct Http {
    base: String,
    client: reqwest::Client,
    side_effects: bool,
}

impl Http {
    /// A tool sending requests to `base_url`.
    ///
    /// # Errors
    /// When `base_url` is not an http(s) URL, or the client cannot be built.
    pub fn new(base_url: &str, timeout: Duration, side_effects: bool) -> Result<Self, String> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "base_url must start with http:// or https://, got {base_url:?}"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            client,
            side_effects,
        })
    }
}

fn bad(msg: String) -> ToolError {
    ToolError::internal(InternalClass::BadArgumentValues, msg)
}

#[async_trait]
impl Tool for Http {
    fn kind(&self) -> &str {
        "http"
    }

    fn params(&self) -> &[&'static str] {
        &["path", "method", "body"]
    }

    fn side_effects(&self) -> bool {
        self.side_effects
    }

    async fn call(&self, args: &Map<String, Value>) -> Result<Value, ToolError> {
        check_keys(self.params(), 1, args)?;
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("path must be a string like \"/orders/1\"".into()))?;
        if !path.starts_with('/') || path.contains("://") {
            return Err(bad(format!(
                "path must start with / and stay on the tool's host, got {path:?}"
            )));
        }
        let method = match args.get("method").and_then(Value::as_str).unwrap_or("GET") {
            m if ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .contains(&m.to_ascii_uppercase().as_str()) =>
            {
                reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|e| bad(format!("method: {e}")))?
            }
            m => {
                return Err(bad(format!(
                    "method must be GET, POST, PUT, PATCH or DELETE, got {m:?}"
                )))
            }
        };
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method, &url);
        if let Some(body) = args.get("body") {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                ToolError::external(ExternalClass::Timeout, format!("{url}: no answer in time"))
            } else {
                ToolError::external(ExternalClass::Connection, format!("{url}: {e}"))
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            if e.is_timeout() {
                ToolError::external(
                    ExternalClass::Timeout,
                    format!("{url}: the body did not arrive in time"),
                )
            } else {
                ToolError::external(ExternalClass::Connection, format!("{url}: {e}"))
            }
        })?;
        let code = status.as_u16();
        let body_note = || text.chars().take(300).collect::<String>();
        match code {
            200..=299 => Ok(serde_json::from_str(&text).unwrap_or(Value::String(text))),
            401 | 403 => Err(ToolError::external(
                ExternalClass::Permission,
                format!("{url}: HTTP {code}: {}", body_note()),
            )),
            429 => Err(ToolError::external(
                ExternalClass::RateLimit,
                format!("{url}: HTTP 429: {}", body_note()),
            )),
            408 | 500..=599 => Err(ToolError::external(
                ExternalClass::Connection,
                format!("{url}: HTTP {code}: {}", body_note()),
            )),
            _ => Err(bad(format!("{url}: HTTP {code}: {}", body_note()))),
        }
    }
}
