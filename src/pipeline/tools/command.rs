//! The command tool: a program from an allow-list, run without a shell, with a timeout.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::pipeline::tool::{check_keys, ExternalClass, InternalClass, Tool, ToolError};

/// `{"program": P, "args": [...], "stdin": S}` runs `P` (which must be on the allow-list)
/// with those arguments, no shell in between, killed after the timeout.
#[derive(Debug, Clone)]
pub struct Command {
    allow: Vec<String>,
    timeout: Duration,
    side_effects: bool,
}

impl Command {
    /// A command tool that may run the programs in `allow`.
    pub fn new(allow: Vec<String>, timeout: Duration, side_effects: bool) -> Self {
        Self {
            allow,
            timeout,
            side_effects,
        }
    }
}

fn bad(msg: String) -> ToolError {
    ToolError::internal(InternalClass::BadArgumentValues, msg)
}

#[async_trait]
impl Tool for Command {
    fn kind(&self) -> &str {
        "command"
    }

    fn params(&self) -> &[&'static str] {
        &["program", "args", "stdin"]
    }

    fn side_effects(&self) -> bool {
        self.side_effects
    }

    async fn call(&self, args: &Map<String, Value>) -> Result<Value, ToolError> {
        check_keys(self.params(), 1, args)?;
        let program = args
            .get("program")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("program must be a string".into()))?;
        if !self.allow.iter().any(|a| a == program) {
            return Err(bad(format!(
                "program {program:?} is not allowed; allowed: {}",
                self.allow.join(", ")
            )));
        }
        let argv: Vec<String> = match args.get("args") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(bad(format!("args must be strings, got {other}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad(format!("args must be a list of strings, got {other}"))),
        };
        let stdin = match args.get("stdin") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                ToolError::external(ExternalClass::Permission, format!("{program}: {e}"))
            }
            _ => ToolError::external(
                ExternalClass::Connection,
                format!("could not start {program}: {e}"),
            ),
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A program that exits without reading its input is not an error here.
            let _ = pipe.write_all(text.as_bytes()).await;
        }
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                return Err(ToolError::external(
                    ExternalClass::Timeout,
                    format!(
                        "{program} ran longer than {:.1} s and was killed",
                        self.timeout.as_secs_f64()
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(ToolError::external(
                    ExternalClass::Connection,
                    format!("{program}: {e}"),
                ))
            }
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => Ok(json!({"status": 0, "stdout": stdout, "stderr": stderr})),
            code => Err(bad(format!(
                "{program} exited with status {}: {}",
                code.map_or("signal".to_string(), |c| c.to_string()),
                stderr.trim()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn runs_allowed_programs_only_and_times_out() {
        let t = Command::new(
            vec!["wc".into(), "sleep".into()],
            Duration::from_millis(300),
            false,
        );
        let v = t
            .call(&args(
                json!({"program": "wc", "args": ["-w"], "stdin": "a b c"}),
            ))
            .await
            .expect("wc");
        assert_eq!(v["stdout"].as_str().map(str::trim), Some("3"));
        let e = t
            .call(&args(json!({"program": "rm", "args": ["-rf", "/"]})))
            .await;
        assert!(
            matches!(
                e,
                Err(ToolError::Internal {
                    class: InternalClass::BadArgumentValues,
                    ..
                })
            ),
            "{e:?}"
        );
        // No shell: a `;` is an argument, not a second command.
        let v = t
            .call(&args(json!({"program": "wc", "args": ["-c", "; rm x"]})))
            .await;
        assert!(
            matches!(v, Err(ToolError::Internal { .. })),
            "wc of a missing file fails: {v:?}"
        );
        let e = t
            .call(&args(json!({"program": "sleep", "args": ["5"]})))
            .await;
        assert!(
            matches!(
                e,
                Err(ToolError::External {
                    class: ExternalClass::Timeout,
                    ..
                })
            ),
            "{e:?}"
        );
    }
}
