use super::*;

fn line(id: &str, gold: &str, greedy: bool, attempts: &[&str]) -> String {
    serde_json::json!({
        "id": id, "gold": gold, "answers": [], "correct_by_turn": [], "final_answer": null,
        "correct_before": greedy, "correct_after": false, "predicted_step": null,
        "label": null, "prior_right": null,
        "usage": {"prompt_tokens": 0, "generated_tokens": 30 * attempts.len(), "reused_tokens": 0, "calls": 1, "infra_retries": 0},
        "wall_s": 0.0, "trace": null, "error": null,
        "question": "Tom has 5 apples and finds 5 more. How many apples does he have?",
        "attempts": attempts,
    })
    .to_string()
}

#[test]
fn anchored_selection_reads_the_greedy_text_from_the_trace() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let item = |id: &str, q: &str, gold: &str, greedy: bool, attempts: &[&str]| {
        let mut v: serde_json::Value =
            serde_json::from_str(&line(id, gold, greedy, attempts)).unwrap_or_default();
        v["question"] = q.into();
        // Written where the run ran: found again under `dir/traces/`.
        v["trace"] = "elsewhere/traces/t.jsonl#1".into();
        v["usage_before"] = serde_json::json!({"prompt_tokens": 0, "generated_tokens": 20, "reused_tokens": 0, "calls": 1, "infra_retries": 0});
        v.to_string()
    };
    let (qa, qb) = (
        "Tom has 5 apples and finds 5 more. How many apples does he have?",
        "Ann has 3 pens and buys 4 more. How many pens does she have?",
    );
    let wrong = [
        "5 + 4 = 9.\nThe answer is 9.",
        "5 + 4 = 9.\nThe answer is 9.",
    ];
    let rows = [
        // The greedy text invents a 4: flagged; one sample is a clean derivation of 10.
        item(
            "a",
            qa,
            "10",
            false,
            &["5 + 5 = 10.\nThe answer is 10.", wrong[0], wrong[1]],
        ),
        // The greedy text is a clean derivation: it stands though the samples say 8.
        item(
            "b",
            qb,
            "7",
            true,
            &[
                "3 + 5 = 8.\nThe answer is 8.",
                "3 + 5 = 8.\nThe answer is 8.",
                "4 + 4 = 8.\nThe answer is 8.",
            ],
        ),
    ];
    std::fs::write(dir.path().join("results.jsonl"), rows.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let call = |q: &str, text: &str| {
        serde_json::json!({"type": "call", "run_id": "r", "seq": 1, "time": "t", "data": {
            "request": {"temperature": 0.0, "n": 1, "input": {"type": "chat", "value": [{"role": "user", "content": format!("Solve it.\n\nProblem: {q}")}]}},
            "output": [{"text": text, "tokens": 20}]}})
        .to_string()
    };
    std::fs::create_dir_all(dir.path().join("traces")).unwrap_or_else(|e| panic!("{e}"));
    let events = [
        call(qa, "5 + 4 = 9.\nThe answer is 9."),
        call(qb, "3 + 4 = 7.\nThe answer is 7."),
    ];
    std::fs::write(dir.path().join("traces/t.jsonl"), events.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let spec: Spec = "chain:arith,derive"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = select(dir.path(), &spec).unwrap_or_else(|e| panic!("{e}"));
    let r3 = t.rows.get(2).unwrap_or_else(|| panic!("n = 3"));
    assert_eq!(
        (r3.majority, r3.verified),
        (0.0, 0.5),
        "b's samples all say 8"
    );
    let a = r3
        .anchored
        .as_ref()
        .unwrap_or_else(|| panic!("greedy texts found"));
    assert_eq!((a.accuracy, a.flips, a.drawn), (1.0, (1, 0), 1));
    // Greedy 20 tokens each, plus 3 samples of 30 on the one item that drew them.
    assert!(
        (a.tokens_per_item - 65.0).abs() < 1e-9,
        "{}",
        a.tokens_per_item
    );
    assert!(to_markdown(&t).contains("Anchored selection"));
}

#[test]
fn verified_selection_drops_flagged_samples_after_the_fact() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rows = [
        // The invented 4 is flagged by `ground`: majority says 9, verified says 10.
        line(
            "a",
            "10",
            false,
            &[
                "5 + 5 = 10.\n#### 10",
                "5 + 4 = 9.\n#### 9",
                "5 + 4 = 9.\n#### 9",
            ],
        ),
        // Every sample flagged: verified falls back to the majority of all.
        line(
            "b",
            "10",
            true,
            &[
                "5 + 4 = 9.\n#### 9",
                "5 + 6 = 11.\n#### 11",
                "5 + 4 = 9.\n#### 9",
            ],
        ),
    ];
    std::fs::write(dir.path().join("results.jsonl"), rows.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let spec: Spec = "chain:arith,ground"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = select(dir.path(), &spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((t.items, t.rows.len()), (2, 3));
    let r3 = t.rows.get(2).unwrap_or_else(|| panic!("n = 3"));
    assert_eq!((r3.majority, r3.verified), (0.0, 0.5));
    assert_eq!((r3.none_survived, r3.survivors), (1, 0.5));
    assert_eq!(
        r3.verified_flips,
        (1, 1),
        "gained a, lost b against the greedy pass"
    );
    assert_eq!(r3.any_right, 0.5);
    assert!((r3.tokens_per_item - 90.0).abs() < 1e-9);
    let llm: Spec = "llm".parse().unwrap_or_else(|e| panic!("{e}"));
    let err = select(dir.path(), &llm)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("needs a model"), "{err}");
}

#[test]
fn an_anchored_run_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rows = [line("a", "10", false, &["5 + 5 = 10.\nThe answer is 10."])];
    std::fs::write(dir.path().join("results.jsonl"), rows.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let spec: Spec = "derive".parse().unwrap_or_else(|e| panic!("{e}"));
    // Without a config it is read as a self-consistency run.
    assert!(select(dir.path(), &spec).is_ok());
    let config = serde_json::json!({"config": {"options": {"select": "anchored"}}});
    std::fs::write(dir.path().join("config.json"), config.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = select(dir.path(), &spec)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("config.json") && err.contains("anchored selection"),
        "{err}"
    );
}
