//! The server's Prometheus metrics, on an explicit registry (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/v1/chat/completions`, ...; `other` for a path the server does not have).
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// Labels of a solve.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StrategyLabels {
    /// The strategy (`none`, `baseline`, ...).
    pub strategy: String,
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status (`amend_http_requests_total`).
    pub requests: Family<RequestLabels, Counter>,
    /// Requests being answered now (`amend_http_in_flight`).
    pub in_flight: Gauge,
    /// Seconds from a request's arrival to its response's head, by route
    /// (`amend_http_request_duration_seconds`).
    pub duration: Family<RequestLabels, Histogram>,
    /// Chat completions by strategy (`amend_completions_total`).
    pub completions: Family<StrategyLabels, Counter>,
    /// Upstream model calls (`amend_upstream_calls_total`).
    pub upstream_calls: Counter,
    /// Prompt tokens over the upstream calls (`amend_prompt_tokens_total`).
    pub prompt_tokens: Counter,
    /// Generated tokens over the upstream calls (`amend_completion_tokens_total`).
    pub completion_tokens: Counter,
    /// Mistakes the critics located (`amend_located_mistakes_total`).
    pub located: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("amend");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_in_flight",
            "HTTP requests being answered",
            in_flight.clone(),
        );
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 4.0, 12))
        });
        registry.register(
            "http_request_duration_seconds",
            "Seconds from a request's arrival to its response's head",
            duration.clone(),
        );
        let completions = Family::<StrategyLabels, Counter>::default();
        registry.register(
            "completions",
            "Chat completions answered, by strategy",
            completions.clone(),
        );
        let upstream_calls = Counter::default();
        registry.register(
            "upstream_calls",
            "Upstream model calls",
            upstream_calls.clone(),
        );
        let prompt_tokens = Counter::default();
        registry.register(
            "prompt_tokens",
            "Prompt tokens of the upstream calls",
            prompt_tokens.clone(),
        );
        let completion_tokens = Counter::default();
        registry.register(
            "completion_tokens",
            "Generated tokens of the upstream calls",
            completion_tokens.clone(),
        );
        let located = Counter::default();
        registry.register(
            "located_mistakes",
            "Mistakes the critics located",
            located.clone(),
        );
        Self {
            registry,
            requests,
            in_flight,
            duration,
            completions,
            upstream_calls,
            prompt_tokens,
            completion_tokens,
            located,
        }
    }

    /// Count one solve's usage.
    pub fn add_usage(&self, u: &crate::model::Usage) {
        self.upstream_calls.inc_by(u.calls);
        self.prompt_tokens.inc_by(u.prompt_tokens);
        self.completion_tokens.inc_by(u.generated_tokens);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
