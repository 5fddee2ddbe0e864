//! `amend rectify collect`: push gold solutions through teacher forcing and keep, at every
//! token, the model's prediction beside the gold token ([`TokenRecord`], source
//! `teacher_forced`).
//!
//! Each item's gold solution (or, with [`right_sample_turns`], each of the model's own
//! samples judged right) is rendered as the assistant turn `solve` answers with (its
//! calculator annotations removed, the `####` line as "The answer is N.", as a worked example
//! is written), after the same prompt `solve` sends (the context's style, principles and
//! shots), and closed: the end-of-turn token a finished answer stops on is the last gold
//! token (a rectifier that never sees it learns against stopping). Records go under id
//! `tf:SET:ID` (SET names the collection, e.g. the data file's name), one per token; a turn
//! whose id already has records is skipped, so a collection resumes where it stopped. Each
//! turn's records are durable before the next turn starts.

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
    /// Turns pushed through teacher forcing now.
    pub items: u64,
    /// Turns skipped: already collected.
    pub already: u64,
    /// Items without a gold solution (not GSM8K-style; counted by the caller, see
    /// [`gold_turns`]).
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

/// One finished assistant turn to push through teacher forcing.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Its id in the collection (records go under `tf:SET:ID`; a sample of an item is
    /// `ITEM#N`). The development split hashes the whole id, so two samples of one item
    /// may fall on different sides of it.
    pub id: String,
    /// The problem, sent as `solve` sends it.
    pub question: String,
    /// The assistant's text.
    pub text: String,
}

/// The assistant turn `solve` would answer `item` with, from its gold solution (`None` for
/// items without one).
pub fn gold_turn(item: &Item) -> Option<String> {
    shot_from(item).map(|s| s.solution)
}

/// The turns of `items`' gold solutions, and how many items have none.
pub fn gold_turns(items: &[Item]) -> (Vec<Turn>, u64) {
    let turns: Vec<Turn> = items
        .iter()
        .filter_map(|item| {
            gold_turn(item).map(|text| Turn {
                id: item.id.clone(),
                question: item.question.clone(),
                text,
            })
        })
        .collect();
    let without = (items.len() - turns.len()) as u64;
    (turns, without)
}

/// The turns of one item's own samples that were right (`right[i]` judges `samples[i]`),
/// each text once, as `ITEM#N` (N its first sample index): the model's own text where its
/// answer is known right, for training on what the model itself writes (rejection sampling)
/// rather than on gold text alone.
pub fn right_sample_turns(
    item: &str,
    question: &str,
    samples: &[String],
    right: &[bool],
) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    for (i, (text, ok)) in samples.iter().zip(right).enumerate() {
        if *ok && !text.trim().is_empty() && out.iter().all(|t| t.text != *text) {
            out.push(Turn {
                id: format!("{item}#{i}"),
                question: question.to_string(),
                text: text.clone(),
            });
        }
    }
    out
}

/// Collect the token records of `turns` into `store`, under ids `tf:SET:ID`.
///
/// # Errors
/// [`RectifyError::Model`] (an API backend refuses teacher forcing: nothing is written),
/// [`RectifyError::Store`], [`RectifyError::Run`]. Turns finished before an error stay
/// recorded.
pub async fn collect(
    cx: &Context,
    store: &dyn Store,
    set: &str,
    turns: &[Turn],
    opts: CollectOptions,
    mut progress: impl FnMut(&CollectReport),
) -> Result<CollectReport, RectifyError> {
    let start = Instant::now();
    let mut r = CollectReport::default();
    let model = cx.model().id().key.clone();
    for turn in turns {
        let id = format!("tf:{set}:{}", turn.id);
        if !store.tokens(&id)?.is_empty() {
            r.already += 1;
            continue;
        }
        let req = cx.solve_request(&Problem::new(&turn.question))?;
        let scored = cx
            .model()
            .score(ScoreRequest {
                input: req.input,
                continuation: turn.text.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_samples_become_turns_once_each_under_their_first_index() {
        let s = |t: &str| t.to_string();
        let samples = [
            s("3 + 4 = 7\nThe answer is 7."),
            s("The answer is 6."),
            s(" "),
            s("3 + 4 = 7\nThe answer is 7."),
            s("4 + 3 = 7\nThe answer is 7."),
        ];
        let turns = right_sample_turns("12", "Q?", &samples, &[true, false, true, true, true]);
        let ids: Vec<&str> = turns.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["12#0", "12#4"]);
        assert!(turns.iter().all(|t| t.question == "Q?"));
        assert_eq!(turns[1].text, samples[4]);
        assert!(right_sample_turns("12", "Q?", &samples, &[false; 5]).is_empty());
        // Fewer judgements than samples: the rest are not right.
        assert_eq!(right_sample_turns("1", "Q?", &samples, &[true]).len(), 1);
    }
}
