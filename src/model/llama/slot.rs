//! What the scheduler ([`super::engine`]) keeps: requests waiting or running, their samples,
//! and the slots (KV sequences) with their prefix caches.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::sample::Picker;
use crate::model::{FinishReason, ModelError, Request, Response, TokenLogprob};

/// A request waiting for, or holding, slots.
pub(super) struct Task {
    pub req: Box<Request>,
    pub reply: oneshot::Sender<Result<Response, ModelError>>,
    pub start: Instant,
}

/// One KV sequence and its prefix cache.
#[derive(Default)]
pub(super) struct Slot {
    /// The tokens at positions `0..` of this sequence's cache.
    pub cached: Vec<LlamaToken>,
    /// Next-token logits right after each newline of `cached` (key: the prefix length).
    pub saved: Vec<(usize, Vec<f32>)>,
    /// A running sample holds it.
    pub busy: bool,
    /// When it was last given out or used (least recently used free slots are evicted first).
    pub used: u64,
}

/// Saved line-boundary logits kept per slot (each one vocabulary of f32).
pub(super) const MAX_SAVED: usize = 24;

impl Slot {
    pub fn save(&mut self, len: usize, logits: Vec<f32>) {
        self.saved.retain(|(l, _)| *l != len);
        self.saved.push((len, logits));
        if self.saved.len() > MAX_SAVED {
            let extra = self.saved.len() - MAX_SAVED;
            self.saved.drain(..extra);
        }
    }
}

/// One running sample.
pub(super) struct Seq {
    pub slot: usize,
    pub picker: Picker,
    pub text: String,
    pub pending: Vec<u8>,
    pub tokens: u32,
    pub pos: i32,
    /// Where its next-token logits are in the context's output, after a step's decode.
    pub logit_idx: i32,
    /// Its next-token logits (and hidden state) when they are not in the context's output
    /// (right after admission: other decodes may have run since).
    pub first: Option<(Vec<f32>, Option<Vec<f32>>)>,
    /// The token picked this step, to be decoded in the next batch.
    pub next: Option<LlamaToken>,
    /// The token just decoded ended a line: save the logits that follow it.
    pub save_next: bool,
    pub done: Option<FinishReason>,
    pub logprobs: Vec<TokenLogprob>,
}

impl Seq {
    /// Append a token's bytes, keeping `text` valid UTF-8 across split characters.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                self.text.push_str(s);
                self.pending.clear();
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: emit the valid part, keep the rest.
                let valid = e.valid_up_to();
                if let Ok(s) = std::str::from_utf8(self.pending.get(..valid).unwrap_or_default()) {
                    self.text.push_str(s);
                }
                self.pending.drain(..valid);
            }
            Err(_) => {
                self.text.push_str(&String::from_utf8_lossy(&self.pending));
                self.pending.clear();
            }
        }
    }

    pub fn finish_text(&mut self) {
        if !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

/// An admitted request.
pub(super) struct Active {
    pub task: Task,
    pub seqs: Vec<Seq>,
    pub prompt_tokens: usize,
    pub reused: usize,
}
