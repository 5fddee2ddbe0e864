//! amend: a runtime that makes LLM calls correct themselves.
//!
//! The crate is library-first; the `amend` binary is a thin layer over it.
//!
//! - [`model`]: one [`Model`] trait over a local GGUF model (llama.cpp, in-process, feature
//!   `local`) and any OpenAI-compatible API, with capabilities declared as data.
//! - [`prompt`]: tera templates, embedded as defaults and overridable from a directory.
//! - [`trace`]: a JSON Lines record of every model call.
//! - [`strategy`]: ways of answering a question (the baseline chain-of-thought pass now;
//!   correction strategies build on the same trait).
//! - [`answer`]: final-answer extraction and numeric normalisation.
//! - [`critic`]: critics that locate the first wrong step of a solution.
//! - [`eval`]: the evaluation harness (datasets, metrics, resumable runs, reports).
//! - [`synth`]: synthetic arithmetic word problems of controlled difficulty.
//! - [`inject`]: critic test data made by planting errors in correct solutions.
//! - [`log`]: the mistake log (sled): every located mistake and its outcome.
//! - [`leap`]: LEAP principle learning from mistakes, and the promotion gate.
//! - [`home`]: where amend keeps its caches.
//! - [`bench`]: the measurements behind `amend bench` (local backend).

pub mod answer;
#[cfg(feature = "local")]
pub mod bench;
pub mod critic;
pub mod eval;
pub mod home;
pub mod inject;
pub mod leap;
pub mod log;
pub mod model;
pub mod prompt;
pub mod steps;
pub mod strategy;
pub mod synth;
pub mod trace;

pub use model::{
    Capabilities, FinishReason, Input, LogitsHook, Message, Model, ModelError, Request, Response,
    Role, Sample, TokenStep, Usage,
};
pub use prompt::Prompts;
pub use strategy::{Baseline, Solution, Strategy, StrategyError};
