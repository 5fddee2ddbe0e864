//! Teacher forcing (`Model::score`) on the local backend with the real default model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use amend::model::llama::{LocalModel, Options};
use amend::{FinishReason, Input, Message, Model, Request, ScoreRequest};

fn prompt() -> Vec<Message> {
    vec![Message::user(
        "Tom has 3 apples and buys 4 more. How many apples does he have? Answer in one sentence.",
    )]
}

#[tokio::test]
async fn scoring_the_greedy_answer_finds_it_the_top_choice_and_returns_hidden_states() {
    let opts = Options {
        n_ctx: 1024,
        max_ctx: 2048,
        n_seq: 2,
        threads: 1,
        ..Options::default()
    };
    let m = LocalModel::load(&common::model_path(), opts)
        .await
        .expect("load the default model");
    assert!(m.capabilities().teacher_forcing);
    let greedy = m
        .generate(
            Request::chat(prompt())
                .with_max_tokens(24)
                .with_logprobs(true),
        )
        .await
        .expect("greedy");
    let text = greedy.text().to_string();
    let scored = m
        .score(ScoreRequest {
            input: Input::Chat(prompt()),
            continuation: text.clone(),
            top_k: 8,
            hidden: true,
            close: false,
        })
        .await
        .expect("score");
    let n = scored.tokens.len();
    assert!(n >= 5, "{n} tokens for {text:?}");
    // The scored tokens spell the continuation.
    let spelt: String = scored.tokens.iter().map(|t| t.piece.as_str()).collect();
    assert_eq!(spelt.trim(), text.trim());
    // The model's own greedy text is its top choice almost everywhere (one pass over the
    // whole text is not bit-exact with token-by-token decoding: near-ties may differ).
    let top = scored.tokens.iter().filter(|t| t.rank == 0).count();
    assert!(top * 10 >= n * 9, "{top} of {n} at rank 0");
    for t in &scored.tokens {
        assert_eq!(t.top.len(), 8);
        assert!(
            t.top.windows(2).all(|w| w[0].1 >= w[1].1),
            "sorted: {:?}",
            t.top
        );
        if t.rank < 8 {
            assert_eq!(t.top[t.rank as usize].0, t.gold, "{t:?}");
        }
        assert!(t.logprob() <= 0.0 && t.logprob().is_finite());
        let h = t.hidden.as_ref().expect("hidden state");
        assert_eq!(h.len(), scored.hidden_dim);
        assert!(h.iter().all(|x| x.is_finite()));
    }
    assert!(scored.hidden_dim > 0);
    // Scoring the same text again reuses the prompt slot 0 holds: the same tokens, the same
    // predictions up to the arithmetic's batch-shape noise.
    let again = m
        .score(ScoreRequest {
            input: Input::Chat(prompt()),
            continuation: text.clone(),
            top_k: 8,
            hidden: true,
            close: false,
        })
        .await
        .expect("score again");
    assert_eq!(again.tokens.len(), n);
    for (a, b) in again.tokens.iter().zip(&scored.tokens) {
        assert_eq!((a.gold, &a.piece), (b.gold, &b.piece));
        assert!((a.logprob() - b.logprob()).abs() < 0.05, "{a:?} vs {b:?}");
        assert_eq!(
            a.hidden.as_ref().map(Vec::len),
            b.hidden.as_ref().map(Vec::len)
        );
    }
    // A continuation the model would not write costs more per token.
    let odd = m
        .score(ScoreRequest {
            input: Input::Chat(prompt()),
            continuation: "Purple elephants sing about seventeen quiet bicycles.".into(),
            top_k: 4,
            hidden: false,
            close: false,
        })
        .await
        .expect("score odd");
    assert!(odd.tokens.iter().all(|t| t.hidden.is_none()));
    assert!(
        odd.nll() > scored.nll() + 1.0,
        "odd {} vs greedy {}",
        odd.nll(),
        scored.nll()
    );
    // The model generates as before afterwards.
    let again = m
        .generate(Request::chat(prompt()).with_max_tokens(24))
        .await
        .expect("greedy again");
    assert!(!again.text().is_empty());
}

#[tokio::test]
async fn a_closed_turn_scores_the_token_generation_stops_on_after_the_text() {
    let opts = Options {
        n_ctx: 1024,
        max_ctx: 2048,
        n_seq: 1,
        threads: 1,
        ..Options::default()
    };
    let m = LocalModel::load(&common::model_path(), opts)
        .await
        .expect("load the default model");
    // A finished greedy answer: the model stopped on its own.
    let greedy = m
        .generate(Request::chat(prompt()).with_max_tokens(96))
        .await
        .expect("greedy");
    assert_eq!(greedy.samples[0].finish, FinishReason::Eos, "{greedy:?}");
    let text = greedy.text().to_string();
    let score = |close| {
        m.score(ScoreRequest {
            input: Input::Chat(prompt()),
            continuation: text.clone(),
            top_k: 4,
            hidden: false,
            close,
        })
    };
    let open = score(false).await.expect("score the open turn");
    let closed = score(true).await.expect("score the closed turn");
    // One more position, after the same tokens.
    assert_eq!(closed.tokens.len(), open.tokens.len() + 1);
    for (a, b) in open.tokens.iter().zip(&closed.tokens) {
        assert_eq!((a.gold, &a.piece), (b.gold, &b.piece));
    }
    // The closing token is the one the model stopped on: its greedy choice after the text
    // (the model stopped there), and no token of the text.
    let last = closed.tokens.last().expect("the closing position");
    assert_eq!(last.rank, 0, "{last:?}");
    assert!(open.tokens.iter().all(|t| t.gold != last.gold));
    assert!(last.logprob() > (0.5f32).ln(), "{last:?}");
}
