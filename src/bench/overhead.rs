//! `amend bench overhead`: what `amend serve` adds to a call. The server runs in this process
//! over an upstream that answers at once ([`Instant`], 0 ms), with its default settings (a
//! trace file per request, metrics, policy parsing), pinned to CPU 0; `wrk`, a separate
//! process pinned to CPU 1, sends `strategy: none` chat requests, first over 1 connection (the
//! latency one request sees: everything is the server's, since the upstream takes no time),
//! then over 64 (throughput). `GET /health` through the same server is the floor (HTTP and
//! the load generator alone).
//!
//! [`hold`] serves the same server at a given address until Ctrl-C, for outside tools such as
//! schemathesis (`scripts/schemathesis`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{
    Capabilities, FinishReason, Model, ModelError, ModelId, Request, Response, Sample, Usage,
};
use crate::serve::{self, App, Config, ServeError};

/// An upstream that answers every request at once with a fixed short answer (`n` samples of
/// it), counting one call and a few tokens: the server's cost is then all there is to time.
pub struct Instant {
    id: ModelId,
}

impl Default for Instant {
    fn default() -> Self {
        Self {
            id: ModelId {
                key: "instant".into(),
                source: "amend bench overhead".into(),
            },
        }
    }
}

/// The instant upstream's answer.
pub const INSTANT_ANSWER: &str = "2 + 2 = 4\nThe answer is 4.";

#[async_trait]
impl Model for Instant {
    fn id(&self) -> &ModelId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            assistant_prefill: true,
            ..Capabilities::default()
        }
    }

    async fn generate(&self, request: Request) -> Result<Response, ModelError> {
        let n = request.n.max(1) as usize;
        let sample = Sample {
            text: INSTANT_ANSWER.into(),
            finish: FinishReason::Stop,
            tokens: 12,
            logprobs: None,
        };
        Ok(Response {
            samples: vec![sample; n],
            usage: Usage {
                prompt_tokens: 20,
                generated_tokens: 12 * n as u64,
                calls: 1,
                ..Usage::default()
            },
            wall: Duration::ZERO,
            prefill: None,
        })
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum OverheadError {
    /// The server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The built-in prompts failed to load.
    #[error("prompts: {0}")]
    Prompts(String),
    /// The load generator or the CPU pinning is missing or failed.
    #[error("{0}")]
    Tool(String),
}

/// One `wrk` run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    /// What was requested (`chat` or `health`).
    pub target: String,
    /// Connections held open (requests in flight).
    pub connections: u32,
    /// Seconds the run lasted.
    pub seconds: u32,
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Responses that were not 2xx (must be 0).
    pub non_2xx: u64,
    /// Connect/read/write/timeout errors wrk counted.
    pub socket_errors: u64,
}

/// Result of [`overhead`].
#[derive(Debug, Clone, Serialize)]
pub struct OverheadReport {
    /// `wrk`'s version line.
    pub load_generator: String,
    /// CPU the server runs on, CPU `wrk` runs on.
    pub server_cpu: u32,
    /// CPU of the load generator.
    pub load_cpu: u32,
    /// The chat request's body.
    pub body: String,
    /// Trace files the server wrote (one per chat request, as by default).
    pub traces_written: usize,
    /// Chat completions the server's own metrics counted with status 200.
    pub server_counted_200: u64,
    /// Every run: health and chat at 1 connection, then at 64.
    pub runs: Vec<LoadRun>,
}

/// The request the benchmark sends: one user message, `strategy: none`.
pub const BODY: &str = r#"{"model":"default","messages":[{"role":"user","content":"What is 2 + 2?"}],"max_tokens":16,"amend":{"strategy":"none"}}"#;

fn app(trace_dir: &Path, store: Option<&Path>) -> Result<Arc<App>, OverheadError> {
    let config = Config {
        trace_dir: trace_dir.to_path_buf(),
        ..Config::default()
    };
    let prompts =
        Arc::new(crate::Prompts::builtin().map_err(|e| OverheadError::Prompts(e.to_string()))?);
    let app = App::new(
        config,
        Arc::new(Instant::default()),
        "default",
        None,
        prompts,
    )?;
    Ok(Arc::new(match store {
        Some(p) => {
            let s = crate::mistakes::SledStore::open(p)
                .map_err(|e| OverheadError::Tool(e.to_string()))?;
            app.with_mistakes(Arc::new(s), p.to_path_buf())
        }
        None => app,
    }))
}

/// Serve the measured server (the instant upstream, default settings, traces under
/// `work/traces`, a mistakes store at `work/mistakes`) on `bind` until Ctrl-C.
///
/// # Errors
/// [`OverheadError::Serve`] when the address cannot be bound.
pub async fn hold(bind: &str, work: &Path) -> Result<(), OverheadError> {
    let app = app(&work.join("traces"), Some(&work.join("mistakes")))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| ServeError::Io {
            addr: bind.to_string(),
            reason: e.to_string(),
        })?;
    serve::run(app, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn tool(what: &str, e: impl std::fmt::Display) -> OverheadError {
    OverheadError::Tool(format!("{what}: {e}"))
}

/// Pin every thread of this process to `cpu` (`taskset -a -cp`).
fn pin_self(cpu: u32) -> Result<(), OverheadError> {
    let out = std::process::Command::new("taskset")
        .args([
            "-a",
            "-cp",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .output()
        .map_err(|e| {
            tool(
                "taskset (util-linux) is needed to pin the server to a CPU",
                e,
            )
        })?;
    if !out.status.success() {
        return Err(tool(
            "taskset could not pin the server",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(())
}

/// Run the benchmark: `seconds` per run, after a 2-second warm-up.
///
/// # Errors
/// [`OverheadError::Tool`] when `wrk` or `taskset` is missing (install them: `apt-get install
/// wrk util-linux`) or a run fails; [`OverheadError::Serve`] when the server cannot start.
pub async fn overhead(seconds: u32) -> Result<OverheadReport, OverheadError> {
    let version = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .map_err(|e| {
            tool(
                "wrk is needed as the load generator (apt-get install wrk)",
                e,
            )
        })?;
    let load_generator = String::from_utf8_lossy(&version.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&version.stderr).lines())
        .find(|l| l.starts_with("wrk"))
        .unwrap_or("wrk")
        .to_string();
    let work = std::env::temp_dir().join(format!("amend-bench-overhead-{}", std::process::id()));
    let traces = work.join("traces");
    std::fs::create_dir_all(&work).map_err(|e| tool("temporary directory", e))?;
    let result = measure(&work, &traces, seconds, load_generator).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn measure(
    work: &Path,
    traces: &Path,
    seconds: u32,
    load_generator: String,
) -> Result<OverheadReport, OverheadError> {
    let script = work.join("chat.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{BODY}]]\n"
        ),
    )
    .map_err(|e| tool("wrk script", e))?;
    pin_self(0)?;
    let app = app(traces, None)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| tool("loopback listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| tool("loopback listener", e))?;
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::run(app.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    let chat = format!("http://{addr}/v1/chat/completions");
    let health = format!("http://{addr}/health");
    let mut runs = Vec::new();
    let plan: [(&str, &str, Option<&Path>, u32, u32); 5] = [
        ("warm-up", &chat, Some(&script), 8, 2),
        ("health", &health, None, 1, seconds),
        ("chat", &chat, Some(&script), 1, seconds),
        ("health", &health, None, 64, seconds),
        ("chat", &chat, Some(&script), 64, seconds),
    ];
    for (target, url, script, connections, secs) in plan {
        let run = wrk(target, url, script, connections, secs).await;
        match run {
            Ok(r) if target != "warm-up" => runs.push(r),
            Ok(_) => {}
            Err(e) => {
                let _ = stop.send(());
                let _ = server.await;
                return Err(e);
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    let traces_written = std::fs::read_dir(traces).map_or(0, Iterator::count);
    let server_counted_200 = app
        .metrics()
        .requests
        .get_or_create(&serve::RequestLabels {
            route: "/v1/chat/completions".into(),
            status: 200,
        })
        .get();
    Ok(OverheadReport {
        load_generator,
        server_cpu: 0,
        load_cpu: 1,
        body: BODY.into(),
        traces_written,
        server_counted_200,
        runs,
    })
}

async fn wrk(
    target: &str,
    url: &str,
    script: Option<&Path>,
    connections: u32,
    seconds: u32,
) -> Result<LoadRun, OverheadError> {
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"));
    if let Some(s) = script {
        cmd.arg("-s").arg(PathBuf::from(s));
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .await
        .map_err(|e| tool("running wrk (apt-get install wrk)", e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(tool(
            "wrk failed",
            format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    parse_wrk(target, connections, seconds, &text)
        .ok_or_else(|| tool("wrk's output could not be read", text))
}

/// A duration as wrk prints it (`812.00us`, `1.20ms`, `2.00s`, `1.00m`), in milliseconds.
fn millis(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

/// Read a wrk report (`--latency`).
fn parse_wrk(target: &str, connections: u32, seconds: u32, text: &str) -> Option<LoadRun> {
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p).map(str::trim))
            .and_then(millis)
    };
    let (p50_ms, p90_ms, p99_ms) = (pct("50%")?, pct("90%")?, pct("99%")?);
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let requests_per_s = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    Some(LoadRun {
        target: target.into(),
        connections,
        seconds,
        requests,
        requests_per_s,
        p50_ms,
        p90_ms,
        p99_ms,
        non_2xx,
        socket_errors,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrk_report_is_read() {
        let text = "Running 10s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.69ms    2.61ms  44.92ms   89.53%
    Req/Sec     3.10k   179.80     3.37k    85.00%
  Latency Distribution
     50%  812.00us
     75%   20.77ms
     90%    1.20s
     99%   27.29ms
  30876 requests in 10.00s, 12.35MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   3087.06
Transfer/sec:      1.23MB
";
        let r = super::parse_wrk("chat", 64, 10, text).unwrap();
        assert!((r.p50_ms - 0.812).abs() < 1e-9);
        assert!((r.p90_ms - 1200.0).abs() < 1e-9);
        assert!((r.p99_ms - 27.29).abs() < 1e-9);
        assert_eq!(r.requests, 30876);
        assert!((r.requests_per_s - 3087.06).abs() < 1e-9);
        assert_eq!((r.non_2xx, r.socket_errors), (3, 3));
        assert!(super::parse_wrk("chat", 1, 1, "garbage").is_none());
    }
}
