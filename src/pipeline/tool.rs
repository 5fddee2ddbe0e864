//! The tool seam: a [`Tool`] takes JSON arguments and returns a JSON value, or fails with an
//! error of one of CRITICTOOL's classes (Huang et al., EMNLP 2025): **internal** errors are the
//! caller's (a wrong or hallucinated tool, bad argument keys or values) and are corrected by
//! re-asking the node that produced the call; **external** errors are the world's
//! (connection, timeout, permission, rate limit) and are retried on their own budget.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The caller's mistakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InternalClass {
    /// A tool exists by that name, but not the one this step calls for.
    WrongTool,
    /// No tool exists by that name.
    HallucinatedTool,
    /// Missing, unknown or misspelt argument names.
    BadArgumentKeys,
    /// The names are right; a value is not (not a number, not an expression, not allowed).
    BadArgumentValues,
}

/// The world's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalClass {
    /// The other side could not be reached, or hung up.
    Connection,
    /// No answer in time.
    Timeout,
    /// Not allowed (HTTP 401/403, a file or command permission).
    Permission,
    /// Told to slow down (HTTP 429).
    RateLimit,
}

/// A tool call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ToolError {
    /// The call was wrong: re-ask its producer with `message`.
    #[error("{class:?}: {message}")]
    Internal {
        /// Which kind of mistake.
        class: InternalClass,
        /// What was wrong, written for the model that made the call.
        message: String,
    },
    /// The world failed: retry with backoff, then skip or finish.
    #[error("{class:?}: {message}")]
    External {
        /// Which kind of failure.
        class: ExternalClass,
        /// What happened.
        message: String,
    },
}

impl ToolError {
    /// An internal error.
    pub fn internal(class: InternalClass, message: impl Into<String>) -> Self {
        Self::Internal {
            class,
            message: message.into(),
        }
    }

    /// An external error.
    pub fn external(class: ExternalClass, message: impl Into<String>) -> Self {
        Self::External {
            class,
            message: message.into(),
        }
    }

    /// The class's name (`bad_argument_keys`, `timeout`, ...).
    pub fn class_name(&self) -> String {
        let v = match self {
            Self::Internal { class, .. } => serde_json::to_value(class),
            Self::External { class, .. } => serde_json::to_value(class),
        };
        v.ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// A tool.
///
/// # Contract
/// - `call` validates its arguments itself: unknown or missing keys are
///   [`InternalClass::BadArgumentKeys`], unusable values [`InternalClass::BadArgumentValues`];
///   the message says what would be right (it is shown to the model that made the call).
/// - Failures of the world are [`ToolError::External`] with the right class; a tool never
///   retries by itself (the executor retries, on the node's budget).
/// - `side_effects` is true when a call changes something outside amend (a request that
///   writes, a command that writes files); a rollback never re-runs such a call unless the
///   node is declared idempotent.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's kind (`calculator`, `command`, ...).
    fn kind(&self) -> &str;
    /// The argument names it takes (`expr`, ...), required ones first.
    fn params(&self) -> &[&'static str];
    /// Does a call change the world?
    fn side_effects(&self) -> bool;
    /// Call it.
    async fn call(&self, args: &Map<String, Value>) -> Result<Value, ToolError>;
}

/// Check `args` against a tool's parameter names: every key known, the first `required`
/// present.
///
/// # Errors
/// [`InternalClass::BadArgumentKeys`], naming the keys that are wrong and the right ones.
pub fn check_keys(
    params: &[&str],
    required: usize,
    args: &Map<String, Value>,
) -> Result<(), ToolError> {
    let unknown: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !params.contains(k))
        .collect();
    let missing: Vec<&str> = params
        .iter()
        .take(required)
        .copied()
        .filter(|p| !args.contains_key(*p))
        .collect();
    if unknown.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let mut msg = Vec::new();
    if !unknown.is_empty() {
        msg.push(format!("unknown argument(s) {}", unknown.join(", ")));
    }
    if !missing.is_empty() {
        msg.push(format!("missing argument(s) {}", missing.join(", ")));
    }
    Err(ToolError::internal(
        InternalClass::BadArgumentKeys,
        format!(
            "{}; the arguments are: {}",
            msg.join("; "),
            params.join(", ")
        ),
    ))
}

/// A tool call as an `llm` node writes it: `{"tool": NAME, "arguments": {...}}`, the first
/// JSON object in its text (a fenced code block is fine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool's name.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

impl ToolCall {
    /// The first tool call in `text`.
    ///
    /// # Errors
    /// A message for the model when there is none, or it is not in the format.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v = first_json_object(text).ok_or_else(|| {
            "no tool call found: write one JSON object {\"tool\": NAME, \"arguments\": {...}}"
                .to_string()
        })?;
        serde_json::from_value(v).map_err(|e| {
            format!("the tool call is not {{\"tool\": NAME, \"arguments\": {{...}}}}: {e}")
        })
    }
}

/// The first JSON object in `text` (a balanced `{...}` that parses), if any.
pub fn first_json_object(text: &str) -> Option<Value> {
    first_json(text, b'{', b'}')
}

/// The first JSON object or array in `text`, whichever comes first.
pub fn first_json_value(text: &str) -> Option<Value> {
    let o = text.find('{');
    let a = text.find('[');
    match (o, a) {
        (Some(o), Some(a)) if a < o => {
            first_json(text, b'[', b']').or_else(|| first_json_object(text))
        }
        (None, Some(_)) => first_json(text, b'[', b']'),
        _ => first_json_object(text).or_else(|| first_json(text, b'[', b']')),
    }
}

fn first_json(text: &str, open: u8, close: u8) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(off) = bytes.get(start..)?.iter().position(|&b| b == open) {
        let s = start + off;
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for (i, &b) in bytes.iter().enumerate().skip(s) {
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            if b == b'"' {
                in_str = true;
            } else if b == open {
                depth += 1;
            } else if b == close {
                depth -= 1;
                if depth == 0 {
                    if let Some(v) = text
                        .get(s..=i)
                        .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    {
                        return Some(v);
                    }
                    break;
                }
            }
        }
        start = s + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_is_found_in_prose_and_fences() {
        let t = "I will compute it.\n```json\n{\"tool\": \"calculator\", \"arguments\": {\"expr\": \"3 * {4}\"}}\n```";
        let c = ToolCall::parse(t).expect("call");
        assert_eq!(c.tool, "calculator");
        assert_eq!(c.arguments["expr"], "3 * {4}");
        assert!(ToolCall::parse("no call here").is_err());
        assert!(ToolCall::parse("{\"name\": 1}").is_err());
        // A broken object first, a good one after.
        let c = ToolCall::parse("{oops} then {\"tool\": \"x\"}").expect("second");
        assert_eq!(c.tool, "x");
        assert!(c.arguments.is_empty());
    }

    #[test]
    fn keys_are_checked_by_name() {
        let mut m = Map::new();
        m.insert("exp".into(), Value::from("1+1"));
        let e = check_keys(&["expr"], 1, &m).expect_err("bad key");
        assert!(matches!(
            e,
            ToolError::Internal {
                class: InternalClass::BadArgumentKeys,
                ..
            }
        ));
        assert!(e.to_string().contains("unknown argument(s) exp"), "{e}");
        assert!(e.to_string().contains("missing argument(s) expr"), "{e}");
        m.clear();
        m.insert("expr".into(), Value::from("1+1"));
        assert!(check_keys(&["expr", "note"], 1, &m).is_ok());
        assert_eq!(e.class_name(), "bad_argument_keys");
    }
}
