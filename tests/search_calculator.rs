//! The step search and the calculator with the real default model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use amend::model::{Message, Request};
use amend::run::{Budget, Problem};
use amend::strategy::{self, Kind, Options, SearchOptions};

const Q: &str =
    "Tom has 12 apples. He buys 7 more apples and eats 4. How many apples does he have now?";

#[tokio::test]
async fn the_search_extends_its_path_byte_for_byte_and_decodes_only_suffixes() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer, _) = common::local_context(dir.path(), 8).await;
    let store = std::sync::Arc::new(
        amend::mistakes::SledStore::open(&dir.path().join("log")).expect("log"),
    );
    let cx = cx.with_mistakes(store.clone()).with_task("test");
    let opts = Options {
        search: SearchOptions {
            k: 3,
            max_steps: 6,
            ..SearchOptions::default()
        },
        ..Options::default()
    };
    let search = strategy::build(Kind::Search, &opts).expect("search");
    assert!(!search.first_is_greedy(), "the eval makes the greedy pass");
    let sol = search.solve(&cx, &Problem::new(Q)).await.expect("search");
    assert_eq!(sol.attempts.len(), 1);
    assert!(sol.usage.calls >= 2);

    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    let steps: Vec<_> = events.iter().filter(|e| e.kind == "search_step").collect();
    assert!(!steps.is_empty());
    // Each step's calls continue the path kept at the step before, as it was: the prefills
    // grow by whole candidate lines, and the final text starts with every kept path.
    let mut prefills: Vec<String> = calls
        .iter()
        .map(|c| {
            c.data["request"]["prefill"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    prefills.dedup();
    for w in prefills.windows(2) {
        assert!(
            w[1].starts_with(&w[0]),
            "{:?} does not extend {:?}",
            w[1],
            w[0]
        );
    }
    let text = &sol.attempts[0].text;
    for s in &steps {
        for kept in s.data["kept"].as_array().expect("kept") {
            let kept = kept.as_str().expect("text");
            assert!(text.starts_with(kept.trim_end()), "{kept:?} vs {text:?}");
        }
    }
    // Only suffixes are decoded: after the first call, a call decodes at most the few tokens
    // of the line it continues (and the newline), never the problem or the kept steps again.
    let first_prompt = calls[0].data["usage"]["prompt_tokens"]
        .as_u64()
        .expect("prompt");
    let mut redecoded = 0;
    for c in &calls[1..] {
        let u = &c.data["usage"];
        let decoded = u["prompt_tokens"].as_u64().unwrap() - u["reused_tokens"].as_u64().unwrap();
        let prefill_tokens = u["prompt_tokens"].as_u64().unwrap() - first_prompt;
        assert!(
            decoded <= prefill_tokens.min(4) + 1,
            "decoded {decoded}: {u}"
        );
        redecoded += decoded.saturating_sub(1);
    }
    eprintln!("re-decoded prefix tokens beyond the newline: {redecoded}");
    // Every step lists its candidates with why each was kept or dropped; dropped ones are
    // located mistakes in the store.
    for s in &steps {
        for p in s.data["paths"].as_array().expect("paths") {
            for c in p["candidates"].as_array().expect("candidates") {
                assert!(c["kept"].is_boolean() && c["text"].is_string(), "{c}");
                if c["kept"] == false {
                    assert!(c["why"].as_str().is_some_and(|w| !w.is_empty()));
                }
            }
        }
    }
    use amend::mistakes::Store;
    let dropped = steps
        .iter()
        .flat_map(|s| s.data["paths"].as_array().cloned().unwrap_or_default())
        .flat_map(|p| p["candidates"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["kept"] == false)
        .count();
    assert_eq!(
        store.list(&Default::default()).expect("list").len(),
        dropped
    );
    assert_eq!(sol.located.len(), dropped);
}

#[tokio::test]
async fn the_search_stops_at_its_budget_with_what_it_has() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, _, _) = common::local_context(dir.path(), 4).await;
    // One call: the first line's candidates; the second step is refused by the cap.
    let cx = cx.with_budget(Budget::new().with_max_calls(1));
    let search = strategy::build(Kind::Search, &Options::default()).expect("search");
    let sol = search.solve(&cx, &Problem::new(Q)).await.expect("search");
    assert_eq!(sol.usage.calls, 1, "{:?}", sol.usage);
    assert_eq!(sol.attempts.len(), 1, "the path so far is the solution");
    match &sol.budget_stop {
        Some(stop) => assert!(stop.to_string().contains("max_calls"), "{stop}"),
        // Only a first line that already ends the solution needs no second call.
        None => assert!(
            sol.attempts[0].text.lines().count() <= 1,
            "{:?}",
            sol.attempts[0].text
        ),
    }
}

#[tokio::test]
async fn the_calculator_writes_the_exact_result_and_the_model_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer, _) = common::local_context(dir.path(), 2).await;
    let cx = cx.with_calculator(true);
    // A product the 135M model does not know: whatever it writes after `=`, the text holds
    // the exact value there and goes on after it.
    let req = Request::chat(vec![Message::user("What is 4837 * 29? Show the product.")])
        .with_prefill("4837 * 29 =")
        .with_max_tokens(24);
    let r = cx.model().generate(req).await.expect("generate");
    let text = r.text();
    assert!(text.trim_start().starts_with("140273"), "{text:?}");
    let full = format!("4837 * 29 ={text}");
    assert_eq!(amend::calc::results(&full, false).1, None, "{full:?}");
    let events = amend::trace::read(writer.path()).expect("trace");
    let calc: Vec<_> = events.iter().filter(|e| e.kind == "calculator").collect();
    assert_eq!(calc.len(), 1);
    let subs = calc[0].data["substitutions"].as_array().expect("subs");
    assert_eq!(subs[0]["expr"], "4837 * 29");
    assert_eq!(subs[0]["exact"], "140273");
    assert_ne!(
        subs[0]["written"], "140273",
        "the model wrote its own number first"
    );
    // The continuation was one more call on the kept text, reusing its cache.
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    assert_eq!(calls.len(), 1 + subs.len());
    let pre = calls[1].data["request"]["prefill"]
        .as_str()
        .expect("prefill");
    assert!(
        pre.ends_with("= 140273") || pre.ends_with("=140273"),
        "{pre:?}"
    );
    assert!(r.usage.calls as usize >= 2 && r.usage.reused_tokens > 0);
}

#[tokio::test]
async fn with_greedy_every_step_has_the_greedy_line_among_its_candidates() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cx, writer, _) = common::local_context(dir.path(), 8).await;
    let opts = Options {
        search: SearchOptions {
            k: 3,
            max_steps: 4,
            greedy: true,
            ..SearchOptions::default()
        },
        ..Options::default()
    };
    let search = strategy::build(Kind::Search, &opts).expect("search");
    search.solve(&cx, &Problem::new(Q)).await.expect("search");
    let events = amend::trace::read(writer.path()).expect("trace");
    let calls: Vec<_> = events.iter().filter(|e| e.kind == "call").collect();
    let steps: Vec<_> = events.iter().filter(|e| e.kind == "search_step").collect();
    assert!(!steps.is_empty());
    // One greedy call (T = 0, n = 1) per step and path, and k - 1 samples beside it.
    let greedy: Vec<_> = calls
        .iter()
        .filter(|c| c.data["request"]["temperature"].as_f64() == Some(0.0))
        .collect();
    let sampled = calls
        .iter()
        .filter(|c| c.data["request"]["temperature"].as_f64() != Some(0.0))
        .collect::<Vec<_>>();
    assert_eq!(greedy.len(), steps.len(), "one greedy call per step");
    assert!(sampled
        .iter()
        .all(|c| c.data["request"]["n"].as_u64() >= Some(2)));
    for (g, s) in greedy.iter().zip(&steps) {
        assert_eq!(g.data["request"]["n"], 1);
        let line = g.data["output"][0]["text"].as_str().expect("text");
        let cands = s.data["paths"][0]["candidates"]
            .as_array()
            .expect("candidates");
        assert_eq!(cands[0]["text"].as_str(), Some(line), "{s:?}");
    }
}
