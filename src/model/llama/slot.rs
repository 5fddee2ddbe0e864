//! What the scheduler ([`super::engine`]) keeps: requests waiting or running, their samples,
//! and the slots (KV sequences) with their prefix caches.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::sample::Picker;
use crate::model::{FinishReason, ModelError, Request, Response, TokenLogprob};

/// Work for the worker thread.
pub(super) enum Job {
    /// Generate samples.
    Generate(Task),
    /// Teacher-force a continuation (waits until no request runs).
    Score(super::score::ScoreTask),
}

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

/// What [`choose`] needs to know of a slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotView {
    /// A running sample holds it.
    pub busy: bool,
    /// Leading tokens its cache shares with the prompt (0 when reuse is off).
    pub common: usize,
    /// Its [`Slot::used`] clock.
    pub used: u64,
}

/// Pick `n` free slots for a prompt of `prompt_len` tokens and up to `max_tokens` new tokens
/// per sample, at the least estimated work, counted in tokens:
/// - the prompt tokens the slot's cache does not already hold (first slot only: the others
///   receive a copy of its prompt);
/// - `max_tokens` for every extra run of consecutive running slots the choice creates (minus
///   `max_tokens` for a run it closes). With one KV stream per slot llama.cpp puts only
///   sequences with consecutive ids in one micro-batch, so each run of running slots costs a
///   decode of its own at each of up to `max_tokens` steps, where joining a run costs almost
///   nothing. A cached prefix longer than that still wins.
///
/// Ties go to the most recently used slot for the first (the warm one of a conversation) and to
/// the least recently used for the others (their caches are dropped). Returns (slot, shared
/// prefix) pairs, fewer than `n` when fewer slots are free.
pub(super) fn choose(
    slots: &[SlotView],
    prompt_len: usize,
    n: usize,
    max_tokens: usize,
) -> Vec<(usize, usize)> {
    let mut taken: Vec<bool> = slots.iter().map(|s| s.busy).collect();
    let is_taken = |t: &[bool], i: Option<usize>| i.and_then(|i| t.get(i)).copied() == Some(true);
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let running = taken.iter().any(|&t| t);
        let best = slots
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_taken(&taken, Some(*i)))
            .map(|(i, s)| {
                let common = if k == 0 { s.common.min(prompt_len) } else { 0 };
                let uncached = if k == 0 { prompt_len - common } else { 0 };
                let neighbours = i64::from(is_taken(&taken, i.checked_sub(1)))
                    + i64::from(is_taken(&taken, Some(i + 1)));
                let runs = if running { 1 - neighbours } else { 0 };
                let cost = uncached as i64 + runs * max_tokens as i64;
                let age = if k == 0 { u64::MAX - s.used } else { s.used };
                (i, common, cost, age)
            })
            .min_by_key(|&(_, _, cost, age)| (cost, age));
        let Some((i, common, _, _)) = best else {
            break;
        };
        if let Some(t) = taken.get_mut(i) {
            *t = true;
        }
        out.push((i, common));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{choose, SlotView};

    fn view(busy: &[bool], common: &[usize]) -> Vec<SlotView> {
        busy.iter()
            .zip(common)
            .enumerate()
            .map(|(i, (&busy, &common))| SlotView {
                busy,
                common,
                used: i as u64,
            })
            .collect()
    }

    #[test]
    fn a_request_fills_the_gap_between_running_slots() {
        let slots = view(&[true, false, true, false], &[0, 0, 0, 0]);
        assert_eq!(choose(&slots, 50, 1, 256), vec![(1, 0)]);
    }

    #[test]
    fn a_request_joins_the_running_run_rather_than_a_warmer_slot_apart() {
        // Slot 3 shares 40 tokens more, but decoding them is cheaper than a second run.
        let slots = view(&[true, false, false, false], &[10, 10, 10, 50]);
        assert_eq!(choose(&slots, 60, 1, 256), vec![(1, 10)]);
    }

    #[test]
    fn a_long_cached_prefix_beats_joining_the_run() {
        let slots = view(&[true, false, false, false], &[0, 0, 0, 1000]);
        assert_eq!(choose(&slots, 1010, 1, 256), vec![(3, 1000)]);
    }

    #[test]
    fn an_idle_engine_takes_the_longest_prefix_then_neighbours_for_the_samples() {
        let slots = view(&[false; 6], &[0, 0, 0, 30, 0, 0]);
        let got = choose(&slots, 40, 3, 128);
        assert_eq!(got.first(), Some(&(3, 30)));
        let mut ids: Vec<usize> = got.iter().map(|&(i, _)| i).collect();
        ids.sort_unstable();
        let consecutive = ids.windows(2).all(|w| matches!(w, [a, b] if a + 1 == *b));
        assert!(consecutive, "samples on consecutive slots: {ids:?}");
    }

    #[test]
    fn fewer_slots_than_asked_returns_what_is_free() {
        let slots = view(&[true, false, true], &[0, 0, 0]);
        assert_eq!(choose(&slots, 5, 2, 64).len(), 1);
    }
}
