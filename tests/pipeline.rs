//! Pipelines: error routing with a scripted model (deterministic, no model weights), external
//! failures from a local axum server, vetoes, rollbacks and the side-effect barrier.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use amend::mistakes::Store;
use amend::model::{
    Capabilities, FinishReason, Model, ModelError, ModelId, Request, Response, Sample, Usage,
};
use amend::pipeline::{self, EventKind, Status};
use amend::prompt::Prompts;
use amend::run::Context;

/// A model that answers from a script, in order (the last line repeats), and counts calls.
struct Scripted {
    id: ModelId,
    lines: Mutex<VecDeque<String>>,
    calls: AtomicU32,
    prompts: Mutex<Vec<Request>>,
}

impl Scripted {
    fn new(lines: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            id: ModelId {
                key: "scripted".into(),
                source: "tests/pipeline.rs".into(),
            },
            lines: Mutex::new(lines.iter().map(|s| s.to_string()).collect()),
            calls: AtomicU32::new(0),
            prompts: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Model for Scripted {
    fn id(&self) -> &ModelId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            assistant_prefill: true,
            ..Capabilities::default()
        }
    }

    async fn generate(&self, request: Request) -> Result<Response, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.prompts.lock().unwrap().push(request);
        let mut lines = self.lines.lock().unwrap();
        let text = match lines.len() {
            0 => String::new(),
            1 => lines[0].clone(),
            _ => lines.pop_front().unwrap_or_default(),
        };
        Ok(Response {
            samples: vec![Sample {
                text,
                finish: FinishReason::Stop,
                tokens: 5,
                logprobs: None,
            }],
            usage: Usage {
                calls: 1,
                generated_tokens: 5,
                ..Usage::default()
            },
            wall: Duration::ZERO,
            prefill: None,
        })
    }
}

fn context(model: Arc<Scripted>) -> Context {
    Context::new(model, Arc::new(Prompts::builtin().expect("prompts")))
}

const CALC: &str = r#"
name = "calc"
[limits]
max_reasks = 2
max_calls = 6
[templates]
propose = "Question: {{ input.question }}\nWrite one calculator call as {\"tool\": \"calculator\", \"arguments\": {\"expr\": EXPR}}."
[tools.check]
kind = "json_schema"
schema = { type = "object" }
[[nodes]]
id = "propose"
kind = "llm"
template = "propose"
output = "tool_call"
[[nodes]]
id = "veto"
kind = "critic"
critic = "ground"
target = "calc"
when = "before"
[[nodes]]
id = "calc"
kind = "tool"
tool = "calculator"
args_from = "propose"
"#;

fn call(tool: &str, args: Value) -> String {
    format!("Here it is: {}", json!({"tool": tool, "arguments": args}))
}

const Q: &str = "Tom has 3 apples and buys 4 more. How many apples does he have?";

async fn run_calc(script: &[String]) -> (pipeline::Outcome, Arc<Scripted>) {
    let p = pipeline::parse(CALC, "calc.toml").expect("pipeline");
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let m = Scripted::new(&lines);
    let out = pipeline::run(&p, &context(m.clone()), &json!({"question": Q}))
        .await
        .expect("run");
    (out, m)
}

#[tokio::test]
async fn each_internal_error_class_re_asks_the_producer_with_the_error() {
    let good = call("calculator", json!({"expr": "3 + 4"}));
    let cases = [
        (
            "hallucinated_tool",
            call("abacus", json!({"expr": "3 + 4"})),
        ),
        ("wrong_tool", call("check", json!({"value": 7}))),
        (
            "bad_argument_keys",
            call("calculator", json!({"expression": "3 + 4"})),
        ),
        (
            "bad_argument_values",
            call("calculator", json!({"expr": "three plus 4"})),
        ),
        ("bad_argument_keys", "I think it is seven.".to_string()),
    ];
    for (class, bad) in cases {
        let (out, m) = run_calc(&[bad.clone(), good.clone()]).await;
        assert_eq!(out.status, Status::Complete, "{class}: {:?}", out.events);
        assert_eq!(out.result, Some(json!("7")), "{class}");
        let reasks: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Reask)
            .collect();
        assert_eq!(reasks.len(), 1, "{class}: {:?}", out.events);
        assert_eq!(reasks[0].class, class);
        assert_eq!(reasks[0].node, "propose");
        assert_eq!(m.calls.load(Ordering::SeqCst), 2);
        // The re-ask shows the model its own output and the error.
        let second = &m.prompts.lock().unwrap()[1];
        let msgs = serde_json::to_string(&second.input).unwrap();
        assert!(msgs.contains("That is not right"), "{msgs}");
        assert!(
            msgs.contains(&serde_json::to_string(&bad).unwrap()[1..20]),
            "{msgs}"
        );
    }
}

#[tokio::test]
async fn an_invented_operand_is_vetoed_before_the_tool_runs() {
    let (out, _) = run_calc(&[
        call("calculator", json!({"expr": "3 + 5"})),
        call("calculator", json!({"expr": "3 + 4"})),
    ])
    .await;
    assert_eq!(out.result, Some(json!("7")));
    let kinds: Vec<_> = out
        .events
        .iter()
        .map(|e| (e.kind, e.node.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [(EventKind::Veto, "calc"), (EventKind::Reask, "propose")]
    );
    assert!(out.events[0].message.contains('5'), "{:?}", out.events[0]);
    // The vetoed call never ran: one tool call in all.
    assert_eq!(out.tool_calls, 1);
}

#[tokio::test]
async fn re_asks_and_calls_stay_within_their_budgets() {
    let bad = call("calculator", json!({"expr": "3 + 9"}));
    let (out, m) = run_calc(&[bad]).await;
    match &out.status {
        Status::Finished { node, reason } => {
            assert_eq!(node, "veto");
            assert!(reason.contains("2 re-asks"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        m.calls.load(Ordering::SeqCst),
        3,
        "one call and two re-asks"
    );
    assert_eq!(out.tool_calls, 0);
    // A call cap below the re-asks stops first.
    let p = pipeline::parse(&CALC.replace("max_calls = 6", "max_calls = 2"), "c.toml").unwrap();
    let m = Scripted::new(&[&call("calculator", json!({"expr": "3 + 9"}))]);
    let out = pipeline::run(&p, &context(m.clone()), &json!({"question": Q}))
        .await
        .unwrap();
    assert_eq!(m.calls.load(Ordering::SeqCst), 2);
    assert!(matches!(&out.status, Status::Finished { reason, .. } if reason.contains("budget")));
}

#[tokio::test]
async fn seeded_fault_injection_routes_every_internal_class() {
    // Many runs, each with a seeded sequence of faults before the right call: every fault is
    // re-asked with its class, never more calls than the cap, and the run ends right when the
    // faults fit in the re-asks and finished otherwise.
    let faults = [
        (
            "hallucinated_tool",
            call("abacus", json!({"expr": "3 + 4"})),
        ),
        ("wrong_tool", call("check", json!({"value": 1}))),
        (
            "bad_argument_keys",
            call("calculator", json!({"x": "3 + 4"})),
        ),
        (
            "bad_argument_values",
            call("calculator", json!({"expr": "seven"})),
        ),
    ];
    let good = call("calculator", json!({"expr": "4 + 3"}));
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..60 {
        let k = (next() % 4) as usize;
        let injected: Vec<usize> = (0..k).map(|_| (next() % 4) as usize).collect();
        let mut script: Vec<String> = injected.iter().map(|&f| faults[f].1.clone()).collect();
        script.push(good.clone());
        let (out, m) = run_calc(&script).await;
        let calls = m.calls.load(Ordering::SeqCst);
        assert!(calls <= 6, "{calls} calls");
        let reasks: Vec<&str> = out
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Reask)
            .map(|e| e.class.as_str())
            .collect();
        let want: Vec<&str> = injected.iter().take(2).map(|&f| faults[f].0).collect();
        assert_eq!(reasks, want, "{injected:?}");
        if k <= 2 {
            assert_eq!(out.status, Status::Complete);
            assert_eq!(out.result, Some(json!("7")));
        } else {
            assert!(
                matches!(out.status, Status::Finished { .. }),
                "{:?}",
                out.status
            );
            assert_eq!(calls, 3);
        }
    }
}

/// A loopback server whose `/fail/N/KIND` fails N times in the KIND way, then answers.
async fn flaky_server() -> (String, Arc<AtomicU32>) {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::any;
    let hits = Arc::new(AtomicU32::new(0));
    async fn handler(
        State(hits): State<Arc<AtomicU32>>,
        Path((n, kind)): Path<(u32, String)>,
    ) -> (StatusCode, String) {
        let seen = hits.fetch_add(1, Ordering::SeqCst);
        if seen >= n {
            return (StatusCode::OK, "{\"ok\": true}".into());
        }
        match kind.as_str() {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                (StatusCode::OK, "late".into())
            }
            "rate" => (StatusCode::TOO_MANY_REQUESTS, "slow down".into()),
            "perm" => (StatusCode::FORBIDDEN, "no".into()),
            "down" => (StatusCode::SERVICE_UNAVAILABLE, "down".into()),
            _ => (StatusCode::NOT_FOUND, "no such thing".into()),
        }
    }
    let app = axum::Router::new()
        .route("/fail/{n}/{kind}", any(handler))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), hits)
}

fn http_pipeline(base: &str, path: &str, policy: &str, retries: u32) -> pipeline::Pipeline {
    let text = format!(
        r#"
name = "fetch"
[limits]
max_retries = {retries}
[tools.api]
kind = "http"
base_url = "{base}"
timeout_s = 0.3
side_effects = false
[[nodes]]
id = "get"
kind = "tool"
tool = "api"
args = {{ path = "{path}" }}
on_external = "{policy}"
"#
    );
    pipeline::parse(&text, "fetch.toml").expect("pipeline")
}

#[tokio::test]
async fn external_failures_retry_then_skip_or_finish() {
    for (kind, class) in [
        ("slow", "timeout"),
        ("rate", "rate_limit"),
        ("perm", "permission"),
        ("down", "connection"),
    ] {
        // Two failures, three retries: the third try succeeds.
        let (base, hits) = flaky_server().await;
        let p = http_pipeline(&base, &format!("/fail/2/{kind}"), "skip", 3);
        let out = pipeline::run(&p, &context(Scripted::new(&[])), &json!({}))
            .await
            .unwrap();
        assert_eq!(out.status, Status::Complete, "{kind}");
        assert_eq!(out.result, Some(json!({"ok": true})), "{kind}");
        let retries: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Retry)
            .collect();
        assert_eq!(retries.len(), 2, "{kind}: {:?}", out.events);
        assert!(
            retries.iter().all(|e| e.class == class),
            "{kind}: {retries:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // More failures than retries: skip, or finish, by policy.
        for (policy, finished) in [("skip", false), ("finish", true)] {
            let (base, hits) = flaky_server().await;
            let p = http_pipeline(&base, &format!("/fail/9/{kind}"), policy, 1);
            let out = pipeline::run(&p, &context(Scripted::new(&[])), &json!({}))
                .await
                .unwrap();
            assert_eq!(hits.load(Ordering::SeqCst), 2, "one try and one retry");
            assert_eq!(
                matches!(out.status, Status::Finished { .. }),
                finished,
                "{policy}"
            );
            assert_eq!(out.skipped.is_empty(), finished, "{policy}");
            assert!(out.result.is_none());
        }
    }
    // A request the server rejects as wrong is internal: nothing upstream to re-ask, so it ends.
    let (base, _) = flaky_server().await;
    let p = http_pipeline(&base, "/fail/9/missing", "skip", 3);
    let out = pipeline::run(&p, &context(Scripted::new(&[])), &json!({}))
        .await
        .unwrap();
    assert!(
        matches!(&out.status, Status::Finished { reason, .. } if reason.contains("bad_argument_values")),
        "{:?}",
        out.status
    );
    assert!(out.events.iter().all(|e| e.kind != EventKind::Retry));
}

fn barrier_pipeline(base: &str, idempotent: bool) -> pipeline::Pipeline {
    let text = format!(
        r#"
name = "report"
[limits]
max_rollbacks = 1
[templates]
sum = "Add 2 and 2 and write the sum as 2 + 2 = N."
[tools.post]
kind = "http"
base_url = "{base}"
timeout_s = 2
[[nodes]]
id = "write"
kind = "llm"
template = "sum"
[[nodes]]
id = "send"
kind = "tool"
tool = "post"
args = {{ path = "/fail/0/ok" }}
after = ["write"]
idempotent = {idempotent}
[[nodes]]
id = "check"
kind = "critic"
critic = "arith"
target = "send"
"#
    );
    pipeline::parse(&text, "report.toml").expect("pipeline")
}

#[tokio::test]
async fn an_after_critic_rolls_back_unless_a_side_effect_would_run_again() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Arc::new(amend::mistakes::SledStore::open(&store_dir.path().join("log")).unwrap());
    // The POST has side effects and is not idempotent: the rollback to `write` is refused.
    let (base, hits) = flaky_server().await;
    let m = Scripted::new(&["2 + 2 = 5", "2 + 2 = 4"]);
    let cx = context(m.clone()).with_mistakes(store.clone());
    let out = pipeline::run(&barrier_pipeline(&base, false), &cx, &json!({}))
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the side effect ran once");
    let kinds: Vec<_> = out.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RollbackRefused]);
    assert!(
        out.events[0].message.contains("side effects"),
        "{:?}",
        out.events
    );
    assert_eq!(out.outputs["write"], json!("2 + 2 = 5"));
    // Declared idempotent: the rollback re-runs `write` with the rationale, then `send`.
    let (base, hits) = flaky_server().await;
    let m = Scripted::new(&["2 + 2 = 5", "2 + 2 = 4"]);
    let cx = context(m.clone()).with_mistakes(store.clone());
    let out = pipeline::run(&barrier_pipeline(&base, true), &cx, &json!({}))
        .await
        .unwrap();
    let kinds: Vec<_> = out
        .events
        .iter()
        .map(|e| (e.kind, e.node.as_str()))
        .collect();
    assert_eq!(kinds, [(EventKind::Rollback, "write")]);
    assert_eq!(out.outputs["write"], json!("2 + 2 = 4"));
    assert_eq!(out.outputs["check"], json!({"accepted": true}));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let second = serde_json::to_string(&m.prompts.lock().unwrap()[1].input).unwrap();
    assert!(
        second.contains("2 + 2 = 5") && second.contains("That is not right"),
        "{second}"
    );
    // Every routed event is in the mistakes store, under the pipeline's name.
    let records = store.list(&Default::default()).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.task == "report"));
    assert!(records
        .iter()
        .any(|r| r.critic.starts_with("rollbackrefused")));
}

#[test]
fn the_shipped_pipelines_load() {
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let p = pipeline::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.nodes.is_empty(), "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "arith-calc and json-extract");
}

#[test]
fn the_cli_checks_a_file_and_names_the_line_of_a_bad_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        CALC.replace("tool = \"calculator\"", "tool = \"abacus\""),
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("amend")
        .unwrap()
        .args(["pipeline", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:25:") && err.contains("abacus"),
        "{err}"
    );
    let out = assert_cmd::Command::cargo_bin("amend")
        .unwrap()
        .args(["pipeline", "check", "--json"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pipelines/arith-calc.toml"
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["propose", "grounded", "calc", "check"]);
}

#[tokio::test]
async fn eval_runs_a_pipeline_on_a_dataset_like_a_strategy() {
    use amend::data::Task;
    use amend::eval::{self, runner};
    let dir = tempfile::tempdir().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gsm8k.jsonl");
    let cfg = eval::Config {
        pipeline: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/arith-calc.toml").into()),
        ..eval::Config::new(
            Task::Gsm8k,
            fixtures,
            amend::strategy::Kind::Baseline,
            amend::model::Spec::Default,
            dir.path().join("run"),
        )
    };
    let plan = runner::prepare(&cfg).unwrap();
    // The model always proposes 3 + 4 (the shipped pipeline prefills the call, so it writes
    // only the expression): right on the first item; a number from nowhere on the others,
    // vetoed before the calculator runs, re-asked, and finished without a result.
    let m = Scripted::new(&["3 + 4\"}}"]);
    let out = runner::execute(&cfg, plan, context(m)).await.unwrap();
    assert_eq!(out.summary.n, 8);
    let results = std::fs::read_to_string(dir.path().join("run/results.jsonl")).unwrap();
    let rows: Vec<Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = rows.iter().find(|r| r["id"] == "0").unwrap();
    assert_eq!(first["correct_after"], true, "{first}");
    assert_eq!(out.summary.accuracy, 1.0 / 8.0);
    let vetoed = rows
        .iter()
        .filter(|r| r["id"] != "0")
        .all(|r| r["correct_after"] == false);
    assert!(vetoed);
    let cfg_text = std::fs::read_to_string(dir.path().join("run/config.json")).unwrap();
    assert!(cfg_text.contains("arith-calc.toml"), "{cfg_text}");
}

#[tokio::test]
async fn a_prefill_pins_the_format_and_stop_and_suffix_close_it() {
    let text = CALC.replace(
        "output = \"tool_call\"",
        "output = \"tool_call\"\nprefill = '{\"tool\": \"calculator\", \"arguments\": {\"expr\": \"'\nstop = ['\"']\nsuffix = '\"}}'",
    );
    let p = pipeline::parse(&text, "calc.toml").expect("pipeline");
    // The model writes only the expression, and then some more after the closing quote.
    let m = Scripted::new(&["3 + 4\" and then it goes on"]);
    let out = pipeline::run(&p, &context(m.clone()), &json!({"question": Q}))
        .await
        .unwrap();
    assert_eq!(out.status, Status::Complete, "{:?}", out.events);
    assert_eq!(out.result, Some(json!("7")));
    assert_eq!(
        out.outputs["propose"],
        json!({"tool": "calculator", "arguments": {"expr": "3 + 4"}})
    );
    let req = &m.prompts.lock().unwrap()[0];
    assert_eq!(
        req.prefill.as_deref(),
        Some("{\"tool\": \"calculator\", \"arguments\": {\"expr\": \"")
    );
    assert_eq!(req.stop, ["\""]);
}

/// The first calculator annotation of a GSM8K-style solution (`<<5-2=3>>` gives `5-2`).
fn first_expr(solution: &str) -> Option<String> {
    let start = solution.find("<<")? + 2;
    let rest = &solution[start..];
    let eq = rest.find('=')?;
    Some(rest[..eq].to_string())
}

#[tokio::test]
async fn a_planted_operand_is_vetoed_before_the_calculator_runs() {
    // Ladder problems (levels 1 and 2); the model proposes each problem's first calculation
    // with one operand replaced by a number the problem does not have. The grounding critic
    // must veto it before the tool runs; the unchanged calculation must pass.
    let mut planted = 0;
    let mut vetoed = 0;
    let mut clean_vetoed = 0;
    let mut clean = 0;
    for level in [1u8, 2] {
        let l = amend::data::ladder::Level::new(level).unwrap();
        for p in amend::data::ladder::generate(25, &l, 4242) {
            let expr = first_expr(&p.answer).unwrap();
            let op = expr.find(['+', '-', '*', '/']).unwrap();
            let absent = (37..200)
                .find(|n| !p.question.contains(&n.to_string()) && !expr.contains(&n.to_string()))
                .unwrap();
            let bad = format!("{} {} {}", absent, &expr[op..=op], &expr[op + 1..]);
            for (e, is_bad) in [(bad, true), (expr.clone(), false)] {
                let (out, _) = {
                    let pl = pipeline::parse(CALC, "calc.toml").unwrap();
                    let m = Scripted::new(&[&call("calculator", json!({"expr": e}))]);
                    let o =
                        pipeline::run(&pl, &context(m.clone()), &json!({"question": p.question}))
                            .await
                            .unwrap();
                    (o, m)
                };
                let first_veto = out
                    .events
                    .first()
                    .is_some_and(|ev| ev.kind == EventKind::Veto);
                match is_bad {
                    true => {
                        planted += 1;
                        vetoed += usize::from(first_veto);
                        // A vetoed call never reaches the tool.
                        assert!(!first_veto || out.tool_calls == 0, "{e}: {:?}", out.events);
                    }
                    false => {
                        clean += 1;
                        clean_vetoed += usize::from(first_veto);
                    }
                }
            }
        }
    }
    eprintln!(
        "planted operands vetoed: {vetoed}/{planted}; clean calls vetoed: {clean_vetoed}/{clean}"
    );
    assert!(vetoed * 100 >= planted * 95, "{vetoed}/{planted} vetoed");
    assert_eq!(clean_vetoed, 0, "a grounded call was vetoed");
}

#[tokio::test]
async fn json_extract_re_asks_on_schema_violations_and_is_scored_against_gold() {
    let p = pipeline::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/json-extract.toml"
    )))
    .unwrap();
    let order = amend::data::orders::generate(1, 3).remove(0);
    let gold = serde_json::to_value(&order.gold).unwrap();
    let good = gold.clone();
    // First a record without the city and with the quantity as a word, then the right one.
    let mut bad = gold.clone();
    bad.as_object_mut().unwrap().remove("city");
    bad["quantity"] = json!("many");
    let m = Scripted::new(&[&format!("Sure: {bad}"), &good.to_string()]);
    let out = pipeline::run(&p, &context(m.clone()), &json!({"text": order.text}))
        .await
        .unwrap();
    assert_eq!(out.status, Status::Complete, "{:?}", out.events);
    let reask = &out.events[0];
    assert_eq!(
        (reask.kind, reask.class.as_str()),
        (EventKind::Reask, "bad_argument_values")
    );
    assert!(
        reask.message.contains("city") && reask.message.contains("/quantity"),
        "{reask:?}"
    );
    let s = pipeline::score::score([(&out, &gold)]);
    assert_eq!((s.n, s.valid, s.all_fields), (1, 1, 1));
    assert_eq!(s.reasks_per_run, 1.0);
    // A wrong field is counted as wrong.
    let mut off = gold.clone();
    off["city"] = json!("Atlantis");
    let s = pipeline::score::score([(&out, &off)]);
    assert_eq!((s.valid, s.all_fields, s.field_matches["city"]), (1, 0, 0));
}

#[tokio::test]
async fn injected_faults_are_routed_by_class_and_the_corrections_counted() {
    let p = pipeline::parse(CALC, "calc.toml").expect("pipeline");
    let inputs: Vec<Value> = (0..3).map(|_| json!({"question": Q, "gold": 7})).collect();
    // A model that answers right when asked: every fault is re-asked with its own class,
    // and every re-ask corrects it.
    let good = Scripted::new(&[&call("calculator", json!({"expr": "3 + 4"}))]);
    let r = pipeline::faults::run(&p, &context(good.clone()), &inputs, "propose", 3)
        .await
        .expect("faults");
    let classes: Vec<&str> = r.rows.iter().map(|row| row.class.as_str()).collect();
    assert_eq!(
        classes,
        [
            "none",
            "hallucinated_tool",
            "wrong_tool",
            "bad_argument_keys",
            "bad_argument_values"
        ]
    );
    for row in &r.rows {
        assert_eq!((row.runs, row.completed, row.right), (3, 3, 3), "{row:?}");
        assert_eq!(
            row.routed,
            if row.class == "none" { 0 } else { 3 },
            "{row:?}"
        );
        assert_eq!(row.over_budget, 0);
        // The fault is not a model call: each faulty run makes one (the re-ask).
        assert!((row.calls_per_run - 1.0).abs() < 1e-9, "{row:?}");
    }
    assert_eq!(good.calls.load(Ordering::SeqCst), 15);
    // A model that never corrects: routed every time, never completed, within budget.
    let stubborn = Scripted::new(&[&call("calculator", json!({"x": "3 + 4"}))]);
    let r = pipeline::faults::run(&p, &context(stubborn), &inputs[..1], "propose", 2)
        .await
        .expect("faults");
    for row in r.rows.iter().skip(1) {
        assert_eq!((row.runs, row.routed, row.completed), (1, 1, 0), "{row:?}");
        assert_eq!(row.over_budget, 0);
    }
    // Faults go only into a node whose call a tool takes.
    let err = pipeline::faults::run(&p, &context(Scripted::new(&[""])), &inputs, "calc", 1)
        .await
        .expect_err("not an llm node");
    assert!(err.to_string().contains("llm"), "{err}");
}

#[tokio::test]
async fn a_pipeline_with_one_tool_gets_no_wrong_tool_fault() {
    let one_tool = CALC.replace(
        "[tools.check]\nkind = \"json_schema\"\nschema = { type = \"object\" }\n",
        "",
    );
    let p = pipeline::parse(&one_tool, "calc.toml").expect("pipeline");
    let classes: Vec<String> = pipeline::faults::faults_for(&p, "propose")
        .expect("faults")
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        classes,
        [
            "hallucinated_tool",
            "bad_argument_keys",
            "bad_argument_values"
        ]
    );
}

#[tokio::test]
async fn an_input_carried_planted_call_is_vetoed_then_re_asked() {
    let p = pipeline::parse(CALC, "calc.toml").expect("pipeline");
    let planted = call("calculator", json!({"expr": "3 + 9"})); // 9 is not in the question
    let inputs: Vec<Value> = (0..2)
        .map(|_| json!({"question": Q, "gold": 7, "fault": planted}))
        .collect();
    let good = Scripted::new(&[&call("calculator", json!({"expr": "3 + 4"}))]);
    let r = pipeline::faults::run(&p, &context(good), &inputs, "propose", 2)
        .await
        .expect("faults");
    let row = r
        .rows
        .iter()
        .find(|row| row.class == pipeline::faults::PLANTED)
        .expect("planted row");
    assert_eq!(
        (row.runs, row.routed, row.completed, row.right),
        (2, 2, 2, 2),
        "{row:?}"
    );
}
