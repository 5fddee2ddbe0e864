//! The built-in tools, and the `[tools.NAME]` tables of a pipeline file that configure them.

mod calculator;
mod command;
mod http;
mod json_schema;

use std::sync::Arc;

use serde::Deserialize;

use super::tool::Tool;

pub use calculator::Calculator;
pub use command::Command;
pub use http::Http;
pub use json_schema::JsonSchema;

fn five() -> f64 {
    5.0
}

fn yes() -> bool {
    true
}

/// A tool as a pipeline file declares it (`kind` and the kind's settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolSpec {
    /// Exact arithmetic: `{"expr": "3 * (4 + 1)"}` gives the value (the `arith` critic's
    /// evaluator). No side effects.
    Calculator,
    /// A program from `allow`, run without a shell: `{"program": P, "args": [...],
    /// "stdin": S}` gives `{"status", "stdout", "stderr"}`.
    Command {
        /// Programs it may run (names looked up on `PATH`, or absolute paths).
        allow: Vec<String>,
        /// Seconds before the program is killed (an external `timeout`).
        #[serde(default = "five")]
        timeout_s: f64,
        /// Whether the programs change anything (default: true).
        #[serde(default = "yes")]
        side_effects: bool,
    },
    /// An HTTP endpoint: `{"method": "GET"|"POST"|..., "path": "/x", "body": JSON}` gives the
    /// response body (JSON when it parses, else text).
    Http {
        /// Every request goes to this base URL (http or https).
        base_url: String,
        /// Seconds before a request times out.
        #[serde(default = "five")]
        timeout_s: f64,
        /// Whether requests change anything (default: true).
        #[serde(default = "yes")]
        side_effects: bool,
    },
    /// Validation against a JSON schema: `{"value": JSON}` gives the value back when valid.
    JsonSchema {
        /// The schema (a TOML table, or a JSON string).
        schema: toml::Value,
    },
}

/// The tool `spec` declares.
///
/// # Errors
/// A message naming the setting that is wrong (a bad URL, a schema that does not compile).
pub fn build(spec: &ToolSpec) -> Result<Arc<dyn Tool>, String> {
    Ok(match spec {
        ToolSpec::Calculator => Arc::new(Calculator),
        ToolSpec::Command {
            allow,
            timeout_s,
            side_effects,
        } => Arc::new(Command::new(
            allow.clone(),
            secs(*timeout_s)?,
            *side_effects,
        )),
        ToolSpec::Http {
            base_url,
            timeout_s,
            side_effects,
        } => Arc::new(Http::new(base_url, secs(*timeout_s)?, *side_effects)?),
        ToolSpec::JsonSchema { schema } => {
            let json = match schema {
                toml::Value::String(s) => {
                    serde_json::from_str(s).map_err(|e| format!("schema: not JSON ({e})"))?
                }
                other => serde_json::to_value(other).map_err(|e| format!("schema: {e}"))?,
            };
            Arc::new(JsonSchema::new(json)?)
        }
    })
}

fn secs(s: f64) -> Result<std::time::Duration, String> {
    if s.is_finite() && s > 0.0 {
        Ok(std::time::Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "timeout_s must be a positive number of seconds, got {s}"
        ))
    }
}

/// The names of the tools every pipeline has without declaring them.
pub const BUILTIN: &[&str] = &["calculator"];

/// The tools every pipeline has without declaring them: `calculator`.
pub fn builtin(name: &str) -> Option<Arc<dyn Tool>> {
    match name {
        "calculator" => Some(Arc::new(Calculator)),
        _ => None,
    }
}
