//! The mistake log through the `amend` binary: durability under SIGKILL, export/import
//! round trips, and bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use amend::mistakes::{Discard, Mistake, Outcome, Sink};

fn amend() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amend"));
    c.env_remove("AMEND_LOG").env("RUST_LOG", "error");
    c
}

fn records(n: usize, tag: &str) -> Vec<Mistake> {
    let sink = Sink {
        store: Arc::new(Discard),
        task: "gsm8k".into(),
        model: "default".into(),
        run: Some(tag.into()),
    };
    (0..n)
        .map(|i| {
            let mut m = sink.blank(&format!("{tag} question {i}: 3 + {i} = ?"), Some("7"));
            m.steps = vec![
                format!("3 + {i} = {}", 3 + i + 1),
                "The answer is 8.".into(),
            ];
            m.step = Some(0);
            m.critic = "arith".into();
            m.rationale = format!("3 + {i} is not {}", 3 + i + 1);
            m.outcome = if i % 3 == 0 {
                Outcome::Fixed
            } else {
                Outcome::NotFixed
            };
            m.task = if i.is_multiple_of(2) {
                "gsm8k"
            } else {
                "bbmistake"
            }
            .into();
            m
        })
        .collect()
}

fn export(log: &Path, extra: &[&str]) -> Vec<u8> {
    let out = amend()
        .args(["mistakes", "export", "--log"])
        .arg(log)
        .args(extra)
        .output()
        .expect("run export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn import(log: &Path, file: &Path) {
    let out = amend()
        .args(["mistakes", "import", "--log"])
        .arg(log)
        .arg(file)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ids(jsonl: &[u8]) -> std::collections::HashSet<String> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .filter_map(|l| serde_json::from_str::<Mistake>(l).ok())
        .map(|m| m.id)
        .collect()
}

/// A small deterministic generator for kill points.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn a_writer_killed_at_random_points_loses_no_reported_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let mut rng = Lcg(42);
    let mut reported = std::collections::HashSet::new();
    for round in 0..50 {
        let mut child = amend()
            .args(["mistakes", "record", "--log"])
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let mut stdin = child.stdin.take().expect("stdin");
        let feed = std::thread::spawn(move || {
            for m in records(200, &format!("r{round}")) {
                let line = serde_json::to_string(&m).unwrap_or_default();
                if writeln!(stdin, "{line}").is_err() {
                    return;
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a random number of reported records, and a random moment after that,
        // so some kills land in the middle of a write.
        let wait_for = rng.next(30);
        let mut seen = 0;
        while seen < wait_for {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(id) = l.strip_prefix("recorded ") {
                        reported.insert(id.to_string());
                    }
                    seen += 1;
                }
                _ => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next(3000)));
        child.kill().expect("SIGKILL");
        // Everything the writer printed before it died counts as reported.
        for l in lines.map_while(Result::ok) {
            if let Some(id) = l.strip_prefix("recorded ") {
                reported.insert(id.to_string());
            }
        }
        let _ = child.wait();
        let _ = feed.join();
        let present = ids(&export(&log, &[]));
        let lost: Vec<_> = reported.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} reported records missing after SIGKILL, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }
    assert!(
        reported.len() > 100,
        "only {} records reported",
        reported.len()
    );
}

#[test]
fn export_import_export_is_byte_identical_and_filters_apply() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let file = dir.path().join("in.jsonl");
    let recs = records(30, "x");
    let text: String = recs
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default() + "\n")
        .collect();
    std::fs::write(&file, text).expect("write");
    let out = amend()
        .args(["mistakes", "import", "--json", "--log"])
        .arg(&a)
        .arg(&file)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = export(&a, &[]);
    assert_eq!(ids(&first).len(), 30);
    let dump = dir.path().join("dump.jsonl");
    std::fs::write(&dump, &first).expect("write");
    import(&b, &dump);
    assert_eq!(export(&b, &[]), first, "export -> import -> export differs");
    let gsm = export(&b, &["--task", "gsm8k"]);
    assert_eq!(ids(&gsm).len(), 15);
    assert!(export(&b, &["--since", "2999-01-01"]).is_empty());
    assert_eq!(ids(&export(&b, &["--since", "2000-01-01"])).len(), 30);

    let stats = amend()
        .args(["mistakes", "stats", "--json", "--log"])
        .arg(&b)
        .output()
        .expect("stats");
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats json");
    assert_eq!(v["total"], 30);
    assert_eq!(v["by_outcome"]["fixed"], 10);
    assert_eq!(v["top_steps"][0], serde_json::json!([0, 30]));
    let id = &recs[3].id;
    let show = amend()
        .args(["mistakes", "show", &id[..30], "--log"])
        .arg(&b)
        .output()
        .expect("show");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains(id.as_str()) && shown.contains("x question 3"),
        "{shown}"
    );
}

#[test]
fn a_record_missing_a_field_is_rejected_with_its_line_and_nothing_is_imported() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let recs = records(3, "y");
    let mut lines: Vec<String> = recs
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default())
        .collect();
    let mut v = serde_json::to_value(&recs[1]).expect("value");
    v.as_object_mut().expect("object").remove("outcome");
    lines[1] = v.to_string();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = amend()
        .args(["mistakes", "import", "--log"])
        .arg(&log)
        .arg(&file)
        .output()
        .expect("import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 2: missing field(s) outcome"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        export(&log, &[]).is_empty(),
        "a bad file must import nothing"
    );
}

#[test]
fn a_corrupt_store_gives_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let file = dir.path().join("in.jsonl");
    let text: String = records(50, "z")
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default() + "\n")
        .collect();
    std::fs::write(&file, text).expect("write");
    import(&log, &file);
    let db = log.join("db");
    let mut bytes = std::fs::read(&db).expect("db file");
    for (i, b) in bytes.iter_mut().take(4096).enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, bytes).expect("corrupt");
    let out = amend()
        .args(["mistakes", "list", "--log"])
        .arg(&log)
        .output()
        .expect("list");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a corrupt store opened: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("damaged") && err.contains(&*log.display().to_string()),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_store_in_use_by_another_process_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let mut writer = amend()
        .args(["mistakes", "record", "--log"])
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let mut stdin = writer.stdin.take().expect("stdin");
    let line = serde_json::to_string(&records(1, "lock")[0]).expect("json");
    writeln!(stdin, "{line}").expect("write");
    let mut out = BufReader::new(writer.stdout.take().expect("stdout")).lines();
    assert!(out
        .next()
        .is_some_and(|l| l.is_ok_and(|l| l.starts_with("recorded "))));
    let other = amend()
        .args(["mistakes", "list", "--log"])
        .arg(&log)
        .output()
        .expect("list");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(err.contains("another amend process has it open"), "{err}");
    drop(stdin);
    let _ = writer.wait();
}
