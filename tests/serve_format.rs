//! `response_format` where `amend serve` answers itself: the answer is corrected, then written
//! as JSON by checked formatting turns, re-asked with the violations until it passes, or a 502
//! when it never does. The model here replies from a script, so each path is exercised exactly
//! (what a real model does with the turns is measured, not asserted: see BENCHMARKS.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::sync::Arc;

use amend::serve::{router, App, Config};
use axum::body::Body;
use common::script::Script;
use serde_json::{json, Value};
use tower::ServiceExt;

fn app(model: Arc<Script>, dir: &std::path::Path) -> Arc<App> {
    Arc::new(
        App::new(
            Config {
                trace_dir: dir.join("traces"),
                ..Config::default()
            },
            model,
            "default",
            None,
            Arc::new(amend::Prompts::builtin().unwrap()),
        )
        .unwrap(),
    )
}

async fn post(app: &Arc<App>, body: Value) -> (u16, String) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn schema() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": {
        "type": "object", "required": ["answer"], "additionalProperties": false,
        "properties": {"answer": {"type": "integer"}}}}})
}

fn body(strategy: &str, stream: bool) -> Value {
    json!({"model": "default", "stream": stream, "response_format": schema(),
        "messages": [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"}],
        "amend": {"strategy": strategy}})
}

#[tokio::test]
async fn a_strategy_answer_is_formatted_by_checked_turns() {
    let dir = tempfile::tempdir().unwrap();
    let model = Script::new(&[
        "3 + 4 = 7\nThe answer is 7.",
        "{\"answer\": \"seven\"}",
        "```json\n{\"answer\": 7}\n```",
    ]);
    let app = app(model.clone(), dir.path());
    let (status, text) = post(&app, body("baseline", false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "{\"answer\":7}");
    let f = &v["amend"]["response_format"];
    assert_eq!(f["type"], "json_schema");
    assert_eq!(f["turns"], 2, "one re-ask after the violation");
    assert_eq!(f["answer"], "3 + 4 = 7\nThe answer is 7.");
    assert_eq!(v["amend"]["calls"], 3);
    // The answer, the greedy formatting turn, a re-ask of 8 samples in one call.
    assert_eq!(v["usage"]["prompt_tokens"], 3 * 30);
    assert_eq!(v["usage"]["completion_tokens"], 7 + 7 + 8 * 7);
    // The re-ask names the violation and follows the failed output.
    let seen = model.seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last[last.len() - 2].1, "{\"answer\": \"seven\"}");
    assert!(
        last[last.len() - 1].1.contains("/answer"),
        "{:?}",
        last.last()
    );
    assert!(seen[1]
        .iter()
        .any(|(_, c)| c.contains("\"required\":[\"answer\"]")));
}

#[tokio::test]
async fn an_answer_already_in_the_format_costs_no_turn_and_streams_whole() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(Script::new(&["{\"answer\": 7}"]), dir.path());
    let (status, text) = post(&app, body("none", true)).await;
    assert_eq!(status, 200, "{text}");
    let mut content = String::new();
    let mut amend = Value::Null;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            if d == "[DONE]" {
                continue;
            }
            let c: Value = serde_json::from_str(d).unwrap();
            if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
                content.push_str(t);
            }
            if !c["amend"].is_null() {
                amend = c["amend"].clone();
            }
        }
    }
    assert_eq!(content, "{\"answer\":7}");
    assert_eq!(amend["response_format"]["turns"], 0);
}

#[tokio::test]
async fn a_model_that_never_complies_is_a_502_naming_the_violations() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(Script::new(&["The answer is 7."]), dir.path());
    let (status, text) = post(&app, body("baseline", false)).await;
    assert_eq!(status, 502, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "response_format_failed");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("holds no JSON"));
    let (status, text) = post(
        &app,
        json!({"model": "default", "response_format": {"type": "yaml"},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("response_format"), "{text}");
}

#[tokio::test]
async fn a_formatting_turn_that_changes_the_answer_is_re_asked() {
    let dir = tempfile::tempdir().unwrap();
    let model = Script::new(&[
        "3 + 4 = 7\nThe answer is 7.",
        "{\"answer\": 8}",
        "{\"answer\": 7}",
    ]);
    let app = app(model.clone(), dir.path());
    let (status, text) = post(&app, body("baseline", false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "{\"answer\":7}");
    assert_eq!(v["amend"]["response_format"]["turns"], 2);
    let seen = model.seen.lock().unwrap();
    assert!(seen[1]
        .last()
        .unwrap()
        .1
        .starts_with("Your final answer is 7."));
    assert!(seen[2]
        .last()
        .unwrap()
        .1
        .contains("does not carry the answer, 7"));
}
