//! The local-backend benchmarks: decode, prefix reuse, parallel samples, RISE.

use std::path::{Path, PathBuf};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::sampling::LlamaSampler;
use serde::Serialize;

use super::replay;
use crate::model::llama::{self, LocalModel};
use crate::model::{Message, Model, ModelError, Request};

/// Result of [`decode`].
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    /// amend's local backend, tokens/s.
    pub amend_tok_s: f64,
    /// Bare llama-cpp-2 loop, tokens/s.
    pub bare_tok_s: f64,
    /// amend / bare.
    pub ratio: f64,
    /// Tokens generated per run.
    pub tokens: u64,
    /// Threads used by both.
    pub threads: i32,
    /// Rounds (the median is reported).
    pub rounds: usize,
}

/// Result of [`prefix`].
#[derive(Debug, Clone, Serialize)]
pub struct PrefixReport {
    /// Seconds for the follow-up with prefix reuse.
    pub reuse_s: f64,
    /// Seconds for the same follow-up on a cold cache.
    pub cold_s: f64,
    /// cold / reuse.
    pub speedup: f64,
    /// Prompt tokens reused from the cache.
    pub reused_tokens: u64,
    /// Prompt tokens decoded with reuse.
    pub decoded_tokens_reuse: u64,
    /// Prompt tokens decoded cold.
    pub decoded_tokens_cold: u64,
    /// Prompt length of the follow-up.
    pub prompt_tokens: u64,
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(super) const DECODE_PROMPT: &str =
    "Write a long, detailed story about a lighthouse keeper who finds a map.";

/// A bare llama-cpp-2 greedy loop over the same chat prompt: tokens generated and seconds.
fn bare_greedy(
    path: &Path,
    n_ctx: u32,
    threads: i32,
    max_tokens: u32,
) -> Result<(u64, f64), ModelError> {
    let err = |e: &dyn std::fmt::Display| ModelError::Decode(e.to_string());
    let model = llama::load_gguf(path)?;
    let backend = llama::backend()?;
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let tmpl = model.chat_template(None).map_err(|e| err(&e))?;
    let msg = LlamaChatMessage::new("user".into(), DECODE_PROMPT.into()).map_err(|e| err(&e))?;
    let text = model
        .apply_chat_template(&tmpl, &[msg], true)
        .map_err(|e| err(&e))?;
    let mut times = Vec::new();
    let mut generated = 0;
    for _ in 0..3 {
        let mut ctx = model
            .new_context(backend, params.clone())
            .map_err(|e| err(&e))?;
        let start = Instant::now();
        let tokens = model.vocab().tokenize(text.as_bytes(), true, true);
        let mut batch = LlamaBatch::new(512, 1);
        let last = tokens.len() - 1;
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i == last)
                .map_err(|e| err(&e))?;
        }
        ctx.decode(&mut batch).map_err(|e| err(&e))?;
        let mut sampler = LlamaSampler::greedy();
        let mut pos = tokens.len() as i32;
        let mut n = 0u64;
        loop {
            let tok = sampler.sample(&ctx, batch.n_tokens() - 1);
            n += 1;
            if model.vocab().is_eog(tok) || n >= u64::from(max_tokens) {
                break;
            }
            batch.clear();
            batch.add(tok, pos, &[0], true).map_err(|e| err(&e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| err(&e))?;
        }
        times.push(n as f64 / start.elapsed().as_secs_f64());
        generated = n;
    }
    Ok((generated, median(times)))
}

/// Decode speed of amend's local backend vs a bare llama-cpp-2 loop, same model and threads.
///
/// # Errors
/// Any model error.
pub async fn decode(
    path: &Path,
    threads: u32,
    max_tokens: u32,
) -> Result<DecodeReport, ModelError> {
    let n_ctx = 1024;
    let threads_i = llama::threads(threads);
    let opts = llama::Options {
        n_ctx,
        max_ctx: n_ctx,
        n_seq: 1,
        threads,
        kv: crate::model::KvLayout::Auto,
        queue: 64,
    };
    let model = LocalModel::load(path, opts).await?;
    let req = Request::chat(vec![Message::user(DECODE_PROMPT)])
        .with_max_tokens(max_tokens)
        .with_prefix_reuse(false);
    let mut amend = Vec::new();
    let mut tokens = 0;
    for _ in 0..3 {
        let r = model.generate(req.clone()).await?;
        tokens = r.usage.generated_tokens;
        amend.push(r.usage.generated_tokens as f64 / r.wall.as_secs_f64());
    }
    drop(model);
    let p: PathBuf = path.to_path_buf();
    let (_, bare) =
        tokio::task::spawn_blocking(move || bare_greedy(&p, n_ctx, threads_i, max_tokens))
            .await
            .map_err(|e| ModelError::Decode(e.to_string()))??;
    let amend = median(amend);
    Ok(DecodeReport {
        amend_tok_s: amend,
        bare_tok_s: bare,
        ratio: amend / bare.max(1e-9),
        tokens,
        threads: threads_i,
        rounds: 3,
    })
}

/// A long shared document (~1,500 tokens) for the prefix benchmark.
pub fn long_document() -> String {
    let names = [
        "Ava", "Ben", "Chloe", "Dev", "Elif", "Farid", "Gita", "Hugo", "Ines", "Jon",
    ];
    let things = [
        "apples", "marbles", "books", "coins", "stamps", "shells", "pencils", "cards",
    ];
    let mut s = String::from("Reference notes for the questions that follow.\n");
    for i in 0..48 {
        let a = names.get(i % names.len()).copied().unwrap_or_default();
        let b = names
            .get((i * 3 + 1) % names.len())
            .copied()
            .unwrap_or_default();
        let t = things.get(i % things.len()).copied().unwrap_or_default();
        s.push_str(&format!(
            "Note {}: {a} had {} {t}, gave {} to {b}, and then bought {} more at the market.\n",
            i + 1,
            10 + i * 7 % 23,
            3 + i % 5,
            2 + i * 5 % 11
        ));
    }
    s
}

/// Follow-up with a shared ~1,500-token prefix: KV reuse vs a cold cache.
///
/// # Errors
/// Any model error.
pub async fn prefix(path: &Path, threads: u32) -> Result<PrefixReport, ModelError> {
    let opts = llama::Options {
        n_ctx: 2048,
        max_ctx: 4096,
        n_seq: 1,
        threads,
        kv: crate::model::KvLayout::Auto,
        queue: 64,
    };
    let model = LocalModel::load(path, opts).await?;
    let doc = long_document();
    let ask = |q: &str| {
        Request::chat(vec![
            Message::system(doc.clone()),
            Message::user(q.to_string()),
        ])
        .with_max_tokens(16)
    };
    let first = ask("How many apples did Ava have in note 1?");
    let follow = ask("Who received coins in note 5?");
    let (mut reuse, mut cold) = (Vec::new(), Vec::new());
    let (mut reused, mut dec_reuse, mut dec_cold, mut prompt) = (0, 0, 0, 0);
    for _ in 0..3 {
        model.generate(first.clone()).await?;
        let r = model.generate(follow.clone()).await?;
        reuse.push(r.wall.as_secs_f64());
        reused = r.usage.reused_tokens;
        dec_reuse = r.usage.decoded_prompt_tokens();
        prompt = r.usage.prompt_tokens;
        let c = model
            .generate(follow.clone().with_prefix_reuse(false))
            .await?;
        cold.push(c.wall.as_secs_f64());
        dec_cold = c.usage.decoded_prompt_tokens();
    }
    let (reuse_s, cold_s) = (median(reuse), median(cold));
    Ok(PrefixReport {
        reuse_s,
        cold_s,
        speedup: cold_s / reuse_s.max(1e-9),
        reused_tokens: reused,
        decoded_tokens_reuse: dec_reuse,
        decoded_tokens_cold: dec_cold,
        prompt_tokens: prompt,
    })
}

/// Result of [`rise`].
#[derive(Debug, Clone, Serialize)]
pub struct RiseReport {
    /// Seconds for 5-turn RISE with KV reuse.
    pub reuse_s: f64,
    /// Seconds for the same turns re-decoding the whole conversation each time.
    pub cold_s: f64,
    /// cold / reuse.
    pub speedup: f64,
    /// Prompt tokens decoded with reuse.
    pub decoded_prompt_reuse: u64,
    /// Prompt tokens decoded cold.
    pub decoded_prompt_cold: u64,
    /// Turns run.
    pub turns: usize,
    /// Previous attempts kept in the conversation.
    pub window: usize,
    /// Both sides generated exactly the same turns.
    pub identical_turns: bool,
}

/// 5-turn RISE (majority mode, `window` previous attempts kept) with KV reuse vs re-decoding
/// every turn. The two sides run the same turns: the reuse side records the token it picks at
/// every step (greedy = the argmax of the logits), and the cold side is forced to pick the same
/// ones, so both generate identical texts and only the prompt work differs. Once the window
/// slides, the conversation's middle changes and less is reused.
///
/// # Errors
/// Any model or prompt error.
pub async fn rise(
    path: &Path,
    threads: u32,
    window: usize,
) -> Result<RiseReport, crate::strategy::StrategyError> {
    use crate::run::{Context, Problem};
    use crate::strategy::{Kind, Options, RiseMode};
    use std::sync::Arc;
    let opts = llama::Options {
        n_ctx: 4096,
        max_ctx: 8192,
        n_seq: 1,
        threads,
        kv: crate::model::KvLayout::Auto,
        queue: 64,
    };
    let local: Arc<dyn Model> = Arc::new(LocalModel::load(path, opts).await?);
    let prompts = Arc::new(crate::Prompts::builtin()?);
    let strat = crate::strategy::build(
        Kind::Rise,
        &Options {
            turns: 5,
            window,
            rise_mode: RiseMode::Majority,
            ..Options::default()
        },
    )?;
    let q = "A baker makes 48 rolls and packs them in bags of 6. He sells 5 bags. How many rolls are left?";
    let cx = |model: Arc<dyn Model>| Context::new(model, prompts.clone()).with_max_tokens(160);
    let (mut reuse, mut coldt) = (Vec::new(), Vec::new());
    let (mut dr, mut dc, mut same) = (0, 0, true);
    for _ in 0..3 {
        let tape = Arc::new(replay::Tape::default());
        let warm = cx(Arc::new(crate::model::WithHook::new(
            local.clone(),
            tape.recorder(),
        )));
        let cold = cx(Arc::new(crate::model::WithHook::new(
            local.clone(),
            tape.player(),
        )))
        .with_prefix_reuse(false);
        let a = strat.solve(&warm, &Problem::new(q)).await?;
        reuse.push(a.wall.as_secs_f64());
        dr = a.usage.decoded_prompt_tokens();
        let b = strat.solve(&cold, &Problem::new(q)).await?;
        coldt.push(b.wall.as_secs_f64());
        dc = b.usage.decoded_prompt_tokens();
        same &= a.attempts == b.attempts;
    }
    let (reuse_s, cold_s) = (median(reuse), median(coldt));
    Ok(RiseReport {
        reuse_s,
        cold_s,
        speedup: cold_s / reuse_s.max(1e-9),
        decoded_prompt_reuse: dr,
        decoded_prompt_cold: dc,
        turns: 5,
        window,
        identical_turns: same,
    })
}
