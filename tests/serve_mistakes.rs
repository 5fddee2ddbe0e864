//! The mistakes store under `amend serve`: requests record what their critics locate (tagged
//! with the key's name and the request's trace id), the server serves the store it holds at
//! `GET /v1/amend/mistakes[/{id}]`, and `amend mistakes list | show | stats | export` keep
//! working while a server holds the store (they read it through the server), while writers
//! are refused with the server named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use amend::mistakes::{Discard, Mistake, Outcome, Sink, SledStore, Store};
use amend::serve::{router, App, Config, Holder, KeyConfig};
use axum::body::Body;
use common::script::Script;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn get(app: &Arc<App>, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut b = axum::http::Request::builder().uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let resp = router(app.clone())
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn requests_record_located_mistakes_and_the_server_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("mistakes");
    let store = Arc::new(SledStore::open(&store_path).unwrap());
    let config = Config {
        trace_dir: dir.path().join("traces"),
        keys: vec![KeyConfig {
            name: "alice".into(),
            key: Some("sk-alice-0123456789".into()),
            ..KeyConfig::default()
        }],
        ..Config::default()
    };
    // Every answer holds a false claim, which `arith` locates each time.
    let model = Script::new(&["2 + 2 = 5\nThe answer is 5."]);
    let app = Arc::new(
        App::new(
            config.clone(),
            model,
            "default",
            None,
            Arc::new(amend::Prompts::builtin().unwrap()),
        )
        .unwrap()
        .with_mistakes(store.clone(), store_path.clone()),
    );
    let body = json!({"model": "default", "max_tokens": 32,
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "amend": {"strategy": "backtrack", "critic": "arith", "max_backtracks": 1,
                  "budget": {"max_calls": 4}}});
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/chat/completions")
        .header("authorization", "Bearer sk-alice-0123456789")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap(),
    )
    .unwrap();
    let located = answer["amend"]["located"].as_array().unwrap().len();
    assert!(located >= 1, "{answer}");
    let trace_id = answer["amend"]["trace_id"].as_str().unwrap().to_string();

    // In the store, durable, tagged with the key's name and the request's trace.
    let recs = store.list(&amend::mistakes::Filter::default()).unwrap();
    assert_eq!(recs.len(), located, "one record per located mistake");
    for m in &recs {
        assert_eq!(m.task, "serve:alice");
        assert_eq!(m.run.as_deref(), Some(trace_id.as_str()));
        assert_eq!(m.critic, "arith");
        assert_eq!(m.model, "script");
    }

    // Served over HTTP: the list (with filters), one record, and the errors.
    let (st, v) = get(&app, "/v1/amend/mistakes", Some("sk-alice-0123456789")).await;
    assert_eq!(st, 200);
    let listed: Vec<Mistake> = serde_json::from_value(v["data"].clone()).unwrap();
    assert_eq!(listed, recs);
    let (_, v) = get(
        &app,
        "/v1/amend/mistakes?task=serve:bob",
        Some("sk-alice-0123456789"),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let (_, v) = get(
        &app,
        &format!("/v1/amend/mistakes?task=serve:alice&run={trace_id}"),
        Some("sk-alice-0123456789"),
    )
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), located);
    let (st, v) = get(
        &app,
        &format!("/v1/amend/mistakes/{}", recs[0].id),
        Some("sk-alice-0123456789"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_value::<Mistake>(v).unwrap(), recs[0]);
    let (st, v) = get(&app, "/v1/amend/mistakes/nope", Some("sk-alice-0123456789")).await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let (st, v) = get(
        &app,
        "/v1/amend/mistakes?outcome=great",
        Some("sk-alice-0123456789"),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = get(
        &app,
        "/v1/amend/mistakes?colour=red",
        Some("sk-alice-0123456789"),
    )
    .await;
    assert_eq!(st, 400, "an unknown filter is refused, not ignored");
    let (st, _) = get(&app, "/v1/amend/mistakes", None).await;
    assert_eq!(st, 401, "the store is behind the keys");

    // A server without a store says so.
    let bare = Arc::new(
        App::new(
            Config {
                trace_dir: dir.path().join("traces"),
                ..Config::default()
            },
            Script::new(&["The answer is 4."]),
            "default",
            None,
            Arc::new(amend::Prompts::builtin().unwrap()),
        )
        .unwrap(),
    );
    let (st, v) = get(&bare, "/v1/amend/mistakes", None).await;
    assert_eq!(st, 404);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("records no mistakes"));
}

fn amend() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amend"));
    c.env_remove("AMEND_LOG")
        .env_remove("AMEND_MISTAKES")
        .env_remove("AMEND_API_KEY")
        .env("RUST_LOG", "error");
    c
}

fn records(n: usize) -> Vec<Mistake> {
    let sink = Sink {
        store: Arc::new(Discard),
        task: "gsm8k".into(),
        model: "default".into(),
        run: Some("held".into()),
    };
    (0..n)
        .map(|i| {
            let mut m = sink.blank(&format!("question {i}: 3 + {i} = ?"), Some("7"));
            m.steps = vec![format!("3 + {i} = {}", 4 + i), "The answer is 8.".into()];
            m.step = Some(0);
            m.critic = "arith".into();
            m.rationale = format!("3 + {i} is not {}", 4 + i);
            m.outcome = if i % 2 == 0 {
                Outcome::Fixed
            } else {
                Outcome::NotFixed
            };
            m
        })
        .collect()
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The CLI reads a store that a running server holds, through the server.
#[test]
fn the_cli_reads_a_store_the_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mistakes");
    let recs = records(5);
    let file = dir.path().join("in.jsonl");
    let mut text = String::new();
    for m in &recs {
        text.push_str(&serde_json::to_string(m).unwrap());
        text.push('\n');
    }
    std::fs::write(&file, &text).unwrap();
    run_ok(
        amend()
            .args(["mistakes", "import"])
            .arg(&file)
            .arg("--mistakes")
            .arg(&store),
    );
    let before = run_ok(
        amend()
            .args(["mistakes", "export", "--mistakes"])
            .arg(&store),
    );

    // A server holding the store. Its model is an API nobody answers at: reading the store
    // needs no model call.
    let port = common::free_port();
    let cfg = dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "trace_dir = \"{}\"\n[[keys]]\nname = \"ops\"\nkey = \"sk-ops-0123456789\"\n",
            dir.path().join("traces").display()
        ),
    )
    .unwrap();
    let mut server = amend()
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args([
            "--model",
            "openai:nobody",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ])
        .arg("--mistakes")
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(common::http_ok(port, "/health") && Holder::read(&store).is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let holder = Holder::read(&store).unwrap();
    assert_eq!(holder.url, format!("http://127.0.0.1:{port}"));
    assert!(holder.keys);

    let with_key = |args: &[&str]| {
        let mut c = amend();
        c.args(["mistakes"])
            .args(args)
            .arg("--mistakes")
            .arg(&store)
            .env("AMEND_API_KEY", "sk-ops-0123456789");
        c
    };
    // Exported through the server: byte for byte what the store held.
    assert_eq!(run_ok(&mut with_key(&["export"])), before);
    let listed: Vec<Mistake> =
        serde_json::from_str(&run_ok(&mut with_key(&["list", "--json"]))).unwrap();
    assert_eq!(listed, recs);
    let fixed: Vec<Mistake> = serde_json::from_str(&run_ok(&mut with_key(&[
        "list",
        "--json",
        "--outcome",
        "fixed",
    ])))
    .unwrap();
    assert_eq!(fixed.len(), 3, "filters apply");
    let stats: Value = serde_json::from_str(&run_ok(&mut with_key(&["stats", "--json"]))).unwrap();
    assert_eq!(stats["total"], 5);
    let prefix = &recs[2].id[..recs[2].id.len() - 4];
    let shown: Mistake =
        serde_json::from_str(&run_ok(&mut with_key(&["show", "--json", prefix]))).unwrap();
    assert_eq!(shown, recs[2]);

    // Without the key: a message that says which key to set.
    let out = amend()
        .args(["mistakes", "list", "--mistakes"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AMEND_API_KEY") && err.contains("amend serve"),
        "{err}"
    );

    // A writer is refused, naming the server.
    let out = with_key(&["import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("amend serve") && err.contains(&format!("pid {}", server.id())),
        "{err}"
    );

    // SIGTERM: the server lets go; the holder file goes with it and the store opens here.
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    assert!(Holder::read(&store).is_none(), "the holder file is removed");
    assert_eq!(
        run_ok(
            amend()
                .args(["mistakes", "export", "--mistakes"])
                .arg(&store)
        ),
        before
    );
}
