//! Continuing an assistant message (a *prefill*: [`super::Request::prefill`]) on backends
//! that do and do not support it.
//!
//! Backtracking, Wait and step search give the model the start of its answer and ask it to go
//! on. The local backend does that natively. OpenAI's API has no assistant prefill, vLLM and
//! servers following its chat-template extension continue a final assistant message when the
//! request says `continue_final_message: true, add_generation_prompt: false`, and
//! llama-cpp-python's 0.3.x server silently starts a new turn after a trailing assistant
//! message. So an API model takes one of three [`Prefill`] paths, chosen by a
//! [`PrefillMode`]; `auto` asks the server once to continue a counting sequence and checks that
//! it really did. Every response to a request with a prefill says which path it took, and the
//! trace and evaluation summaries record it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Capabilities, Input, Message, Model, ModelError, ModelId, Request, Response};

/// How one request's prefill was continued.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Prefill {
    /// The backend continues a final assistant message as it is (the local backend; a server
    /// declared to).
    Native,
    /// The request asks the server to continue the final assistant message
    /// (`continue_final_message: true`, `add_generation_prompt: false`).
    ContinueFinalMessage,
    /// The server cannot continue a message: the prefill goes back as the assistant's turn,
    /// followed by a user turn asking to continue it exactly where it stops
    /// ([`CONTINUE_INSTRUCTION`]), and the reply is taken as the continuation. A fallback: the
    /// model answers a new turn and may restate or re-plan instead of continuing.
    Conversation,
}

/// Which [`Prefill`] path an API model takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PrefillMode {
    /// Ask the server once (at the first request with a prefill): `continue-final-message`
    /// when it really continues a counting sequence it is given, `conversation` otherwise
    /// (including when it rejects the extension's fields).
    #[default]
    Auto,
    /// The server continues a trailing assistant message as it is.
    Native,
    /// The server supports `continue_final_message`.
    ContinueFinalMessage,
    /// Always the conversation fallback.
    Conversation,
    /// Refuse requests with a prefill (as an API without it would).
    Off,
}

impl PrefillMode {
    /// The path a mode fixes without asking the server (`None` for `auto` and `off`).
    pub fn fixed(self) -> Option<Prefill> {
        match self {
            Self::Native => Some(Prefill::Native),
            Self::ContinueFinalMessage => Some(Prefill::ContinueFinalMessage),
            Self::Conversation => Some(Prefill::Conversation),
            Self::Auto | Self::Off => None,
        }
    }
}

/// The user turn of the conversation fallback.
pub const CONTINUE_INSTRUCTION: &str = "Continue your last message exactly where it stops. \
Write only what comes next, starting with the next word; do not repeat or restate anything \
you already wrote.";

/// The conversation fallback: `messages`, then `prefill` as the assistant's turn, then the
/// instruction to continue it. An empty prefill adds nothing: the reply is a fresh answer.
pub fn conversation(messages: &[Message], prefill: &str) -> Vec<Message> {
    let mut out = messages.to_vec();
    if prefill.trim().is_empty() {
        return out;
    }
    out.push(Message::assistant(prefill.to_string()));
    out.push(Message::user(CONTINUE_INSTRUCTION));
    out
}

/// A reply of the conversation fallback that starts by restating the prefill (or its last
/// line) keeps only what follows.
pub fn strip_restated(reply: &str, prefill: &str) -> String {
    let t = reply.trim_start();
    let whole = prefill.trim();
    let last = whole.lines().last().unwrap_or("").trim();
    for head in [whole, last] {
        if head.len() >= 8 {
            if let Some(rest) = t.strip_prefix(head) {
                return rest.to_string();
            }
        }
    }
    reply.to_string()
}

/// Any model with its prefills taken through the conversation fallback (what `--prefill
/// conversation` does to a local model): a request with a prefill is sent without it, as
/// [`conversation`], and the reply is the continuation. Measures what the fallback costs
/// against native prefill on the same backend.
pub struct Conversational(pub Arc<dyn Model>);

#[async_trait]
impl Model for Conversational {
    fn id(&self) -> &ModelId {
        self.0.id()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            assistant_prefill: true,
            ..self.0.capabilities()
        }
    }

    async fn score(
        &self,
        request: crate::model::ScoreRequest,
    ) -> Result<crate::model::Scored, ModelError> {
        self.0.score(request).await
    }

    async fn generate(&self, mut req: Request) -> Result<Response, ModelError> {
        let Some(prefill) = req.prefill.take() else {
            return self.0.generate(req).await;
        };
        let base = match &req.input {
            Input::Chat(m) => m.clone(),
            Input::Raw(p) => vec![Message::user(p.clone())],
        };
        req.input = Input::Chat(conversation(&base, &prefill));
        let mut r = self.0.generate(req).await?;
        for s in &mut r.samples {
            s.text = strip_restated(&s.text, &prefill);
        }
        r.prefill = Some(Prefill::Conversation);
        Ok(r)
    }
}

/// Any model with prefills refused (`--prefill off`).
pub struct NoPrefill(pub Arc<dyn Model>);

#[async_trait]
impl Model for NoPrefill {
    fn id(&self) -> &ModelId {
        self.0.id()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            assistant_prefill: false,
            ..self.0.capabilities()
        }
    }

    async fn score(
        &self,
        request: crate::model::ScoreRequest,
    ) -> Result<crate::model::Scored, ModelError> {
        self.0.score(request).await
    }

    async fn generate(&self, req: Request) -> Result<Response, ModelError> {
        super::check_supported(&self.capabilities(), &self.id().key, &req)?;
        self.0.generate(req).await
    }
}

/// The probe of [`PrefillMode::Auto`]: a question, the start of its answer, and whether a reply
/// continues that start (the next number, 6) rather than starting over (1).
pub(crate) const PROBE_QUESTION: &str =
    "Write the numbers from 1 to 12 in order, separated by commas.";
/// See [`PROBE_QUESTION`].
pub(crate) const PROBE_PREFILL: &str = "1, 2, 3, 4, 5,";

/// Does `reply` continue [`PROBE_PREFILL`]?
pub(crate) fn probe_continued(reply: &str) -> bool {
    reply
        .trim_start()
        .trim_start_matches(',')
        .trim_start()
        .starts_with('6')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_tells_a_continuation_from_a_new_turn() {
        assert!(probe_continued(" 6, 7, 8, 9"));
        assert!(probe_continued("6, 7"));
        assert!(!probe_continued("1, 2, 3, 4, 5, 6"));
        assert!(!probe_continued("Sure! Here are the numbers: 1, 2"));
        assert!(!probe_continued(""));
        let c = conversation(&[Message::user("q")], "so far");
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(1).map(|m| m.content.as_str()), Some("so far"));
        assert_eq!(conversation(&[Message::user("q")], " \n").len(), 1);
        assert_eq!(PrefillMode::Native.fixed(), Some(Prefill::Native));
        assert_eq!(PrefillMode::Auto.fixed(), None);
    }
}
