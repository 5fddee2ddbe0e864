//! Commit points: text a step-wise strategy has checked and will not take back, reported as
//! it goes so a front end (the server's stream) can send it before the solve ends.

use serde::Serialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A piece of the final answer, in order: once reported it is never retracted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// The step's index among the answer's steps (blank lines carry the index of the step
    /// they follow).
    pub step: usize,
    /// The text, with its line end: the final answer is the concatenation of every commit.
    pub text: String,
    /// Did the verifier accept the step (in the context of the steps before it)? A step still
    /// flagged when its correction budget ended is sent with `false`.
    pub verified: bool,
}

/// Where a strategy reports its commits ([`crate::run::Context::with_commits`]).
#[derive(Debug, Clone)]
pub struct Commits(UnboundedSender<Commit>);

impl Commits {
    /// A sender and the receiver the front end reads.
    pub fn channel() -> (Self, UnboundedReceiver<Commit>) {
        let (tx, rx) = unbounded_channel();
        (Self(tx), rx)
    }

    /// Report `commit`; a receiver that has gone (the client left) is not an error: the
    /// strategy is cancelled by its caller then.
    pub fn send(&self, commit: Commit) {
        let _ = self.0.send(commit);
    }
}
