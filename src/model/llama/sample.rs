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
//!   `top_p → temp → dist` chain does): one pass for the maximum, one for the normaliser, then
//!   the nucleus is found in a window of the likeliest tokens, so only that window is sorted;
//!   the draw then weighs the nucleus by `exp((l − max)/T)`.
//!
//! The full-vocabulary passes run eight lanes at a time ([`crate::model::lanes`]). `amend bench
//! sampler` times a choice against llama.cpp's own sampler chain on the model's logits (a
//! top-p choice: ~115 µs here, llama.cpp's chain ~1.1 ms; the scalar version this replaced,
//! `f64::exp` per logit and a partial selection over every token within 30 of the maximum —
//! 47k of 49k tokens at the default model's steps — took 889 µs).
//!
//! The draw uses amend's seeded stream ([`crate::rng::Rng`]): the same seed gives the same
//! text. (Splitting sampling over a second thread measured slower on two cores, `bench
//! parallel` 1.38 vs 1.73, because llama.cpp's OpenMP workers keep spinning between decodes.)

use std::sync::Arc;

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::model::lanes;
use crate::model::{LogitsHook, TokenStep};
use crate::rng::Rng;

/// The first window below the maximum logit in which top-p looks for its nucleus (see
/// [`Picker::nucleus`]); it doubles until the window holds the nucleus.
const FIRST_WINDOW: f32 = 8.0;

/// One sample's sampler with its reusable buffers.
pub(crate) struct Picker {
    temperature: f32,
    top_p: f32,
    rng: Rng,
    logits: Vec<f32>,
    order: Vec<u32>,
    weights: Vec<f64>,
    /// The full vocabulary's weights of a temperature draw without top-p.
    all: Vec<f32>,
    /// The maximum and softmax normaliser of the logits the last choice was made from, when
    /// that choice computed them (top-p does): a log-prob of the chosen token reuses them.
    norm: Option<(f32, f64)>,
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
    pub text: &'a str,
    pub sample: usize,
    pub index: usize,
    pub out: Option<Picked>,
}

/// Where `target` falls along the cumulative sum of `weights` (`None` when past the end).
fn walk(weights: impl IntoIterator<Item = f64>, mut target: f64) -> Option<usize> {
    for (k, w) in weights.into_iter().enumerate() {
        if target < w {
            return Some(k);
        }
        target -= w;
    }
    None
}

impl Picker {
    /// A greedy picker (`temperature <= 0`), or top-p (when `top_p < 1`) → temperature →
    /// seeded draw.
    pub(crate) fn new(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self {
            temperature,
            top_p,
            rng: Rng::new(seed),
            logits: Vec::new(),
            order: Vec::new(),
            weights: Vec::new(),
            all: Vec::new(),
            norm: None,
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
        self.norm = None;
        if self.temperature <= 0.0 {
            lanes::argmax(logits)
        } else if self.top_p < 1.0 {
            self.nucleus(logits);
            let cands = std::mem::take(&mut self.order);
            let token = self.draw_among(logits, &cands);
            self.order = cands;
            token
        } else {
            self.draw_all(logits)
        }
    }

    /// A uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `1 / T`.
    fn inverse_temperature(&self) -> f64 {
        1.0 / f64::from(self.temperature.max(1e-6))
    }

    /// The token a temperature draw picks among `cands` (token ids), each weighed by
    /// `exp((l − max)/T)` in `f64`.
    fn draw_among(&mut self, logits: &[f32], cands: &[u32]) -> Option<usize> {
        let at = |i: u32| logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let max = f64::from(
            cands
                .iter()
                .map(|&i| at(i))
                .fold(f32::NEG_INFINITY, f32::max),
        );
        let s = self.inverse_temperature();
        self.weights.clear();
        self.weights
            .extend(cands.iter().map(|&i| ((f64::from(at(i)) - max) * s).exp()));
        let total: f64 = self.weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return lanes::argmax(logits);
        }
        let target = self.uniform() * total;
        // Rounding can leave the target past the last weight: the last candidate.
        let chosen =
            walk(self.weights.iter().copied(), target).or(self.weights.len().checked_sub(1))?;
        cands.get(chosen).map(|&i| i as usize)
    }

    /// The token a temperature draw picks from the whole vocabulary (weights `exp((l −
    /// max)/T)`, computed eight lanes at a time).
    fn draw_all(&mut self, logits: &[f32]) -> Option<usize> {
        let max = lanes::max(logits);
        let mut all = std::mem::take(&mut self.all);
        let total = lanes::sum_exp(
            logits,
            max,
            self.inverse_temperature() as f32,
            Some(&mut all),
        );
        let token = if total > 0.0 && total.is_finite() {
            let target = self.uniform() * total;
            // Rounding can leave the target past the last weight: the last token with any.
            walk(all.iter().map(|&w| f64::from(w)), target)
                .or_else(|| all.iter().rposition(|&w| w > 0.0))
        } else {
            lanes::argmax(logits)
        };
        self.all = all;
        token
    }

    /// The smallest set of tokens, most likely first, whose probability (softmax of the
    /// unscaled logits) reaches `top_p`.
    ///
    /// The normaliser is summed over the whole vocabulary (eight lanes at a time, [`lanes`]).
    /// The nucleus is then looked for among the tokens within a window below the maximum
    /// logit ([`FIRST_WINDOW`], doubling): once the window's mass reaches `top_p`, the window
    /// holds the nucleus (it is a prefix of the vocabulary sorted by logit), so only the
    /// window is sorted. The default model's nucleus at top-p 0.95 lies within 9.2 of the
    /// maximum (a few hundred tokens) in the steps measured; a flat distribution widens the
    /// window up to the whole vocabulary, which is still exact, only slower.
    fn nucleus(&mut self, logits: &[f32]) -> &[u32] {
        let maxf = lanes::max(logits);
        let z = lanes::sum_exp(logits, maxf, 1.0, None);
        self.norm = Some((maxf, z));
        let p = f64::from(self.top_p.max(0.0)) * z;
        let max = f64::from(maxf);
        let at = |i: u32| logits.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let weight = |i: u32| (f64::from(at(i)) - max).exp();
        let mut window = FIRST_WINDOW;
        loop {
            let last = window > 64.0;
            let floor = if last {
                f32::NEG_INFINITY
            } else {
                maxf - window
            };
            lanes::at_least(logits, floor, &mut self.order);
            let mass: f64 = self.order.iter().map(|&i| weight(i)).sum();
            if mass >= p || last {
                break;
            }
            window *= 2.0;
        }
        self.order
            .sort_unstable_by(|a, b| at(*b).total_cmp(&at(*a)));
        let mut mass = 0.0;
        let mut keep = self.order.len();
        for (j, &i) in self.order.iter().enumerate() {
            mass += weight(i);
            if mass >= p {
                keep = j + 1;
                break;
            }
        }
        self.order.truncate(keep.max(1));
        &self.order
    }

    /// The size of the top-p nucleus of `logits` under this picker's `top_p`.
    pub(crate) fn nucleus_len(&mut self, logits: &[f32]) -> usize {
        self.nucleus(logits).len()
    }

    /// The token (and, with `logprob`, its log-probability) chosen from `logits` with no hook
    /// and no grammar: what `amend bench sampler` times.
    pub(crate) fn pick_token(
        &mut self,
        logits: &[f32],
        logprob: bool,
    ) -> Option<(i32, Option<f32>)> {
        self.pick(logits, None, None, (0, 0, ""), logprob)
            .map(|p| (p.token.0, p.logprob))
    }

    /// `log softmax(logits)[token]`, `logits` being those the last choice was made from
    /// (their normaliser is reused when that choice computed it).
    fn log_prob(&self, logits: &[f32], token: usize) -> f32 {
        match self.norm {
            Some((max, z)) => lanes::log_softmax_with(logits, token, max, z),
            None => lanes::log_softmax_at(logits, token),
        }
    }

    fn pick(
        &mut self,
        job_logits: &[f32],
        hidden: Option<&[f32]>,
        hook: Option<&Arc<dyn LogitsHook>>,
        (sample, index, text): (usize, usize, &str),
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
                    text,
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
            (true, Some(t)) if masked => Some(self.log_prob(&self.masked, t)),
            (true, Some(t)) => Some(self.log_prob(logits, t)),
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
        j.out = j.picker.pick(
            j.logits,
            j.hidden,
            hook,
            (j.sample, j.index, j.text),
            logprob,
        );
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
            g.pick(&logits, None, None, (0, 0, ""), false)
                .map(|p| p.token.0),
            Some(1)
        );
        // top-p 0.5 on softmax(0, 3, 1, 2.9) = (.02, .49, .06, .44): {1, 3} hold 0.93 >= .5
        // but {1} alone .49 < .5, so the nucleus is {1, 3}.
        let mut t = Picker::new(1.0, 0.5, 7);
        assert_eq!(t.nucleus(&logits), &[1, 3]);
        let mut seen = [0u32; 4];
        for seed in 0..400 {
            let mut p = Picker::new(1.0, 0.5, seed);
            if let Some(x) = p.pick(&logits, None, None, (0, 0, ""), true) {
                seen[x.token.0 as usize] += 1;
                assert!(x.logprob.is_some_and(|l| l <= 0.0));
            }
        }
        assert_eq!((seen[0], seen[2]), (0, 0), "outside the nucleus: {seen:?}");
        assert!(seen[1] > 120 && seen[3] > 120, "{seen:?}");
        // Full softmax at T = 1: every token is drawn sometimes, the likeliest most.
        let mut all = [0u32; 4];
        for seed in 0..2000 {
            if let Some(x) =
                Picker::new(1.0, 1.0, seed).pick(&logits, None, None, (0, 0, ""), false)
            {
                all[x.token.0 as usize] += 1;
            }
        }
        assert!(all.iter().all(|&c| c > 0) && all[1] > all[2], "{all:?}");
        // The same seed draws the same token.
        let a = Picker::new(0.8, 0.95, 42)
            .pick(&logits, None, None, (0, 0, ""), false)
            .map(|p| p.token.0);
        let b = Picker::new(0.8, 0.95, 42)
            .pick(&logits, None, None, (0, 0, ""), false)
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
