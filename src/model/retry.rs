//! Infrastructure retries for HTTP backends: exponential backoff that honours `Retry-After`.
//!
//! These retries have their own budget and are reported separately from correction attempts.
//! [`RetryService`] is a tower service placed under async-openai's client, so every attempt's
//! status and headers are visible here, which async-openai's own errors do not expose.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};
use reqwest::{Response, StatusCode};
use tower::{Service, ServiceExt};

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay.
    pub initial: Duration,
    /// Upper bound of any single wait (also caps `Retry-After`).
    pub max_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based): initial·2^retry, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(16));
        self.initial.saturating_mul(factor).min(self.max_delay)
    }
}

/// What happened across the attempts of one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallStats {
    /// Attempts made.
    pub attempts: u32,
    /// Status of the last HTTP answer, if any.
    pub last_status: Option<u16>,
    /// The last attempt timed out.
    pub timed_out: bool,
    /// The last attempt could not connect.
    pub connect_error: Option<String>,
    /// Retries made.
    pub retries: u32,
}

/// Parse a `Retry-After` header: delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        return None;
    }
    let when = httpdate(v)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate(v: &str) -> Option<SystemTime> {
    // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let dt = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let secs = u64::try_from(dt.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A tower service that retries 429, 5xx, timeouts and connection errors.
#[derive(Clone)]
pub(crate) struct RetryService {
    inner: ReqwestService,
    policy: RetryPolicy,
    stats: Arc<Mutex<CallStats>>,
}

impl RetryService {
    pub(crate) fn new(
        client: reqwest::Client,
        policy: RetryPolicy,
        stats: Arc<Mutex<CallStats>>,
    ) -> Self {
        Self {
            inner: ReqwestService::new(client),
            policy,
            stats,
        }
    }

    fn note(&self, f: impl FnOnce(&mut CallStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    async fn run(self, request: HttpRequestFactory) -> Result<Response, OpenAIError> {
        let mut retry = 0u32;
        loop {
            self.note(|s| {
                s.attempts += 1;
                s.timed_out = false;
                s.connect_error = None;
            });
            let attempt = tokio::time::timeout(
                self.policy.timeout,
                self.inner.clone().oneshot(request.clone()),
            )
            .await;
            let wait = match attempt {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    self.note(|s| s.last_status = Some(status.as_u16()));
                    if !retryable(status) || retry >= self.policy.max_retries {
                        return Ok(resp);
                    }
                    let hinted = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    tracing::warn!(%status, ?hinted, retry, "retryable HTTP status");
                    hinted
                        .unwrap_or_else(|| self.policy.backoff(retry))
                        .min(self.policy.max_delay)
                }
                Ok(Err(err)) => {
                    let msg = err.to_string();
                    self.note(|s| s.connect_error = Some(msg.clone()));
                    if retry >= self.policy.max_retries {
                        return Err(err);
                    }
                    tracing::warn!(error = %msg, retry, "transport error");
                    self.policy.backoff(retry)
                }
                Err(_) => {
                    self.note(|s| s.timed_out = true);
                    if retry >= self.policy.max_retries {
                        return Err(OpenAIError::InvalidArgument(format!(
                            "timed out after {:?}",
                            self.policy.timeout
                        )));
                    }
                    tracing::warn!(timeout = ?self.policy.timeout, retry, "attempt timed out");
                    self.policy.backoff(retry)
                }
            };
            retry += 1;
            self.note(|s| s.retries = retry);
            tokio::time::sleep(wait).await;
        }
    }
}

impl Service<HttpRequestFactory> for RetryService {
    type Response = Response;
    type Error = OpenAIError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, OpenAIError>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        Box::pin(self.clone().run(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
        assert_eq!(p.backoff(4), Duration::from_secs(1));
        assert_eq!(p.backoff(40), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
    }
}
