//! A model that replies from a script, for tests of what amend does with given replies (a
//! located mistake, a reply that breaks a format): each call answers the next line (the last
//! one again once they run out), `n` copies of it, and the conversations it was sent are kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amend::model::{
    Capabilities, FinishReason, Input, Model, ModelError, ModelId, Request, Response, Role, Sample,
    Usage,
};
use async_trait::async_trait;

/// Tokens counted per reply, prompt tokens per call.
pub const REPLY_TOKENS: u32 = 7;
/// Prompt tokens counted per call.
pub const PROMPT_TOKENS: u64 = 30;

/// The scripted model (identity key `script`).
pub struct Script {
    id: ModelId,
    lines: Mutex<VecDeque<String>>,
    /// Every conversation it was sent, as (role, content) pairs.
    pub seen: Mutex<Vec<Vec<(Role, String)>>>,
}

impl Script {
    /// A model answering `lines` in turn.
    pub fn new(lines: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            id: ModelId {
                key: "script".into(),
                source: "tests/common/script.rs".into(),
            },
            lines: Mutex::new(lines.iter().map(|s| s.to_string()).collect()),
            seen: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Model for Script {
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
        if let Input::Chat(m) = &request.input {
            self.seen
                .lock()
                .unwrap()
                .push(m.iter().map(|m| (m.role, m.content.clone())).collect());
        }
        let text = {
            let mut lines = self.lines.lock().unwrap();
            if lines.len() > 1 {
                lines.pop_front().unwrap()
            } else {
                lines.front().cloned().unwrap_or_default()
            }
        };
        let n = request.n.max(1);
        let sample = Sample {
            text,
            finish: FinishReason::Stop,
            tokens: REPLY_TOKENS,
            logprobs: None,
        };
        Ok(Response {
            samples: vec![sample; n as usize],
            usage: Usage {
                calls: 1,
                prompt_tokens: PROMPT_TOKENS,
                generated_tokens: u64::from(REPLY_TOKENS * n),
                ..Usage::default()
            },
            wall: Duration::ZERO,
            prefill: None,
        })
    }
}
