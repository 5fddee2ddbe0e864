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
use amend::model::spec::{self, LoadOptions};
use amend::model::{Prefill, PrefillMode, RetryPolicy};
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
    let (server, opts, spec, model) = common::served().await;
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

    // llama-cpp-python's 0.3.x server starts a new turn after a trailing assistant message:
    // `auto` finds that out once and takes the conversation fallback.
    let r = model
        .generate(question().with_prefill("2 + 2 ="))
        .await
        .expect("prefill by the conversation fallback");
    assert_eq!(r.prefill, Some(Prefill::Conversation));
    assert_eq!(
        r.usage.calls, 2,
        "the probe is a call of its own, counted once"
    );
    let r = model
        .generate(question().with_prefill("2 + 2 ="))
        .await
        .expect("prefill");
    assert_eq!(
        (r.prefill, r.usage.calls),
        (Some(Prefill::Conversation), 1),
        "the probe's answer is kept"
    );
    // `off` refuses a prefill clearly.
    let off = spec::load(
        &spec,
        &LoadOptions {
            prefill: PrefillMode::Off,
            ..opts.clone()
        },
    )
    .await
    .expect("load");
    let err = off
        .generate(question().with_prefill("The answer"))
        .await
        .expect_err("prefill");
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");
    drop(server);
}

/// A server of our own that speaks the continue-final-message extension when `supports` (the
/// real servers installable here do not: llama-cpp-python's 0.3.x starts a new turn). It
/// continues a final assistant message only when the request asks for it, and otherwise
/// answers a new turn from scratch; every request body is kept.
async fn continuing_server(
    supports: bool,
) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = bodies.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let b = b.clone();
            async move {
                let last = body["messages"]
                    .as_array()
                    .and_then(|m| m.last())
                    .cloned()
                    .unwrap_or_default();
                let continuing = supports
                    && body["continue_final_message"] == true
                    && body["add_generation_prompt"] == false
                    && last["role"] == "assistant";
                let prefix = last["content"].as_str().unwrap_or("").to_string();
                let text = match (continuing, prefix.ends_with("5,")) {
                    (true, true) => " 6, 7, 8, 9",
                    (true, false) => " 4.",
                    (false, _) => "1, 2, 3, 4",
                };
                b.lock().expect("lock").push(body);
                let reply = serde_json::json!({
                    "id": "x", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
                });
                (StatusCode::OK, axum::Json(reply)).into_response()
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
    (format!("http://{addr}/v1"), bodies)
}

#[tokio::test]
async fn auto_prefill_finds_continue_final_message_where_the_server_has_it() {
    // Our own server (see `continuing_server`), said so: no server with the extension
    // installs from the registries here within CI's budget.
    let (url, bodies) = continuing_server(true).await;
    let m = api(url, 0, Duration::from_secs(5));
    let r = m
        .generate(question().with_prefill("2 + 2 ="))
        .await
        .expect("prefill");
    assert_eq!(r.prefill, Some(Prefill::ContinueFinalMessage));
    assert_eq!(r.text(), " 4.");
    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2, "the probe, then the request");
    let last = &bodies[1];
    assert_eq!(last["continue_final_message"], true);
    assert_eq!(last["add_generation_prompt"], false);
    let msgs = last["messages"].as_array().expect("messages");
    assert_eq!(
        msgs.last().map(|m| m["role"].clone()),
        Some("assistant".into())
    );
    assert_eq!(
        msgs.last().map(|m| m["content"].clone()),
        Some("2 + 2 =".into())
    );
    // Requests without a prefill carry no extension fields.
    m.generate(question()).await.expect("plain");
}

#[tokio::test]
async fn auto_prefill_falls_back_to_the_conversation_where_the_server_starts_over() {
    let (url, bodies) = continuing_server(false).await;
    let m = api(url, 0, Duration::from_secs(5));
    let r = m
        .generate(question().with_prefill("2 + 2 ="))
        .await
        .expect("prefill");
    assert_eq!(r.prefill, Some(Prefill::Conversation));
    let bodies = bodies.lock().expect("lock").clone();
    let msgs = bodies[1]["messages"].as_array().expect("messages").clone();
    let roles: Vec<&str> = msgs.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, vec!["user", "assistant", "user"]);
    assert_eq!(msgs[1]["content"], "2 + 2 =");
    assert_eq!(
        msgs[2]["content"].as_str(),
        Some(amend::model::prefill::CONTINUE_INSTRUCTION)
    );
    assert!(bodies[1].get("continue_final_message").is_none());
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

#[tokio::test]
async fn backtracking_runs_on_a_server_without_prefill_and_says_how() {
    // Before: "does not support assistant prefill" exactly where backtracking had a mistake to
    // correct. Now the revision is continued through the conversation fallback, and the
    // solution and its trace say so.
    use amend::critic::Spec as Critic;
    use amend::run::{Context, Problem};
    use amend::strategy::{self, Kind, Options};
    let (_server, _, _, model) = common::served().await;
    let dir = tempfile::tempdir().expect("tmp");
    let writer =
        Arc::new(amend::trace::Writer::create(&dir.path().join("t.jsonl"), "t").expect("trace"));
    let cx = Context::new(model, Arc::new(amend::Prompts::builtin().expect("prompts")))
        .with_trace(writer.clone())
        .with_max_tokens(64);
    let draft: Vec<String> = vec![
        "Each box holds 6 eggs.".into(),
        "So 5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let problem = Problem {
        draft: Some(&draft),
        ..Problem::new("A box holds 6 eggs. How many eggs are in 5 boxes?").with_gold("30")
    };
    let options = Options {
        critic: Some(Critic::Arith),
        ..Options::default()
    };
    let sol = strategy::build(Kind::Backtrack, &options)
        .expect("backtrack")
        .solve(&cx, &problem)
        .await
        .expect("backtracking runs without native prefill");
    assert_eq!(sol.located.len(), 1);
    assert_eq!(sol.prefill, Some(Prefill::Conversation));
    let events = amend::trace::read(writer.path()).expect("trace");
    let prefilled: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "call" && !e.data["request"]["prefill"].is_null())
        .collect();
    assert!(!prefilled.is_empty());
    assert!(prefilled
        .iter()
        .all(|e| e.data["prefill"] == "conversation"));
    let solve = events
        .iter()
        .find(|e| e.kind == "solve")
        .expect("solve event");
    assert_eq!(solve.data["prefill"], "conversation");
}

#[tokio::test]
async fn the_calculator_runs_on_a_server_without_prefill() {
    // The server has no prefill: the text up to the exact value goes back through the
    // conversation fallback, the path backtracking takes there.
    use amend::run::Context;
    let (_server, _, _, model) = common::served().await;
    let dir = tempfile::tempdir().expect("tmp");
    let writer =
        Arc::new(amend::trace::Writer::create(&dir.path().join("t.jsonl"), "t").expect("trace"));
    let cx = Context::new(model, Arc::new(amend::Prompts::builtin().expect("prompts")))
        .with_trace(writer.clone())
        .with_calculator(true);
    let req = Request::chat(vec![Message::user(
        "Compute 4837 * 29. Write the multiplication as an equation.",
    )])
    .with_max_tokens(48);
    let r = cx.model().generate(req).await.expect("generate");
    assert_eq!(
        amend::calc::results(r.text(), false).1,
        None,
        "{:?}",
        r.text()
    );
    let events = amend::trace::read(writer.path()).expect("trace");
    let calc = events
        .iter()
        .find(|e| e.kind == "calculator")
        .expect("a calculator event");
    assert_eq!(calc.data["substitutions"][0]["exact"], "140273");
    assert!(r.text().contains("140273"));
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    assert!(calls.len() >= 2);
    assert_eq!(r.prefill, None, "the first call has no prefill");
    assert!(calls[1..]
        .iter()
        .all(|c| c.data["prefill"] == "conversation"));
}
