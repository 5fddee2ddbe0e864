//! The API backend: against the real OpenAI-compatible server of llama-cpp-python serving the
//! default model, and against a small fault-injecting server of our own for 429/5xx/garbage/hangs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amend::model::openai::{ApiModel, Options};
use amend::model::spec::{self, LoadOptions, Spec};
use amend::model::RetryPolicy;
use amend::{Message, Model, ModelError, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

fn question() -> Request {
    Request::chat(vec![Message::user("What is 2 + 2? Answer with a number.")]).with_max_tokens(16)
}

#[tokio::test]
async fn real_server_returns_text_and_usage() {
    let server = tokio::task::spawn_blocking(common::Server::start)
        .await
        .expect("server");
    let opts = LoadOptions {
        base_url: Some(server.base_url.clone()),
        ..LoadOptions::default()
    };
    let spec: Spec = "openai:smollm2".parse().expect("spec");
    let model = spec::load(&spec, &opts).await.expect("load");
    assert_eq!(
        model.id().key,
        format!("openai:smollm2@{}", server.base_url)
    );
    let r = model.generate(question()).await.expect("generate");
    assert!(!r.text().is_empty());
    assert!(
        r.usage.prompt_tokens > 0 && r.usage.generated_tokens > 0,
        "{:?}",
        r.usage
    );
    assert_eq!(r.usage.infra_retries, 0);

    let r = model
        .generate(question().with_n(2).with_sampling(0.8, 0.95).with_seed(1))
        .await;
    match r {
        Ok(r) => assert_eq!(
            r.samples.len(),
            2,
            "n=2 gives two samples even from a server that ignores n"
        ),
        Err(e) => panic!("n=2 failed: {e}"),
    }

    // Prefill is refused clearly on a plain OpenAI endpoint.
    let err = model
        .generate(question().with_prefill("The answer"))
        .await
        .expect_err("prefill");
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");
    drop(server);
}

/// A fault-injecting server: `respond(hit)` decides each answer.
async fn fault_server<F>(respond: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(usize) -> Response + Clone + Send + Sync + 'static,
{
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let respond = respond.clone();
            let h = h.clone();
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                respond(n)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), hits)
}

fn ok_body() -> Response {
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn api(base_url: String, retries: u32, timeout: Duration) -> ApiModel {
    ApiModel::new(
        "m",
        Options {
            base_url,
            retry: RetryPolicy {
                max_retries: retries,
                initial: Duration::from_millis(50),
                max_delay: Duration::from_secs(5),
                timeout,
            },
            ..Options::default()
        },
    )
    .expect("client")
}

#[tokio::test]
async fn a_429_then_200_succeeds_after_an_infra_retry_honouring_retry_after() {
    let (url, hits) = fault_server(|n| {
        if n == 0 {
            let mut h = HeaderMap::new();
            h.insert("retry-after", "1".parse().expect("header"));
            (
                StatusCode::TOO_MANY_REQUESTS,
                h,
                r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
            )
                .into_response()
        } else {
            ok_body()
        }
    })
    .await;
    let m = api(url, 3, Duration::from_secs(10));
    let start = Instant::now();
    let r = m
        .generate(question())
        .await
        .expect("must succeed after a retry");
    assert_eq!(r.text(), "4");
    assert_eq!(
        r.usage.infra_retries, 1,
        "the retry is reported as infrastructure"
    );
    assert_eq!(r.usage.calls, 1, "one logical call");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // Retry-After: 1 was honoured over the 50 ms backoff.
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "waited only {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_500_forever_fails_clearly_after_the_retry_budget() {
    let (url, hits) = fault_server(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
        )
            .into_response()
    })
    .await;
    let m = api(url.clone(), 2, Duration::from_secs(10));
    let err = m.generate(question()).await.expect_err("must fail");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "1 attempt + 2 retries");
    match &err {
        ModelError::RetriesExhausted {
            attempts,
            retries,
            last,
            ..
        } => {
            assert_eq!((*attempts, *retries), (3, 2));
            assert!(last.contains("500"), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other}"),
    }
    assert!(err.to_string().contains(&url));
}

#[tokio::test]
async fn garbage_json_fails_clearly() {
    let (url, hits) = fault_server(|_| (StatusCode::OK, "{not json at all").into_response()).await;
    let m = api(url, 3, Duration::from_secs(10));
    let err = m.generate(question()).await.expect_err("must fail");
    assert!(matches!(err, ModelError::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("not a valid chat completion"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a 200 with garbage is not retried"
    );
}

#[tokio::test]
async fn a_hung_server_hits_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            held.push(sock); // accept and never answer
        }
    });
    let m = api(format!("http://{addr}/v1"), 1, Duration::from_millis(400));
    let err = m.generate(question()).await.expect_err("must time out");
    match &err {
        ModelError::Timeout { attempts, .. } => assert_eq!(*attempts, 2),
        other => panic!("expected Timeout, got {other}"),
    }
    // Library text names the option; the CLI prints it as its flag.
    assert!(err.to_string().contains("raise `timeout`"), "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error() {
    let port = common::free_port();
    let m = api(
        format!("http://127.0.0.1:{port}/v1"),
        1,
        Duration::from_secs(2),
    );
    let err = m.generate(question()).await.expect_err("must fail");
    assert!(
        matches!(
            err,
            ModelError::RetriesExhausted { .. } | ModelError::Connect { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()));
}
