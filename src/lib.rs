#![doc = include_str!("../README.md")]
//!
//! # Modules, in layer order
//!
//! Each module imports only modules of an earlier layer (`tests/layers.rs` checks it):
//!
//! 1. leaves: [`answer`] (answer extraction and matching), [`steps`] (splitting a solution
//!    into steps), [`rng`] (a seeded random stream), [`stats`] (intervals and McNemar tests),
//!    [`home`] (where amend keeps its files);
//! 2. [`model`] (one [`Model`] trait over a local GGUF model and any OpenAI-compatible API,
//!    capabilities as data, model identity) and [`mistakes`] (the mistakes store, sled);
//! 3. [`trace`]: a JSON Lines record of every model call;
//! 4. [`prompt`]: tera templates, prompt style (worked examples, principles, the principles
//!    file);
//! 5. [`run`]: what a strategy runs with ([`run::Context`] and its builder), budgets, the
//!    problem, located mistakes;
//! 6. [`critic`]: critics that locate the first wrong step of a solution;
//! 7. [`strategy`]: ways of answering a problem (baseline, self-consistency, Wait, RISE,
//!    backtracking);
//! 8. [`data`]: dataset loaders and makers (synthetic problems, planted errors), and
//!    [`pipeline`]: tool pipelines with critic steps (TOML files, a petgraph DAG, error
//!    routing, rollback);
//! 9. [`eval`]: the evaluation harness (grading, metrics, resumable runs, reports);
//! 10. [`leap`] (principles learned from mistakes, and the promotion gate) and [`serve`] (the
//!     OpenAI-compatible server);
//! 11. [`bench`] (the measurements behind `amend bench`);
//! 12. the `amend` binary (`src/cli/`), which no library module imports.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod answer;
pub mod bench;
pub mod calc;
pub mod critic;
pub mod data;
pub mod eval;
pub mod home;
pub mod leap;
pub mod mistakes;
pub mod model;
pub mod pipeline;
pub mod prompt;
pub mod rectify;
pub mod rng;
pub mod run;
pub mod serve;
pub mod stats;
pub mod steps;
pub mod strategy;
pub mod trace;

pub use model::{
    Capabilities, FinishReason, Grammar, Input, LogitsHook, Message, Model, ModelError, ModelId,
    Request, Response, Role, Sample, ScoreRequest, Scored, ScoredToken, TokenStep, Usage,
};
pub use prompt::Prompts;
pub use run::{Budget, Context, Problem};
pub use strategy::{Solution, Strategy, StrategyError};
