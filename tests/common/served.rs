//! `amend serve` as a child process, for the tests that drive it with real clients.

use std::path::{Path, PathBuf};

/// `amend serve` as a child process, stopped (SIGTERM) when dropped; its stderr goes to a file.
pub struct Served {
    /// The process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Where its stderr goes.
    pub stderr: PathBuf,
}

/// The upstream key [`Served::relaying`] gives the server (tests grep for it).
pub const UPSTREAM_SECRET: &str = "sk-upstream-secret-7f3a9c";

impl Served {
    /// `amend serve` relaying to the OpenAI-compatible server at `upstream` (model
    /// `smollm2`, key [`UPSTREAM_SECRET`]), its traces and mistakes store under `dir`, no keys.
    pub fn relaying(dir: &Path, upstream: &str) -> Served {
        let config = format!(
            "trace_dir = \"{}\"\nmistakes = \"{}\"\n",
            dir.join("traces").display(),
            dir.join("mistakes").display()
        );
        Self::start(
            dir,
            &config,
            &["--model", "openai:smollm2", "--base-url", upstream],
            &[("OPENAI_API_KEY", UPSTREAM_SECRET)],
        )
    }

    /// Start `amend serve` with `config` (written into `dir`) and `args`, on a free port, the
    /// default model unless `args` name another; waits for `/health`.
    pub fn start(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = super::free_port();
        let cfg = dir.join("serve.toml");
        std::fs::write(&cfg, config).unwrap();
        let stderr = dir.join("serve.stderr");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_amend"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--threads",
                "2",
                "--no-prefix-reuse",
            ])
            .args(args)
            .env("AMEND_TEST_MODEL", super::model_path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("amend serve");
        let mut s = Served {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            stderr,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !super::http_ok(port, "/health") {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!(
                    "amend serve exited ({st}): {}",
                    std::fs::read_to_string(&s.stderr).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "amend serve did not come up"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        s
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, read as text (lossy).
pub fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push_str(&all_text(&p));
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

/// The body-size limit of [`keyed_config`].
pub const BODY_LIMIT: usize = 262_144;

/// A config whose traces and mistakes store are under `dir`, with two keys: `tester`
/// (`sk-test-0123456789`) and `limited` (`sk-limited-0123456789`, one request a minute), and a
/// body limit of [`BODY_LIMIT`] bytes.
pub fn keyed_config(dir: &Path) -> String {
    format!(
        r#"
max_body_bytes = {BODY_LIMIT}
trace_dir = "{}"
mistakes = "{}"
[[keys]]
name = "tester"
key = "sk-test-0123456789"
[[keys]]
name = "limited"
key = "sk-limited-0123456789"
rate_per_minute = 1
"#,
        dir.join("traces").display(),
        dir.join("mistakes").display()
    )
}
