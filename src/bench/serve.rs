//! `amend bench serve`: 8 HTTP clients at once against `amend serve` on the local model vs the
//! same 8 requests one after the other, beside the same 8 requests made in-process (at once vs
//! in sequence) in the same run: how much of the engine's concurrent decoding reaches HTTP
//! clients. Greedy, `strategy: none`, the server in-process on a loopback socket.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::commits::Loopback;
use super::{median, CommitsError};
use crate::data::ladder::{self, Level};
use crate::model::{ModelError, Request};

/// One round: seconds of each way.
#[derive(Debug, Clone, Serialize)]
pub struct ServeRound {
    /// 8 HTTP requests one after the other.
    pub http_sequential_s: f64,
    /// 8 HTTP requests at once.
    pub http_concurrent_s: f64,
    /// The same 8 requests in-process, one after the other.
    pub inprocess_sequential_s: f64,
    /// In-process, at once.
    pub inprocess_concurrent_s: f64,
}

/// Result of [`serve_bench`].
#[derive(Debug, Clone, Serialize)]
pub struct ServeReport {
    /// Requests per batch.
    pub clients: usize,
    /// Tokens generated per batch (the HTTP one).
    pub generated_tokens: u64,
    /// Median sequential / concurrent over HTTP.
    pub http_speedup: f64,
    /// Median sequential / concurrent in-process.
    pub inprocess_speedup: f64,
    /// http_speedup / inprocess_speedup.
    pub ratio: f64,
    /// Every round.
    pub rounds: Vec<ServeRound>,
}

/// Run `rounds` rounds of 8 requests each.
///
/// # Errors
/// [`CommitsError`] when the model, the server or a request fails.
pub async fn serve_bench(
    path: &Path,
    threads: u32,
    rounds: usize,
) -> Result<ServeReport, CommitsError> {
    const CLIENTS: usize = 8;
    let server = Loopback::start(path, threads, CLIENTS as u32, "serve").await?;
    let (addr, local) = (server.addr, server.model.clone());
    let level =
        Level::new(1).ok_or_else(|| ModelError::InvalidRequest("level 1 is not defined".into()))?;
    let questions: Vec<String> = ladder::generate(CLIENTS, &level, 9201)
        .into_iter()
        .map(|p| p.question)
        .collect();
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let post = |q: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let v: serde_json::Value = http
                .post(&url)
                .json(
                    &json!({"model": "default", "max_tokens": 128, "temperature": 0, "seed": 1,
                    "messages": [{"role": "user", "content": q}], "amend": {"strategy": "none"}}),
                )
                .send()
                .await
                .map_err(|e| CommitsError::Http(e.to_string()))?
                .json()
                .await
                .map_err(|e| CommitsError::Http(e.to_string()))?;
            v.pointer("/usage/completion_tokens")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| CommitsError::Http(format!("no usage in {v}")))
        }
    };
    let direct = |q: String| {
        let m = local.clone();
        async move {
            let r = Request::chat(vec![crate::model::Message::user(q)])
                .with_max_tokens(128)
                .with_prefix_reuse(false)
                .with_seed(1);
            m.generate(r).await.map(|r| r.usage.generated_tokens)
        }
    };
    let mut out = Vec::with_capacity(rounds);
    let mut generated = 0;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        for q in &questions {
            post(q.clone()).await?;
        }
        let http_sequential_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let tokens = futures::future::join_all(questions.iter().cloned().map(post)).await;
        let http_concurrent_s = t.elapsed().as_secs_f64();
        generated = tokens
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .sum();
        let t = Instant::now();
        for q in &questions {
            direct(q.clone()).await?;
        }
        let inprocess_sequential_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for r in futures::future::join_all(questions.iter().cloned().map(direct)).await {
            r?;
        }
        let inprocess_concurrent_s = t.elapsed().as_secs_f64();
        out.push(ServeRound {
            http_sequential_s,
            http_concurrent_s,
            inprocess_sequential_s,
            inprocess_concurrent_s,
        });
    }
    server.stop().await;
    let http_speedup = median(
        out.iter()
            .map(|r| r.http_sequential_s / r.http_concurrent_s)
            .collect(),
    );
    let inprocess_speedup = median(
        out.iter()
            .map(|r| r.inprocess_sequential_s / r.inprocess_concurrent_s)
            .collect(),
    );
    Ok(ServeReport {
        clients: CLIENTS,
        generated_tokens: generated,
        http_speedup,
        inprocess_speedup,
        ratio: http_speedup / inprocess_speedup,
        rounds: out,
    })
}
