//! `amend bench commits`: do `amend serve`'s commit points hold? The server runs in-process on
//! a loopback socket over the local model, with prefix reuse off (each answer then depends
//! only on its request); for each of N level-1 problems (the reporting seed 13) a client asks
//! for step-wise backtracking on the `arith` critic (no calculator, which would make every
//! claim true by construction), streamed and then not streamed. Measured: the `arith` critic
//! run again on every step the stream sent as verified (false ones: should be 0), whether the
//! streamed text equals the non-streamed answer, and the time to the first committed step
//! against the time to the whole answer.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use crate::data::ladder::{self, Level};
use crate::model::llama::{self, LocalModel};
use crate::model::{Model, ModelError};
use crate::serve::{self, App, Config, ServeError};

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitsError {
    /// The model failed to load.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The server failed to start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The prompts failed to load.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    /// A request failed.
    #[error("{0}")]
    Http(String),
}

/// One problem's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct CommitsRow {
    /// Steps the stream sent.
    pub steps: usize,
    /// Of them, sent as verified.
    pub verified: usize,
    /// Verified steps with a false `a op b = c` claim (the critic run again on each).
    pub false_verified: usize,
    /// Seconds to the first committed step (the first content after the role chunk).
    pub first_step_s: f64,
    /// Seconds to the end of the stream.
    pub full_s: f64,
    /// The streamed text equals the non-streamed answer.
    pub equal: bool,
}

/// Result of [`commits`].
#[derive(Debug, Clone, Serialize)]
pub struct CommitsReport {
    /// Problems asked.
    pub problems: usize,
    /// Steps streamed, verified, and verified but false (over every problem).
    pub steps: usize,
    /// Steps sent as verified.
    pub verified: usize,
    /// Verified steps the critic, run again, finds false.
    pub false_verified: usize,
    /// Steps sent unverified (still flagged when the correction budget ended).
    pub unverified: usize,
    /// Problems whose streamed text equals the non-streamed answer.
    pub equal: usize,
    /// Median seconds to the first committed step.
    pub first_step_median_s: f64,
    /// Median seconds to the whole answer.
    pub full_median_s: f64,
    /// Per problem.
    pub rows: Vec<CommitsRow>,
}

/// `amend serve` in-process on a loopback socket over the local model at `path` (`n_seq`
/// slots, prefix reuse off, traces in a temporary directory), for the benchmarks that talk
/// HTTP to it.
pub(super) struct Loopback {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The model it serves (for in-process comparisons).
    pub model: Arc<dyn Model>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    traces: std::path::PathBuf,
}

impl Loopback {
    /// Load the model and start serving.
    pub async fn start(
        path: &Path,
        threads: u32,
        n_seq: u32,
        name: &str,
    ) -> Result<Self, CommitsError> {
        let opts = llama::Options {
            n_ctx: 2048,
            max_ctx: 8192,
            n_seq,
            threads,
            kv: crate::model::KvLayout::Auto,
            queue: 64,
        };
        let model: Arc<dyn Model> = Arc::new(LocalModel::load(path, opts).await?);
        let traces =
            std::env::temp_dir().join(format!("amend-bench-{name}-{}", std::process::id()));
        let config = Config {
            trace_dir: traces.clone(),
            prefix_reuse: false,
            ..Config::default()
        };
        let prompts = Arc::new(crate::Prompts::builtin()?);
        let app = Arc::new(App::new(config, model.clone(), "default", None, prompts)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve::run(app, listener, async move {
            let _ = stop_rx.await;
        }));
        Ok(Self {
            addr,
            model,
            stop,
            task,
            traces,
        })
    }

    /// Shut the server down and delete its traces.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        let _ = std::fs::remove_dir_all(&self.traces);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(0.0),
        n => {
            (v.get(n / 2 - 1).copied().unwrap_or(0.0) + v.get(n / 2).copied().unwrap_or(0.0)) / 2.0
        }
    }
}

/// Run the benchmark on `problems` level-1 problems.
///
/// # Errors
/// [`CommitsError`] when the model, the server or a request fails.
pub async fn commits(
    path: &Path,
    threads: u32,
    problems: usize,
) -> Result<CommitsReport, CommitsError> {
    let server = Loopback::start(path, threads, 8, "commits").await?;
    let addr = server.addr;
    let level =
        Level::new(1).ok_or_else(|| ModelError::InvalidRequest("level 1 is not defined".into()))?;
    let items = ladder::generate(problems, &level, 13);
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let mut rows = Vec::with_capacity(items.len());
    let mut unverified_total = 0;
    for p in &items {
        let body = |stream: bool| {
            json!({
                "model": "default",
                "messages": [{"role": "user", "content": p.question}],
                "max_tokens": 256,
                "stream": stream,
                "amend": {"strategy": "backtrack", "critic": "arith", "stepwise": true,
                          "max_backtracks": 4, "calculator": false},
            })
        };
        let started = Instant::now();
        let mut resp = http
            .post(&url)
            .json(&body(true))
            .send()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let mut buf = String::new();
        let mut text = String::new();
        let mut first = None;
        let mut amend = Value::Null;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?
        {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                for line in event.lines() {
                    let Some(data) = line.strip_prefix("data: ") else {
                        continue;
                    };
                    if data == "[DONE]" {
                        continue;
                    }
                    let v: Value = serde_json::from_str(data)
                        .map_err(|e| CommitsError::Http(format!("a chunk is not JSON: {e}")))?;
                    if v.get("error").is_some() {
                        return Err(CommitsError::Http(format!("the stream failed: {v}")));
                    }
                    if let Some(c) = v
                        .pointer("/choices/0/delta/content")
                        .and_then(Value::as_str)
                    {
                        if !c.is_empty() && first.is_none() {
                            first = Some(started.elapsed().as_secs_f64());
                        }
                        text.push_str(c);
                    }
                    if let Some(a) = v.get("amend").filter(|a| !a.is_null()) {
                        amend = a.clone();
                    }
                }
            }
        }
        let full_s = started.elapsed().as_secs_f64();
        let whole: Value = http
            .post(&url)
            .json(&body(false))
            .send()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?
            .json()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let answer = whole
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let unverified: Vec<u64> = amend
            .get("unverified_steps")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut verified = 0;
        let mut false_verified = 0;
        for (k, line) in lines.iter().enumerate() {
            if unverified.contains(&(k as u64)) {
                continue;
            }
            verified += 1;
            if crate::critic::first_false(&[line.trim().to_string()]).is_some() {
                false_verified += 1;
            }
        }
        unverified_total += unverified.len();
        rows.push(CommitsRow {
            steps: lines.len(),
            verified,
            false_verified,
            first_step_s: first.unwrap_or(full_s),
            full_s,
            equal: text == answer,
        });
    }
    server.stop().await;
    Ok(CommitsReport {
        problems: rows.len(),
        steps: rows.iter().map(|r| r.steps).sum(),
        verified: rows.iter().map(|r| r.verified).sum(),
        false_verified: rows.iter().map(|r| r.false_verified).sum(),
        unverified: unverified_total,
        equal: rows.iter().filter(|r| r.equal).count(),
        first_step_median_s: median(rows.iter().map(|r| r.first_step_s).collect()),
        full_median_s: median(rows.iter().map(|r| r.full_s).collect()),
        rows,
    })
}
