//! `amend serve` driven by the official OpenAI Python client (tests/fixtures/serve_client.py, in
//! the venv `scripts/setup server` makes), against the real binary over the local default model
//! and over llama-cpp-python's server as the upstream (async-openai, the Rust client:
//! tests/serve_async_openai.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use std::path::PathBuf;

use common::served::{all_text, Served};

/// The venv's Python with the official `openai` client (scripts/setup server makes it).
fn client_python() -> PathBuf {
    let p = std::env::var_os("AMEND_TEST_PYTHON").map_or_else(
        || {
            let venv = std::env::var_os("AMEND_VENV").map_or_else(
                || dirs::home_dir().unwrap().join(".amend/venv"),
                PathBuf::from,
            );
            venv.join("bin/python")
        },
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "the openai client's venv is missing ({}): run scripts/setup server",
        p.display()
    );
    p
}

fn run_client(base_url: &str, key: &str, mode: &str, env: &[(&str, &str)]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/serve_client.py");
    let out = std::process::Command::new(client_python())
        .arg(script)
        .args([base_url, key, mode])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the openai client's checks failed:\n{text}"
    );
    assert!(text.contains("all checks passed"));
}

#[test]
fn the_openai_python_client_on_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::served::keyed_config(dir.path());
    let mut s = Served::start(dir.path(), &config, &[], &[]);
    run_client(
        &s.base_url,
        "sk-test-0123456789",
        "local",
        &[
            ("LIMITED_KEY", "sk-limited-0123456789"),
            ("BODY_LIMIT", &common::served::BODY_LIMIT.to_string()),
        ],
    );
    assert!(s.stop().success(), "SIGTERM ends the server cleanly");
    let traces = all_text(&dir.path().join("traces"));
    assert!(
        traces.contains("\"key\":\"tester\""),
        "traces carry the key's name"
    );
    assert!(
        !traces.contains("sk-test-0123456789"),
        "a client key leaked into a trace"
    );
    assert!(!std::fs::read_to_string(&s.stderr)
        .unwrap()
        .contains("sk-test-0123456789"));
}

#[test]
fn the_openai_python_client_through_llama_cpp_python_as_the_upstream() {
    let upstream = common::Server::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = common::served::UPSTREAM_SECRET;
    let mut s = Served::relaying(dir.path(), &upstream.base_url);
    run_client(&s.base_url, "unused", "upstream", &[]);
    assert!(s.stop().success());
    let seen = all_text(dir.path());
    assert!(
        !seen.contains(secret),
        "the upstream key leaked into a trace or the server's log"
    );
}
