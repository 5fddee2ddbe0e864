//! The pieces of a streamed answer: its chunks, the commit points a solve reported, and the
//! guard that cancels the solve when the client goes away.

use axum::response::sse::Event;
use serde_json::{json, Value};

use super::chat::Answer;
use super::wire::{Chunk, ChunkChoice, Delta};
use crate::run::Commit;

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn set(amend: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = amend {
        m.insert(key.into(), v);
    }
}

/// The commit points a solve reported.
#[derive(Default)]
pub(super) struct Committed {
    pub(super) count: usize,
    pub(super) text: String,
    unverified: Vec<usize>,
}

impl Committed {
    pub(super) fn add(&mut self, c: &Commit) {
        self.count += 1;
        self.text.push_str(&c.text);
        if !c.verified && !self.unverified.contains(&c.step) {
            self.unverified.push(c.step);
        }
    }

    /// `commit_points` (how many) and `unverified_steps` (sent although the verifier still
    /// flagged them) in the `amend` object, when the strategy reported commit points.
    pub(super) fn annotate(&self, amend: &mut Value) {
        if self.count > 0 {
            set(amend, "commit_points", json!(self.count));
            set(amend, "unverified_steps", json!(self.unverified));
        }
    }
}

/// What every chunk of one stream shares.
pub(super) struct Out {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) include_usage: bool,
}

impl Out {
    fn chunk(&self, delta: Delta, finish: Option<&'static str>, amend: Option<Value>) -> Chunk {
        Chunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
            amend,
        }
    }

    pub(super) fn role(&self) -> Chunk {
        self.chunk(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            None,
            None,
        )
    }

    pub(super) fn content(&self, text: String) -> Chunk {
        self.chunk(
            Delta {
                role: None,
                content: Some(text),
            },
            None,
            None,
        )
    }

    pub(super) fn event(&self, c: Chunk) -> Event {
        Event::default().data(serde_json::to_string(&c).unwrap_or_default())
    }

    /// The finish chunk (with the `amend` object), the usage chunk when asked, `[DONE]`.
    pub(super) fn finish(&self, a: Answer) -> Vec<Event> {
        let mut out = vec![self.event(self.chunk(Delta::default(), Some(a.finish), Some(a.amend)))];
        if self.include_usage {
            let mut last = self.chunk(Delta::default(), None, None);
            last.choices.clear();
            last.usage = Some(a.usage);
            out.push(self.event(last));
        }
        out.push(Event::default().data("[DONE]"));
        out
    }
}
