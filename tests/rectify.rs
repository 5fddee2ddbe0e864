//! Rectifier data: teacher-forced token records from gold solutions, with the real default
//! model and a real sled store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use std::path::Path;
use std::sync::Arc;

use amend::mistakes::{SledStore, Store};
use amend::model::openai::{ApiModel, Options};
use amend::rectify::{self, CollectOptions, RectifyError};
use amend::{Context, ModelError, Prompts};

fn items() -> Vec<amend::data::Item> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gsm8k.jsonl");
    let loaded = amend::data::load(amend::data::Task::Gsm8k, &path, false).expect("fixture");
    amend::data::select(loaded.items, None, 0, Some(2))
}

/// The default model, local, one sequence.
#[cfg(feature = "local")]
async fn local() -> Arc<dyn amend::Model> {
    let opts = amend::model::llama::Options {
        n_ctx: 1024,
        max_ctx: 2048,
        n_seq: 1,
        threads: 1,
        ..Default::default()
    };
    Arc::new(
        amend::model::llama::LocalModel::load(&common::model_path(), opts)
            .await
            .expect("load the default model"),
    )
}

#[cfg(feature = "local")]
#[tokio::test]
async fn gold_solutions_become_token_records_and_a_rerun_resumes() {
    let model = local().await;
    let key = model.id().key.clone();
    let cx = Context::new(model, Arc::new(Prompts::builtin().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let items = items();
    let (turns, without) = rectify::gold_turns(&items);
    assert_eq!((turns.len(), without), (2, 0));
    let opts = CollectOptions { top_k: 8 };
    let mut seen = 0;
    let r = rectify::collect(&cx, &store, "fixture", &turns, opts, |_| seen += 1)
        .await
        .expect("collect");
    assert_eq!((r.items, r.already, seen), (2, 0, 2));
    assert!(r.in_top_k >= r.top1 && r.top1 > 0);
    let (mut total, mut closes) = (0, Vec::new());
    for item in &items {
        let recs = store.tokens(&format!("tf:fixture:{}", item.id)).unwrap();
        assert!(!recs.is_empty());
        total += recs.len() as u64;
        // The gold tokens spell the assistant turn `solve` would answer with.
        let turn = rectify::gold_turn(item).unwrap();
        assert!(turn.ends_with(&format!(
            "The answer is {}.",
            match &item.gold {
                amend::data::Gold::Answer { answer, .. } => answer.as_str(),
                _ => unreachable!(),
            }
        )));
        for (j, rec) in recs.iter().enumerate() {
            assert_eq!(rec.position as usize, j);
            assert_eq!(
                rec.source,
                Some(amend::mistakes::TokenSource::TeacherForced)
            );
            assert_eq!(rec.model, key);
            assert_eq!(rec.top.len(), 8);
            assert_eq!(
                rec.token, rec.top[0].0,
                "the pilot's token is its top choice"
            );
            assert!(rec.gold.is_some() && rec.log_normaliser.is_some());
            assert!(!rec.hidden.is_empty() && rec.hidden.iter().all(|x| x.is_finite()));
        }
        // The turn is closed: the last gold token ends it, and is no token of the text.
        let close = recs.last().unwrap().gold;
        assert!(recs[..recs.len() - 1].iter().all(|r| r.gold != close));
        closes.push(close);
    }
    // The same end-of-turn token closes every turn.
    assert!(closes.len() == 2 && closes[0] == closes[1], "{closes:?}");
    assert_eq!(total, r.tokens);
    // A second run finds both collected and writes nothing.
    let again = rectify::collect(&cx, &store, "fixture", &turns, opts, |_| {})
        .await
        .expect("again");
    assert_eq!((again.items, again.already, again.tokens), (0, 2, 0));
    // Train on them (a smoke run: two items), measure on the same set, write, read back.
    let opts = rectify::train::TrainOptions {
        k: 8,
        epochs: 2,
        ..Default::default()
    };
    let sets = vec!["fixture".to_string()];
    let f = rectify::fit::fit(&store, &key, &sets, &sets, opts, |_, _, _| {}).expect("fit");
    assert_eq!((f.model.as_str(), f.k), (key.as_str(), 8));
    assert!(f.hidden_dim > 0);
    assert!(f.trained.dev.tokens > 0, "a development split exists");
    assert_eq!(f.held_out[0].1.tokens, r.tokens);
    let path = dir.path().join("rectifier.json");
    f.save(&path).expect("save");
    let back = rectify::file::RectifierFile::load_for(&path, &key).expect("load");
    assert_eq!(back.data_hash, f.data_hash);
    // No records for another model: a clear error.
    let e = rectify::fit::fit(&store, "gguf-other", &sets, &[], opts, |_, _, _| {})
        .expect_err("no data");
    assert!(e.to_string().contains("amend rectify collect"), "{e}");
}

/// The width of the model's hidden state (from one teacher-forced pass).
#[cfg(feature = "local")]
async fn hidden_dim(model: &Arc<dyn amend::Model>) -> usize {
    model
        .score(amend::ScoreRequest {
            input: amend::Input::Chat(vec![amend::Message::user("Hi")]),
            continuation: "Hello".into(),
            top_k: 1,
            hidden: true,
            close: false,
        })
        .await
        .expect("score")
        .hidden_dim
}

/// A rectifier file for `model` whose network ignores its input and moves probability from the
/// pilot's first choice to its second (b2 = (-1, +1, 0, ...)).
#[cfg(feature = "local")]
fn swap_file(model: &str, hidden_dim: usize, lambda: f32) -> rectify::file::RectifierFile {
    use rectify::net::Mlp;
    use rectify::train::{Features, Metrics, Trained};
    let k = 4;
    let mut net = Mlp::new(hidden_dim + k, 2, k, 1);
    net.w1.iter_mut().for_each(|w| *w = 0.0);
    net.w2.iter_mut().for_each(|w| *w = 0.0);
    net.b2 = vec![-1.0, 1.0, 0.0, 0.0];
    rectify::file::RectifierFile {
        format: rectify::file::FORMAT,
        model: model.into(),
        k,
        hidden_dim,
        train_sets: vec!["test".into()],
        train_tokens: 0,
        data_hash: rectify::file::data_hash([]),
        trained: Trained {
            features: Features {
                k,
                use_hidden: true,
                mean: vec![0.0; hidden_dim],
                std: vec![1.0; hidden_dim],
            },
            net,
            lambda,
            dev: Metrics::default(),
            objective: Default::default(),
            token_bias: Default::default(),
            scope: Default::default(),
        },
        held_out: Vec::new(),
    }
}

#[cfg(feature = "local")]
#[tokio::test]
async fn an_installed_rectifier_changes_decoding_and_lambda_zero_changes_nothing() {
    use amend::{Message, Request};
    struct Identity;
    impl amend::LogitsHook for Identity {
        fn apply(&self, _step: &mut amend::TokenStep<'_>) {}
    }
    let local = local().await;
    let key = local.id().key.clone();
    let ask = || {
        Request::chat(vec![Message::user(
            "Tom has 3 apples and buys 4 more. How many apples does he have?",
        )])
        .with_max_tokens(24)
    };
    let dim = hidden_dim(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swap.json");
    swap_file(&key, dim, 1.0).save(&path).unwrap();
    // Hidden states on, no change: the identity hook and the rectifier at λ = 0 agree bit for bit.
    let identity = local
        .generate(ask().with_hook(Arc::new(Identity)))
        .await
        .expect("identity")
        .text()
        .to_string();
    let zero = rectify::apply::install(local.clone(), &path, Some(0.0)).expect("install");
    assert_eq!(zero.generate(ask()).await.expect("λ = 0").text(), identity);
    // At the file's λ = 1 it moves every step to the pilot's second choice.
    let swapped = rectify::apply::install(local.clone(), &path, None).expect("install");
    let changed = swapped
        .generate(ask())
        .await
        .expect("λ = 1")
        .text()
        .to_string();
    assert_ne!(changed, identity);
    // A file trained for another model is refused, naming both.
    let other = dir.path().join("other.json");
    swap_file("gguf-other", dim, 1.0).save(&other).unwrap();
    let e = rectify::apply::install(local.clone(), &other, None)
        .err()
        .expect("mismatch");
    assert!(
        e.to_string().contains("gguf-other") && e.to_string().contains(&key),
        "{e}"
    );
}

/// `--rectifier default`: the file shipped in the binary is for the default model, found by
/// its content fingerprint, runs at its own λ, and is refused for any other model.
#[cfg(feature = "local")]
#[tokio::test]
async fn the_shipped_rectifier_is_the_default_models_and_refuses_another() {
    use amend::{Message, Request};
    let local = local().await;
    let key = local.id().key.clone();
    let default = std::path::Path::new(rectify::file::DEFAULT);
    let shipped = rectify::file::RectifierFile::load_for(default, &key).expect("shipped file");
    assert_eq!(shipped.model, key);
    assert_eq!(shipped.hidden_dim, hidden_dim(&local).await);
    assert!(shipped.train_tokens > 0 && !shipped.held_out.is_empty());
    let installed = rectify::apply::install(local.clone(), default, None).expect("install");
    let text = installed
        .generate(
            Request::chat(vec![Message::user(
                "What is 12 + 30? Answer with a number.",
            )])
            .with_max_tokens(16),
        )
        .await
        .expect("decodes with the shipped rectifier")
        .text()
        .to_string();
    assert!(!text.is_empty());
    let e =
        rectify::file::RectifierFile::load_for(default, "gguf-other").expect_err("another model");
    assert!(
        e.to_string().contains("gguf-other") && e.to_string().contains(&key),
        "{e}"
    );
}

#[tokio::test]
async fn an_api_backend_refuses_and_nothing_is_written() {
    let api = ApiModel::new(
        "smollm2",
        Options {
            base_url: "http://127.0.0.1:9/v1".into(),
            ..Options::default()
        },
    )
    .expect("client");
    let cx = Context::new(Arc::new(api), Arc::new(Prompts::builtin().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let err = rectify::collect(
        &cx,
        &store,
        "fixture",
        &rectify::gold_turns(&items()).0,
        CollectOptions::default(),
        |_| {},
    )
    .await
    .expect_err("refused");
    match err {
        RectifyError::Model(ModelError::Unsupported { what, .. }) => {
            assert!(what.contains("teacher forcing"), "{what}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(store.each_token(&mut |_| true).unwrap(), 0);
    // Nor can a rectifier be installed on it.
    let e = rectify::apply::install(cx.model().clone(), Path::new("any.json"), None)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("rectifier"), "{e}");
}

/// The mistake log feeds the rectifier: a result written wrong, located in an attempt, gives
/// token records of the right value that link back to the mistake.
#[cfg(feature = "local")]
#[tokio::test]
async fn a_located_arith_slip_gives_token_records_linked_to_its_mistake() {
    use amend::mistakes::{Sink, TokenSource};
    use amend::{Problem, ScoreRequest};
    let model = local().await;
    let key = model.id().key.clone();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let cx = Context::new(model.clone(), Arc::new(Prompts::builtin().unwrap()))
        .with_mistakes(store.clone())
        .with_token_log(true);
    let question = "Tom has 17 apples and buys 25 more. How many apples does he have?";
    let attempt = "Tom has 17 + 25 = 43 apples.\nThe answer is 43.";
    // The mistake as a strategy records it.
    let sink: Sink = cx.sink().unwrap();
    let mistake = sink.blank(question, Some("42"));
    sink.write(&mistake);
    let n = amend::strategy::log_slip_tokens(&cx, &Problem::new(question), attempt, &mistake.id)
        .await
        .expect("log");
    let recs = store.tokens(&mistake.id).unwrap();
    assert_eq!(recs.len(), n);
    assert!(
        store.get(&recs[0].mistake).unwrap().is_some(),
        "the records name the recorded mistake"
    );
    assert!(n >= 1, "the value 42 has at least one token");
    // The same continuation scored directly: the records are its last tokens, which spell 42.
    let req = cx.solve_request(&Problem::new(question)).unwrap();
    let scored = model
        .score(ScoreRequest {
            input: req.input,
            continuation: "Tom has 17 + 25 = 42".into(),
            top_k: 1,
            hidden: false,
            close: false,
        })
        .await
        .unwrap();
    let tail = &scored.tokens[scored.tokens.len() - n..];
    let spelled: String = tail.iter().map(|t| t.piece.as_str()).collect();
    assert_eq!(spelled.trim(), "42");
    for (rec, t) in recs.iter().zip(tail) {
        assert_eq!(rec.source, Some(TokenSource::Located));
        assert_eq!(rec.mistake, mistake.id);
        assert_eq!(rec.model, key);
        assert_eq!(rec.gold, Some(t.gold as i32));
        assert_eq!(rec.top.len(), amend::strategy::LOG_TOP_K as usize);
        assert!(!rec.hidden.is_empty());
    }
    let first = recs[0].position as usize;
    assert_eq!(
        first,
        scored.tokens.len() - n,
        "positions count from the turn's start"
    );
    // An attempt whose results are all right gives none.
    let none = amend::strategy::log_slip_tokens(
        &cx,
        &Problem::new(question),
        "17 + 25 = 42\nThe answer is 42.",
        "m-right",
    )
    .await
    .unwrap();
    assert_eq!(none, 0);
    assert!(store.tokens("m-right").unwrap().is_empty());
    // Without a store: a clear error naming the option.
    let bare = Context::new(model, Arc::new(Prompts::builtin().unwrap()));
    let e = amend::strategy::log_slip_tokens(&bare, &Problem::new(question), attempt, "x")
        .await
        .expect_err("no store");
    assert!(e.to_string().contains("mistakes"), "{e}");
}

/// `amend serve`: a request names a rectifier from the server's `rectifiers` (loaded and
/// checked against the model at start) and is decoded with it; unknown names, `lambda` alone,
/// and rectifiers on an API model are refused, naming the field.
#[cfg(feature = "local")]
#[tokio::test]
async fn a_served_request_decodes_with_the_rectifier_it_names() {
    use amend::serve::{router, App, Config};
    use tower::ServiceExt;
    let local = local().await;
    let key = local.id().key.clone();
    let dim = hidden_dim(&local).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swap.json");
    swap_file(&key, dim, 1.0).save(&path).unwrap();
    let config = Config {
        trace_dir: dir.path().join("traces"),
        rectifiers: [("swap".to_string(), path.clone())].into(),
        ..Config::default()
    };
    let prompts = Arc::new(Prompts::builtin().unwrap());
    let app = Arc::new(
        App::new(
            config.clone(),
            local.clone(),
            "default",
            None,
            prompts.clone(),
        )
        .unwrap(),
    );
    let ask = |policy: serde_json::Value| {
        let app = app.clone();
        async move {
            let body = serde_json::json!({"model": "default", "max_tokens": 24, "temperature": 0,
                "messages": [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}],
                "amend": policy});
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            let resp = router(app).oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let v: serde_json::Value = serde_json::from_slice(
                &axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap(),
            )
            .unwrap();
            (status, v)
        }
    };
    let content = |v: &serde_json::Value| v["choices"][0]["message"]["content"].clone();
    let (s, plain) = ask(serde_json::json!({"strategy": "none"})).await;
    assert_eq!(s, 200, "{plain}");
    let (s, swapped) = ask(serde_json::json!({"strategy": "none", "rectifier": "swap"})).await;
    assert_eq!(s, 200, "{swapped}");
    assert_ne!(
        content(&swapped),
        content(&plain),
        "the rectifier moves each step"
    );
    // Per request, not per server: the next plain request is as before.
    let (_, again) = ask(serde_json::json!({"strategy": "none"})).await;
    assert_eq!(content(&again), content(&plain));
    for (policy, param) in [
        (serde_json::json!({"rectifier": "nope"}), "amend.rectifier"),
        (serde_json::json!({"lambda": 0.5}), "amend.lambda"),
        (
            serde_json::json!({"rectifier": "swap", "lambda": -1}),
            "amend.lambda",
        ),
    ] {
        let (s, v) = ask(policy.clone()).await;
        assert_eq!(s, 400, "{policy}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    // A file for another model, or an API model: the server does not start, naming the option.
    let mut other = config.clone();
    let wrong = dir.path().join("other.json");
    swap_file("gguf-other", dim, 1.0).save(&wrong).unwrap();
    other.rectifiers = [("other".to_string(), wrong)].into();
    let e = App::new(other, local.clone(), "default", None, prompts.clone())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("rectifiers.other"), "{e}");
    let api: Arc<dyn amend::Model> = Arc::new(
        ApiModel::new(
            "m",
            Options {
                base_url: "http://127.0.0.1:9/v1".into(),
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let e = App::new(config, api, "m", None, prompts)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("`rectifiers`"), "{e}");
}
