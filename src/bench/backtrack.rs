//! `amend bench backtrack`: the backtrack strategy (gold critic, 8 resampled candidates in one
//! batch, greedy continuation) on a deep mistake in a ~1,500-token solution, with the KV
//! cache holding the draft (as after generating it) vs the same strategy re-decoding every
//! prompt from scratch.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::{median, Recorder};
use crate::critic::Spec;
use crate::model::llama::{self, LocalModel};
use crate::model::{Model, ModelError};
use crate::run::{Context, Problem};
use crate::strategy::{self, Kind, Options, StrategyError};

/// Result of [`backtrack`].
#[derive(Debug, Clone, Serialize)]
pub struct BacktrackReport {
    /// Seconds for the backtrack with the draft in the KV cache (suffix-only regeneration).
    pub suffix_s: f64,
    /// Seconds for the same backtrack re-decoding every prompt.
    pub full_s: f64,
    /// full / suffix.
    pub speedup: f64,
    /// Tokens of the kept prefix (prompt + steps before the mistake) decoded again by the
    /// suffix-only backtrack.
    pub prefix_tokens_redecoded: u64,
    /// Tokens of the kept prefix.
    pub prefix_tokens: u64,
    /// Tokens of prompt + whole draft.
    pub context_tokens: u64,
    /// The located step, and the number of steps.
    pub step: usize,
    /// Steps of the draft.
    pub steps: usize,
}

/// Run the benchmark (3 repetitions, medians).
///
/// # Errors
/// Any model or prompt error.
pub async fn backtrack(path: &Path, threads: u32) -> Result<BacktrackReport, StrategyError> {
    let opts = llama::Options {
        n_ctx: 4096,
        max_ctx: 8192,
        n_seq: 8,
        threads,
        kv: crate::model::KvLayout::Auto,
        queue: 64,
    };
    let local: Arc<dyn Model> = Arc::new(LocalModel::load(path, opts).await?);
    let problem = crate::data::synth::generate(1, 40, 40, 11)
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::InvalidRequest("no synthetic problem was generated".into()))?;
    let draft: Vec<String> = problem
        .answer
        .lines()
        .filter(|l| !l.starts_with("####"))
        .map(str::to_string)
        .collect();
    let k = draft.len().saturating_sub(4);
    let strat = strategy::build(
        Kind::Backtrack,
        &Options {
            critic: Some(Spec::Gold),
            ..Options::default()
        },
    )?;
    let prompts = Arc::new(crate::Prompts::builtin()?);
    let rec = Arc::new(Recorder::new(local.clone()));
    let warm = Context::new(rec.clone(), prompts.clone()).with_max_tokens(64);
    let cold = Context::new(local.clone(), prompts.clone())
        .with_max_tokens(64)
        .with_prefix_reuse(false);
    let p = Problem {
        draft: Some(&draft),
        gold_step: Some(Some(k)),
        ..Problem::new(&problem.question)
    };
    let full_draft = strategy::prefix_text(&draft, draft.len());
    let (mut suffix, mut full) = (Vec::new(), Vec::new());
    let (mut redecoded, mut prefix_tokens, mut context_tokens) = (0, 0, 0);
    for _ in 0..3 {
        // The draft is in the cache, as right after the model wrote it.
        let r = local
            .generate(
                warm.solve_request(&Problem::new(&problem.question))?
                    .with_prefill(full_draft.clone())
                    .with_max_tokens(1),
            )
            .await?;
        context_tokens = r.usage.prompt_tokens;
        if let Ok(mut c) = rec.calls.lock() {
            c.clear();
        }
        let a = strat.solve(&warm, &p).await?;
        suffix.push(a.wall.as_secs_f64());
        let calls = rec.calls.lock().map(|c| c.clone()).unwrap_or_default();
        // The first call (the resampled step) has exactly the kept prefix as its prompt.
        prefix_tokens = calls.first().map_or(0, |u| u.prompt_tokens);
        redecoded = calls
            .iter()
            .map(|u| {
                prefix_tokens
                    .saturating_sub(u.reused_tokens)
                    .min(u.decoded_prompt_tokens())
            })
            .sum();
        let b = strat.solve(&cold, &p).await?;
        full.push(b.wall.as_secs_f64());
    }
    let (suffix_s, full_s) = (median(suffix), median(full));
    Ok(BacktrackReport {
        suffix_s,
        full_s,
        speedup: full_s / suffix_s.max(1e-9),
        prefix_tokens_redecoded: redecoded,
        prefix_tokens,
        context_tokens,
        step: k,
        steps: draft.len(),
    })
}
