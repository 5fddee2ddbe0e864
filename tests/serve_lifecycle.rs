//! `amend serve`'s lifecycle over a real socket: a client that goes away cancels its request
//! (the model call is dropped, its `max_in_flight` place freed), streamed or not; SIGTERM's
//! grace period lets a request in flight finish. The model here takes as long as the test says
//! and records being cancelled, so the timing is the test's own, not a model's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amend::model::{
    Capabilities, FinishReason, Model, ModelError, ModelId, Request, Response, Sample, Usage,
};
use amend::serve::{run, App, Config};
use async_trait::async_trait;
use serde_json::json;

/// Answers after `delay`; counts calls started, finished and cancelled (dropped unfinished).
struct Slow {
    id: ModelId,
    delay: Duration,
    started: AtomicU32,
    finished: AtomicU32,
    cancelled: Arc<AtomicU32>,
}

struct OnDrop(Arc<AtomicU32>, bool);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Model for Slow {
    fn id(&self) -> &ModelId {
        &self.id
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn generate(&self, _request: Request) -> Result<Response, ModelError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut guard = OnDrop(self.cancelled.clone(), false);
        tokio::time::sleep(self.delay).await;
        guard.1 = true;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(Response {
            samples: vec![Sample {
                text: "The answer is 7.".into(),
                finish: FinishReason::Stop,
                tokens: 5,
                logprobs: None,
            }],
            usage: Usage {
                calls: 1,
                ..Usage::default()
            },
            wall: self.delay,
            prefill: None,
        })
    }
}

async fn start(
    delay: Duration,
    grace_s: f64,
) -> (
    Arc<Slow>,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(Slow {
        id: ModelId {
            key: "slow".into(),
            source: "tests/serve_lifecycle.rs".into(),
        },
        delay,
        started: AtomicU32::new(0),
        finished: AtomicU32::new(0),
        cancelled: Arc::new(AtomicU32::new(0)),
    });
    let app = Arc::new(
        App::new(
            Config {
                trace_dir: dir.path().join("traces"),
                max_in_flight: 1,
                shutdown_grace_s: grace_s,
                ..Config::default()
            },
            model.clone(),
            "default",
            None,
            Arc::new(amend::Prompts::builtin().unwrap()),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        run(app, listener, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (model, url, tx, server, dir)
}

fn body(stream: bool) -> serde_json::Value {
    json!({"model": "default", "stream": stream, "amend": {"strategy": "none"},
        "messages": [{"role": "user", "content": "What is 3 + 4?"}]})
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_request_and_frees_its_place() {
    let (model, url, stop, server, _dir) = start(Duration::from_secs(60), 1.0).await;
    let http = reqwest::Client::new();
    for stream in [false, true] {
        let before = model.cancelled.load(Ordering::SeqCst);
        let started = model.started.load(Ordering::SeqCst);
        let req = http.post(&url).json(&body(stream)).send();
        let pending = tokio::spawn(async move {
            // A stream's head arrives at once; hold the body, then let it go.
            if let Ok(resp) = req.await {
                let mut resp = resp;
                let _ = resp.chunk().await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
        wait_for("the model call to start", || {
            model.started.load(Ordering::SeqCst) > started
        })
        .await;
        // The one place is taken: another request is a 429.
        let busy = http.post(&url).json(&body(false)).send().await.unwrap();
        assert_eq!(busy.status(), 429, "stream {stream}");
        pending.abort(); // the client goes away (its connection is dropped)
        wait_for("the model call to be cancelled", || {
            model.cancelled.load(Ordering::SeqCst) > before
        })
        .await;
        assert_eq!(model.finished.load(Ordering::SeqCst), 0);
        // Its place is free again: a request is taken (and is itself left running until the
        // client drops it).
        let again = tokio::time::timeout(
            Duration::from_millis(500),
            http.post(&url).json(&body(false)).send(),
        )
        .await;
        assert!(again.is_err(), "taken, not refused (stream {stream})");
        wait_for("that call to be cancelled too", || {
            model.cancelled.load(Ordering::SeqCst) > before + 1
        })
        .await;
    }
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_within_the_grace_period() {
    let (model, url, stop, server, _dir) = start(Duration::from_millis(700), 10.0).await;
    let http = reqwest::Client::new();
    let req = tokio::spawn({
        let url = url.clone();
        async move { http.post(&url).json(&body(false)).send().await }
    });
    wait_for("the model call to start", || {
        model.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let _ = stop.send(()); // SIGTERM
    let resp = req.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "The answer is 7.");
    server.await.unwrap();
    // No new request is accepted once it stopped.
    assert!(reqwest::Client::new()
        .post(&url)
        .json(&body(false))
        .send()
        .await
        .is_err());
    assert_eq!(model.cancelled.load(Ordering::SeqCst), 0);
}
