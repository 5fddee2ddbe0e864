//! Concurrent requests on one local model: decoded together in slots, each answering its own
//! prompt; a caller that goes away frees its slot; a full queue is a clear, retryable error; a
//! logits hook sees only its own request's tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amend::model::llama::{LocalModel, Options};
use amend::model::KvLayout;
use amend::{LogitsHook, Message, Model, ModelError, Request, TokenStep};

async fn model(n_seq: u32, queue: usize) -> Arc<LocalModel> {
    let opts = Options {
        n_ctx: 1024,
        max_ctx: 8192,
        n_seq,
        threads: 1,
        kv: KvLayout::Split,
        queue,
    };
    Arc::new(
        LocalModel::load(&common::model_path(), opts)
            .await
            .expect("model"),
    )
}

/// A counting request whose right continuation differs from the others': after "a, a+1, a+2,"
/// comes a+3.
fn count_from(a: u32) -> Request {
    Request::chat(vec![Message::user("Continue the sequence of numbers.")])
        .with_prefill(format!("{}, {}, {},", a, a + 1, a + 2))
        .with_max_tokens(4)
}

#[tokio::test]
async fn concurrent_requests_each_answer_their_own_prompt() {
    let m = model(4, 16).await;
    let starts = [10u32, 30, 50, 70, 110, 130];
    // Six requests on four slots: four decode together, two join as slots free up.
    let calls = starts.iter().map(|&a| {
        let m = m.clone();
        async move { (a, m.generate(count_from(a)).await) }
    });
    for (a, r) in futures::future::join_all(calls).await {
        let r = r.expect("answer");
        let text = r.text().trim_start().to_string();
        assert!(
            text.starts_with(&(a + 3).to_string()),
            "the request counting from {a} answered {text:?}"
        );
        assert_eq!(r.usage.calls, 1);
    }
    // The same prompts one at a time give the same continuations' first number.
    for &a in &starts[..2] {
        let r = m.generate(count_from(a)).await.expect("answer");
        assert!(r.text().trim_start().starts_with(&(a + 3).to_string()));
    }
}

#[tokio::test]
async fn a_request_admitted_mid_decode_leaves_the_running_ones_intact() {
    // A long count runs; a second request is admitted between its steps (its prompt decoded
    // while the first is half-way). The first must go on counting from its own context.
    let m = model(2, 8).await;
    let long = count_from(10).with_max_tokens(60);
    let m2 = m.clone();
    let first = tokio::spawn(async move { m2.generate(long).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = m.generate(count_from(500)).await.expect("second");
    assert!(
        second.text().trim_start().starts_with("503"),
        "{:?}",
        second.text()
    );
    let first = first.await.expect("join").expect("first");
    let nums: Vec<u32> = first
        .text()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 4, "{:?}", first.text());
    assert!(
        nums.iter().take(8).all(|&n| (13..100).contains(&n)),
        "the first request kept counting its own numbers: {:?}",
        first.text()
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_frees_its_slot() {
    let m = model(1, 4).await;
    let long = Request::chat(vec![Message::user("Write a very long story.")])
        .with_max_tokens(6000)
        .with_stop(["@@@never@@@"]);
    // The caller gives up after a moment: its future is dropped.
    let gone = tokio::time::timeout(Duration::from_millis(500), m.generate(long)).await;
    assert!(gone.is_err(), "the long request was cut by the timeout");
    // The one slot is free again at the next step: a short request gets it. (Left running,
    // the long one would hold it for thousands of tokens, minutes on this machine.)
    let r = tokio::time::timeout(Duration::from_secs(120), m.generate(count_from(20)))
        .await
        .expect("the slot was freed")
        .expect("answer");
    assert!(r.text().trim_start().starts_with("23"), "{:?}", r.text());
}

#[tokio::test]
async fn a_full_queue_is_a_clear_retryable_error() {
    let m = model(1, 1).await;
    let long = || {
        Request::chat(vec![Message::user("Write a very long story.")])
            .with_max_tokens(3000)
            .with_stop(["@@@never@@@"])
    };
    // One request holds the slot, one waits at the head of the line, one fills the queue:
    // the next are refused at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let m = m.clone();
        held.push(tokio::spawn(async move { m.generate(long()).await }));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let refused = m.generate(count_from(1)).await;
    let err = refused.expect_err("the queue is full");
    assert!(matches!(err, ModelError::Busy { queue: 1 }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("busy"), "{err}");
    for h in held {
        h.abort();
    }
}

/// Counts the tokens it is called for, and which samples they belong to.
struct Counter {
    calls: AtomicUsize,
    samples: Mutex<Vec<usize>>,
}

impl LogitsHook for Counter {
    fn apply(&self, step: &mut TokenStep<'_>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut s) = self.samples.lock() {
            s.push(step.sample);
        }
    }
    fn wants_hidden(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_logits_hook_sees_only_its_own_requests_tokens() {
    let m = model(4, 8).await;
    let hook = Arc::new(Counter {
        calls: AtomicUsize::new(0),
        samples: Mutex::new(Vec::new()),
    });
    let hooked = Request::chat(vec![Message::user("Name three fruits.")])
        .with_max_tokens(12)
        .with_sampling(0.8, 0.95)
        .with_seed(3)
        .with_n(2)
        .with_hook(hook.clone());
    let other = Request::chat(vec![Message::user("Write a long story about a ship.")])
        .with_max_tokens(40)
        .with_sampling(0.8, 0.95)
        .with_seed(4)
        .with_n(2);
    let (a, b) = tokio::join!(m.generate(hooked), m.generate(other));
    let (a, b) = (a.expect("hooked"), b.expect("other"));
    assert!(b.usage.generated_tokens > 0);
    assert_eq!(
        hook.calls.load(Ordering::SeqCst) as u64,
        a.usage.generated_tokens,
        "one call per token of its own request, none of the other's"
    );
    let samples = hook.samples.lock().expect("lock").clone();
    assert!(samples.iter().all(|&s| s < 2), "{samples:?}");
}
