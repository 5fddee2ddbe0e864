//! Choosing the next token of each sample: the logits hook, the sampler chain, log-probs.
//!
//! Sampling a 49k-token vocabulary (softmax, top-p sort, draw) costs about a tenth of a decode
//! step per sample. It runs on the engine thread: splitting it over a second thread measured
//! slower on two cores (`bench parallel` 1.38 vs 1.73), because llama.cpp's OpenMP workers keep
//! spinning between decodes.

use std::sync::Arc;

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::model::{LogitsHook, TokenStep};

/// One sample's sampler with its reusable buffers (a fresh 49k-entry candidate array per
/// token would be a large allocation, and page faults, per sample per step).
pub(super) struct Picker {
    sampler: LlamaSampler,
    cand: Vec<LlamaTokenData>,
    logits: Vec<f32>,
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

impl Picker {
    /// A greedy picker (`temperature <= 0`) or top-p → temperature → seeded draw.
    pub(super) fn new(temperature: f32, top_p: f32, seed: u32) -> Self {
        let sampler = if temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            let mut chain = Vec::new();
            if top_p < 1.0 {
                chain.push(LlamaSampler::top_p(top_p.max(0.0), 1));
            }
            chain.push(LlamaSampler::temp(temperature));
            chain.push(LlamaSampler::dist(seed));
            LlamaSampler::chain_simple(chain)
        };
        Self {
            sampler,
            cand: Vec::new(),
            logits: Vec::new(),
        }
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
        let copy = hook.is_some() || logprob;
        if copy {
            self.logits.clear();
            self.logits.extend_from_slice(job_logits);
        }
        if let Some(hook) = hook {
            hook.apply(&mut TokenStep {
                sample,
                index,
                hidden,
                logits: &mut self.logits,
            });
        }
        let logits: &[f32] = if copy { &self.logits } else { job_logits };
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(t, &l)| LlamaTokenData::new(LlamaToken(t as i32), l, 0.0)),
        );
        let mut arr = LlamaTokenDataArray::new(std::mem::take(&mut self.cand), false);
        arr.apply_sampler(&mut self.sampler);
        let token = arr.selected_token();
        self.cand = arr.data;
        let token = token?;
        self.sampler.accept(token);
        let logprob = logprob.then(|| log_softmax_at(logits, token.0 as usize));
        Some(Picked { token, logprob })
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
