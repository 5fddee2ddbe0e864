//! [`Env`]: what a critic runs with, and the trace-writing helper the run layer shares.

use std::sync::Arc;
use std::time::Instant;

use super::CallError;
use crate::model::{Model, Request, Response};
use crate::prompt::Prompts;
#[cfg(doc)]
use crate::trace::Traced;
use crate::trace::Writer;

/// What a critic (or anything else that calls a model for one role) runs with: a model, the
/// prompts, where its events go, and a deadline for its calls.
#[derive(Clone)]
pub struct Env {
    /// The model.
    pub model: Arc<dyn Model>,
    /// Prompt templates.
    pub prompts: Arc<Prompts>,
    /// Where events go, if anywhere.
    pub trace: Option<Arc<Writer>>,
    /// Calls still running at this instant are cancelled ([`CallError::Deadline`]).
    pub deadline: Option<Instant>,
}

impl Env {
    /// `model` with `prompts`, untraced, no deadline.
    pub fn new(model: Arc<dyn Model>, prompts: Arc<Prompts>) -> Self {
        Self {
            model,
            prompts,
            trace: None,
            deadline: None,
        }
    }
    /// Record events (not model calls: wrap the model in [`Traced`] for those) in `trace`.
    pub fn with_trace(mut self, trace: Option<Arc<Writer>>) -> Self {
        self.trace = trace;
        self
    }
    /// Cancel calls still running at `deadline`.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }
    /// Call the model, cancelling the call at the deadline.
    ///
    /// # Errors
    /// [`CallError::Model`] / [`CallError::Deadline`].
    pub async fn generate(&self, req: Request) -> Result<Response, CallError> {
        match self.deadline {
            None => Ok(self.model.generate(req).await?),
            Some(at) => {
                let at = tokio::time::Instant::from_std(at);
                match tokio::time::timeout_at(at, self.model.generate(req)).await {
                    Ok(r) => Ok(r?),
                    Err(_) => Err(CallError::Deadline),
                }
            }
        }
    }
    /// Record an event (errors are logged, never fatal); returns where it is (`FILE#SEQ`).
    pub fn record(&self, kind: &str, data: serde_json::Value) -> Option<String> {
        record(self.trace.as_ref(), kind, data)
    }
}

pub(super) fn record(
    trace: Option<&Arc<Writer>>,
    kind: &str,
    data: serde_json::Value,
) -> Option<String> {
    let t = trace?;
    match t.write(kind, data) {
        Ok(seq) => Some(format!("{}#{seq}", t.path().display())),
        Err(e) => {
            tracing::error!(error = %e, "could not write the trace");
            None
        }
    }
}
