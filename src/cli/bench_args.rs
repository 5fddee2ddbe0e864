//! The `amend bench` subcommands and their shared flags.

use clap::{Args, Subcommand};

use amend::model::Spec;

use super::OutArgs;

/// The benchmarks (each against a baseline in the same run).
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Decode tokens/s: amend vs a bare llama-cpp-2 loop.
    Decode {
        /// Tokens to generate.
        #[arg(long, default_value_t = 256)]
        tokens: u32,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// A follow-up sharing a ~1,500-token prefix: KV reuse vs cold.
    Prefix {
        #[command(flatten)]
        common: BenchArgs,
    },
    /// 5-turn RISE with KV reuse vs re-decoding the conversation every turn.
    Rise {
        /// Previous attempts kept in the conversation.
        #[arg(long, default_value_t = 2)]
        window: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// What `amend serve` adds to a call: the server (default settings) over an upstream that
    /// answers at once, pinned to CPU 0, loaded by `wrk` pinned to CPU 1 (1 connection, then
    /// 64), beside `GET /health` (no model needed; needs `wrk` and `taskset`).
    Overhead {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Instead of measuring, serve the same server at ADDR until Ctrl-C (for outside
        /// tools such as schemathesis).
        #[arg(long, value_name = "ADDR")]
        hold: Option<String>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// The pipeline executor's overhead per node (a chain of calculator nodes) vs calling
    /// the tool directly (no model needed).
    Pipeline {
        /// Tool nodes in the chain.
        #[arg(long, default_value_t = 50)]
        nodes: usize,
        /// Rounds (medians reported).
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[command(flatten)]
        out: OutArgs,
    },
    /// The mistakes store: appends/s (flushed per batch) and lookup latency at N records,
    /// against bare sled writes and reads of the same bytes.
    #[command(alias = "log")]
    Mistakes {
        /// Records to append.
        #[arg(long, default_value_t = 100_000)]
        records: usize,
        /// Records per flushed batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Random lookups timed.
        #[arg(long, default_value_t = 10_000)]
        lookups: usize,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Backtracking on a deep mistake in a ~1,500-token solution: suffix-only (KV cache
    /// holds the draft) vs re-decoding every prompt.
    Backtrack {
        #[command(flatten)]
        common: BenchArgs,
    },
    /// The step search on level-1 problems: prompt tokens re-decoded (0 = suffixes only), and
    /// its time with prefix reuse vs re-decoding every prompt.
    Search {
        /// Problems to search.
        #[arg(long, default_value_t = 10)]
        problems: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// `amend serve`'s commit points: step-wise backtracking on `arith`, streamed over a
    /// loopback socket and not streamed: verified steps that are false, streamed = whole,
    /// time to the first committed step vs the whole answer.
    Commits {
        /// Problems (level 1, the reporting seed).
        #[arg(long, default_value_t = 50)]
        problems: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// `amend serve` on the local model: 8 HTTP clients at once vs in sequence, beside the
    /// same 8 requests in-process.
    Serve {
        /// Rounds (medians reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// `response_format` (a JSON schema) with the recommended strategy over HTTP: answers
    /// sent as checked JSON, formatting turns, the JSON's number vs the corrected answer.
    Format {
        /// Problems (level 1, the reporting seed).
        #[arg(long, default_value_t = 20)]
        problems: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// The logit rectifier's cost: decoding with it vs an identity hook, the prompt phase of
    /// hidden-state mode, teacher-forcing throughput.
    Rectify {
        /// Rounds per side (medians reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// Choosing one token: amend's sampler vs llama.cpp's sampler chain, on logits the
    /// model produced (greedy, top-p, top-p with log-probs, temperature).
    Sampler {
        /// Tokens generated from each of the three prompts (the steps timed).
        #[arg(long, default_value_t = 40)]
        tokens: u32,
        /// Alternating reps per setting (medians reported).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// A model's identity (SHA-256 of the GGUF file) vs reading the file without hashing.
    Fingerprint {
        /// Model spec (a local GGUF).
        #[arg(long, short, default_value = "default")]
        model: Spec,
        /// Rounds (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[command(flatten)]
        out: OutArgs,
    },
    /// 8 concurrent requests with different prompts (at once, and arriving staggered) vs the
    /// same 8 in sequence; memory at 1, 4 and 8 slots.
    Concurrent {
        /// Requests (at most 8).
        #[arg(long, default_value_t = 8)]
        requests: u32,
        /// Gap between staggered arrivals, ms.
        #[arg(long, default_value_t = 200)]
        stagger_ms: u64,
        /// Rounds, each followed by a round of the bare loop (medians are reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Decode greedily, as the bare loop does (default: T = 0.8, top-p 0.95).
        #[arg(long)]
        greedy: bool,
        #[command(flatten)]
        common: BenchArgs,
    },
    /// 8 samples as one batch vs 8 sequential runs.
    Parallel {
        /// Samples.
        #[arg(long, default_value_t = 8)]
        samples: u32,
        /// Share one KV cache among the samples (both sides) instead of one stream each.
        #[arg(long)]
        kv_unified: bool,
        /// Rounds, each followed by a round of the bare loop (medians are reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[command(flatten)]
        common: BenchArgs,
    },
}

/// Flags every model benchmark shares.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Model spec (a local GGUF).
    #[arg(long, short, default_value = "default")]
    pub model: Spec,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    #[command(flatten)]
    pub out: OutArgs,
}
