//! `amend bench sampler`: what choosing one token costs amend's sampler (the engine thread's
//! work between decode steps, once per sample), against llama.cpp's own sampler chain on the
//! same logits in the same run.
//!
//! The logits are real: the model at `path` generates from a few prompts and a hook copies
//! every step's logits. Each setting is then timed over all of them, amend's picker and
//! llama.cpp's chain alternating rep by rep. llama.cpp's side includes building its
//! candidate array from the logits, as its own server does at every token
//! (`common_sampler_sample` fills it from the logits each time).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

use super::median;
use crate::model::llama::{self, LocalModel, Picker};
use crate::model::{LogitsHook, Message, Model, ModelError, Request, TokenStep};

/// One sampler setting's cost.
#[derive(Debug, Clone, Serialize)]
pub struct SamplerRow {
    /// `greedy`, `top_p` (T = 0.8, top-p 0.95), `top_p_logprob` (the same, with the chosen
    /// token's log-probability), `temperature` (T = 0.8, no top-p).
    pub setting: String,
    /// amend's picker, µs per token (median over reps).
    pub amend_us: f64,
    /// llama.cpp's chain (`greedy`; `top_p → temp → dist`; `temp → dist`), µs per token; for
    /// `top_p_logprob` the same chain as `top_p` (llama.cpp's chain reports no log-probability).
    pub llama_us: f64,
    /// llama_us / amend_us (> 1: amend's is cheaper).
    pub speedup: f64,
}

/// Result of [`sampler`].
#[derive(Debug, Clone, Serialize)]
pub struct SamplerReport {
    /// Decode steps whose logits were timed.
    pub steps: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Mean size of amend's top-p 0.95 nucleus over the steps.
    pub nucleus_mean: f64,
    /// Tokens within 30 of the maximum logit, mean over the steps (the work a scan of the
    /// likely part of the vocabulary would face).
    pub within_30_mean: f64,
    /// One row per setting.
    pub rows: Vec<SamplerRow>,
}

/// Copies every step's logits.
struct Collect(Mutex<Vec<Vec<f32>>>);

impl LogitsHook for Collect {
    fn apply(&self, step: &mut TokenStep<'_>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(step.logits.to_vec());
        }
    }

    fn wants_hidden(&self) -> bool {
        false
    }
}

const PROMPTS: [&str; 3] = [
    "Write a long, detailed story about a lighthouse keeper.",
    "Explain how a bicycle gear works, step by step.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
];

/// µs per token of `f` over `rows`.
fn per_token(rows: &[Vec<f32>], mut f: impl FnMut(&[f32])) -> f64 {
    let start = Instant::now();
    for r in rows {
        f(r);
    }
    start.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64
}

fn chain(setting: &str, seed: u32) -> LlamaSampler {
    match setting {
        "greedy" => LlamaSampler::greedy(),
        "temperature" => {
            LlamaSampler::chain_simple([LlamaSampler::temp(0.8), LlamaSampler::dist(seed)])
        }
        _ => LlamaSampler::chain_simple([
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::temp(0.8),
            LlamaSampler::dist(seed),
        ]),
    }
}

fn picker(setting: &str) -> Picker {
    match setting {
        "greedy" => Picker::new(0.0, 1.0, 7),
        "temperature" => Picker::new(0.8, 1.0, 7),
        _ => Picker::new(0.8, 0.95, 7),
    }
}

/// Time amend's sampler and llama.cpp's on `tokens` steps from each of three prompts, `reps`
/// alternating reps per setting.
///
/// # Errors
/// Any model error.
pub async fn sampler(
    path: &Path,
    threads: u32,
    tokens: u32,
    reps: usize,
) -> Result<SamplerReport, ModelError> {
    let model = LocalModel::load(
        path,
        llama::Options {
            threads,
            ..llama::Options::default()
        },
    )
    .await?;
    let hook = Arc::new(Collect(Mutex::new(Vec::new())));
    for (i, p) in PROMPTS.iter().enumerate() {
        let req = Request::chat(vec![Message::user(*p)])
            .with_sampling(0.8, 0.95)
            .with_max_tokens(tokens)
            .with_seed(i as u64 + 1)
            .with_hook(hook.clone());
        model.generate(req).await?;
    }
    drop(model);
    let rows: Vec<Vec<f32>> = hook
        .0
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .map_err(|_| ModelError::Decode("the logits collector was poisoned".into()))?;
    let vocab = rows.first().map_or(0, Vec::len);
    let mut nucleus = 0usize;
    let mut within = 0usize;
    for r in &rows {
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        within += r.iter().filter(|&&l| l >= max - 30.0).count();
        nucleus += Picker::new(1.0, 0.95, 1).nucleus_len(r);
    }
    let n = rows.len().max(1) as f64;
    let mut out = Vec::new();
    for setting in ["greedy", "top_p", "top_p_logprob", "temperature"] {
        let logprob = setting == "top_p_logprob";
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for rep in 0..reps.max(1) {
            let mut p = picker(setting);
            ours.push(per_token(&rows, |r| {
                std::hint::black_box(p.pick_token(r, logprob));
            }));
            let mut s = chain(setting, rep as u32 + 7);
            theirs.push(per_token(&rows, |r| {
                let mut arr = LlamaTokenDataArray::from_iter(
                    r.iter()
                        .enumerate()
                        .map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
                    false,
                );
                s.apply(&mut arr);
                std::hint::black_box(arr.selected_token());
            }));
        }
        let (a, l) = (median(ours), median(theirs));
        out.push(SamplerRow {
            setting: setting.into(),
            amend_us: a,
            llama_us: l,
            speedup: l / a.max(1e-9),
        });
    }
    Ok(SamplerReport {
        steps: rows.len(),
        vocab,
        nucleus_mean: nucleus as f64 / n,
        within_30_mean: within as f64 / n,
        rows: out,
    })
}
