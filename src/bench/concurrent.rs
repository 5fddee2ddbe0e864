//! `amend bench concurrent`: 8 concurrent requests with different prompts, decoded together by
//! the local engine's slots, vs the same 8 one after the other; the same requests arriving
//! staggered (each joining the running batch as it comes, not one static batch); beside them
//! the bare llama-cpp-2 batched/sequential ceiling, one bare round after each of amend's, so
//! both see the same machine; and the memory one model takes at 1, 4 and 8 slots. Every
//! request generates exactly 128 tokens (end of generation masked by a hook), as the bare
//! loop's sequences do.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ceiling, median};
use crate::model::llama::{self, LocalModel};
use crate::model::{KvLayout, LogitsHook, Message, Model, ModelError, Request};

/// One round of [`concurrent`]: amend's sides, then the bare loop's.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrentRound {
    /// concurrent / sequential.
    pub ratio: f64,
    /// staggered / sequential.
    pub staggered_ratio: f64,
    /// Bare batched / sequential.
    pub bare_ratio: f64,
    /// ratio / bare_ratio.
    pub ratio_to_bare: f64,
}

/// Memory of one model at a slot count.
#[derive(Debug, Clone, Serialize)]
pub struct SlotMemory {
    /// Slots (KV sequences).
    pub slots: u32,
    /// Resident memory the loaded model added to the process, MB (after one request on every
    /// slot).
    pub rss_mb: f64,
    /// KV cache bytes of its context, MB.
    pub kv_mb: f64,
}

/// Result of [`concurrent`].
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrentReport {
    /// Requests.
    pub requests: u32,
    /// The requests decode greedily (the bare loop's choice) instead of at T = 0.8, top-p
    /// 0.95: what sampling costs amend's side.
    pub greedy: bool,
    /// Generated tokens/s of the requests sent at once (this and every figure below: the
    /// median over rounds; ratios of the medians unless said).
    pub concurrent_tok_s: f64,
    /// Generated tokens/s of the same requests one after the other.
    pub sequential_tok_s: f64,
    /// concurrent / sequential.
    pub ratio: f64,
    /// Generated tokens/s when request i is sent at i × `stagger_ms`.
    pub staggered_tok_s: f64,
    /// staggered / sequential.
    pub staggered_ratio: f64,
    /// Gap between staggered arrivals, ms.
    pub stagger_ms: u64,
    /// Bare llama-cpp-2, greedy, fixed length: the batch of sequences, tokens/s.
    pub bare_batched_tok_s: f64,
    /// Bare llama-cpp-2: the same sequences one after the other, tokens/s.
    pub bare_sequential_tok_s: f64,
    /// bare_batched / bare_sequential: what llama.cpp on this machine allows.
    pub bare_ratio: f64,
    /// Median over rounds of each round's ratio / bare ratio (target ≥ 0.95).
    pub ratio_to_bare: f64,
    /// Median over rounds of each round's staggered ratio / bare ratio.
    pub staggered_to_bare: f64,
    /// Seconds the requests' prompts alone take, one after the other (each request with one
    /// new token, the slots' prefix caches as the runs leave them): work both of amend's sides
    /// do and the bare loop does not time.
    pub prompt_s: f64,
    /// The ratio with `prompt_s` taken off both of amend's sides (what batching does to the
    /// decode steps alone, the part the bare ratio measures).
    pub decode_ratio: f64,
    /// decode_ratio / bare_ratio.
    pub decode_ratio_to_bare: f64,
    /// Memory at 1, 4 and 8 slots.
    pub memory: Vec<SlotMemory>,
    /// Tokens each request generated in the last concurrent round (128 each: end of
    /// generation is masked, as the bare loop's sequences have a fixed length).
    pub generated_per_request: Vec<u32>,
    /// Every round, in order.
    pub rounds: Vec<ConcurrentRound>,
}

const TOPICS: &[&str] = &[
    "a lighthouse keeper who finds a map",
    "a baker who opens a shop on the moon",
    "two friends who build a raft",
    "a robot learning to paint",
    "a village that loses its river",
    "a girl who collects old keys",
    "a detective who is afraid of the dark",
    "a musician lost in a desert",
];

fn request(i: usize, round: u64, hook: &Arc<dyn LogitsHook>) -> Request {
    let topic = TOPICS.get(i % TOPICS.len()).copied().unwrap_or("a ship");
    Request::chat(vec![Message::user(format!(
        "Write a long, detailed story about {topic}."
    ))])
    .with_sampling(0.8, 0.95)
    .with_max_tokens(128)
    .with_seed(11 + 100 * round + i as u64)
    .with_hook(hook.clone())
}

/// Generated tokens/s of `reqs` sent with `gap` between starts (all at once when zero), and
/// the tokens of each.
async fn run_together(
    model: &Arc<LocalModel>,
    reqs: Vec<Request>,
    gap: Duration,
) -> Result<(f64, Vec<u32>), ModelError> {
    let start = Instant::now();
    let calls = reqs.into_iter().enumerate().map(|(i, r)| {
        let m = model.clone();
        async move {
            tokio::time::sleep(gap * i as u32).await;
            m.generate(r).await
        }
    });
    let mut generated = 0;
    let mut each = Vec::new();
    for r in futures::future::join_all(calls).await {
        let g = r?.usage.generated_tokens;
        generated += g;
        each.push(u32::try_from(g).unwrap_or(u32::MAX));
    }
    Ok((generated as f64 / start.elapsed().as_secs_f64(), each))
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn options(threads: u32, slots: u32) -> llama::Options {
    llama::Options {
        n_ctx: 2048,
        max_ctx: 4096,
        n_seq: slots,
        threads,
        kv: KvLayout::Split,
        queue: 64,
    }
}

/// Run the benchmark: `requests` requests (at most 8 slots; `greedy`: decoded greedily instead
/// of sampled), `rounds` rounds (each on a freshly loaded model) each followed by a round of
/// the bare loop; medians.
///
/// # Errors
/// Any model error.
pub async fn concurrent(
    path: &Path,
    threads: u32,
    requests: u32,
    stagger_ms: u64,
    rounds: usize,
    greedy: bool,
) -> Result<ConcurrentReport, ModelError> {
    let n = requests.clamp(1, 8);
    let hook = ceiling::FixedLength::load(path)?;
    let threads_i = llama::threads(threads);
    let (mut cs, mut ss, mut gs, mut ps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bare_bs, mut bare_ss, mut each) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = Vec::new();
    let mut per_request = Vec::new();
    for round in 0..rounds.max(1) as u64 {
        // A model per round, dropped before the bare round (see [`ceiling::bare_round`]).
        let model = Arc::new(LocalModel::load(path, options(threads, n)).await?);
        let reqs: Vec<Request> = (0..n as usize)
            .map(|i| match greedy {
                true => request(i, round, &hook).with_sampling(0.0, 1.0),
                false => request(i, round, &hook),
            })
            .collect();
        // Warm up (context, graph, thread pool) and put every prompt in a slot's cache, as
        // the sequential side will find them, so no side pays for that.
        model
            .generate(request(0, 99, &hook).with_max_tokens(4).with_n(n))
            .await?;
        let primed = reqs.iter().map(|r| r.clone().with_max_tokens(1)).collect();
        run_together(&model, primed, Duration::ZERO).await?;
        let (c, got) = run_together(&model, reqs.clone(), Duration::ZERO).await?;
        per_request = got;
        let start = Instant::now();
        let mut generated = 0;
        for r in reqs.clone() {
            generated += model.generate(r).await?.usage.generated_tokens;
        }
        let s = generated as f64 / start.elapsed().as_secs_f64();
        tokens.push(generated as f64);
        let g = run_together(&model, reqs.clone(), Duration::from_millis(stagger_ms))
            .await?
            .0;
        // The prompts alone, as the runs above decode them (with the slots' prefix caches).
        let start = Instant::now();
        for r in reqs {
            model.generate(r.with_max_tokens(1)).await?;
        }
        ps.push(start.elapsed().as_secs_f64());
        drop(model);
        let (bare_b, bare_s) = ceiling::bare_round(path, threads_i, n, true).await?;
        let bare_ratio = bare_b / bare_s.max(1e-9);
        each.push(ConcurrentRound {
            ratio: c / s.max(1e-9),
            staggered_ratio: g / s.max(1e-9),
            bare_ratio,
            ratio_to_bare: c / s.max(1e-9) / bare_ratio.max(1e-9),
        });
        cs.push(c);
        ss.push(s);
        gs.push(g);
        bare_bs.push(bare_b);
        bare_ss.push(bare_s);
    }
    let (concurrent, sequential, staggered) = (median(cs), median(ss), median(gs));
    let (prompt_s, generated) = (median(ps), median(tokens));
    // Seconds of each side, less the prompts' own time.
    let decode_ratio = (generated / sequential.max(1e-9) - prompt_s)
        / (generated / concurrent.max(1e-9) - prompt_s).max(1e-9);
    let (bare_b, bare_s) = (median(bare_bs), median(bare_ss));
    let mut memory = Vec::new();
    for slots in [1u32, 4, 8] {
        let before = rss_mb();
        let m = LocalModel::load(path, options(threads, slots)).await?;
        m.generate(request(1, 7, &hook).with_max_tokens(16).with_n(slots))
            .await?;
        let after = rss_mb();
        let info = m.info();
        memory.push(SlotMemory {
            slots,
            rss_mb: after - before,
            kv_mb: (info.kv_cells * info.kv_bytes_per_cell) as f64 / 1e6,
        });
        drop(m);
        // Let the worker thread free the model before the next is measured.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ratio = concurrent / sequential.max(1e-9);
    let bare_ratio = bare_b / bare_s.max(1e-9);
    Ok(ConcurrentReport {
        requests: n,
        greedy,
        concurrent_tok_s: concurrent,
        sequential_tok_s: sequential,
        ratio,
        staggered_tok_s: staggered,
        staggered_ratio: staggered / sequential.max(1e-9),
        stagger_ms,
        bare_batched_tok_s: bare_b,
        bare_sequential_tok_s: bare_s,
        bare_ratio,
        ratio_to_bare: median(each.iter().map(|r| r.ratio_to_bare).collect()),
        staggered_to_bare: median(
            each.iter()
                .map(|r| r.staggered_ratio / r.bare_ratio.max(1e-9))
                .collect(),
        ),
        prompt_s,
        decode_ratio,
        decode_ratio_to_bare: decode_ratio / bare_ratio.max(1e-9),
        memory,
        generated_per_request: per_request,
        rounds: each,
    })
}
