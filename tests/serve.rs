//! `amend serve`: the router without a socket (routes, errors, keys, limits, metrics, a
//! step-wise stream); the official OpenAI Python client against the real binary is in
//! `tests/serve_clients.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use amend::model::spec::{self, LoadOptions, Spec};
use amend::serve::{router, App, Ceilings, Config, KeyConfig};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn model() -> Arc<dyn amend::Model> {
    let opts = LoadOptions {
        n_seq: 2,
        threads: 2,
        ..LoadOptions::default()
    };
    spec::load(&Spec::Path(common::model_path()), &opts)
        .await
        .expect("model")
}

fn config(dir: &std::path::Path) -> Config {
    Config {
        trace_dir: dir.join("traces"),
        aliases: vec!["gpt-4o-mini".into()],
        ..Config::default()
    }
}

async fn app(config: Config) -> Arc<App> {
    Arc::new(
        App::new(
            config,
            model().await,
            "default",
            None,
            Arc::new(amend::Prompts::builtin().unwrap()),
        )
        .unwrap(),
    )
}

/// One request through the router: status, headers and the body (JSON when it parses).
async fn send(
    app: &Arc<App>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

fn chat(body: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&body).unwrap())
}

fn is_openai_error(v: &Value) -> bool {
    v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty())
        && v["error"]["type"].as_str().is_some()
}

#[tokio::test]
async fn routes_answer_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(config(dir.path())).await;
    let (s, _, v) = send(&app, "GET", "/health", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!("ok")));
    let (s, _, v) = send(&app, "GET", "/v1/models", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!("default"), json!("gpt-4o-mini")]);
    let (s, _, doc) = send(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/v1/chat/completions",
        "/v1/models",
        "/v1/amend/mistakes",
        "/v1/amend/mistakes/{id}",
        "/health",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (s, _, v) = send(&app, "GET", "/v2/nothing", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(is_openai_error(&v), "{v}");
    // The model's name or an alias; anything else is the OpenAI not-found error.
    let (s, _, v) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        None,
        chat(json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`default`"));
}

#[tokio::test]
async fn malformed_bodies_are_400s_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(config(dir.path())).await;
    let user = json!([{"role": "user", "content": "What is 2 + 2?"}]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not JSON"),
        (b"[1, 2]".to_vec(), "JSON object"),
        (br#"{"model": "default"}"#.to_vec(), "messages"),
        (serde_json::to_vec(&json!({"model": "default", "messages": "hi"})).unwrap(), "chat request"),
        (serde_json::to_vec(&json!({"model": "default", "messages": []})).unwrap(), "empty"),
        (serde_json::to_vec(&json!({"model": "default", "messages": [{"role": "assistant", "content": "x"}]})).unwrap(), "last message"),
        (serde_json::to_vec(&json!({"model": "default", "messages": [{"role": "wizard", "content": "x"}]})).unwrap(), "wizard"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "n": 3})).unwrap(), "one choice"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"strategy": "magic"}})).unwrap(), "magic"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"stratgy": "baseline"}})).unwrap(), "stratgy"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"critic": "chain:"}})).unwrap(), "`amend`"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"strategy": "backtrack"}})).unwrap(), "critic"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"budget": {"deadline_s": -1}}})).unwrap(), "deadline_s"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "tools": []})).unwrap(), "tools"),
        (serde_json::to_vec(&json!({"model": "default", "messages": user, "amend": {"strategy": "sc", "samples": 1000}})).unwrap(), "at most 64"),
        (serde_json::to_vec(&json!({"model": "default", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})).unwrap(), "image_url"),
    ];
    for (body, needle) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (s, _, v) = send(&app, "POST", "/v1/chat/completions", None, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{shown} -> {v}");
        assert!(is_openai_error(&v), "{shown} -> {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{shown}: {msg:?} should mention {needle:?}"
        );
    }
}

#[tokio::test]
async fn keys_rates_and_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_body_bytes = 1024;
    c.keys = vec![
        KeyConfig {
            name: "alice".into(),
            key: Some("sk-alice-0123456789".into()),
            ..KeyConfig::default()
        },
        KeyConfig {
            name: "slow".into(),
            key: Some("sk-slow-0123456789".into()),
            rate_per_minute: Some(1),
            ceilings: Ceilings::default(),
            ..KeyConfig::default()
        },
    ];
    let app = app(c).await;
    let (s, _, v) = send(&app, "GET", "/v1/models", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(is_openai_error(&v));
    let (s, _, _) = send(&app, "GET", "/v1/models", Some("sk-alice-0123456780"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(&app, "GET", "/v1/models", Some("sk-alice-0123456789"), None).await;
    assert_eq!(s, StatusCode::OK);
    // /health needs no key (load balancers ask it).
    assert_eq!(
        send(&app, "GET", "/health", None, None).await.0,
        StatusCode::OK
    );
    let (s, _, _) = send(&app, "GET", "/v1/models", Some("sk-slow-0123456789"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, h, v) = send(&app, "GET", "/v1/models", Some("sk-slow-0123456789"), None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let big =
        json!({"model": "default", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let (s, _, v) = send(
        &app,
        "POST",
        "/v1/chat/completions",
        Some("sk-alice-0123456789"),
        chat(big),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1024"),
        "{v}"
    );
    // A non-loopback bind without keys is refused, naming the option.
    let open = Config {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..config(dir.path())
    };
    let e = App::new(
        open,
        model().await,
        "default",
        None,
        Arc::new(amend::Prompts::builtin().unwrap()),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("`keys`"), "{e}");
}

/// The value of a metric line `name{labels} value`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_count_the_requests_sent() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(config(dir.path())).await;
    for _ in 0..3 {
        send(&app, "GET", "/v1/models", None, None).await;
    }
    for _ in 0..2 {
        send(
            &app,
            "POST",
            "/v1/chat/completions",
            None,
            Some(b"{".to_vec()),
        )
        .await;
    }
    let ok = json!({"model": "default", "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hi."}], "amend": {"strategy": "none"}});
    let (s, _, v) = send(&app, "POST", "/v1/chat/completions", None, chat(ok)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, h, v) = send(&app, "GET", "/metrics", None, None).await;
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = v.as_str().unwrap();
    assert_eq!(
        metric(
            text,
            r#"amend_http_requests_total{route="/v1/models",status="200"}"#
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            r#"amend_http_requests_total{route="/v1/chat/completions",status="400"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            text,
            r#"amend_http_requests_total{route="/v1/chat/completions",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(text, r#"amend_completions_total{strategy="none"}"#),
        1.0
    );
    assert_eq!(metric(text, "amend_upstream_calls_total"), 1.0);
    assert!(metric(text, "amend_completion_tokens_total") >= 1.0);
    // The trace of the answered request names the strategy and never the messages' text when
    // redacted (here not redacted: the answer is there).
    let traces: Vec<PathBuf> = std::fs::read_dir(dir.path().join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        traces.len(),
        1,
        "one trace per chat request that reached the model"
    );
    let events = amend::trace::read(&traces[0]).unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "request" && e.data["strategy"] == "none"));
    assert!(events.iter().any(|e| e.kind == "response"));
}

/// The data lines of an SSE body, parsed (`[DONE]` as a string).
fn sse(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .flat_map(|ev| ev.lines())
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}

#[tokio::test]
async fn a_step_wise_stream_sends_each_checked_step_and_equals_the_whole_answer() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(Config {
        prefix_reuse: false,
        ..config(dir.path())
    })
    .await;
    let body = |stream: bool| {
        chat(json!({
            "model": "default", "max_tokens": 160, "stream": stream,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "A farm has 4837 rows of corn with 29 plants in each row. How many plants are there? Write the multiplication."}],
            "amend": {"strategy": "backtrack", "critic": "arith", "stepwise": true, "max_backtracks": 2},
        }))
    };
    let (s, h, v) = send(&app, "POST", "/v1/chat/completions", None, body(true)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse(v.as_str().unwrap());
    assert_eq!(events.last(), Some(&json!("[DONE]")));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let contents: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .filter(|c| !c.is_empty())
        .collect();
    let finish = events
        .iter()
        .find(|e| !e["choices"][0]["finish_reason"].is_null())
        .unwrap();
    let amend = &finish["amend"];
    assert_eq!(
        amend["commit_points"].as_u64().unwrap() as usize,
        contents.len(),
        "one chunk per commit point: {amend}"
    );
    let usage = events.iter().find(|e| e["usage"].is_object()).unwrap();
    let (s, _, whole) = send(&app, "POST", "/v1/chat/completions", None, body(false)).await;
    assert_eq!(s, StatusCode::OK, "{whole}");
    assert_eq!(
        contents.concat(),
        whole["choices"][0]["message"]["content"].as_str().unwrap(),
        "with prefix reuse off, the stream is the whole answer"
    );
    assert_eq!(usage["usage"], whole["usage"]);
    assert_eq!(
        amend["unverified_steps"],
        whole["amend"]["unverified_steps"]
    );
}

/// Request bodies of every shape, most of them wrong somewhere: any model name, messages of
/// any role and content kind, `amend` objects good and bad, odd `n` and `max_tokens`.
fn arb_body() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let role = prop_oneof![
        Just("user"),
        Just("assistant"),
        Just("system"),
        Just("developer"),
        Just("tool"),
        Just("wizard")
    ];
    let content = prop_oneof![
        "[a-z0-9 +=]{0,12}".prop_map(Value::from),
        Just(Value::Null),
        Just(json!([{"type": "text", "text": "2 + 2 ="}])),
        Just(json!([{"type": "image_url", "image_url": {"url": "x"}}])),
        Just(json!([{"text": 5}])),
        any::<i64>().prop_map(Value::from),
    ];
    let msg = (role, content).prop_map(|(r, c)| json!({"role": r, "content": c}));
    let messages = prop_oneof![
        8 => Just(json!([{"role": "user", "content": "2 + 2 ="}])),
        4 => prop::collection::vec(msg, 0..4).prop_map(Value::from),
        1 => Just(json!("hello")),
        1 => Just(Value::Null),
    ];
    let model = prop_oneof![
        8 => Just(json!("default")),
        1 => Just(json!("gpt-4o-mini")),
        1 => Just(json!("nope")),
        1 => Just(json!(3))
    ];
    let strategy = prop_oneof![
        Just(json!("none")),
        Just(json!("baseline")),
        Just(json!("backtrack")),
        Just(json!("bogus")),
        Just(json!(7))
    ];
    let critic = prop_oneof![
        Just(json!("arith")),
        Just(json!("chain:arith,ground")),
        Just(json!("chain:")),
        Just(json!(1))
    ];
    let amend = prop_oneof![
        6 => Just(Value::Null),
        3 => (
            strategy,
            critic,
            prop_oneof![Just(json!(true)), Just(json!("yes"))]
        )
            .prop_map(|(s, c, calc)| json!({"strategy": s, "critic": c, "calculator": calc})),
        1 => Just(json!({"budget": {"max_calls": 1, "deadline_s": 0}})),
        1 => Just(json!({"nonsense": 1})),
        1 => Just(json!([1])),
    ];
    let n = prop_oneof![
        6 => Just(Value::Null),
        2 => (0i64..3).prop_map(Value::from),
        1 => Just(json!("two"))
    ];
    let max_tokens = prop_oneof![
        8 => (0i64..4).prop_map(Value::from),
        1 => Just(json!(-1)),
        1 => Just(json!("x"))
    ];
    (model, messages, amend, n, max_tokens, any::<bool>()).prop_map(
        |(model, messages, amend, n, max_tokens, stream)| {
            json!({"model": model, "messages": messages, "amend": amend, "n": n,
                "max_tokens": max_tokens, "stream": stream})
        },
    )
}

#[test]
fn no_request_body_gets_a_server_error() {
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(app(config(dir.path())));
    let mut runner = TestRunner::new(PtConfig {
        cases: 64,
        ..PtConfig::default()
    });
    let answered = std::cell::RefCell::new(std::collections::BTreeMap::new());
    runner
        .run(&arb_body(), |body| {
            let shown = body.to_string();
            let (s, _, v) =
                rt.block_on(send(&app, "POST", "/v1/chat/completions", None, chat(body)));
            *answered.borrow_mut().entry(s.as_u16()).or_insert(0) += 1;
            proptest::prop_assert!(!s.is_server_error(), "{shown} -> {s} {v}");
            if s != StatusCode::OK {
                proptest::prop_assert!(is_openai_error(&v), "{shown} -> {s} {v}");
            }
            Ok(())
        })
        .unwrap();
    let answered = answered.into_inner();
    println!("statuses: {answered:?}");
    assert!(
        answered.contains_key(&200) && answered.contains_key(&400),
        "the bodies reached both the model and the checks: {answered:?}"
    );
}
