//! The evaluation harness: metrics on known outcomes, malformed data, resume after a kill, and
//! concurrency against the real OpenAI-compatible server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::path::{Path, PathBuf};

use amend::eval::metrics::summarize;
use amend::eval::runner::read_results;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn close(a: f64, b: f64) -> bool {
    // Hand-computed figures are given to six places.
    (a - b).abs() < 1e-6
}

#[test]
fn metrics_match_hand_computed_values() {
    let rs = read_results(&fixture("results_answers.jsonl")).expect("fixture");
    let s = summarize(&rs);
    assert_eq!(s.n, 10);
    assert_eq!(
        (
            s.flips.right_to_right,
            s.flips.right_to_wrong,
            s.flips.wrong_to_right,
            s.flips.wrong_to_wrong
        ),
        (4, 1, 2, 3)
    );
    assert!(close(s.accuracy_before, 0.5) && close(s.accuracy, 0.6));
    assert!(close(s.cl.unwrap_or(-1.0), 0.8));
    assert!(close(s.cs.unwrap_or(-1.0), 0.4));
    assert!(close(s.rss.unwrap_or(-1.0), 0.2));
    // Acc2 = Acc1·CL + (1 − Acc1)·CS
    assert!(close(s.accuracy, 0.5 * 0.8 + 0.5 * 0.4));
    // Wilson 95% of 6/10 and 5/10 (hand-computed: centre (p + z²/2n)/(1 + z²/n), half-width
    // z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n), z = 1.959964).
    assert!(close(s.accuracy_ci.lo, 0.312674) && close(s.accuracy_ci.hi, 0.831820));
    assert!(close(s.accuracy_before_ci.lo, 0.236593) && close(s.accuracy_before_ci.hi, 0.763407));
    // 2 gained, 1 lost: exact McNemar p = 2·(C(3,0) + C(3,1))/2³ = 1.
    assert!(close(s.mcnemar_p, 1.0));
    assert_eq!(s.verdict, amend::stats::Verdict::NoSignificantDifference);
    assert_eq!(s.accuracy_by_turn.len(), 2);
    let (t1, t2) = (s.accuracy_by_turn[0], s.accuracy_by_turn[1]);
    assert!(close(t1.m1, 0.5) && close(t1.p1, 0.5) && close(t1.majority, 0.5));
    assert!(close(t2.m1, 0.6) && close(t2.p1, 0.7) && close(t2.majority, 0.6));
    assert_eq!(
        (
            s.usage.prompt_tokens,
            s.usage.reused_tokens,
            s.usage.generated_tokens
        ),
        (1000, 400, 500)
    );
    assert_eq!(s.usage.calls, 20);
    assert!(close(s.usage.tokens_per_item, 110.0));
    assert!(close(s.usage.tokens_per_fixed_answer.unwrap_or(0.0), 550.0));

    let pb = summarize(&read_results(&fixture("results_processbench.jsonl")).expect("fixture"));
    assert!(close(pb.error_acc.unwrap_or(-1.0), 1.0 / 3.0));
    assert!(close(pb.correct_acc.unwrap_or(-1.0), 1.0 / 3.0));
    assert!(close(pb.f1.unwrap_or(-1.0), 1.0 / 3.0));
    assert_eq!(pb.unparsed, Some(2));
}

fn amend() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_amend"));
    c.env_remove("AMEND_MODEL")
        .env_remove("AMEND_BASE_URL")
        .env("AMEND_LOG", common::scratch_log());
    c
}

#[test]
fn malformed_lines_give_the_documented_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = amend()
        .args([
            "eval",
            "--task",
            "gsm8k",
            "--model",
            "/nonexistent.gguf",
            "--data",
        ])
        .arg(fixture("gsm8k_bad.jsonl"))
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gsm8k_bad.jsonl, line 2") && err.contains("--skip-bad"),
        "{err}"
    );

    let loaded = amend::data::load(amend::eval::Task::Gsm8k, &fixture("gsm8k_bad.jsonl"), true)
        .expect("skip");
    assert_eq!(loaded.items.len(), 2);
    assert_eq!(loaded.skipped.len(), 2);
    assert!(loaded.skipped[1].contains("line 4"));

    let bad_pb = dir.path().join("pb.json");
    std::fs::write(&bad_pb, r#"[{"problem": "p", "steps": ["a"], "label": 0}, {"problem": "p", "steps": ["a"], "label": 3}]"#)
        .expect("write");
    let err =
        amend::data::load(amend::eval::Task::Processbench, &bad_pb, false).expect_err("bad label");
    assert!(
        err.to_string().contains("record 1") && err.to_string().contains("label 3"),
        "{err}"
    );
}

#[cfg(feature = "local")]
#[test]
fn processbench_with_the_gold_critic_scores_perfectly() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("pb");
    let out = amend()
        .args([
            "eval",
            "--task",
            "processbench",
            "--critic",
            "gold",
            "--json",
            "--model",
        ])
        .arg(common::model_path())
        .arg("--data")
        .arg(fixture("processbench.json"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s["n"], 6);
    assert_eq!(s["f1"], 1.0);
    assert_eq!(s["unparsed"], 0);
    for f in [
        "results.jsonl",
        "summary.json",
        "report.md",
        "report.html",
        "config.json",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
}

#[cfg(feature = "local")]
#[test]
fn resume_after_a_kill_loses_nothing_and_redoes_nothing() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("run");
    let args = |c: &mut std::process::Command| {
        c.args([
            "eval",
            "--task",
            "gsm8k",
            "--max-tokens",
            "48",
            "--json",
            "--model",
        ])
        .arg(common::model_path())
        .arg("--data")
        .arg(fixture("gsm8k.jsonl"))
        .arg("--out")
        .arg(&out_dir);
    };
    let mut cmd = amend();
    args(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let results = out_dir.join("results.jsonl");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = std::fs::read_to_string(&results)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no results after 300 s");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let before = read_results(&results).expect("read after kill");
    assert!(
        before.len() >= 2 && before.len() < 8,
        "{} results at kill time",
        before.len()
    );

    let mut cmd = amend();
    args(&mut cmd);
    let out = cmd.output().expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = read_results(&results).expect("read after resume");
    let mut ids: Vec<&str> = after.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every item exactly once");
    assert_eq!(after.len(), 8);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "finished results kept as they were"
    );
    // The resumed run traced only the items it still had to do.
    let traces: Vec<_> = std::fs::read_dir(out_dir.join("traces"))
        .expect("traces")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(traces.len(), 2, "one trace per invocation");
    let item_events: Vec<usize> = traces
        .iter()
        .map(|t| {
            amend::trace::read(&t.path())
                .expect("trace")
                .iter()
                .filter(|e| e.kind == "item")
                .count()
        })
        .collect();
    assert!(
        item_events.contains(&(8 - before.len())),
        "{item_events:?} vs {} done before",
        before.len()
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s["n"], 8);

    // Results decoded with prefix reuse are not mixed with results decoded without it.
    let mut cmd = amend();
    args(&mut cmd);
    let out = cmd
        .arg("--no-prefix-reuse")
        .output()
        .expect("mismatched rerun");
    assert!(
        !out.status.success(),
        "a rerun without prefix reuse was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prefix_reuse"), "{err}");
    assert_eq!(read_results(&results).expect("read").len(), 8);
}

#[test]
fn api_eval_runs_at_the_configured_concurrency() {
    let server = common::Server::start();
    let dir = tempfile::tempdir().expect("tmp");
    let overlap = |jobs: &str, name: &str| -> usize {
        let out_dir = dir.path().join(name);
        let out = amend()
            .args([
                "eval",
                "--task",
                "gsm8k",
                "--strategy",
                "baseline",
                "--max-tokens",
                "24",
                "--json",
            ])
            .args([
                "--model",
                "openai:smollm2",
                "--base-url",
                &server.base_url,
                "--jobs",
                jobs,
                "--limit",
                "6",
            ])
            .arg("--data")
            .arg(fixture("gsm8k.jsonl"))
            .arg("--out")
            .arg(&out_dir)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = std::fs::read_dir(out_dir.join("traces"))
            .expect("dir")
            .filter_map(Result::ok)
            .next()
            .expect("trace");
        let calls: Vec<(f64, f64)> = amend::trace::read(&trace.path())
            .expect("read")
            .iter()
            .filter(|e| e.kind == "call")
            .map(|e| {
                let start = e.data["start_ms"].as_f64().expect("start_ms");
                (start, start + e.data["wall_ms"].as_f64().expect("wall_ms"))
            })
            .collect();
        assert_eq!(calls.len(), 6);
        // The most calls in flight at any call's start.
        calls
            .iter()
            .map(|(s, _)| calls.iter().filter(|(a, b)| a <= s && s < b).count())
            .max()
            .unwrap_or(0)
    };
    assert_eq!(overlap("1", "seq"), 1, "--jobs 1 never overlaps");
    let par = overlap("3", "par");
    assert!((2..=3).contains(&par), "--jobs 3 overlapped {par} requests");
}

#[cfg(feature = "local")]
fn run_eval(out_dir: &Path, extra: &[&str], data: &str, task: &str) -> serde_json::Value {
    let out = amend()
        .args([
            "eval",
            "--task",
            task,
            "--max-tokens",
            "32",
            "--json",
            "--threads",
            "1",
            "--model",
        ])
        .arg(common::model_path())
        .arg("--data")
        .arg(fixture(data))
        .arg("--out")
        .arg(out_dir)
        .args(extra)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json summary")
}

#[cfg(feature = "local")]
#[test]
fn bbmistake_runs_report_the_prior_breakdown() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = run_eval(&dir.path().join("bb"), &[], "bbmistake.jsonl", "bbmistake");
    assert_eq!(s["n"], 4);
    // Traces 0 and 2 were right before (their own answer matches the target), 1 and 3 wrong.
    assert_eq!(s["by_prior"]["right_before"]["n"], 2);
    assert_eq!(s["by_prior"]["wrong_before"]["n"], 2);
    assert_eq!(s["accuracy_before"], 0.5);
}

#[cfg(feature = "local")]
#[test]
fn few_shot_completion_prompts_carry_the_worked_examples() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("fs");
    let s = run_eval(
        &out_dir,
        &[
            "--shots",
            "2",
            "--fewshot",
            fixture("gsm8k.jsonl").to_str().expect("utf8"),
            "--format",
            "completion",
            "--offset",
            "6",
            "--strategy",
            "baseline",
        ],
        "gsm8k.jsonl",
        "gsm8k",
    );
    assert_eq!(s["n"], 2);
    let trace = std::fs::read_dir(out_dir.join("traces"))
        .expect("dir")
        .filter_map(Result::ok)
        .next()
        .expect("trace");
    let events = amend::trace::read(&trace.path()).expect("read");
    let call = events.iter().find(|e| e.kind == "call").expect("a call");
    assert_eq!(call.data["request"]["input"]["type"], "raw");
    let prompt = call.data["request"]["input"]["value"]
        .as_str()
        .unwrap_or("");
    assert_eq!(
        prompt.matches("Question:").count(),
        3,
        "two worked examples and the question: {prompt}"
    );
    assert!(
        prompt.contains("The answer is 7.") && !prompt.contains("<<"),
        "{prompt}"
    );

    let err = amend()
        .args([
            "eval",
            "--task",
            "gsm8k",
            "--shots",
            "2",
            "--model",
            "/nonexistent.gguf",
            "--data",
        ])
        .arg(fixture("gsm8k.jsonl"))
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&err.stderr).contains("--fewshot"));
}

#[cfg(feature = "local")]
#[test]
fn eval_runs_log_their_located_mistakes_tagged_with_the_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let out_dir = dir.path().join("bb");
    let log_arg = log.to_str().expect("utf8").to_string();
    let s = run_eval(
        &out_dir,
        &[
            "--strategy",
            "backtrack",
            "--critic",
            "gold",
            "--log",
            &log_arg,
        ],
        "bbmistake.jsonl",
        "bbmistake",
    );
    assert_eq!(s["n"], 4);
    let out = amend()
        .args(["mistakes", "list", "--json", "--log", &log_arg])
        .output()
        .expect("list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<amend::mistakes::Mistake> = serde_json::from_slice(&out.stdout).expect("records");
    // Two fixture traces carry a labelled mistake (steps 0 and 1); the gold critic locates both.
    let mut steps: Vec<Option<usize>> = recs.iter().map(|m| m.step).collect();
    steps.sort();
    assert_eq!(steps, vec![Some(0), Some(1)]);
    let traces = std::fs::read_dir(out_dir.join("traces"))
        .expect("traces")
        .filter_map(Result::ok)
        .next()
        .expect("a trace")
        .path();
    let run = amend::trace::read(&traces).expect("trace")[0]
        .run_id
        .clone();
    let results =
        amend::eval::runner::read_results(&out_dir.join("results.jsonl")).expect("results");
    use amend::mistakes::Outcome;
    for m in &recs {
        assert_eq!((m.task.as_str(), m.critic.as_str()), ("bbmistake", "gold"));
        assert_eq!(m.run.as_deref(), Some(run.as_str()));
        assert!(m.trace.as_deref().is_some_and(|t| t.contains('#')));
        assert!(m.reference.is_some());
        assert_ne!(
            m.outcome,
            Outcome::Unverified,
            "the eval knows the reference"
        );
    }
    // Outcomes agree with the graded results: fixed = wrong before and right after.
    let count = |o: Outcome| recs.iter().filter(|m| m.outcome == o).count();
    let fixed = results
        .iter()
        .filter(|r| !r.correct_before && r.correct_after)
        .count();
    let worse = results
        .iter()
        .filter(|r| r.correct_before && !r.correct_after)
        .count();
    assert_eq!(
        (count(Outcome::Fixed), count(Outcome::MadeWorse)),
        (fixed, worse)
    );
    // The run keeps its trace (compressed); the report lists every wrong or changed item,
    // expandable in place to its question, attempts and located step, each linked to a trace
    // file that exists.
    assert!(
        traces.to_string_lossy().ends_with(".jsonl.gz"),
        "{}",
        traces.display()
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report");
    for r in results
        .iter()
        .filter(|r| !r.correct_after || r.correct_before != r.correct_after)
    {
        assert!(
            html.contains(&format!("<summary><code>{}</code>", r.id)),
            "{html}"
        );
        assert!(r.question.as_deref().is_some_and(|q| !q.is_empty()));
        assert!(!r.attempts.is_empty());
        for l in &r.located {
            assert!(html.contains(&format!("<b>Located</b>: step {}", l.step)));
        }
    }
    let links: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(!links.is_empty());
    for l in links {
        // The HTML escapes `/` in attributes; a browser reads `&#x2F;` as `/`.
        let l = l.replace("&#x2F;", "/");
        let file = l.split('#').next().unwrap_or(&l);
        assert!(out_dir.join(file).is_file(), "dead link {l}");
    }
}

#[cfg(feature = "local")]
#[test]
fn a_run_directory_from_before_model_identities_resumes_and_is_migrated() {
    // `config.json` as amend wrote it before model identities: the model named by its spec,
    // the older strategy options (`until_accepted`, `verifier`).
    let dir = tempfile::tempdir().expect("tmp");
    let data = fixture("gsm8k.jsonl");
    let old_config = |out: &Path, model: &str| {
        let options = serde_json::json!({"budget": {"max_calls": null, "max_tokens_total": null},
            "critic": null, "critic_votes": 1, "max_backtracks": 1, "rise_mode": "majority",
            "samples": 5, "temperature": 0.7, "turns": 5, "until_accepted": false,
            "verifier": null, "window": 2});
        let identity = serde_json::json!({"critic": null, "data": data, "fewshot": null,
            "format": "chat", "max_tokens": 48, "model": model, "options": options,
            "principles": null, "principles_level": "high", "shots": 0, "shuffle": null,
            "strategy": "baseline", "task": "gsm8k"});
        let config = serde_json::json!({"concurrency": 1, "critic": null, "data": data,
            "fewshot": null, "format": "chat", "limit": 2, "max_tokens": 48, "model": model,
            "offset": 0, "options": options, "out": out, "principles": null,
            "principles_level": "high", "prefix_reuse": true, "shots": 0, "shuffle": null,
            "skip_bad": false, "strategy": "baseline", "task": "gsm8k"});
        std::fs::create_dir_all(out).expect("dir");
        std::fs::write(
            out.join("config.json"),
            serde_json::to_vec_pretty(&serde_json::json!({"config": config, "identity": identity}))
                .expect("json"),
        )
        .expect("write");
        let line = |id: &str| {
            format!(
                "{{\"id\":\"{id}\",\"gold\":\"1\",\"answers\":[\"1\"],\"correct_by_turn\":[true],\"final_answer\":\"1\",\"correct_before\":true,\"correct_after\":true,\"predicted_step\":null,\"label\":null,\"prior_right\":null,\"usage\":{{\"prompt_tokens\":9,\"generated_tokens\":9,\"reused_tokens\":0,\"calls\":1,\"infra_retries\":0}},\"wall_s\":1.0,\"trace\":\"/gone/traces/r.jsonl#1\",\"error\":null}}\n"
            )
        };
        // Item 1 is wrong, so the report lists it.
        std::fs::write(
            out.join("results.jsonl"),
            line("0") + &line("1").replace("true", "false"),
        )
        .expect("write");
    };
    let spec = common::model_path().display().to_string();
    let run = |out: &Path, model: &str| {
        amend()
            .args([
                "eval",
                "--task",
                "gsm8k",
                "--limit",
                "2",
                "--max-tokens",
                "48",
                "--json",
                // The old run was one greedy pass (not today's default strategy).
                "--strategy",
                "baseline",
            ])
            .args(["--threads", "1", "--model", model, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .output()
            .expect("run")
    };
    let same = dir.path().join("same");
    old_config(&same, &spec);
    let out = run(&same, &spec);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(s["n"], 2);
    assert_eq!(s["accuracy"], 0.5, "both items resumed as they were");
    assert_eq!(
        read_results(&same.join("results.jsonl"))
            .expect("read")
            .len(),
        2,
        "nothing redone"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(same.join("config.json")).expect("config"))
            .expect("json");
    let key = amend::model::fingerprint(&common::model_path())
        .expect("fingerprint")
        .key;
    assert_eq!(
        doc["identity"]["model"],
        key.as_str(),
        "migrated to the model's identity"
    );
    // Resumed again under the new identity, and from a copy of the file at another path.
    let copy = dir.path().join("copy.gguf");
    std::fs::copy(common::model_path(), &copy).expect("copy");
    let out = run(&same, copy.to_str().expect("utf8"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report says that traces of these old results were not kept, instead of a dead link.
    let md = std::fs::read_to_string(same.join("report.md")).expect("report");
    assert!(md.contains("`1`") && !md.contains("/gone/"), "{md}");
    assert!(md.contains("traces were not kept"), "{md}");

    // An old directory of another model is refused, and nothing recorded is lost.
    let other = dir.path().join("other");
    old_config(&other, "models/another.gguf");
    let out = run(&other, &spec);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another configuration"));
    assert_eq!(
        read_results(&other.join("results.jsonl"))
            .expect("read")
            .len(),
        2
    );
}

#[test]
fn summaries_reports_and_comparisons_carry_intervals_and_mcnemar() {
    // Two fixture runs on the same ten items: A (a strategy: 5 right before, 6 after) and B
    // (one pass: 8 right). Re-reported and compared by the real binary; the outputs are
    // snapshot-tested and the key figures checked against hand-computed values.
    let dir = tempfile::tempdir().expect("tmp");
    let mut outs = Vec::new();
    for run in ["run-a", "run-b"] {
        let to = dir.path().join(run);
        std::fs::create_dir_all(&to).expect("dir");
        for f in ["config.json", "results.jsonl"] {
            std::fs::copy(fixture(run).join(f), to.join(f)).expect("copy");
        }
        let out = amend()
            .args(["eval", "report", "--json"])
            .arg(&to)
            .output()
            .expect("report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outs.push(to);
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outs[0].join("summary.json")).expect("summary"))
            .expect("json");
    // One of ten questions mentions the answer as one of its two numbers: floor 0.5/10.
    assert!(close(
        summary["chance_floor"].as_f64().unwrap_or(-1.0),
        0.05
    ));
    assert!(close(summary["mcnemar_p"].as_f64().unwrap_or(-1.0), 1.0));
    assert_eq!(summary["verdict"], "no_significant_difference");
    insta::assert_json_snapshot!("fixture_summary", summary);
    let md = std::fs::read_to_string(outs[0].join("report.md")).expect("report");
    assert!(
        md.contains("| accuracy (final) | 60.0% | [31.3%, 83.2%] |"),
        "{md}"
    );
    assert!(
        md.contains("no significant difference (McNemar p = 1.000)"),
        "{md}"
    );
    insta::assert_snapshot!("fixture_report_md", md);
    let html = std::fs::read_to_string(outs[0].join("report.html")).expect("report");
    assert!(html.contains("60.0% [31.3%, 83.2%]"));

    let out = amend()
        .args(["eval", "compare"])
        .args(&outs)
        .output()
        .expect("compare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).replace(&*dir.path().to_string_lossy(), "TMP");
    // A right only on q3, B right only on q4, q7, q8: p = 2·(C(4,0) + C(4,1))/2⁴ = 0.625.
    assert!(
        text.contains("| 1 | 3 | 0.625 | no significant difference |"),
        "{text}"
    );
    insta::assert_snapshot!("fixture_compare_md", text);
    let out = amend()
        .args(["eval", "compare", "--json"])
        .args(&outs)
        .output()
        .expect("compare");
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            c["pairs"][0]["a_only"].as_u64(),
            c["pairs"][0]["b_only"].as_u64()
        ),
        (Some(1), Some(3))
    );
    assert!(close(c["pairs"][0]["p"].as_f64().unwrap_or(-1.0), 0.625));
}
