//! The OpenAI chat-completions wire format, as far as amend reads and writes it: the request
//! (with the `amend` policy object), the response, the stream's chunks, `/v1/models`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::model::{Message, Role};

/// `POST /v1/chat/completions`: the fields amend reads; every other field is kept in `other`
/// and passed through to an API upstream untouched (`strategy: none`). The `amend` policy
/// object is read apart (see [`super::Policy`]) and never sent upstream.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The served model's name or one of its aliases.
    pub model: String,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `include_usage`: a last chunk with the usage.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature (`strategy: none`; a strategy samples as it is set).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling (as `temperature`).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Most generated tokens per model call.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Stop sequences (`strategy: none`).
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Choices wanted: amend answers with one.
    #[serde(default)]
    pub n: Option<u32>,
    /// Tool definitions (passed through with `strategy: none` on an API upstream).
    #[serde(default)]
    pub tools: Option<Value>,
    /// Tool choice (as `tools`).
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Output format (as `tools`).
    #[serde(default)]
    pub response_format: Option<Value>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage of the whole request.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct WireMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or an array of content parts; absent on an assistant message with tool calls.
    #[serde(default)]
    pub content: Option<Content>,
    /// Tool calls of an assistant message.
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// The call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// A participant's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A message's content.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`, images, ...).
    Parts(Vec<Value>),
}

/// Does the request ask for what amend's strategies and the local model cannot honour (tools,
/// a response format)? Names the field. Tool messages and non-text parts are refused by
/// [`to_messages`], which names the message.
pub fn passthrough_only(req: &ChatRequest) -> Option<&'static str> {
    if req.tools.is_some() || req.tool_choice.is_some() {
        return Some("tools");
    }
    None
}

/// The conversation as amend's messages: `system`/`developer` → system, `user`, `assistant`;
/// text parts joined by newlines.
///
/// # Errors
/// 400 naming `messages` for an empty conversation, an unknown role, a tool message or tool
/// calls, a non-text part, or one that does not end with a user turn.
pub fn to_messages(msgs: &[WireMessage]) -> Result<Vec<Message>, ApiError> {
    let bad = |m: String| ApiError::bad_request(Some("messages"), m);
    if msgs.is_empty() {
        return Err(bad(
            "`messages` is empty; send at least one user message".into()
        ));
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(bad(format!(
                    "messages[{i}]: role `{other}` needs `strategy: none` on an API upstream (amend's strategies read system, developer, user and assistant messages)"
                )))
            }
        };
        if m.tool_calls.is_some() {
            return Err(bad(format!(
                "messages[{i}]: tool calls need `strategy: none` on an API upstream"
            )));
        }
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for (j, p) in parts.iter().enumerate() {
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                        (kind, _) => {
                            return Err(bad(format!(
                                "messages[{i}].content[{j}]: a part of type {} needs `strategy: none` on an API upstream (amend's strategies read text parts)",
                                kind.map_or("(none)".to_string(), |k| format!("`{k}`"))
                            )))
                        }
                    }
                }
                texts.join("\n")
            }
        };
        out.push(Message { role, content });
    }
    if out.last().map(|m| m.role) != Some(Role::User) {
        return Err(bad(
            "the last message must be the user's: amend answers the last user turn".into(),
        ));
    }
    Ok(out)
}

/// Token counts, as the API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUsage {
    /// Prompt tokens over every upstream call.
    pub prompt_tokens: u64,
    /// Generated tokens over every upstream call.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl From<crate::model::Usage> for WireUsage {
    fn from(u: crate::model::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.generated_tokens,
            total_tokens: u.prompt_tokens + u.generated_tokens,
        }
    }
}

/// The assistant's message in a response.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The answer.
    pub content: String,
}

/// One choice of a response.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
    /// Not reported: `null`.
    pub logprobs: Option<()>,
}

/// `chat.completion`: the non-streamed response.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`, also the trace id's key.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model name the request used.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Summed over every upstream call.
    pub usage: WireUsage,
    /// What amend did.
    pub amend: Value,
}

/// The delta of a streamed chunk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// What is appended.
    pub delta: Delta,
    /// Set on the last content chunk.
    pub finish_reason: Option<&'static str>,
    /// Not reported: `null`.
    pub logprobs: Option<()>,
}

/// `chat.completion.chunk`: one server-sent event of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    /// The response's id (the same on every chunk).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model name the request used.
    pub model: String,
    /// One choice, or none on the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// On the last chunk when `stream_options.include_usage`, else `null`.
    pub usage: Option<WireUsage>,
    /// What amend did, on the chunk that carries `finish_reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amend: Option<Value>,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
