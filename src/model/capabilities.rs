//! What a backend can do ([`Capabilities`]), and the check that refuses a request it cannot
//! serve before any call.

use serde::{Deserialize, Serialize};

use super::{Grammar, Input, ModelError, Request};

/// What a backend can do. Strategies branch on this, never on the backend's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Per-token log-probabilities.
    pub logprobs: bool,
    /// Raw logits and final hidden state per token, and a [`super::LogitsHook`].
    pub logits_hidden: bool,
    /// A request sharing a token prefix with the last one decodes only the new tokens.
    pub kv_prefix_reuse: bool,
    /// The assistant turn can be prefilled and continued.
    pub assistant_prefill: bool,
    /// `n > 1` samples are generated together rather than one call each.
    pub parallel_samples: bool,
    /// Most samples one call may ask for (0 = no limit).
    pub max_samples_per_call: u32,
    /// Raw (plain-completion) prompts are accepted.
    pub raw_prompt: bool,
    /// [`Grammar::Gbnf`] constraints are honoured.
    pub gbnf: bool,
    /// [`Grammar::JsonSchema`] constraints are honoured (decoded under the schema).
    pub json_schema: bool,
    /// [`super::Model::score`]: teacher forcing with per-position top-K, normaliser and hidden state.
    pub teacher_forcing: bool,
}

impl Capabilities {
    /// How many of `wanted` samples one call may ask for (at least 1).
    pub fn samples_per_call(&self, wanted: u32) -> u32 {
        match self.max_samples_per_call {
            0 => wanted,
            m => m.min(wanted),
        }
        .max(1)
    }
}

/// Reject requests a backend cannot serve, with a clear error.
pub(crate) fn check_supported(
    caps: &Capabilities,
    backend: &str,
    req: &Request,
) -> Result<(), ModelError> {
    let unsupported = |what: &str| {
        Err(ModelError::Unsupported {
            backend: backend.to_string(),
            what: what.to_string(),
        })
    };
    if req.n == 0 {
        return Err(ModelError::InvalidRequest("n must be at least 1".into()));
    }
    if req.prefill.is_some() && !caps.assistant_prefill {
        return unsupported("assistant prefill");
    }
    if req.hook.is_some() && !caps.logits_hidden {
        return unsupported("logits hooks");
    }
    if matches!(req.input, Input::Raw(_)) && !caps.raw_prompt {
        return unsupported("raw (plain-completion) prompts");
    }
    if req.logprobs && !caps.logprobs {
        return unsupported("log-probabilities");
    }
    if let Some(g) = &req.grammar {
        if req.prefill.is_some() {
            return Err(ModelError::InvalidRequest(
                "a grammar describes the whole assistant text; it does not combine with an \
                 assistant prefill (drop one of them)"
                    .into(),
            ));
        }
        let ok = match g {
            Grammar::Gbnf(_) => caps.gbnf,
            Grammar::JsonSchema(_) => caps.json_schema,
        };
        if !ok {
            return unsupported(g.kind());
        }
    }
    Ok(())
}
