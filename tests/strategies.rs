//! RISE, Wait and self-consistency with the real default model.
#![cfg(feature = "local")]

mod common;

use std::sync::Arc;

use amend::model::openai::{ApiModel, Options as ApiOptions};
use amend::strategy::{self, Budget, Context, Options, Problem, RiseMode};
use amend::trace::Writer;

const Q: &str =
    "Sara had 20 stickers and gave 8 to her brother. How many stickers does she have left?";

async fn context(dir: &std::path::Path, n_seq: u32) -> (Context, Arc<Writer>) {
    let (cx, writer, _) = common::local_context(dir, n_seq).await;
    (cx, writer)
}

fn rise(mode: RiseMode, turns: usize) -> Box<dyn amend::Strategy> {
    let opts = Options {
        turns,
        window: 2,
        rise_mode: mode,
        ..Options::default()
    };
    strategy::by_name("rise", &opts).expect("rise")
}

#[tokio::test]
async fn rise_oracle_stops_at_the_first_accepted_turn() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, _) = context(dir.path(), 1).await;
    let first = rise(RiseMode::Majority, 1)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("one turn");
    let said = first.answer.clone().expect("the model gave some number");
    // Decoding a prompt in one batch or reusing all but its last token can differ in the last
    // float bits, so put something else in the cache: turn 1 then decodes cold, as above.
    cx.model
        .generate(amend::Request::raw("Unrelated.").with_max_tokens(1))
        .await
        .expect("flush");
    // The verifier accepts what the model says at turn 1: RISE stops there.
    let sol = rise(RiseMode::Oracle, 4)
        .solve(
            &cx,
            &Problem {
                gold: Some(&said),
                ..Problem::new(Q)
            },
        )
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 1);
    assert_eq!(sol.answer.as_deref(), Some(said.as_str()));
    // A verifier that accepts nothing: every turn runs, and turns after the first reuse the cache.
    let sol = rise(RiseMode::Oracle, 3)
        .solve(
            &cx,
            &Problem {
                gold: Some("-98765"),
                ..Problem::new(Q)
            },
        )
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 3);
    assert_eq!(sol.usage.calls, 3);
    assert!(
        sol.usage.reused_tokens > 0,
        "later turns extend the cached conversation"
    );
}

#[tokio::test]
async fn budgets_stop_the_loop_and_say_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut cx, _) = context(dir.path(), 8).await;
    cx.budget = Budget {
        max_calls: Some(2),
        max_tokens_total: None,
    };
    let sol = rise(RiseMode::Majority, 5)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 2);
    let why = sol.budget_stop.clone().expect("the budget is reported");
    assert!(
        why.contains("--max-calls 2") && why.contains("turn 3"),
        "{why}"
    );

    cx.budget = Budget {
        max_calls: None,
        max_tokens_total: Some(10),
    };
    let sol = rise(RiseMode::Majority, 5)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 1);
    assert!(sol
        .budget_stop
        .is_some_and(|w| w.contains("--max-tokens-total 10")));

    cx.budget = Budget {
        max_calls: Some(1),
        max_tokens_total: None,
    };
    let sc = strategy::by_name(
        "self-consistency",
        &Options {
            samples: 12,
            ..Options::default()
        },
    )
    .expect("sc");
    let sol = sc.solve(&cx, &Problem::new(Q)).await.expect("sc");
    assert_eq!(
        sol.attempts.len(),
        8,
        "one batched call of 8, then the budget"
    );
    assert!(sol
        .budget_stop
        .is_some_and(|w| w.contains("8 of 12 samples")));
}

#[tokio::test]
async fn rise_critic_mode_feeds_the_located_step_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut cx, writer) = context(dir.path(), 1).await;
    let store = Arc::new(amend::log::SledStore::open(&dir.path().join("log")).expect("log"));
    cx.log = Some(amend::log::Sink {
        store: store.clone(),
        task: "test".into(),
        model: "default".into(),
        run: None,
    });
    let opts = Options {
        turns: 3,
        rise_mode: RiseMode::Critic,
        critic: Some("arith".into()),
        ..Options::default()
    };
    let sol = strategy::by_name("rise", &opts)
        .expect("rise")
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise");
    assert!(!sol.attempts.is_empty() && sol.attempts.len() <= 3);
    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    assert_eq!(calls.len(), sol.attempts.len());
    if sol.attempts.len() > 1 {
        // The second turn carries a feedback message after the first attempt.
        let msgs = calls[1].data["request"]["input"]["value"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let last = msgs
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        assert!(
            last.contains("Your answer is incorrect") && last.contains(Q),
            "{last}"
        );
    }
    // Every mistake the critic located is in the log, with the next turn as its correction.
    use amend::log::MistakeStore;
    let recs = store.list(&Default::default()).expect("list");
    let located = events.iter().filter(|e| e.kind == "mistake").count();
    assert_eq!(recs.len(), located);
    for (i, m) in recs.iter().enumerate() {
        assert_eq!(m.critic, "arith");
        assert_eq!(m.steps, amend::steps::split(&sol.attempts[i].text));
        assert_eq!(
            m.correction.as_ref(),
            sol.attempts.get(i + 1).map(|a| &a.text)
        );
    }
}

#[tokio::test]
async fn wait_continues_the_same_assistant_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 1).await;
    let sol = strategy::by_name("wait", &Options::default())
        .expect("wait")
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("wait");
    assert_eq!(sol.attempts.len(), 2);
    let draft = &sol.attempts[0].text;
    assert!(sol.attempts[1].text.starts_with(&format!("{draft} Wait")));
    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].data["request"]["prefill"].as_str(),
        Some(format!("{draft} Wait").as_str())
    );
    assert!(
        calls[1].data["usage"]["reused_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "the draft's tokens come from the cache"
    );

    // A backend without assistant prefill gets a clear "unsupported".
    let api = ApiModel::new(
        "m",
        ApiOptions {
            base_url: "http://127.0.0.1:9/v1".into(),
            ..ApiOptions::default()
        },
    )
    .expect("api");
    let cx2 = Context {
        model: Arc::new(api),
        ..cx.clone()
    };
    let err = strategy::by_name("wait", &Options::default())
        .expect("wait")
        .solve(&cx2, &Problem::new(Q))
        .await
        .expect_err("unsupported");
    assert!(
        err.to_string()
            .contains("does not support assistant prefill"),
        "{err}"
    );
}

#[tokio::test]
async fn self_consistency_votes_over_batched_samples() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let sc = strategy::by_name(
        "self-consistency",
        &Options {
            samples: 5,
            ..Options::default()
        },
    )
    .expect("sc");
    let sol = sc.solve(&cx, &Problem::new(Q)).await.expect("sc");
    assert_eq!(sol.attempts.len(), 5);
    assert_eq!(sol.usage.calls, 1, "five samples in one batched call");
    assert_eq!(sol.answer, strategy::majority_answer(&sol.attempts));
    let events = amend::trace::read(writer.path()).expect("trace");
    assert!(events
        .iter()
        .any(|e| e.kind == "call" && e.data["request"]["n"] == 5));
}

#[tokio::test]
async fn backtracking_keeps_the_prefix_and_decodes_only_the_suffix() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut cx, writer) = context(dir.path(), 8).await;
    let store = Arc::new(amend::log::SledStore::open(&dir.path().join("log")).expect("log"));
    cx.log = Some(amend::log::Sink {
        store: store.clone(),
        task: "test".into(),
        model: "default".into(),
        run: Some("r1".into()),
    });
    let draft: Vec<String> = vec![
        "Each box holds 6 eggs.".into(),
        "There are 5 boxes.".into(),
        "So 5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let q = "A box holds 6 eggs. How many eggs are in 5 boxes?";
    let opts = Options {
        critic: Some("gold".into()),
        ..Options::default()
    };
    let bt = strategy::by_name("backtrack", &opts).expect("backtrack");
    let problem = Problem {
        draft: Some(&draft),
        gold_step: Some(Some(2)),
        gold: Some("30"),
        ..Problem::new(q)
    };
    let sol = bt.solve(&cx, &problem).await.expect("backtrack");
    assert_eq!(sol.attempts.len(), 2, "one backtrack");
    let revised = amend::steps::split(&sol.attempts[1].text);
    assert_eq!(
        &revised[..2],
        &draft[..2],
        "the steps before the mistake are kept byte for byte"
    );
    assert!(
        strategy::differs(&revised[2], &draft[2]),
        "step 2 was regenerated: {:?}",
        revised[2]
    );

    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    assert_eq!(calls.len(), 2, "one batched resample, one continuation");
    let prefix = strategy::prefix_text(&draft, 2);
    assert_eq!(
        calls[0].data["request"]["prefill"].as_str(),
        Some(prefix.as_str())
    );
    assert_eq!(calls[0].data["request"]["temperature"].as_f64(), Some(1.0));
    assert_eq!(calls[0].data["request"]["n"], 8);
    let cont_prefill = format!("{prefix}{}\n", revised[2]);
    assert_eq!(
        calls[1].data["request"]["prefill"].as_str(),
        Some(cont_prefill.as_str())
    );
    // The continuation re-decodes none of the prompt and kept steps: everything up to the
    // resampled step comes from the KV cache.
    let prompt = calls[1].data["usage"]["prompt_tokens"]
        .as_u64()
        .expect("prompt");
    let reused = calls[1].data["usage"]["reused_tokens"]
        .as_u64()
        .expect("reused");
    let first_prompt = calls[0].data["usage"]["prompt_tokens"]
        .as_u64()
        .expect("first prompt");
    assert!(
        reused >= first_prompt - 1,
        "reused {reused} of the {first_prompt} tokens up to the mistake"
    );
    assert!(
        prompt - reused <= prompt - first_prompt + 2,
        "decoded {} tokens for a {}-token new step",
        prompt - reused,
        prompt - first_prompt
    );
    assert!(events
        .iter()
        .any(|e| e.kind == "mistake" && e.data["step"] == 2 && e.data["critic"] == "gold"));

    // The located mistake and its outcome are in the (real, flushed) mistake log.
    use amend::log::{MistakeStore, Outcome};
    let recs = store.list(&Default::default()).expect("list");
    assert_eq!(recs.len(), 1);
    let m = &recs[0];
    assert_eq!(
        (m.step, m.critic.as_str(), m.task.as_str()),
        (Some(2), "gold", "test")
    );
    assert_eq!(m.steps, draft);
    assert_eq!(m.answer_before.as_deref(), Some("35"));
    assert_eq!(m.answer_after, sol.answer);
    let fixed = sol.answer.as_deref() == Some("30");
    assert_eq!(
        m.outcome,
        if fixed {
            Outcome::Fixed
        } else {
            Outcome::NotFixed
        }
    );
    assert!(m
        .correction
        .as_deref()
        .is_some_and(|c| c.starts_with(revised[2].as_str())));
    assert!(m.tokens > 0 && m.run.as_deref() == Some("r1"));
    let seq = m
        .trace
        .as_deref()
        .and_then(|t| t.rsplit_once('#'))
        .map(|(_, s)| s.to_string());
    assert!(events
        .iter()
        .any(|e| e.kind == "mistake" && Some(e.seq.to_string()) == seq));
}

#[tokio::test]
async fn critics_vote_ask_per_step_and_chain() {
    use amend::critic::{self, Critique};
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let steps: Vec<String> = vec![
        "Each box has 6 eggs.".into(),
        "5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let input = Critique {
        problem: "A box holds 6 eggs. How many eggs are in 5 boxes?",
        steps: &steps,
        gold: None,
    };

    let v = critic::build("llm", 3)
        .expect("llm")
        .locate(&cx, &input)
        .await
        .expect("votes");
    assert_eq!(v.usage.calls, 1, "three critiques in one batched call");
    assert!([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
        .iter()
        .any(|c| (v.confidence - c).abs() < 1e-6));
    let events = amend::trace::read(writer.path()).expect("trace");
    let votes = events
        .iter()
        .rev()
        .find(|e| e.kind == "critic")
        .expect("critic event");
    assert_eq!(votes.data["votes"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        v.parsed,
        !votes.data["winner"].is_null() || votes.data["parsed"] == true
    );

    let v = critic::build("llm-step", 1)
        .expect("llm-step")
        .locate(&cx, &input)
        .await
        .expect("step");
    assert!(v.usage.calls >= 1 && v.usage.calls <= 3);
    if let Some(k) = v.step {
        assert_eq!(v.usage.calls, k as u64 + 1, "stops at the first no");
    }

    let v = critic::build("chain:arith,llm", 1)
        .expect("chain")
        .locate(&cx, &input)
        .await
        .expect("chain");
    assert_eq!(v.step, Some(1));
    assert!(v.rationale.starts_with("arith:"), "{}", v.rationale);
    assert_eq!(
        v.usage.calls, 0,
        "the exact verifier decided; the llm was not asked"
    );
    assert!(critic::build("nope", 1).is_err());
}
