//! A learned bias per candidate token (`amend rectify train --token-bias`): the correction of a
//! candidate gets `b[token]` added, whatever the hidden state. It is how the rectifier learns
//! what the pilot gets wrong about a token everywhere in the training data (a word the data
//! uses more or less often than the pilot expects), next to what the network reads from the
//! hidden state. Trained with the network, by Adam with the same step size and weight decay;
//! stored sparsely (the tokens training moved).
//!
//! Only tokens that are the gold token somewhere in the training data get a bias. A token that
//! is only ever a candidate there has only evidence against it, and some of those are absent
//! from the data by construction, not by rarity: solutions teacher-forced as open turns (every
//! collection before closed turns, `ScoreRequest::close`) never end, so the end-of-turn token
//! learned a large negative bias from them (−3.7 for the default model's `<|im_end|>`,
//! measured) and a decoder using it did not stop.

use std::collections::BTreeMap;

use super::net::{adam_update, corrections};

/// The dense bias under training, with its Adam moments.
#[derive(Debug, Clone)]
pub struct BiasTrainer {
    /// One value per token id (ids past the end read as 0).
    pub values: Vec<f32>,
    grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    touched: Vec<bool>,
    /// Tokens that may have a bias (gold somewhere in the training data).
    allowed: Vec<bool>,
    t: i32,
}

impl BiasTrainer {
    /// All zero, for token ids below `vocab`; only the tokens in `gold` (the training data's
    /// gold tokens) may move.
    pub fn new(vocab: usize, gold: impl IntoIterator<Item = i32>) -> Self {
        let mut allowed = vec![false; vocab];
        for id in gold {
            if let Some(a) = usize::try_from(id).ok().and_then(|i| allowed.get_mut(i)) {
                *a = true;
            }
        }
        Self {
            values: vec![0.0; vocab],
            grad: vec![0.0; vocab],
            m: vec![0.0; vocab],
            v: vec![0.0; vocab],
            touched: vec![false; vocab],
            allowed,
            t: 0,
        }
    }

    /// The bias of candidate `ids`, added into `y`.
    pub fn add_to(&self, ids: &[i32], y: &mut [f32]) {
        for (id, y) in ids.iter().zip(y) {
            *y += usize::try_from(*id)
                .ok()
                .and_then(|i| self.values.get(i))
                .copied()
                .unwrap_or(0.0);
        }
    }

    /// Accumulate the output gradient `dy` of candidates `ids`.
    pub fn accumulate(&mut self, ids: &[i32], dy: &[f32]) {
        for (id, d) in ids.iter().zip(dy) {
            let Some(i) = usize::try_from(*id).ok() else {
                continue;
            };
            if !self.allowed.get(i).copied().unwrap_or(false) {
                continue;
            }
            if let (Some(g), Some(t)) = (self.grad.get_mut(i), self.touched.get_mut(i)) {
                *g += d;
                *t = true;
            }
        }
    }

    /// One AdamW step on the accumulated gradient (β = 0.9, 0.999), which is then cleared.
    /// Only tokens some batch has seen move; decay applies to them.
    pub fn step(&mut self, lr: f32, weight_decay: f32) {
        self.t += 1;
        let c = corrections(self.t);
        for ((((p, g), m), v), seen) in self
            .values
            .iter_mut()
            .zip(&mut self.grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(&self.touched)
        {
            if !seen {
                continue;
            }
            adam_update(p, *g, m, v, lr, c, weight_decay);
            *g = 0.0;
        }
    }

    /// The non-zero entries, for the file.
    pub fn sparse(&self) -> BTreeMap<i32, f32> {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0.0)
            .filter_map(|(i, b)| Some((i32::try_from(i).ok()?, *b)))
            .collect()
    }
}

/// The stored bias of candidate `ids`, added into `y`.
pub fn add_sparse(bias: &BTreeMap<i32, f32>, ids: &[i32], y: &mut [f32]) {
    if bias.is_empty() {
        return;
    }
    for (id, y) in ids.iter().zip(y) {
        *y += bias.get(id).copied().unwrap_or(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_moves_only_gold_tokens_seen_and_the_sparse_form_reads_the_same() {
        let mut b = BiasTrainer::new(10, [3, 7, 42]);
        b.accumulate(&[3, 7, 42, -1, 5], &[1.0, -1.0, 5.0, 5.0, 1.0]);
        b.step(0.1, 0.0);
        assert!(b.values[3] < 0.0 && b.values[7] > 0.0);
        // Token 5 was a candidate with a gradient, but never a gold token: no bias.
        assert_eq!(b.values[5], 0.0);
        assert_eq!(b.values.iter().filter(|v| **v != 0.0).count(), 2);
        let sparse = b.sparse();
        assert_eq!(sparse.len(), 2);
        let (mut dense_y, mut sparse_y) = (vec![0.5f32; 4], vec![0.5f32; 4]);
        b.add_to(&[3, 7, 42, -1], &mut dense_y);
        add_sparse(&sparse, &[3, 7, 42, -1], &mut sparse_y);
        assert_eq!(dense_y, sparse_y);
        assert_eq!(dense_y[2], 0.5);
    }
}
