//! The ceiling of batched sampling on this machine: bare llama-cpp-2 (no amend code) decoding
//! `n` greedy sequences of a fixed length as one batch vs one after the other, in the same
//! kind of context amend uses (`n` sequences, one KV stream each or one unified cache).
//! Whatever ratio this reaches is what llama.cpp and the hardware allow amend's batched
//! samples to reach.

use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::token::LlamaToken;

use super::{median, DECODE_PROMPT};
use crate::model::llama;
use crate::model::ModelError;

fn argmax(logits: &[f32]) -> LlamaToken {
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    LlamaToken(best as i32)
}

/// (batched tok/s, sequential tok/s), medians of 3 alternating rounds after a warm-up.
///
/// # Errors
/// [`ModelError`] when llama.cpp fails.
pub(super) fn bare_parallel(
    path: &Path,
    threads: i32,
    n_seq: u32,
    split: bool,
) -> Result<(f64, f64), ModelError> {
    let tokens = 128;
    let err = |e: &dyn std::fmt::Display| ModelError::Decode(e.to_string());
    let model = llama::load_gguf(path)?;
    let params = LlamaContextParams::default()
        .with_n_ctx(std::num::NonZeroU32::new(if split {
            2048 * n_seq
        } else {
            2048
        }))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(n_seq)
        .with_kv_unified(!split)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model
        .new_context(llama::backend()?, params)
        .map_err(|e| err(&e))?;
    let tmpl = model.chat_template(None).map_err(|e| err(&e))?;
    let msg = LlamaChatMessage::new("user".into(), DECODE_PROMPT.into()).map_err(|e| err(&e))?;
    let text = model
        .apply_chat_template(&tmpl, &[msg], true)
        .map_err(|e| err(&e))?;
    let prompt = model.vocab().tokenize(text.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(512, n_seq as i32);
    // Decode `seqs` sequences of `tokens` greedy tokens each after the prompt, together.
    let mut run = |seqs: u32, tokens: u32| -> Result<f64, ModelError> {
        ctx.clear_kv_cache();
        batch.clear();
        let last = prompt.len() - 1;
        for (i, t) in prompt.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i == last)
                .map_err(|e| err(&e))?;
        }
        ctx.decode(&mut batch).map_err(|e| err(&e))?;
        for s in 1..seqs as i32 {
            ctx.kv_cache_seq_cp(0, s, None, None).map_err(|e| err(&e))?;
        }
        let start = Instant::now();
        let mut idx: Vec<i32> = vec![batch.n_tokens() - 1; seqs as usize];
        for step in 0..tokens {
            let picks: Vec<LlamaToken> =
                idx.iter().map(|&i| argmax(ctx.get_logits_ith(i))).collect();
            batch.clear();
            for (s, tok) in picks.into_iter().enumerate() {
                let pos = (prompt.len() as u32 + step) as i32;
                batch
                    .add(tok, pos, &[s as i32], true)
                    .map_err(|e| err(&e))?;
                if let Some(slot) = idx.get_mut(s) {
                    *slot = batch.n_tokens() - 1;
                }
            }
            ctx.decode(&mut batch).map_err(|e| err(&e))?;
        }
        Ok(f64::from(seqs * tokens) / start.elapsed().as_secs_f64())
    };
    run(n_seq, 4)?;
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        b.push(run(n_seq, tokens)?);
        let mut t = 0.0;
        for _ in 0..n_seq {
            t += f64::from(tokens) / run(1, tokens)?;
        }
        s.push(f64::from(n_seq * tokens) / t);
    }
    Ok((median(b), median(s)))
}
