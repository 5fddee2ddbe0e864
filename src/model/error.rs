//! Errors of the model layer: each names the thing that failed and what to do about it.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a model call, a model load or a model fetch can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file does not exist.
    #[error("model file not found: {path}\n  fetch the default model (`amend model fetch`), or give a `model` spec naming an existing .gguf")]
    NotFound {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// The file exists but llama.cpp could not load it.
    #[error("could not load model {path}: {reason}\n  the file may be truncated or not a GGUF model; delete it and fetch it again (`amend model fetch` for the default model)")]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model spec could not be parsed.
    #[error("invalid model spec {spec:?}: {reason}\n  use a path to a .gguf file, `default`, `hf:OWNER/REPO/FILE.gguf` or `openai:MODEL` (with `base_url`)")]
    Spec {
        /// The spec as given.
        spec: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Fetching a model failed.
    #[error("could not fetch {what}: {reason}")]
    Fetch {
        /// What was being fetched.
        what: String,
        /// Why it failed and what to do.
        reason: String,
    },
    /// The backend cannot serve this kind of request.
    #[error("{backend} does not support {what}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// The feature asked for.
        what: String,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The prompt and generation do not fit the model's context.
    #[error("request needs {needed} tokens of context but the model allows at most {max}; shorten the prompt or lower max_tokens / n")]
    ContextOverflow {
        /// Tokens needed.
        needed: usize,
        /// Tokens available.
        max: usize,
    },
    /// llama.cpp failed while decoding.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// The local model's queue of waiting requests is full.
    #[error("the local model is busy: {queue} requests are already waiting for a slot; retry in a moment (or load it with more slots, `n_seq`)")]
    Busy {
        /// The queue's capacity.
        queue: usize,
    },
    /// The model worker thread is gone (it panicked or was shut down).
    #[error("the local model worker stopped unexpectedly; reload the model")]
    WorkerGone,
    /// The API answered with an error that is not worth retrying.
    #[error("API error from {url} (HTTP {status}): {message}")]
    Api {
        /// Base URL of the endpoint.
        url: String,
        /// HTTP status (0 when unknown).
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Every retry failed.
    #[error("{url} still failing after {attempts} attempts ({retries} infrastructure retries): {last}\n  check that the server is up and healthy, or raise `retries`")]
    RetriesExhausted {
        /// Base URL of the endpoint.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Retries among them.
        retries: u32,
        /// The last failure.
        last: String,
    },
    /// A call timed out (after retries).
    #[error("{url} did not answer within {after:?} ({attempts} attempts); raise `timeout` or check the server")]
    Timeout {
        /// Base URL of the endpoint.
        url: String,
        /// Per-attempt timeout.
        after: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The server answered something that is not a valid chat completion.
    #[error("{url} returned a response that is not a valid chat completion: {reason}")]
    BadResponse {
        /// Base URL of the endpoint.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Could not reach the server at all.
    #[error(
        "could not connect to {url}: {reason}\n  is the server running, and is `base_url` right?"
    )]
    Connect {
        /// Base URL of the endpoint.
        url: String,
        /// The transport error.
        reason: String,
    },
}

impl ModelError {
    /// Is this failure worth retrying later as it is: a rate limit, a server error or timeout
    /// that outlasted the backend's own retries, a lost connection. The rest (bad requests,
    /// missing files, unsupported features) fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RetriesExhausted { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Busy { .. } => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
