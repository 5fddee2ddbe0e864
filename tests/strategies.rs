//! RISE, Wait and self-consistency with the real default model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use std::sync::Arc;

use amend::critic::Spec as CriticSpec;
use amend::model::openai::{ApiModel, Options as ApiOptions};
use amend::run::{Budget, Context, Problem};
use amend::strategy::{self, Kind, Options, RiseMode};
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
    strategy::build(Kind::Rise, &opts).expect("rise")
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
    cx.model()
        .generate(amend::Request::raw("Unrelated.").with_max_tokens(1))
        .await
        .expect("flush");
    // The verifier accepts what the model says at turn 1: RISE stops there.
    let sol = rise(RiseMode::Oracle, 4)
        .solve(&cx, &Problem::new(Q).with_gold(&said))
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 1);
    assert_eq!(sol.answer.as_deref(), Some(said.as_str()));
    // A verifier that accepts nothing: every turn runs, and turns after the first reuse the cache.
    let sol = rise(RiseMode::Oracle, 3)
        .solve(&cx, &Problem::new(Q).with_gold("-98765"))
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
    let (cx, _) = context(dir.path(), 8).await;
    let cx = cx.with_budget(Budget::new().with_max_calls(2));
    let sol = rise(RiseMode::Majority, 5)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 2);
    let stop = sol.budget_stop.clone().expect("the budget is reported");
    assert_eq!(stop.cap, amend::run::Cap::MaxCalls);
    let why = stop.to_string();
    assert!(
        why.starts_with("max_calls reached (2; 2 calls made)") && why.contains("turn 3"),
        "{why}"
    );
    assert!(
        !why.contains("--"),
        "library text names options, not flags: {why}"
    );

    let cx = cx.with_budget(Budget::new().with_max_tokens_total(10));
    let sol = rise(RiseMode::Majority, 5)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise");
    assert_eq!(sol.attempts.len(), 1);
    assert!(sol
        .budget_stop
        .is_some_and(|w| w.to_string().starts_with("max_tokens_total reached (10;")));

    let cx = cx.with_budget(Budget::new().with_max_calls(1));
    let sc = strategy::build(
        Kind::SelfConsistency,
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
        .is_some_and(|w| w.to_string().contains("8 of 12 samples")));

    // A deadline shorter than one call: the call is cancelled, the solve still returns, and
    // says the deadline stopped it; a later attempt keeps the best answer so far.
    let cx = cx.with_budget(Budget::new().with_deadline(std::time::Duration::from_millis(1)));
    let sol = rise(RiseMode::Majority, 5)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise under a deadline");
    assert!(sol.attempts.is_empty() && sol.answer.is_none());
    assert_eq!(
        sol.budget_stop.map(|s| s.cap),
        Some(amend::run::Cap::Deadline)
    );
    let cx = cx.with_budget(Budget::new().with_deadline(std::time::Duration::from_secs(4)));
    let sol = rise(RiseMode::Majority, 50)
        .solve(&cx, &Problem::new(Q))
        .await
        .expect("rise under a deadline");
    assert!(sol.attempts.len() < 50);
    // Not a speed measurement: the deadline cancels the running call, so the solve ends
    // within moments of it, not after the call would have finished.
    assert!(
        sol.wall < std::time::Duration::from_secs(6),
        "{:?}",
        sol.wall
    );
    assert_eq!(
        sol.budget_stop.map(|s| s.cap),
        Some(amend::run::Cap::Deadline)
    );
    assert_eq!(sol.answer, strategy::majority_answer(&sol.attempts));
}

#[tokio::test]
async fn rise_critic_mode_feeds_the_located_step_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 1).await;
    let store = Arc::new(amend::mistakes::SledStore::open(&dir.path().join("log")).expect("log"));
    let cx = cx.with_mistakes(store.clone()).with_task("test");
    let opts = Options {
        turns: 3,
        rise_mode: RiseMode::Critic,
        critic: Some(CriticSpec::Arith),
        ..Options::default()
    };
    let sol = strategy::build(Kind::Rise, &opts)
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
    // Every mistake the critic located is in the store and in the solution, with the next turn
    // as its correction.
    use amend::mistakes::Store;
    let recs = store.list(&Default::default()).expect("list");
    let located = events.iter().filter(|e| e.kind == "mistake").count();
    assert_eq!(recs.len(), located);
    assert_eq!(sol.located.len(), located, "RISE returns what it located");
    for (l, m) in sol.located.iter().zip(&recs) {
        assert_eq!((Some(l.step), l.critic.as_str()), (m.step, "arith"));
    }
    assert!(events
        .iter()
        .any(|e| e.kind == "solve" && e.data["strategy"] == "rise"));
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
    let sol = strategy::build(Kind::Wait, &Options::default())
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
            prefill: amend::model::PrefillMode::Off,
            ..ApiOptions::default()
        },
    )
    .expect("api");
    let cx2 = Context::new(Arc::new(api), cx.prompts().clone());
    let err = strategy::build(Kind::Wait, &Options::default())
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
    let sc = strategy::build(
        Kind::SelfConsistency,
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
async fn verified_selection_judges_every_sample_and_records_the_survivors() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let store = Arc::new(amend::mistakes::SledStore::open(&dir.path().join("log")).expect("log"));
    let cx = cx.with_mistakes(store.clone()).with_task("test");
    let opts = Options {
        samples: 6,
        temperature: 1.0,
        select: strategy::Select::Verified,
        critic: Some(CriticSpec::Chain(vec![
            CriticSpec::Arith,
            CriticSpec::Ground,
        ])),
        ..Options::default()
    };
    let sc = strategy::build(Kind::SelfConsistency, &opts).expect("sc");
    let sol = sc.solve(&cx, &Problem::new(Q)).await.expect("sc");
    assert_eq!(sol.attempts.len(), 6);
    let survivors = sol.survivors.expect("survivors recorded") as usize;
    // Each sample either survived or is a located mistake, recorded in the store.
    assert_eq!(survivors + sol.located.len(), 6, "{:?}", sol.located);
    assert_eq!(store.len(), sol.located.len());
    let events = amend::trace::read(writer.path()).expect("trace");
    let solve = events
        .iter()
        .find(|e| e.kind == "solve")
        .expect("solve event");
    assert_eq!(solve.data["survivors"], survivors);
    assert_eq!(solve.data["flagged"].as_array().map(Vec::len), Some(6));
    // The answer is the majority of the survivors (of all when none survived).
    let flagged: Vec<bool> = solve.data["flagged"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f.as_bool() == Some(true))
        .collect();
    let answers: Vec<Option<String>> = sol.attempts.iter().map(|a| a.answer.clone()).collect();
    let (answer, n) = strategy::select_verified(&answers, &flagged);
    assert_eq!((sol.answer, n), (answer, survivors));

    // Without a verifier or critic, verified selection is refused, naming the option.
    let err = strategy::build(
        Kind::SelfConsistency,
        &Options {
            select: strategy::Select::Verified,
            ..Options::default()
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("select"), "{err}");
}

#[tokio::test]
async fn anchored_selection_samples_only_when_the_greedy_pass_is_flagged() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let opts = Options {
        samples: 4,
        select: strategy::Select::Anchored,
        critic: Some(CriticSpec::Chain(vec![
            CriticSpec::Arith,
            CriticSpec::Ground,
        ])),
        ..Options::default()
    };
    let sc = strategy::build(Kind::SelfConsistency, &opts).expect("sc");
    assert!(sc.first_is_greedy(), "the first attempt is the greedy pass");
    // The second question has no numbers, so any number the model computes with is invented.
    for q in [
        Q,
        "Tom has some apples and buys a few more. How many apples does he have?",
    ] {
        let sol = sc.solve(&cx, &Problem::new(q)).await.expect("sc");
        let events = amend::trace::read(writer.path()).expect("trace");
        let greedy_call = events
            .iter()
            .rev()
            .find(|e| e.kind == "call" && e.data["request"]["temperature"].as_f64() == Some(0.0))
            .expect("a greedy call");
        assert_eq!(
            greedy_call.data["output"][0]["text"].as_str(),
            Some(sol.attempts[0].text.as_str()),
            "attempt 0 is the greedy pass"
        );
        let greedy = &sol.attempts[0];
        let solve = events
            .iter()
            .rev()
            .find(|e| e.kind == "solve" && e.data["strategy"] == "self-consistency")
            .expect("solve event");
        match solve.data["greedy_flagged"].as_bool() {
            Some(false) => {
                // Accepted: no samples drawn, the greedy answer stands.
                assert_eq!(sol.attempts.len(), 1);
                assert_eq!(sol.answer, greedy.answer);
                assert!(sol.located.is_empty());
            }
            Some(true) => {
                assert_eq!(sol.attempts.len(), 5, "the greedy pass and 4 samples");
                let flagged: Vec<bool> = solve.data["flagged"]
                    .as_array()
                    .expect("flags")
                    .iter()
                    .map(|f| f.as_bool() == Some(true))
                    .collect();
                let answers: Vec<Option<String>> =
                    sol.attempts[1..].iter().map(|a| a.answer.clone()).collect();
                let want = match strategy::select_verified(&answers, &flagged) {
                    (_, 0) => greedy.answer.clone(),
                    (a, _) => a,
                };
                assert_eq!(sol.answer, want);
                assert_eq!(
                    sol.located.len(),
                    1 + flagged.iter().filter(|f| **f).count(),
                    "the greedy pass's mistake and each flagged sample's"
                );
            }
            None => panic!("no greedy_flagged in {:?}", solve.data),
        }
    }
}

#[tokio::test]
async fn backtracking_keeps_the_prefix_and_decodes_only_the_suffix() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let store = Arc::new(amend::mistakes::SledStore::open(&dir.path().join("log")).expect("log"));
    let cx = cx.with_mistakes(store.clone()).with_task("test");
    let draft: Vec<String> = vec![
        "Each box holds 6 eggs.".into(),
        "There are 5 boxes.".into(),
        "So 5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let q = "A box holds 6 eggs. How many eggs are in 5 boxes?";
    let opts = Options {
        critic: Some(CriticSpec::Gold),
        accept: amend::strategy::Accept::Always,
        ..Options::default()
    };
    let bt = strategy::build(Kind::Backtrack, &opts).expect("backtrack");
    let problem = Problem {
        draft: Some(&draft),
        gold_step: Some(Some(2)),
        ..Problem::new(q).with_gold("30")
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

    assert!(
        events
            .iter()
            .any(|e| e.kind == "solve" && e.data["strategy"] == "backtrack"),
        "backtracking writes its solve event"
    );
    // The located mistake and its outcome are in the (real, flushed) mistakes store.
    use amend::mistakes::{Outcome, Store};
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
    assert!(m.tokens > 0 && m.run.as_deref() == Some("test"));
    assert_eq!(
        m.model,
        cx.model().id().key,
        "records name the model by identity"
    );
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
    use amend::critic::{self, Submission};
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let steps: Vec<String> = vec![
        "Each box has 6 eggs.".into(),
        "5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let input = Submission {
        problem: "A box holds 6 eggs. How many eggs are in 5 boxes?",
        steps: &steps,
        gold: None,
    };

    let env = cx.critic_env(None);
    let spec = |s: &str| s.parse::<CriticSpec>().expect("spec");
    let v = critic::build(&spec("llm"), 3)
        .locate(&env, &input)
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

    let v = critic::build(&spec("llm-step"), 1)
        .locate(&env, &input)
        .await
        .expect("step");
    assert!(v.usage.calls >= 1 && v.usage.calls <= 3);
    if let Some(k) = v.step {
        assert_eq!(v.usage.calls, k as u64 + 1, "stops at the first no");
    }

    let v = critic::build(&spec("chain:arith,llm"), 1)
        .locate(&env, &input)
        .await
        .expect("chain");
    assert_eq!(v.step, Some(1));
    assert!(v.rationale.starts_with("arith:"), "{}", v.rationale);
    assert_eq!(
        v.usage.calls, 0,
        "the exact verifier decided; the llm was not asked"
    );
    assert!("nope".parse::<CriticSpec>().is_err());
}

#[tokio::test]
async fn the_verifier_defaults_to_the_critic_through_the_library() {
    // No CLI: the library's default options verify revisions with the critic.
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer) = context(dir.path(), 8).await;
    let opts = Options {
        critic: Some(CriticSpec::Arith),
        ..Options::default()
    };
    assert_eq!(opts.effective_verifier(), Some(&CriticSpec::Arith));
    let draft: Vec<String> = vec![
        "Each box holds 6 eggs.".into(),
        "So 5 boxes hold 5 * 6 = 35 eggs.".into(),
        "The answer is 35.".into(),
    ];
    let problem = Problem {
        draft: Some(&draft),
        ..Problem::new("A box holds 6 eggs. How many eggs are in 5 boxes?").with_gold("30")
    };
    let sol = strategy::build(Kind::Backtrack, &opts)
        .expect("backtrack")
        .solve(&cx, &problem)
        .await
        .expect("solve");
    assert_eq!(sol.located.len(), 1);
    assert_eq!(
        (sol.located[0].step, sol.located[0].critic.as_str()),
        (1, "arith")
    );
    let events = amend::trace::read(writer.path()).expect("trace");
    let mistake = events
        .iter()
        .find(|e| e.kind == "mistake")
        .expect("mistake event");
    let resampled = calls_made(&events) > 0;
    if mistake.data["revised"].is_string() {
        assert_eq!(mistake.data["detail"]["verifier"], "arith");
        let revised: Vec<String> =
            amend::steps::split(mistake.data["revised"].as_str().unwrap_or(""));
        let false_claim = amend::critic::first_false(&revised).is_some();
        assert_eq!(
            mistake.data["detail"]["verifier_refused"], false_claim,
            "a revision is kept exactly when the verifier finds no false claim"
        );
        assert_eq!(mistake.data["kept"], !false_claim);
        assert_eq!(sol.attempts.len(), if false_claim { 1 } else { 2 });
    } else {
        assert!(
            resampled,
            "no revision only when every resample matched the step"
        );
    }
}

fn calls_made(events: &[amend::trace::Event]) -> usize {
    events.iter().filter(|e| e.kind == "call").count()
}
