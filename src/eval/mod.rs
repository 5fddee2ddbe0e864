//! The evaluation harness behind `amend eval`: grading, metrics, resumable runs, reports and
//! run comparison over the datasets of [`crate::data`]. Every strategy and critic is measured
//! through [`runner::prepare`] and [`runner::execute`].

pub mod claims;
pub mod compare;
mod config;
pub mod grade;
pub mod metrics;
pub mod report;
mod result;
pub mod runner;
pub mod select;

use std::path::PathBuf;

pub use crate::data::{Gold, Item, Task};
pub use metrics::{ItemResult, Summary};
pub use runner::{Config, Outcome};

/// An evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset is unreadable or malformed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The pipeline file is unreadable or malformed.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// The strategy's options do not fit.
    #[error(transparent)]
    Strategy(#[from] crate::strategy::StrategyError),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A results file has a malformed line (not the last one, which is dropped as half-written).
    #[error("{path}, line {line}: not a result record ({reason}); the results file was edited or is corrupt")]
    Results {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The output directory holds a run with another configuration.
    #[error("{out} holds a run with another configuration; use a new `out` directory or the same settings\n  was: {was}\n  now: {now}")]
    ConfigMismatch {
        /// The directory.
        out: PathBuf,
        /// The stored configuration.
        was: String,
        /// This run's configuration.
        now: String,
    },
    /// A report template failed.
    #[error("report: {0}")]
    Report(String),
    /// Options that are missing or do not fit together.
    #[error(transparent)]
    Option(#[from] crate::run::OptionError),
    /// The principles file is unreadable.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
}
