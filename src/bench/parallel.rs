//! `amend bench parallel`: the `n` samples of one request as one batch vs `n` sequential
//! requests, interleaved round by round with the bare llama-cpp-2 ceiling of the same batch.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{ceiling, median, DECODE_PROMPT};
use crate::model::llama::{self, LocalModel};
use crate::model::{KvLayout, Message, Model, ModelError, Request};

/// One round of [`parallel`]: both sides of amend, then both sides of the bare loop.
#[derive(Debug, Clone, Serialize)]
pub struct ParallelRound {
    /// amend batched / sequential.
    pub ratio: f64,
    /// Bare batched / sequential.
    pub bare_ratio: f64,
    /// ratio / bare_ratio.
    pub ratio_to_bare: f64,
}

/// Result of [`parallel`].
#[derive(Debug, Clone, Serialize)]
pub struct ParallelReport {
    /// Generated tokens/s of one batched request with n = 8 (median over rounds).
    pub batched_tok_s: f64,
    /// Generated tokens/s of 8 sequential requests (median).
    pub sequential_tok_s: f64,
    /// batched / sequential (of the medians).
    pub ratio: f64,
    /// Samples.
    pub samples: u32,
    /// One KV stream per sample (`false`: one unified cache), on both sides.
    pub kv_split: bool,
    /// Bare llama-cpp-2, greedy, fixed length: the batch of sequences, tokens/s (median).
    pub bare_batched_tok_s: f64,
    /// Bare llama-cpp-2: the same sequences one after the other, tokens/s (median).
    pub bare_sequential_tok_s: f64,
    /// bare_batched / bare_sequential (of the medians): what llama.cpp here allows.
    pub bare_ratio: f64,
    /// Median over rounds of each round's ratio / bare ratio (target ≥ 0.95).
    pub ratio_to_bare: f64,
    /// Every round, in order.
    pub rounds: Vec<ParallelRound>,
}

/// `samples` samples of one prompt as one batch vs as many sequential runs, with one KV
/// stream per sample (`kv_split`) or one unified cache; `rounds` rounds (each on a freshly
/// loaded model), each followed by a round of the bare loop, so both see the same machine. Every sample generates exactly 128
/// tokens (end of generation is masked by a hook), as the bare
/// loop's sequences do.
///
/// # Errors
/// Any model error.
pub async fn parallel(
    path: &Path,
    threads: u32,
    samples: u32,
    kv_split: bool,
    rounds: usize,
) -> Result<ParallelReport, ModelError> {
    let opts = llama::Options {
        n_ctx: 2048,
        max_ctx: 4096,
        n_seq: samples,
        threads,
        kv: if kv_split {
            KvLayout::Split
        } else {
            KvLayout::Unified
        },
        queue: 64,
    };
    let req = Request::chat(vec![Message::user(DECODE_PROMPT)])
        .with_sampling(0.8, 0.95)
        .with_max_tokens(128)
        .with_seed(7)
        .with_hook(ceiling::FixedLength::load(path)?);
    let threads_i = llama::threads(threads);
    let (mut bs, mut ss, mut bare_bs, mut bare_ss) = (vec![], vec![], vec![], vec![]);
    let mut each = Vec::new();
    for round in 0..rounds.max(1) as u64 {
        // A model per round, dropped before the bare round (see [`ceiling::bare_round`]).
        let model = LocalModel::load(path, opts.clone()).await?;
        // Warm up (context, graph, thread pool, the prompt's cache) so neither side pays it.
        model
            .generate(req.clone().with_n(samples).with_max_tokens(4))
            .await?;
        let start = Instant::now();
        let b = model
            .generate(req.clone().with_n(samples).with_seed(7 + 100 * round))
            .await?;
        let batched = b.usage.generated_tokens as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut generated = 0;
        for i in 0..samples {
            let r = model
                .generate(req.clone().with_seed(7 + 100 * round + u64::from(i)))
                .await?;
            generated += r.usage.generated_tokens;
        }
        let sequential = generated as f64 / start.elapsed().as_secs_f64();
        drop(model);
        let (bare_b, bare_s) = ceiling::bare_round(path, threads_i, samples, kv_split).await?;
        let (ratio, bare_ratio) = (batched / sequential.max(1e-9), bare_b / bare_s.max(1e-9));
        each.push(ParallelRound {
            ratio,
            bare_ratio,
            ratio_to_bare: ratio / bare_ratio.max(1e-9),
        });
        bs.push(batched);
        ss.push(sequential);
        bare_bs.push(bare_b);
        bare_ss.push(bare_s);
    }
    let (batched, sequential) = (median(bs), median(ss));
    let (bare_b, bare_s) = (median(bare_bs), median(bare_ss));
    Ok(ParallelReport {
        batched_tok_s: batched,
        sequential_tok_s: sequential,
        ratio: batched / sequential.max(1e-9),
        samples,
        kv_split,
        bare_batched_tok_s: bare_b,
        bare_sequential_tok_s: bare_s,
        bare_ratio: bare_b / bare_s.max(1e-9),
        ratio_to_bare: median(each.iter().map(|r| r.ratio_to_bare).collect()),
        rounds: each,
    })
}
