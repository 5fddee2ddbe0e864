//! The `amend` binary end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use assert_cmd::Command;

fn amend() -> Command {
    let mut c = Command::cargo_bin("amend").expect("binary");
    c.env_remove("AMEND_MODEL")
        .env_remove("AMEND_BASE_URL")
        .env_remove("AMEND_MISTAKES")
        .env("AMEND_LOG", common::scratch_log());
    c
}

#[cfg(feature = "local")]
fn model_arg() -> String {
    common::model_path().display().to_string()
}

#[cfg(feature = "local")]
#[test]
fn solve_prints_json_and_writes_a_trace_that_trace_show_reads() {
    let dir = tempfile::tempdir().expect("tmp");
    let trace = dir.path().join("t.jsonl");
    let out = amend()
        .args([
            "solve",
            "Tom has 3 apples and buys 4 more. How many apples does he have?",
            "--json",
            "--strategy",
            "baseline",
        ])
        .args(["--model", &model_arg(), "--max-tokens", "96", "--trace"])
        .arg(&trace)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["solution"]["strategy"], "baseline");
    assert!(v["solution"]["attempts"][0]["text"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(v["solution"]["usage"]["generated_tokens"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert_eq!(v["trace"].as_str(), Some(trace.to_str().expect("utf8")));

    let events = amend::trace::read(&trace).expect("trace parses");
    assert_eq!(events[0].kind, "header");
    assert_eq!(events[0].data["schema"], 1);
    assert!(events.iter().any(|e| e.kind == "call"));
    assert!(events.iter().any(|e| e.kind == "solve"));
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));

    let show = amend()
        .args(["trace", "show"])
        .arg(&trace)
        .output()
        .expect("show");
    assert!(show.status.success());
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("total: 1 calls"), "{text}");

    let show = amend()
        .args(["trace", "show", "--json"])
        .arg(&trace)
        .output()
        .expect("show json");
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(v["summary"]["usage"]["calls"], 1);
}

#[cfg(feature = "local")]
#[test]
fn solve_without_a_strategy_runs_the_recommended_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = amend()
        .args([
            "solve",
            "Ana has 7 shells and finds 5 more. How many shells does she have?",
            "--json",
        ])
        .args(["--model", &model_arg(), "--max-tokens", "96", "--no-log"])
        .arg("--trace")
        .arg(dir.path().join("t.jsonl"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let rec = amend::strategy::recommended();
    assert_eq!(v["solution"]["strategy"], rec.kind.as_str());
}

#[cfg(feature = "local")]
#[test]
fn demo_draws_its_problems_from_the_generator_and_counts_before_and_after() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = amend()
        .args([
            "demo",
            "--problems",
            "1",
            "--seed",
            "5",
            "--json",
            "--no-log",
        ])
        .args(["--model", &model_arg(), "--trace"])
        .arg(dir.path().join("t.jsonl"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let level = amend::data::ladder::Level::new(1).expect("level 1");
    let drawn = amend::data::ladder::generate(1, &level, 5);
    let rows = v["problems"].as_array().expect("problems");
    assert_eq!(rows.len(), 1);
    for (row, p) in rows.iter().zip(&drawn) {
        assert_eq!(row["question"].as_str(), Some(p.question.as_str()));
        let (_, gold) = amend::data::split_gsm8k_answer(&p.answer).expect("gold");
        assert_eq!(row["expected"].as_str(), Some(gold.as_str()));
    }
    let count = |k: &str| rows.iter().filter(|r| r[k] == true).count() as u64;
    assert_eq!(v["right_before"].as_u64(), Some(count("right_before")));
    assert_eq!(v["right"].as_u64(), Some(count("right")));
    assert_eq!(v["strategy"], amend::strategy::recommended().describe());
}

#[cfg(feature = "local")]
#[test]
fn model_info_reads_the_gguf() {
    let out = amend()
        .args(["model", "info", &model_arg(), "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["capabilities"]["kv_prefix_reuse"], true);
    assert_eq!(v["file"]["n_embd"], 576);
    assert!(v["file"]["chat_template"]
        .as_str()
        .is_some_and(|t| t.contains("im_start")));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let out = amend()
        .args(["solve", "1+1?", "--model", "/nonexistent/m.gguf"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model file not found: /nonexistent/m.gguf"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let out = amend()
        .args(["solve", "1+1?", "--model", "hf:only-owner"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid model spec"), "{err}");

    let out = amend()
        .args(["solve", "1+1?", "--model", "openai:gpt"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--base-url"), "{err}");

    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("solve.tera"), "{{ broken").expect("write");
    let out = amend()
        .args(["solve", "1+1?", "--prompts"])
        .arg(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("solve.tera") && err.contains("invalid"),
        "{err}"
    );

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"header\"}\nnot json\n").expect("write");
    let out = amend()
        .args(["trace", "show"])
        .arg(&bad)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") || err.contains("line 2"), "{err}");
}

#[test]
fn hf_specs_fail_clearly_when_offline() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = amend()
        .args(["model", "info", "hf:nobody-here/no-repo/model.gguf"])
        .env("HF_HOME", dir.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hf:nobody-here/no-repo/model.gguf") && err.contains("offline"),
        "{err}"
    );
}

#[test]
fn no_log_wins_over_the_log_in_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let out = amend()
        .env("AMEND_LOG", &log)
        .args(["eval", "--no-log", "--task", "gsm8k", "--data"])
        .arg(dir.path().join("missing.jsonl"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("missing.jsonl"), "{err}");
    assert!(!err.contains("cannot be used with"), "{err}");
    assert!(!log.exists(), "--no-log opened the log");
}

#[cfg(feature = "local")]
#[test]
fn critic_model_runs_the_critics_on_another_model() {
    // The generator is the local model; the critic is the real OpenAI-compatible server.
    let server = common::Server::start();
    let dir = tempfile::tempdir().expect("tmp");
    let trace = dir.path().join("t.jsonl");
    let out = amend()
        .args([
            "solve",
            "A box holds 6 eggs. How many eggs are in 5 boxes?",
            "--json",
            "--strategy",
            "backtrack",
            "--critic",
            "llm",
            "--critic-model",
            "openai:smollm2",
            "--critic-base-url",
            &server.base_url,
            "--max-tokens",
            "64",
            "--threads",
            "1",
        ])
        .args(["--model", &model_arg(), "--trace"])
        .arg(&trace)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = amend::model::fingerprint(&common::model_path())
        .expect("fingerprint")
        .key;
    let api = format!("openai:smollm2@{}", server.base_url);
    let events = amend::trace::read(&trace).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    let by = |model: &str| -> Vec<&amend::trace::Event> {
        calls
            .iter()
            .copied()
            .filter(|e| e.data["model"] == model)
            .collect()
    };
    let (generator, critic) = (by(&local), by(&api));
    assert_eq!(
        generator.len() + critic.len(),
        calls.len(),
        "every call went to one of the two models"
    );
    assert!(
        !generator.is_empty(),
        "the first attempt is the local model's"
    );
    assert!(!critic.is_empty(), "the critic was asked on the server");
    for c in &critic {
        assert!(
            c.data["request"]["input"]
                .to_string()
                .contains("proposed solution"),
            "only critiques go to the critic model: {}",
            c.data["request"]
        );
    }
    for g in &generator {
        assert!(!g.data["request"]["input"]
            .to_string()
            .contains("proposed solution"));
    }
}

#[test]
fn library_errors_are_printed_as_this_clis_flags() {
    // Backtracking without a critic fails before any model is loaded.
    let out = amend()
        .args(["solve", "2 + 2?", "--strategy", "backtrack"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`--critic` is needed by backtrack"), "{err}");
    let out = amend()
        .args([
            "solve",
            "2 + 2?",
            "--strategy",
            "self-consistency",
            "--samples",
            "0",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`--samples` must be at least 1"), "{err}");
}
