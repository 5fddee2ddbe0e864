//! Helpers shared by the integration tests: the real default model, and the real
//! OpenAI-compatible server (llama-cpp-python) started as a child process.
#![allow(dead_code)]

pub mod script;
pub mod served;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The default model, fetched into amend's cache when missing (`AMEND_TEST_MODEL` overrides).
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("AMEND_TEST_MODEL") {
        return PathBuf::from(p);
    }
    match amend::model::spec::fetch_default() {
        Ok(p) => p,
        Err(e) => panic!("tests need the default model: {e}\n(run scripts/test, which fetches it)"),
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The real OpenAI-compatible server of llama-cpp-python, serving the default model.
pub struct Server {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
}

impl Server {
    /// Start it and wait until it answers (up to 120 s).
    pub fn start() -> Server {
        let port = free_port();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--model_alias", "smollm2"])
            .arg("--model")
            .arg(model_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start llama-cpp-python's server ({python} -m llama_cpp.server): {e}; run scripts/setup server")
            });
        let mut server = Server {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("llama-cpp-python's server exited early ({status}); is `llama-cpp-python[server]` installed? run scripts/setup server");
            }
            if http_ok(port, "/v1/models") {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "llama-cpp-python's server did not come up in 120 s"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Does `GET path` on loopback answer 200?
pub fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    s.read(&mut buf)
        .map(|n| String::from_utf8_lossy(&buf[..n]).contains(" 200"))
        .unwrap_or(false)
}

/// A fresh mistake-log directory for one command under the test target dir, so tests never
/// write to the user's log nor contend for its lock.
pub fn scratch_log() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "logs/{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// A strategy context on the real default model (local backend, one thread, `n_seq`
/// sequences, 96 tokens per call), traced to `DIR/t.jsonl` (run id `test`); returns the
/// context, its trace writer and the untraced model.
#[cfg(feature = "local")]
pub async fn local_context(
    dir: &std::path::Path,
    n_seq: u32,
) -> (
    amend::run::Context,
    std::sync::Arc<amend::trace::Writer>,
    std::sync::Arc<dyn amend::Model>,
) {
    use amend::model::llama::{LocalModel, Options};
    use amend::trace::Writer;
    use std::sync::Arc;
    let opts = Options {
        n_ctx: 2048,
        max_ctx: 8192,
        n_seq,
        threads: 1,
        kv: amend::model::KvLayout::Auto,
        queue: 64,
    };
    let local: Arc<dyn amend::Model> =
        Arc::new(LocalModel::load(&model_path(), opts).await.expect("model"));
    let writer = Arc::new(Writer::create(&dir.join("t.jsonl"), "test").expect("trace"));
    let cx = amend::run::Context::new(
        local.clone(),
        Arc::new(amend::Prompts::builtin().expect("prompts")),
    )
    .with_trace(writer.clone())
    .with_max_tokens(96);
    (cx, writer, local)
}

/// The real server of llama-cpp-python, and the default model loaded through it as an API
/// model (`openai:smollm2`): the server (stopped when dropped), the load options, the spec and
/// the model.
pub async fn served() -> (
    Server,
    amend::model::spec::LoadOptions,
    amend::model::spec::Spec,
    std::sync::Arc<dyn amend::Model>,
) {
    use amend::model::spec::{self, LoadOptions, Spec};
    let server = tokio::task::spawn_blocking(Server::start)
        .await
        .expect("server");
    let opts = LoadOptions {
        base_url: Some(server.base_url.clone()),
        ..LoadOptions::default()
    };
    let spec: Spec = "openai:smollm2".parse().expect("spec");
    let model = spec::load(&spec, &opts).await.expect("load");
    (server, opts, spec, model)
}
