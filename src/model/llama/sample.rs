//! Choosing the next token of each sample: the logits hook, greedy or temperature/top-p
//! sampling, log-probs.
//!
//! Sampling runs on the engine thread once per sample per step, over the whole vocabulary
//! (49k tokens for the default model), so it is written to touch each logit a few times and
//! never sort the vocabulary:
//! - greedy: an argmax;
//! - temperature without top-p: one pass for the maximum, one for the weights
//!   `exp((l − max)/T)`, one draw along the cumulative sum;
//! - top-p (applied to the unscaled distribution, before the temperature, as llama.cpp's
//!   `top_p → temp → dist` chain does): the nucleus is found among the top k logits, taken
//!   with a partial selection (k = 64, then ×4 while their mass stays under p), so only the
//!   nucleus is sorted; the draw then weighs it by `exp((l − max)/T)`. Only tokens within 30
//!   of the maximum logit enter it (one cheap pass; the rest weigh < 1e-13 each).
//!
//! The draw uses amend's seeded stream ([`crate::rng::Rng`]): the same seed gives the same
//! text. (Splitting sampling over a second thread measured slower on two cores, `bench
//! parallel` 1.38 vs 1.73, because llama.cpp's OpenMP workers keep spinning between decodes.)

use std::sync::Arc;

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::model::{LogitsHook, TokenStep};
use crate::rng::Rng;

/// How far below the maximum logit a token may be and still be looked at by top-p (see
/// [`Picker::nucleus`]).
const PREFILTER: f32 = 30.0;

/// One sample's sampler with its reusable buffers.
pub(super) struct Picker {
    temperature: f32,
    top_p: f32,
    rng: Rng,
    logits: Vec<f32>,
    order: Vec<u32>,
    weights: Vec<f64>,
    /// A grammar every token must keep the text inside of (llama.cpp's grammar sampler,
    /// used only to mask and to accept: the choice is still this picker's).
    grammar: Option<LlamaSampler>,
    masked: Vec<f32>,
}

/// A chosen token.
#[derive(Debug, Clone, Copy)]
pub(super) struct Picked {
    pub token: LlamaToken,
    pub logprob: Option<f32>,
}

/// One sample's pending choice.
pub(super) struct Job<'a> {
    pub picker: &'a mut Picker,
    pub logits: &'a [f32],
    pub hidden: Option<&'a [f32]>,
    pub sample: usize,
    pub index: usize,
    pub out: Option<Picked>,
}

fn log_softmax_at(logits: &[f32], idx: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(idx)
        .map(|l| l - max - sum.ln())
        .unwrap_or(f32::NEG_INFINITY)
}

fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i)
}

impl Picker {
    /// A greedy picker (`temperature <= 0`), or top-p (when `top_p < 1`) → temperature →
    /// seeded draw.
    pub(super) fn new(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self {
            temperature,
            top_p,
            rng: Rng::new(seed),
            logits: Vec::new(),
            order: Vec::new(),
            weights: Vec::new(),
            grammar: None,
            masked: Vec::new(),
        }
    }

    /// Constrain this sample to a grammar: each step's choice is kept when the grammar
    /// accepts it; otherwise the tokens it rejects are masked out and the choice is made
    /// again (llama.cpp's sampler does the same: checking one token is far cheaper than
    /// masking a 49k vocabulary at every step).
    pub(super) fn with_grammar(mut self, grammar: Option<LlamaSampler>) -> Self {
        self.grammar = grammar;
        self
    }

    /// Whether the grammar (if any) accepts `token` next.
    fn allows(&mut self, logits: &[f32], token: usize) -> bool {
        let Some(g) = self.grammar.as_mut() else {
            return true;
        };
        let logit = logits.get(token).copied().unwrap_or(f32::NEG_INFINITY);
        let Ok(id) = i32::try_from(token) else {
            return false;
        };
        let mut one =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(LlamaToken(id), logit, 0.0)], false);
        g.apply(&mut one);
        one.data.first().is_some_and(|d| d.logit().is_finite())
    }

    /// `logits` with every token `grammar` rejects set to −∞, in `out`.
    fn mask(grammar: &mut LlamaSampler, logits: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(logits.len(), f32::NEG_INFINITY);
        let mut all = LlamaTokenDataArray::from_iter(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
            false,
        );
        grammar.apply(&mut all);
        for d in &all.data {
            if let Some(m) = usize::try_from(d.id().0).ok().and_then(|i| out.get_mut(i)) {
                *m = d.logit();
            }
        }
    }

    /// The token this picker's settings choose from `logits`.
    fn choose(&mut self, logits: &[f32]) -> Option<usize> {
        if self.temperature <= 0.0 {
            argmax(logits)
        } else if self.top_p < 1.0 {
            self.nucleus(logits);
            let cands = std::mem::take(&mut self.order);
            let token = self.draw(logits, Some(&cands));
            self.order = cands;
            token
        } else {
            self.draw(logits, None)
        }
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The token a temperature draw picks among `cands` (token ids; all of them when `None`).
    fn draw(&mut self, logits: &[f32], cands: Option<&[u32]>) -> Option<usize> {
        let t = f64::from(self.temperature.max(1e-6));
        let max = match cands {
            Some(c) => c
                .iter()
                .filter_map(|&i| logits.get(i as usize))
                .copied()
                .fold(f32::NEG_INFINITY, f32::max),
            None => logits.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        };
        let max = f64::from(max);
        self.weights.clear();
        let mut total = 0.0;
        match cands {
            Some(c) => {
                for &i in c {
                    let w =
                        ((f64::from(logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY))
                            - max)
                            / t)
                            .exp();
                    total += w;
                    self.weights.push(w);
                }
            }
            None => {
                for &l in logits {
                    let w = ((f64::from(l) - max) / t).exp();
                    total += w;
                    self.weights.push(w);
                }
            }
        }
        if !(total > 0.0 && total.is_finite()) {
            return argmax(logits);
        }
        let mut target = self.uniform() * total;
        let mut chosen = self.weights.len().checked_sub(1)?;
        for (k, &w) in self.weights.iter().enumerate() {
            if target < w {
                chosen = k;
                break;
            }
            target -= w;
        }
        match cands {
            Some(c) => c.get(chosen).map(|&i| i as usize),
            None => Some(chosen),
        }
    }

    /// The smallest set of tokens, most likely first, whose probability (softmax of the
    /// unscaled logits) reaches `top_p`: found among the top k by partial selection.
    ///
    /// Only the tokens within [`PREFILTER`] of the maximum logit are looked at (one pass over
    /// the vocabulary collects them): every other token has a weight below `e^-30 ≈ 9e-14` of
    /// the likeliest one, so all of them together (49k for the default model) move the
    /// normaliser by less than 5e-9 of itself. The nucleus can differ from the one over the
    /// full vocabulary only when its cumulative mass lands within that margin of `top_p`.
    fn nucleus(&mut self, logits: &[f32]) -> &[u32] {
        let maxf = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = maxf - PREFILTER;
        self.order.clear();
        self.order.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, &l)| l >= floor)
                .map(|(i, _)| i as u32),
        );
        let at = |i: u32| logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let max = f64::from(maxf);
        let z: f64 = self
            .order
            .iter()
            .map(|&i| (f64::from(at(i)) - max).exp())
            .sum();
        let p = f64::from(self.top_p.max(0.0)) * z;
        let by_logit = |a: &u32, b: &u32| at(*b).total_cmp(&at(*a));
        let n = self.order.len();
        let mut k = 64.min(n);
        let keep = loop {
            if k < n {
                self.order.select_nth_unstable_by(k, by_logit);
            }
            let top = self.order.get_mut(..k).unwrap_or_default();
            top.sort_unstable_by(by_logit);
            let mut mass = 0.0;
            let mut found = None;
            for (j, &i) in top.iter().enumerate() {
                mass += (f64::from(at(i)) - max).exp();
                if mass >= p {
                    found = Some(j + 1);
                    break;
                }
            }
            match found {
                Some(j) => break j,
                None if k >= n => break n,
                None => k = (k * 4).min(n),
            }
        };
        self.order.truncate(keep.max(1));
        &self.order
    }

    fn pick(
        &mut self,
        job_logits: &[f32],
        hidden: Option<&[f32]>,
        hook: Option<&Arc<dyn LogitsHook>>,
        sample: usize,
        index: usize,
        logprob: bool,
    ) -> Option<Picked> {
        let mut logits_buf = std::mem::take(&mut self.logits);
        let logits: &[f32] = match hook {
            Some(hook) => {
                logits_buf.clear();
                logits_buf.extend_from_slice(job_logits);
                hook.apply(&mut TokenStep {
                    sample,
                    index,
                    hidden,
                    logits: &mut logits_buf,
                });
                &logits_buf
            }
            None => job_logits,
        };
        let mut token = self.choose(logits);
        let mut masked = false;
        if self.grammar.is_some() && !token.is_some_and(|t| self.allows(logits, t)) {
            let mut m = std::mem::take(&mut self.masked);
            if let Some(g) = self.grammar.as_mut() {
                Self::mask(g, logits, &mut m);
            }
            token = match m.iter().any(|l| l.is_finite()) {
                true => self.choose(&m),
                // The grammar accepts no token here: the sample cannot go on.
                false => None,
            };
            self.masked = m;
            masked = true;
        }
        let lp = match (logprob, token) {
            (true, Some(t)) if masked => Some(log_softmax_at(&self.masked, t)),
            (true, Some(t)) => Some(log_softmax_at(logits, t)),
            _ => None,
        };
        self.logits = logits_buf;
        let token = token?;
        if let Some(g) = self.grammar.as_mut() {
            g.try_accept(LlamaToken(i32::try_from(token).ok()?)).ok()?;
        }
        Some(Picked {
            token: LlamaToken(i32::try_from(token).ok()?),
            logprob: lp,
        })
    }
}

/// Choose a token for every job, one after the other on the engine thread.
pub(super) fn pick_all(jobs: &mut [Job<'_>], hook: Option<&Arc<dyn LogitsHook>>, logprob: bool) {
    for j in jobs.iter_mut() {
        j.out = j
            .picker
            .pick(j.logits, j.hidden, hook, j.sample, j.index, logprob);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_p_and_temperature_draws() {
        let logits = vec![0.0f32, 3.0, 1.0, 2.9];
        let mut g = Picker::new(0.0, 1.0, 1);
        assert_eq!(
            g.pick(&logits, None, None, 0, 0, false).map(|p| p.token.0),
            Some(1)
        );
        // top-p 0.5 on softmax(0, 3, 1, 2.9) = (.02, .49, .06, .44): {1, 3} hold 0.93 >= .5
        // but {1} alone .49 < .5, so the nucleus is {1, 3}.
        let mut t = Picker::new(1.0, 0.5, 7);
        assert_eq!(t.nucleus(&logits), &[1, 3]);
        let mut seen = [0u32; 4];
        for seed in 0..400 {
            let mut p = Picker::new(1.0, 0.5, seed);
            if let Some(x) = p.pick(&logits, None, None, 0, 0, true) {
                seen[x.token.0 as usize] += 1;
                assert!(x.logprob.is_some_and(|l| l <= 0.0));
            }
        }
        assert_eq!((seen[0], seen[2]), (0, 0), "outside the nucleus: {seen:?}");
        assert!(seen[1] > 120 && seen[3] > 120, "{seen:?}");
        // Full softmax at T = 1: every token is drawn sometimes, the likeliest most.
        let mut all = [0u32; 4];
        for seed in 0..2000 {
            if let Some(x) = Picker::new(1.0, 1.0, seed).pick(&logits, None, None, 0, 0, false) {
                all[x.token.0 as usize] += 1;
            }
        }
        assert!(all.iter().all(|&c| c > 0) && all[1] > all[2], "{all:?}");
        // The same seed draws the same token.
        let a = Picker::new(0.8, 0.95, 42)
            .pick(&logits, None, None, 0, 0, false)
            .map(|p| p.token.0);
        let b = Picker::new(0.8, 0.95, 42)
            .pick(&logits, None, None, 0, 0, false)
            .map(|p| p.token.0);
        assert_eq!(a, b);
    }

    #[test]
    fn the_nucleus_grows_past_the_first_partial_selection() {
        // 1,000 equal logits: top-p 0.9 needs 900 of them, more than k = 64 or 256.
        let logits = vec![1.0f32; 1000];
        let mut p = Picker::new(1.0, 0.9, 3);
        assert_eq!(p.nucleus(&logits).len(), 900);
    }

    /// The nucleus by the definition: sort the whole vocabulary, add probabilities until p.
    fn nucleus_by_sorting(logits: &[f32], top_p: f64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        let max = f64::from(logits[order[0] as usize]);
        let z: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
        let mut mass = 0.0;
        for (j, &i) in order.iter().enumerate() {
            mass += (f64::from(logits[i as usize]) - max).exp();
            if mass >= top_p * z {
                order.truncate(j + 1);
                break;
            }
        }
        order
    }

    #[test]
    fn the_prefiltered_nucleus_is_the_sorted_one() {
        // Vocabularies with logits spread over 0..60 (wider than the prefilter's 30), peaked
        // and flat, at several top-p values.
        let mut rng = Rng::new(5);
        for case in 0..24u32 {
            let n = 2000 + 500 * (case as usize % 4);
            let spread = [4.0, 20.0, 60.0][case as usize % 3];
            let logits: Vec<f32> = (0..n)
                .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * spread) as f32)
                .collect();
            for top_p in [0.5f32, 0.9, 0.95] {
                let mut p = Picker::new(1.0, top_p, 1);
                let mut got = p.nucleus(&logits).to_vec();
                let mut want = nucleus_by_sorting(&logits, f64::from(top_p));
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "case {case}, top-p {top_p}");
            }
        }
    }
}
