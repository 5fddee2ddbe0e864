//! Teacher forcing: score a given continuation of a prompt in one pass, without sampling.
//!
//! [`super::Model::score`] pushes a prompt and a continuation (the assistant text, as an
//! assistant prefill would render it) through the model in one decode and returns, for each
//! token of the continuation, what the model predicted there: the gold token with its logit
//! and rank, the log-normaliser of the distribution, the top-K candidates, and (on request)
//! the final hidden state that produced it (the LM head's input). This is what a rectifier is
//! trained on (Transformer Copilot's mistake log: gold minus predicted at every position).
//!
//! Backends with [`super::Capabilities::teacher_forcing`] can; API backends cannot (no hidden
//! states, at most top-20 log-probabilities) and refuse with
//! [`super::ModelError::Unsupported`]: nothing is approximated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Input;

/// What to score.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    /// The prompt (chat messages are rendered with the model's template and its generation
    /// prompt, as [`super::Request`] renders them).
    pub input: Input,
    /// The assistant text to score: tokenised as the continuation of the prompt, exactly as
    /// an assistant prefill of this text would be.
    pub continuation: String,
    /// Candidates to return per position (the most likely first).
    pub top_k: u32,
    /// Return the final hidden state at every position.
    pub hidden: bool,
}

/// One continuation token and what the model predicted in its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredToken {
    /// The gold token's id.
    pub gold: u32,
    /// Its text.
    pub piece: String,
    /// Its logit.
    pub gold_logit: f32,
    /// How many tokens had a higher logit (0: the model's greedy choice).
    pub rank: u32,
    /// `log Σ exp(logit)` over the vocabulary: `gold_logit − log_normaliser` is the gold
    /// token's log-probability.
    pub log_normaliser: f32,
    /// The top-K candidates (id, logit), most likely first.
    pub top: Vec<(u32, f32)>,
    /// The final hidden state that produced this prediction (when asked for).
    pub hidden: Option<Vec<f32>>,
}

impl ScoredToken {
    /// The gold token's log-probability.
    pub fn logprob(&self) -> f32 {
        self.gold_logit - self.log_normaliser
    }
}

/// The result of [`super::Model::score`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    /// One entry per continuation token, in order.
    pub tokens: Vec<ScoredToken>,
    /// Prompt tokens (before the continuation).
    pub prompt_tokens: u32,
    /// The hidden state's width (0 when not asked for).
    pub hidden_dim: usize,
    /// Wall time of the pass.
    #[serde(with = "super::duration_ms")]
    pub wall: Duration,
}

impl Scored {
    /// Mean negative log-likelihood per continuation token (nats; 0 for no tokens).
    pub fn nll(&self) -> f64 {
        if self.tokens.is_empty() {
            return 0.0;
        }
        -self
            .tokens
            .iter()
            .map(|t| f64::from(t.logprob()))
            .sum::<f64>()
            / self.tokens.len() as f64
    }
}

/// The top `k` (index, value) of `logits`, largest first, and `log Σ exp` over all of them:
/// one pass for the normaliser, a partial selection for the top `k`. What a rectifier reads
/// of a step's distribution.
pub fn top_k(logits: &[f32], k: usize) -> (Vec<(u32, f32)>, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let lse = max + sum.ln() as f32;
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let at = |i: u32| logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY);
    let by = |a: &u32, b: &u32| at(*b).total_cmp(&at(*a));
    let k = k.min(idx.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, by);
    }
    idx.truncate(k);
    idx.sort_unstable_by(by);
    (idx.into_iter().map(|i| (i, at(i))).collect(), lse)
}

/// [`top_k`], and the rank of `gold` (how many logits are larger): what a [`ScoredToken`]
/// keeps of one position's distribution.
pub fn summarise(logits: &[f32], gold: usize, k: usize) -> (Vec<(u32, f32)>, f32, u32) {
    let (top, lse) = top_k(logits, k);
    let g = logits.get(gold).copied().unwrap_or(f32::NEG_INFINITY);
    let rank = logits.iter().filter(|&&l| l > g).count() as u32;
    (top, lse, rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_rank_and_normaliser() {
        let logits = [0.5f32, 3.0, -1.0, 2.0, 2.5];
        let (top, lse, rank) = summarise(&logits, 3, 3);
        assert_eq!(top, vec![(1, 3.0), (4, 2.5), (3, 2.0)]);
        assert_eq!(rank, 2);
        let want: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum::<f64>().ln();
        assert!((f64::from(lse) - want).abs() < 1e-5);
        let (top, _, rank) = summarise(&logits, 1, 10);
        assert_eq!((top.len(), rank), (5, 0));
    }
}
