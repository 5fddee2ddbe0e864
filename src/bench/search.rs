//! `amend bench search`: the step search on level-1 problems (seed 9101, never reported) with
//! the local model, counting the prompt tokens each call decodes. Every call after a solve's
//! first continues a path whose tokens the engine has already decoded or sampled, except the
//! newline that ended its last line (sampled as the stop, not yet decoded): anything decoded
//! beyond that one token is a re-decoded prefix token. The same searches run again with
//! prefix reuse off give the baseline: every prompt decoded from scratch.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::Recorder;
use crate::data::ladder::{self, Level};
use crate::model::llama::{self, LocalModel};
use crate::model::{Model, ModelError};
use crate::run::{Context, Problem};
use crate::strategy::{self, Kind, Options, StrategyError};

/// Result of [`search`].
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    /// Problems searched.
    pub problems: usize,
    /// Model calls of the searches.
    pub calls: u64,
    /// Prompt tokens of those calls, and how many were decoded (not reused).
    pub prompt_tokens: u64,
    /// Prompt tokens decoded.
    pub decoded_prompt_tokens: u64,
    /// Prompt tokens decoded by the calls after each solve's first beyond the one newline
    /// each may need (0: only suffixes are decoded).
    pub prefix_tokens_redecoded: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Seconds of the searches with prefix reuse, and with every prompt decoded from scratch.
    pub reuse_s: f64,
    /// Seconds without prefix reuse.
    pub cold_s: f64,
    /// cold / reuse.
    pub speedup: f64,
}

/// Run the benchmark on `problems` level-1 problems.
///
/// # Errors
/// Any model or prompt error.
pub async fn search(
    path: &Path,
    threads: u32,
    problems: usize,
) -> Result<SearchReport, StrategyError> {
    let opts = llama::Options {
        n_ctx: 2048,
        max_ctx: 8192,
        n_seq: 8,
        threads,
        kv: crate::model::KvLayout::Auto,
        queue: 64,
    };
    let local: Arc<dyn Model> = Arc::new(LocalModel::load(path, opts).await?);
    let level =
        Level::new(1).ok_or_else(|| ModelError::InvalidRequest("level 1 is not defined".into()))?;
    let items = ladder::generate(problems, &level, 9101);
    let strat = strategy::build(Kind::Search, &Options::default())?;
    let prompts = Arc::new(crate::Prompts::builtin()?);
    let rec = Arc::new(Recorder::new(local.clone()));
    let warm = Context::new(rec.clone(), prompts.clone());
    let cold = Context::new(local, prompts).with_prefix_reuse(false);
    let mut report = SearchReport {
        problems: items.len(),
        calls: 0,
        prompt_tokens: 0,
        decoded_prompt_tokens: 0,
        prefix_tokens_redecoded: 0,
        generated_tokens: 0,
        reuse_s: 0.0,
        cold_s: 0.0,
        speedup: 0.0,
    };
    for item in &items {
        if let Ok(mut c) = rec.calls.lock() {
            c.clear();
        }
        let p = Problem::new(&item.question);
        let a = strat.solve(&warm, &p).await?;
        report.reuse_s += a.wall.as_secs_f64();
        let calls = rec.calls.lock().map(|c| c.clone()).unwrap_or_default();
        for (i, u) in calls.iter().enumerate() {
            report.calls += u.calls;
            report.prompt_tokens += u.prompt_tokens;
            report.decoded_prompt_tokens += u.decoded_prompt_tokens();
            report.generated_tokens += u.generated_tokens;
            if i > 0 {
                report.prefix_tokens_redecoded += u.decoded_prompt_tokens().saturating_sub(1);
            }
        }
        let b = strat.solve(&cold, &p).await?;
        report.cold_s += b.wall.as_secs_f64();
    }
    report.speedup = report.cold_s / report.reuse_s.max(1e-9);
    Ok(report)
}
