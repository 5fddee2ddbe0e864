//! Benchmarks behind `amend bench`: each measures amend against a baseline in the same run.
//!
//! - [`mistakes`]: the mistakes store's appends and lookups vs bare sled (any build).
//! - [`fingerprint`]: a model's identity (SHA-256 of the file) vs reading the file (any build).
//! - [`overhead`]: what `amend serve` adds to a call over an upstream that answers at once,
//!   measured by `wrk` on another CPU: p50/p99 at 1 request in flight, requests/s at 64 (any
//!   build).
//! - [`pipeline`]: the pipeline executor's overhead per node vs calling the tool directly (any
//!   build).
//!
//! With the `local` feature (the in-process llama.cpp backend):
//! - `decode`: tokens/s of the local backend vs a bare llama-cpp-2 greedy loop.
//! - `prefix`: a follow-up sharing a ~1,500-token prefix, KV reuse vs a cold cache.
//! - `parallel`: 8 samples as one batch vs 8 sequential runs.
//! - `concurrent`: 8 concurrent requests decoded together (at once and staggered) vs in
//!   sequence, and the memory at 1, 4 and 8 slots.
//! - `rise`: 5-turn RISE with KV reuse vs re-decoding each turn.
//! - `backtrack`: suffix-only backtracking vs re-decoding every prompt.
//! - `rectify`: decoding with the logit rectifier vs an identity hook, the prompt cost of
//!   hidden-state mode, teacher-forcing throughput.
//! - `sampler`: choosing one token with amend's sampler vs llama.cpp's sampler chain, on
//!   logits the model produced.
//! - `commits`: `amend serve`'s commit points (step-wise backtracking streamed over a loopback
//!   socket): false verified steps, streamed = whole, time to the first step vs the whole.
//! - `serve`: 8 HTTP clients at once against `amend serve` vs in sequence, beside the same in
//!   process.
//! - `format`: `response_format` with the recommended strategy over HTTP: answers sent as
//!   checked JSON, formatting turns, the JSON's number against the corrected answer.
//! - `search`: the step search's re-decoded prefix tokens (0: only suffixes are decoded), and
//!   its time with prefix reuse vs re-decoding every prompt.

#[cfg(feature = "local")]
mod backtrack;
#[cfg(feature = "local")]
mod ceiling;
#[cfg(feature = "local")]
mod commits;
#[cfg(feature = "local")]
mod concurrent;
pub mod fingerprint;
#[cfg(feature = "local")]
mod format;
#[cfg(feature = "local")]
mod local;
pub mod mistakes;
pub mod overhead;
#[cfg(feature = "local")]
mod parallel;
pub mod pipeline;
#[cfg(feature = "local")]
mod recorder;
#[cfg(feature = "local")]
mod rectify;
#[cfg(feature = "local")]
mod replay;
#[cfg(feature = "local")]
mod sampler;
#[cfg(feature = "local")]
mod search;
#[cfg(feature = "local")]
mod serve;

#[cfg(feature = "local")]
pub use backtrack::{backtrack, BacktrackReport};
#[cfg(feature = "local")]
pub use commits::{commits, CommitsError, CommitsReport, CommitsRow};
#[cfg(feature = "local")]
pub use concurrent::{concurrent, ConcurrentReport, ConcurrentRound, SlotMemory};
#[cfg(feature = "local")]
pub use format::{format_bench, FormatReport, FormatRow};
#[cfg(feature = "local")]
pub use local::*;
#[cfg(feature = "local")]
pub use parallel::{parallel, ParallelReport, ParallelRound};
#[cfg(feature = "local")]
pub(crate) use recorder::Recorder;
#[cfg(feature = "local")]
pub use rectify::{rectify, RectifyReport};
#[cfg(feature = "local")]
pub use sampler::{sampler, SamplerReport, SamplerRow};
#[cfg(feature = "local")]
pub use search::{search, SearchReport};
#[cfg(feature = "local")]
pub use serve::{serve_bench, ServeReport, ServeRound};
