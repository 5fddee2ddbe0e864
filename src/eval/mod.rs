//! The evaluation harness behind `amend eval`: datasets, grading, metrics, resumable runs,
//! reports and run comparison. Every strategy and critic is measured through [`run`].

pub mod compare;
pub mod data;
pub mod grade;
pub mod metrics;
pub mod report;
pub mod runner;

use std::path::PathBuf;

pub use data::{Gold, Item, Task};
pub use metrics::{ItemResult, Summary};
pub use runner::{run, Config, Outcome};

/// An evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset is unreadable or malformed.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// A strategy or critic name is unknown.
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
    #[error("{out} holds a run with another configuration; use a new --out or the same settings\n  was: {was}\n  now: {now}")]
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
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
}
