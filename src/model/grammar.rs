//! Constrained decoding: what a request may ask the model to generate.
//!
//! A [`Grammar`] on a [`super::Request`] restricts every sample to texts the grammar accepts.
//! Backends say which kinds they honour in [`super::Capabilities`] (`gbnf`, `json_schema`);
//! a request with a kind its backend cannot honour fails with
//! [`super::ModelError::Unsupported`] before any call — nothing is silently unconstrained.
//!
//! - The local backend ([`super::llama`]) decodes under llama.cpp's grammar sampler: a JSON
//!   schema is converted to GBNF by llama.cpp's own converter, and each step's token is
//!   checked against the grammar (the unconstrained choice is kept when the grammar accepts
//!   it; otherwise the step's distribution is masked to the tokens it accepts and the choice
//!   made again). The text is valid by construction unless the sample hits `max_tokens`
//!   first (its finish reason then says `length`).
//! - OpenAI-compatible backends refuse both kinds: GBNF is not part of that API, and
//!   structured outputs differ per server (OpenAI's `json_schema` response format is
//!   rejected by llama-cpp-python's server, which takes `json_object` with a `schema`), so
//!   amend does not claim them; callers enforce a schema there by validating the output and
//!   asking again.
//! - A grammar does not combine with an assistant prefill (the grammar describes the whole
//!   assistant text): such a request is invalid.

use serde::Serialize;

/// A constraint on the generated text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grammar {
    /// A llama.cpp GBNF grammar whose start rule is `root`.
    Gbnf(String),
    /// The text is one JSON value valid against this JSON schema.
    JsonSchema(serde_json::Value),
}

impl Grammar {
    /// The kind's name, as errors and traces say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Gbnf(_) => "GBNF grammars",
            Self::JsonSchema(_) => "JSON-schema-constrained decoding",
        }
    }
}
