//! The local backend with the real default model (SmolLM2-135M-Instruct).
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

use amend::model::llama::{LocalModel, Options};
use amend::model::{KvLayout, NoPrefixReuse};
use amend::{FinishReason, LogitsHook, Message, Model, ModelError, Request, TokenStep};

async fn model(n_seq: u32) -> LocalModel {
    model_with(n_seq, KvLayout::Auto).await
}

async fn model_with(n_seq: u32, kv: KvLayout) -> LocalModel {
    let opts = Options {
        n_ctx: 1024,
        max_ctx: 4096,
        n_seq,
        threads: 1,
        kv,
        queue: 64,
    };
    LocalModel::load(&common::model_path(), opts)
        .await
        .expect("load the default model")
}

fn question() -> Request {
    Request::chat(vec![Message::user(
        "What is the capital of France? Answer in one sentence.",
    )])
    .with_max_tokens(24)
}

#[tokio::test]
async fn without_prefix_reuse_an_answer_does_not_depend_on_the_calls_before() {
    let m = NoPrefixReuse(Arc::new(model(1).await));
    assert!(!m.capabilities().kv_prefix_reuse);
    let ask = |problem: &str| {
        Request::chat(vec![Message::user(format!(
            "Solve the following problem step by step.\n\nProblem: {problem}"
        ))])
        .with_max_tokens(64)
    };
    let wei = "Wei saved $41 from odd jobs. He spends $6 on snacks. A relative gives Wei \
               another $13. How many dollars does Wei have now?";
    let alone = m.generate(ask(wei)).await.expect("alone");
    m.generate(ask(
        "Ingrid has $49 and spends $36 on a plant. How much is left?",
    ))
    .await
    .expect("another problem");
    let after = m.generate(ask(wei)).await.expect("after another problem");
    assert_eq!(after.usage.reused_tokens, 0);
    assert_eq!(after.usage.prompt_tokens, alone.usage.prompt_tokens);
    assert_eq!(after.text(), alone.text());
}

#[tokio::test]
async fn greedy_is_deterministic_and_reports_usage() {
    let m = model(1).await;
    let a = m
        .generate(question().with_prefix_reuse(false))
        .await
        .expect("first");
    let b = m
        .generate(question().with_prefix_reuse(false))
        .await
        .expect("second");
    assert!(!a.text().is_empty());
    assert_eq!(a.text(), b.text());
    assert_eq!(a.usage.reused_tokens, 0);
    assert!(a.usage.prompt_tokens > 10);
    assert_eq!(a.usage.generated_tokens, u64::from(a.samples[0].tokens));
    assert_eq!(a.usage.calls, 1);
}

#[tokio::test]
async fn same_seed_same_text() {
    let m = model(1).await;
    let req = Request::chat(vec![Message::user("Write a sentence about a cat.")])
        .with_sampling(1.0, 0.95)
        .with_max_tokens(32);
    let a = m.generate(req.clone().with_seed(42)).await.expect("a");
    let b = m.generate(req.clone().with_seed(42)).await.expect("b");
    assert_eq!(a.text(), b.text());
    let mut differs = false;
    for seed in 43..48 {
        let c = m.generate(req.clone().with_seed(seed)).await.expect("c");
        differs |= c.text() != a.text();
    }
    assert!(differs, "five other seeds all gave {:?}", a.text());
}

#[tokio::test]
async fn prefix_reuse_gives_the_cold_text_while_decoding_fewer_tokens() {
    let m = model(1).await;
    let first = m.generate(question()).await.expect("first turn");
    let follow = Request::chat(vec![
        Message::user("What is the capital of France? Answer in one sentence."),
        Message::assistant(first.text()),
        Message::user("And of Italy?"),
    ])
    .with_max_tokens(24);
    let warm = m.generate(follow.clone()).await.expect("warm");
    let cold = m
        .generate(follow.clone().with_prefix_reuse(false))
        .await
        .expect("cold");
    assert_eq!(warm.text(), cold.text(), "reuse must not change the output");
    assert_eq!(warm.usage.prompt_tokens, cold.usage.prompt_tokens);
    assert_eq!(cold.usage.reused_tokens, 0);
    assert!(
        warm.usage.reused_tokens > 20,
        "reused only {}",
        warm.usage.reused_tokens
    );
    assert!(warm.usage.decoded_prompt_tokens() < cold.usage.decoded_prompt_tokens());
}

#[tokio::test]
async fn four_parallel_samples() {
    // One KV stream per sample (the default) and one unified cache shared by all samples.
    for kv in [KvLayout::Split, KvLayout::Unified] {
        four_parallel_samples_with(model_with(4, kv).await).await;
    }
}

async fn four_parallel_samples_with(m: LocalModel) {
    let req = Request::chat(vec![Message::user("Name a fruit and describe it.")])
        .with_sampling(1.0, 1.0)
        .with_max_tokens(24)
        .with_seed(5)
        .with_n(4);
    let r = m.generate(req.clone()).await.expect("n=4");
    assert_eq!(r.samples.len(), 4);
    assert!(r.samples.iter().all(|s| s.tokens > 0));
    let distinct: std::collections::HashSet<_> = r.samples.iter().map(|s| s.text.clone()).collect();
    assert!(
        distinct.len() >= 2,
        "all four samples identical: {:?}",
        r.samples[0].text
    );
    assert_eq!(
        r.usage.generated_tokens,
        r.samples.iter().map(|s| u64::from(s.tokens)).sum::<u64>()
    );
    // The prompt is decoded once for all four samples.
    let again = m.generate(req.with_n(1)).await.expect("n=1");
    assert_eq!(r.usage.prompt_tokens, again.usage.prompt_tokens);
    // Same seed, same batch of samples.
    let r2 = m
        .generate(
            Request::chat(vec![Message::user("Name a fruit and describe it.")])
                .with_sampling(1.0, 1.0)
                .with_max_tokens(24)
                .with_seed(5)
                .with_n(4),
        )
        .await
        .expect("repeat");
    assert_eq!(r.samples, r2.samples);
}

/// Forbids one token and records what it saw.
struct Forbid {
    token: Mutex<Option<usize>>,
    calls: AtomicUsize,
    hidden_len: AtomicUsize,
    vocab: AtomicUsize,
    texts: Mutex<Vec<String>>,
}

impl LogitsHook for Forbid {
    fn apply(&self, step: &mut TokenStep<'_>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.hidden_len
            .store(step.hidden.map(|h| h.len()).unwrap_or(0), Ordering::SeqCst);
        self.vocab.store(step.logits.len(), Ordering::SeqCst);
        self.texts.lock().expect("lock").push(step.text.to_string());
        if let Some(t) = *self.token.lock().expect("lock") {
            step.logits[t] = f32::NEG_INFINITY;
        }
    }
}

/// Records the greedy (argmax) token at step 0.
struct Argmax(Mutex<Option<usize>>);

impl LogitsHook for Argmax {
    fn apply(&self, step: &mut TokenStep<'_>) {
        if step.index == 0 {
            let best = step
                .logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i);
            *self.0.lock().expect("lock") = best;
        }
    }
}

#[tokio::test]
async fn logits_hook_sees_hidden_state_and_changes_output() {
    let m = model(1).await;
    let argmax = Arc::new(Argmax(Mutex::new(None)));
    let plain = m
        .generate(question().with_hook(argmax.clone()))
        .await
        .expect("plain");
    let first = argmax.0.lock().expect("lock").expect("hook ran");

    let hook = Arc::new(Forbid {
        token: Mutex::new(Some(first)),
        calls: AtomicUsize::new(0),
        hidden_len: AtomicUsize::new(0),
        vocab: AtomicUsize::new(0),
        texts: Mutex::new(Vec::new()),
    });
    let biased = m
        .generate(question().with_hook(hook.clone()))
        .await
        .expect("biased");
    assert_ne!(
        plain.text(),
        biased.text(),
        "forbidding the first token must change the output"
    );
    assert_eq!(
        hook.calls.load(Ordering::SeqCst),
        biased.samples[0].tokens as usize
    );
    assert_eq!(
        hook.hidden_len.load(Ordering::SeqCst),
        m.info().n_embd as usize
    );
    assert_eq!(hook.vocab.load(Ordering::SeqCst), m.info().n_vocab as usize);
    // The hook sees the text generated so far: empty at the first token, then each step's
    // text a prefix of the next one's and of the output.
    let texts = std::mem::take(&mut *hook.texts.lock().expect("lock"));
    assert_eq!(texts.first().map(String::as_str), Some(""));
    assert!(texts.windows(2).all(|w| w[1].starts_with(w[0].as_str())));
    assert!(texts
        .iter()
        .all(|t| biased.text().starts_with(t.trim_end())));
    assert!(texts.last().is_some_and(|t| !t.is_empty()));

    // An identity hook changes nothing.
    *hook.token.lock().expect("lock") = None;
    let identity = m
        .generate(question().with_hook(hook))
        .await
        .expect("identity");
    assert_eq!(identity.text(), plain.text());
}

#[tokio::test]
async fn stop_strings_prefill_and_logprobs() {
    let m = model(1).await;
    let r = m
        .generate(
            Request::chat(vec![Message::user(
                "Count from 1 to 10, one number per line.",
            )])
            .with_max_tokens(64)
            .with_stop(["\n"]),
        )
        .await
        .expect("stop");
    assert!(!r.text().contains('\n'));
    assert_eq!(r.samples[0].finish, FinishReason::Stop);

    let r = m
        .generate(
            Request::chat(vec![Message::user("Count from 1 to 10.")])
                .with_prefill("1, 2, 3,")
                .with_max_tokens(8)
                .with_logprobs(true),
        )
        .await
        .expect("prefill");
    let lp = r.samples[0].logprobs.clone().expect("logprobs");
    assert_eq!(
        lp.len(),
        r.samples[0].tokens as usize - usize::from(r.samples[0].finish == FinishReason::Eos)
    );
    assert!(lp.iter().all(|t| t.logprob <= 0.0 && t.logprob.is_finite()));
    assert!(
        r.text().trim_start().starts_with('4'),
        "continued the prefill: {:?}",
        r.text()
    );
    assert_eq!(r.prefill, Some(amend::model::Prefill::Native));
}

#[tokio::test]
async fn missing_and_corrupt_models_fail_clearly() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("nope.gguf");
    let err = LocalModel::load(&missing, Options::default())
        .await
        .expect_err("missing must fail");
    assert!(matches!(err, ModelError::NotFound { .. }));
    assert!(err.to_string().contains("nope.gguf") && err.to_string().contains("amend model fetch"));

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model").expect("write");
    let err = LocalModel::load(&garbage, Options::default())
        .await
        .expect_err("garbage must fail");
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("garbage.gguf"));

    // A real header followed by a truncated body.
    let full = std::fs::read(common::model_path()).expect("read model");
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &full[..4096]).expect("write");
    let err = LocalModel::load(&truncated, Options::default())
        .await
        .expect_err("truncated must fail");
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("truncated.gguf"));
}

#[tokio::test]
async fn context_overflow_is_an_error_not_a_crash() {
    let opts = Options {
        n_ctx: 512,
        max_ctx: 512,
        n_seq: 1,
        threads: 1,
        kv: KvLayout::Auto,
        queue: 64,
    };
    let m = LocalModel::load(&common::model_path(), opts)
        .await
        .expect("load");
    let err = m
        .generate(question().with_max_tokens(2000))
        .await
        .expect_err("overflow");
    assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err}");
    // The model still works afterwards.
    assert!(!m
        .generate(question())
        .await
        .expect("after")
        .text()
        .is_empty());
}

#[tokio::test]
async fn reopening_a_generated_draft_at_a_line_boundary_decodes_nothing() {
    let m = model(1).await;
    let ask = || {
        Request::chat(vec![Message::user(
            "Solve step by step, one step per line: a box holds 6 eggs; how many eggs are in 5 boxes, and in 7 boxes?",
        )])
        .with_max_tokens(96)
    };
    let draft = m.generate(ask()).await.expect("draft");
    let text = draft.text().to_string();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert!(lines.len() >= 3, "the draft has lines: {text:?}");
    // Re-open after the first two lines, as backtracking does at step 2.
    let prefix: String = lines[..2].concat();
    let again = m
        .generate(ask().with_prefill(prefix.clone()))
        .await
        .expect("reopen");
    assert_eq!(
        again.usage.reused_tokens, again.usage.prompt_tokens,
        "no token of the kept prefix is decoded again"
    );
    // Greedy from the saved logits continues exactly as the draft did.
    let rest = &text[prefix.len()..];
    let n = again.text().len().min(rest.len()).min(40);
    assert_eq!(&again.text()[..n], &rest[..n]);
}
