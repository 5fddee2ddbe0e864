//! The mistake log's seam: every located mistake and its outcome is handed to a
//! [`MistakeStore`]. The persistent sled store comes with the mistake-log work; until then
//! [`Discard`] is the store, and the trace holds the same record (event `mistake`).

use serde::{Deserialize, Serialize};

/// What became of a located mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The revision was kept and the critic/verifier accepted it.
    Revised,
    /// No different step could be sampled, or the revision was refused: the original stands.
    Kept,
}

/// One located mistake and what the strategy did about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mistake {
    /// The problem.
    pub input: String,
    /// The attempt's steps.
    pub steps: Vec<String>,
    /// Index of the first wrong step.
    pub step: usize,
    /// Which critic located it.
    pub critic: String,
    /// The critic's rationale.
    pub rationale: String,
    /// The replacement step, if one was kept.
    pub correction: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
}

/// A store failed.
#[derive(Debug, thiserror::Error)]
#[error("mistake log: {0}")]
pub struct LogError(pub String);

/// Where located mistakes go.
pub trait MistakeStore: Send + Sync {
    /// Record one mistake; returns only once it is durable.
    ///
    /// # Errors
    /// [`LogError`] when it could not be recorded.
    fn record(&self, mistake: &Mistake) -> Result<(), LogError>;
}

/// A store that keeps nothing (the default until a persistent log is configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl MistakeStore for Discard {
    fn record(&self, _mistake: &Mistake) -> Result<(), LogError> {
        Ok(())
    }
}
