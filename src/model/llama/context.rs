//! The llama.cpp context of the local backend: how many cells, how many sequences, and
//! whether each sequence has its own KV stream ([`KvLayout`]).

use std::num::NonZeroU32;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;

use super::backend;
use crate::model::{KvLayout, ModelError};

/// Tokens decoded per llama.cpp call when filling the prompt.
pub(super) const N_BATCH: u32 = 512;

/// The shape of a context: cells per sequence, sequences, and whether each has its own stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Cells per sequence when split, else shared by all sequences.
    pub n_ctx: u32,
    /// Sequences decoded together.
    pub n_seq: u32,
    /// One KV stream per sequence (`n_ctx` cells each) instead of one unified cache.
    pub split: bool,
}

/// Bytes one KV cell of `model` takes: f16 keys and values of every layer's KV heads.
pub(super) fn bytes_per_cell(model: &LlamaModel) -> u64 {
    let kv_heads = u64::from(model.n_head_kv().max(1));
    let heads = u64::from(model.n_head().max(1));
    let n_embd = u64::try_from(model.n_embd()).unwrap_or(0);
    u64::from(model.n_layer()) * 2 * n_embd * kv_heads / heads * 2
}

impl Shape {
    /// The initial shape: `n_ctx` cells, `n_seq` sequences, split as `kv` decides for contexts
    /// that may grow to `max_ctx` cells.
    pub fn new(model: &LlamaModel, n_ctx: u32, max_ctx: u32, n_seq: u32, kv: KvLayout) -> Self {
        let bytes = bytes_per_cell(model);
        let split = kv.split(n_seq, max_ctx, bytes);
        tracing::debug!(split, bytes_per_cell = bytes, "KV layout");
        Self {
            n_ctx,
            n_seq,
            split,
        }
    }

    /// Cells of the whole context: `n_ctx` per sequence when split, else `n_ctx`.
    pub fn total_cells(&self) -> u32 {
        if self.split {
            self.n_ctx * self.n_seq
        } else {
            self.n_ctx
        }
    }

    /// Cells one request needs: its prompt and, per sequence sharing the cache, its tokens.
    pub fn needed(&self, prompt: usize, n: usize, max_tokens: usize) -> usize {
        // Split: each sample has its own stream holding the prompt and its own tokens.
        prompt + if self.split { 1 } else { n } * max_tokens
    }
}

/// A context of `shape` on `threads` threads, computing hidden states when `embeddings`.
pub(super) fn new_context(
    model: &LlamaModel,
    shape: Shape,
    threads: i32,
    embeddings: bool,
) -> Result<LlamaContext<'_>, ModelError> {
    let total = shape.total_cells();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(total))
        .with_n_batch(N_BATCH)
        .with_n_ubatch(N_BATCH)
        .with_n_seq_max(shape.n_seq)
        .with_kv_unified(!shape.split)
        .with_embeddings(embeddings)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model
        .new_context(backend()?, params)
        .map_err(|e| ModelError::Decode(format!("cannot create a context of {total} tokens: {e}")))
}
