//! LEAP with the real default model and a real sled log: induced mistakes are the wrong
//! samples and land in the log; the teacher is asked once per mistake; the gate runs both
//! evaluations and principles reach the prompt.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use std::sync::Arc;

use amend::data::Task;
use amend::leap::{self, Example, LearnConfig, Level, Principle, PrincipleSet};
use amend::mistakes::{Sink, SledStore, Store};
use amend::model::{Model, Spec};
use amend::run::Context;
use amend::strategy::Kind;
use amend::trace::Writer;
use amend::Prompts;

async fn context(dir: &std::path::Path) -> (Context, Arc<Writer>, Arc<dyn Model>) {
    common::local_context(dir, 8).await
}

fn config() -> LearnConfig {
    LearnConfig {
        task: "gsm8k".into(),
        data: "fixture".into(),
        samples: 4,
        temperature: 0.7,
        seed: 1,
        max_mistakes: 3,
        max_high: 8,
    }
}

#[tokio::test]
async fn induced_mistakes_are_the_wrong_samples_and_the_teacher_sees_each() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer, _) = context(dir.path()).await;
    let store = Arc::new(SledStore::open(&dir.path().join("log")).expect("log"));
    let cx = cx.with_mistakes(store.clone());
    let ex = Example {
        question: "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?".into(),
        solution: "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.".into(),
        answer: "72".into(),
    };
    let cfg = config();
    let result = leap::learn(&cx, &cx, &[ex], Vec::new(), &cfg).await;
    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    // One batched induction call of 4 samples at T=0.7.
    assert_eq!(calls[0].data["request"]["n"], 4);
    let t = calls[0].data["request"]["temperature"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((t - 0.7).abs() < 1e-6, "temperature {t}");
    let texts: Vec<String> = calls[0].data["output"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(texts.len(), 4, "{:?}", calls[0].data["output"]);
    let wrong = texts
        .iter()
        .filter(|t| {
            !amend::answer::extract_str(t).is_some_and(|a| amend::answer::same_number(&a, "72"))
        })
        .count();
    let logged = store.list(&Default::default()).expect("list");
    assert_eq!(
        logged.len(),
        wrong,
        "every wrong sample, and only those, is logged"
    );
    for m in &logged {
        assert_eq!((m.critic.as_str(), m.step), ("answer", None));
        assert_eq!(m.reference.as_deref(), Some("72"));
        assert_eq!(m.run.as_deref(), Some("test"));
        assert_eq!(
            (m.task.as_str(), m.model.as_str()),
            ("gsm8k", cx.model().id().key.as_str())
        );
    }
    // The teacher is asked once per mistake (up to max_mistakes), then once to condense.
    let low_calls = calls
        .iter()
        .filter(|c| {
            c.data["request"]["input"]
                .to_string()
                .contains("Student's reasoning")
        })
        .count();
    assert_eq!(low_calls, wrong.min(cfg.max_mistakes));
    match result {
        Ok(set) => {
            let ids: Vec<&str> = logged.iter().map(|m| m.id.as_str()).collect();
            for p in set.low.iter().chain(&set.high) {
                assert!(p.mistakes.iter().all(|id| ids.contains(&id.as_str())));
            }
            assert!(set.high.len() <= 8);
            assert_eq!(set.induced, wrong);
            assert_eq!(
                set.student,
                cx.model().id().key,
                "the file names models by identity"
            );
        }
        Err(e) => assert!(
            wrong == 0 || e.to_string().contains("Principle:"),
            "unexpected error: {e}"
        ),
    }
}

#[tokio::test]
async fn the_gate_runs_both_evaluations_and_puts_principles_in_the_prompt() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, _, model) = context(dir.path()).await;
    let path = dir.path().join("p.toml");
    let principle = "Write every intermediate result down before using it.";
    PrincipleSet {
        version: leap::FILE_VERSION,
        task: "gsm8k".into(),
        student: "default".into(),
        teacher: "default".into(),
        created: amend::mistakes::now(),
        data: "fixture".into(),
        examples: 1,
        samples: 1,
        temperature: 0.7,
        from_log: 0,
        induced: 1,
        low_unmarked: 0,
        promotion: None,
        high: vec![Principle {
            text: principle.into(),
            mistakes: vec!["m1".into()],
        }],
        low: Vec::new(),
    }
    .save(&path)
    .expect("save");
    let base = amend::eval::Config {
        limit: Some(3),
        max_tokens: 64,
        ..amend::eval::Config::new(
            Task::Gsm8k,
            "tests/fixtures/gsm8k.jsonl",
            Kind::Baseline,
            Spec::Default,
            "",
        )
    };
    let prompts = Arc::new(Prompts::builtin().expect("prompts"));
    let d = leap::promote(
        &path,
        &base,
        Level::High,
        Context::new(model, prompts),
        0.02,
    )
    .await
    .expect("promote");
    assert_eq!(d.n, 3);
    assert!(d.status == "accepted" || d.status == "rejected");
    let accepted = d.principled_accuracy >= d.baseline_accuracy
        && d.negative_flips <= (0.02 * 3.0_f64).floor() as usize;
    assert_eq!(d.status == "accepted", accepted, "{d:?}");
    let saved = PrincipleSet::load(&path).expect("reload");
    assert_eq!(saved.promotion.as_ref(), Some(&d));
    assert!(path.with_extension("promotion.json").is_file());
    // The principled run's prompts open with a system message holding the principle; the
    // baseline's do not.
    let trace_of = |run: &str| {
        let dir = path.with_extension("promotion").join(run).join("traces");
        let file = std::fs::read_dir(&dir)
            .expect("traces")
            .filter_map(Result::ok)
            .next()
            .expect("a trace file")
            .path();
        assert!(
            file.to_string_lossy().ends_with(".jsonl.gz"),
            "an eval run keeps its trace, compressed: {}",
            file.display()
        );
        let events = amend::trace::read(&file).expect("read trace");
        serde_json::to_string(&events).expect("json")
    };
    assert!(trace_of("principled").contains(principle));
    assert!(!trace_of("baseline").contains(principle));
}

#[test]
fn learn_from_log_uses_only_the_task_and_model_mistakes() {
    use amend::mistakes::Discard;
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let model = common::model_path().display().to_string();
    // Records name a model by identity; older ones by the spec given then (here the path).
    let id = amend::model::fingerprint(&common::model_path())
        .expect("fingerprint")
        .key;
    let sink = |task: &str, m: &str| Sink {
        store: Arc::new(Discard),
        task: task.into(),
        model: m.into(),
        run: None,
    };
    let mut recs = Vec::new();
    for (i, (task, m)) in [
        ("gsm8k", model.as_str()),
        ("gsm8k", id.as_str()),
        ("gsm8k", "other"),
        ("bbmistake", id.as_str()),
    ]
    .iter()
    .enumerate()
    {
        let mut r =
            sink(task, m).blank(&format!("Question number {i}: what is 2 + {i}?"), Some("4"));
        r.steps = vec![format!("2 + {i} = 9"), "The answer is 9.".into()];
        r.answer_before = Some("9".into());
        r.critic = "answer".into();
        recs.push(r);
    }
    let file = dir.path().join("in.jsonl");
    let text: String = recs
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default() + "\n")
        .collect();
    std::fs::write(&file, text).expect("write");
    let bin = env!("CARGO_BIN_EXE_amend");
    let ok = std::process::Command::new(bin)
        .args(["mistakes", "import", "--log"])
        .arg(&log)
        .arg(&file)
        .status()
        .expect("import");
    assert!(ok.success());
    let out = std::process::Command::new(bin)
        .args([
            "leap",
            "learn",
            "--task",
            "gsm8k",
            "--examples",
            "0",
            "--from-log",
            "--threads",
            "1",
        ])
        .args(["--model", &model, "--out"])
        .arg(dir.path().join("p.toml"))
        .arg("--log")
        .arg(&log)
        .current_dir(dir.path())
        .output()
        .expect("learn");
    let err = String::from_utf8_lossy(&out.stderr);
    // The teacher (the default model) may write no `Principle:` line at all; either way it
    // was asked about exactly the two gsm8k mistakes of this model.
    let traces: Vec<_> = std::fs::read_dir(dir.path().join("traces"))
        .expect("traces dir")
        .filter_map(Result::ok)
        .collect();
    let text = std::fs::read_to_string(traces[0].path()).expect("trace");
    // Both the record under the identity and the older one under the spec were learned from.
    assert!(text.contains("Question number 0") && text.contains("Question number 1"));
    assert!(!text.contains("Question number 2") && !text.contains("Question number 3"));
    if out.status.success() {
        let set = PrincipleSet::load(&dir.path().join("p.toml")).expect("file");
        assert_eq!((set.from_log, set.induced), (2, 0));
        let ids = [recs[0].id.as_str(), recs[1].id.as_str()];
        assert!(set
            .low
            .iter()
            .all(|p| p.mistakes.iter().all(|m| ids.contains(&m.as_str()))));
    } else {
        assert!(err.contains("Principle:"), "{err}");
    }
}
