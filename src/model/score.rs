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

use super::{lanes, Input};

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
    /// Also score the end-of-turn token after the continuation (the token generation stops
    /// on: for chat input the one the chat template closes an assistant turn with, else the
    /// vocabulary's end-of-turn or end-of-sequence token), as the last position: the
    /// continuation is a finished answer, and what predicts its end is learned too. Off, the
    /// turn stays open (a part of an answer). A backend that knows no such token refuses.
    pub close: bool,
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
/// the maximum and the normaliser by the sampler's eight-lane passes ([`super::lanes`]), then
/// one pass for the top `k` (a buffer of at most 2k candidates above a rising threshold: most
/// logits cost one comparison). What a rectifier reads of a step's distribution, at every
/// generated token. Among equal logits at the k-th place, which are kept is unspecified.
pub fn top_k(logits: &[f32], k: usize) -> (Vec<(u32, f32)>, f32) {
    let max = lanes::max(logits);
    let lse = max + lanes::sum_exp(logits, max, 1.0, None).ln() as f32;
    let k = k.min(logits.len());
    let by = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
    let mut buf: Vec<(u32, f32)> = Vec::with_capacity(2 * k + 1);
    // The k-th largest logit so far, once k have been seen and the buffer was cut.
    let mut floor = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if k > 0 && (buf.len() < k || l > floor) {
            buf.push((i as u32, l));
            if buf.len() >= 2 * k {
                buf.select_nth_unstable_by(k - 1, by);
                buf.truncate(k);
                floor = buf.get(k - 1).map_or(f32::NEG_INFINITY, |c| c.1);
            }
        }
    }
    buf.sort_unstable_by(by);
    buf.truncate(k);
    (buf, lse)
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

    proptest::proptest! {
        #[test]
        fn top_k_holds_the_k_largest_logits_and_the_normaliser(
            logits in proptest::collection::vec(-20.0f32..20.0, 1..300),
            k in 1usize..40,
        ) {
            // Quantised so that ties happen.
            let logits: Vec<f32> = logits.iter().map(|l| (l * 2.0).round() / 2.0).collect();
            let (top, lse) = top_k(&logits, k);
            let mut sorted = logits.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let want: Vec<f32> = sorted.iter().copied().take(k).collect();
            let got: Vec<f32> = top.iter().map(|c| c.1).collect();
            proptest::prop_assert_eq!(got, want);
            for (i, l) in &top {
                proptest::prop_assert_eq!(logits[*i as usize], *l);
            }
            let mut ids: Vec<u32> = top.iter().map(|c| c.0).collect();
            ids.sort_unstable();
            ids.dedup();
            proptest::prop_assert_eq!(ids.len(), top.len());
            let exact = logits.iter().map(|&l| f64::from(l).exp()).sum::<f64>().ln();
            proptest::prop_assert!((f64::from(lse) - exact).abs() < 1e-4 * exact.abs().max(1.0));
        }
    }

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
