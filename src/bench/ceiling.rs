//! The ceiling of batched sampling on this machine: bare llama-cpp-2 (no amend code) decoding
//! `n` greedy sequences of a fixed length as one batch vs one after the other, in the same
//! kind of context amend uses (`n` sequences, one KV stream each or one unified cache).
//! Whatever ratio this reaches is what llama.cpp and the hardware allow amend's batched
//! samples to reach.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::token::LlamaToken;

use super::DECODE_PROMPT;
use crate::model::llama;
use crate::model::{LogitsHook, ModelError, TokenStep};

/// A hook that forbids the model's end-of-generation tokens, so every request of a bench
/// generates exactly its `max_tokens`, as the bare loop's fixed-length sequences do (a batch
/// whose requests end early thins out; the bare loop's never does). It reads no hidden state.
pub(super) struct FixedLength {
    eog: Vec<usize>,
}

impl FixedLength {
    /// The end-of-generation tokens of the GGUF at `path`.
    ///
    /// # Errors
    /// [`ModelError`] when the file cannot be loaded.
    pub(super) fn load(path: &Path) -> Result<Arc<dyn LogitsHook>, ModelError> {
        let model = llama::load_gguf(path)?;
        let vocab = model.vocab();
        let eog = (0..model.n_vocab())
            .filter(|&t| vocab.is_eog(LlamaToken(t)))
            .filter_map(|t| usize::try_from(t).ok())
            .collect();
        Ok(Arc::new(FixedLength { eog }))
    }
}

impl LogitsHook for FixedLength {
    fn apply(&self, step: &mut TokenStep<'_>) {
        for &t in &self.eog {
            if let Some(l) = step.logits.get_mut(t) {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn wants_hidden(&self) -> bool {
        false
    }
}

fn argmax(logits: &[f32]) -> LlamaToken {
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    LlamaToken(best as i32)
}

/// (batched tok/s, sequential tok/s) of each of `rounds` alternating rounds after a warm-up.
/// Callers that interleave the bare loop with their own measurements call it with one round
/// at a time.
///
/// # Errors
/// [`ModelError`] when llama.cpp fails.
pub(super) fn bare_parallel(
    path: &Path,
    threads: i32,
    n_seq: u32,
    split: bool,
    rounds: usize,
) -> Result<Vec<(f64, f64)>, ModelError> {
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
    let mut out = Vec::new();
    for _ in 0..rounds {
        let b = run(n_seq, tokens)?;
        let mut t = 0.0;
        for _ in 0..n_seq {
            t += f64::from(tokens) / run(1, tokens)?;
        }
        out.push((b, f64::from(n_seq * tokens) / t));
    }
    Ok(out)
}

/// One interleaved round of the bare loop: (batched, sequential) tok/s. It runs on a thread of
/// its own that ends with the round: libgomp throttles its spin-waits (threads sleep at every
/// barrier, several times slower here) once a process holds more OpenMP threads than cores,
/// and a thread's OpenMP pool lives as long as the thread — so a bare loop on a pooled
/// blocking thread, or beside a loaded model, slows whichever side runs next. Callers drop
/// their own model before calling this; it first waits half a second for that model's worker
/// thread (and its OpenMP pool) to end.
///
/// # Errors
/// [`ModelError`] when llama.cpp fails.
pub(super) async fn bare_round(
    path: &Path,
    threads: i32,
    n_seq: u32,
    split: bool,
) -> Result<(f64, f64), ModelError> {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let p = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("amend-bare".into())
        .spawn(move || bare_parallel(&p, threads, n_seq, split, 1))
        .map_err(|e| ModelError::Decode(e.to_string()))?;
    // Joined, so its OpenMP pool is gone before the caller's next model starts.
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .map_err(|e| ModelError::Decode(e.to_string()))?
        .map_err(|_| ModelError::Decode("the bare loop's thread panicked".into()))??
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Decode("the bare loop ran no round".into()))
}
