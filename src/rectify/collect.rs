//! `amend rectify collect`: push gold solutions through teacher forcing and keep, at every
//! token, the model's prediction beside the gold token ([`TokenRecord`], source
//! `teacher_forced`).
//!
//! Each item's gold solution is rendered as the assistant turn `solve` answers with (its
//! calculator annotations removed, the `####` line as "The answer is N.", as a worked example
//! is written), after the same prompt `solve` sends (the context's style, principles and
//! shots), and closed: the end-of-turn token a finished answer stops on is the last gold
//! token (a rectifier that never sees it learns against stopping). Records go under id `tf:SET:ITEM` (SET names the collection, e.g. the data file's
//! name), one per continuation token; an item whose id already has records is skipped, so a
//! collection resumes where it stopped. Each item's records are durable before the next item
//! starts.

use std::time::Instant;

use serde::Serialize;

use super::RectifyError;
use crate::data::{shot_from, Item};
use crate::mistakes::{Store, TokenSource};
use crate::model::ScoreRequest;
use crate::run::{Context, Problem};
use crate::strategy::token_records;

/// What to keep per position.
#[derive(Debug, Clone, Copy)]
pub struct CollectOptions {
    /// Candidates kept per position (the rectifier corrects among these).
    pub top_k: u32,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self { top_k: 32 }
    }
}

/// What a collection did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectReport {
    /// Items pushed through teacher forcing now.
    pub items: u64,
    /// Items skipped: already collected.
    pub already: u64,
    /// Items without a gold solution (not GSM8K-style).
    pub without_gold: u64,
    /// Token records written.
    pub tokens: u64,
    /// Of those, positions where the gold token was the model's top choice.
    pub top1: u64,
    /// Of those, positions where the gold token was among the top K.
    pub in_top_k: u64,
    /// Sum of the gold tokens' negative log-likelihoods (nats).
    pub nll_sum: f64,
    /// Wall time (s).
    pub wall_s: f64,
}

impl CollectReport {
    /// Token records per second.
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.wall_s.max(1e-9)
    }
}

/// The assistant turn `solve` would answer `item` with, from its gold solution (`None` for
/// items without one).
pub fn gold_turn(item: &Item) -> Option<String> {
    shot_from(item).map(|s| s.solution)
}

/// Collect the token records of `items` into `store`, under ids `tf:SET:ITEM`.
///
/// # Errors
/// [`RectifyError::Model`] (an API backend refuses teacher forcing: nothing is written),
/// [`RectifyError::Store`], [`RectifyError::Run`]. Items finished before an error stay
/// recorded.
pub async fn collect(
    cx: &Context,
    store: &dyn Store,
    set: &str,
    items: &[Item],
    opts: CollectOptions,
    mut progress: impl FnMut(&CollectReport),
) -> Result<CollectReport, RectifyError> {
    let start = Instant::now();
    let mut r = CollectReport::default();
    let model = cx.model().id().key.clone();
    for item in items {
        let id = format!("tf:{set}:{}", item.id);
        let Some(turn) = gold_turn(item) else {
            r.without_gold += 1;
            continue;
        };
        if !store.tokens(&id)?.is_empty() {
            r.already += 1;
            continue;
        }
        let req = cx.solve_request(&Problem::new(&item.question))?;
        let scored = cx
            .model()
            .score(ScoreRequest {
                input: req.input,
                continuation: turn,
                top_k: opts.top_k,
                hidden: true,
                close: true,
            })
            .await?;
        let records = token_records(&id, TokenSource::TeacherForced, &model, &scored.tokens, 0);
        store.record_tokens(&records)?;
        r.items += 1;
        r.tokens += scored.tokens.len() as u64;
        r.top1 += scored.tokens.iter().filter(|t| t.rank == 0).count() as u64;
        r.in_top_k += scored.tokens.iter().filter(|t| t.rank < opts.top_k).count() as u64;
        r.nll_sum -= scored
            .tokens
            .iter()
            .map(|t| f64::from(t.logprob()))
            .sum::<f64>();
        r.wall_s = start.elapsed().as_secs_f64();
        progress(&r);
    }
    r.wall_s = start.elapsed().as_secs_f64();
    Ok(r)
}
