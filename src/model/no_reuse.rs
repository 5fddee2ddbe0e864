//! A model wrapper that decodes every prompt from scratch.
//!
//! The local backend keeps the KV cache of the longest common token prefix between calls.
//! That is exact in arithmetic but not in floating point: llama.cpp's logits depend on how a
//! prompt is split into decode batches, so a prompt whose first tokens come from the cache can
//! get slightly different logits than the same prompt decoded in one go, and greedy decoding
//! can then take the other side of a near-tie. Measured with the default model: the logits of
//! one 84-token prompt differ by up to 0.7 between decoding it in one batch and decoding it
//! after a cached 44-token prefix (or in 40-token batches), and three synthetic problems
//! decoded after another problem, and alone, got three different first answers. The llama.cpp
//! server documents the same for its `cache_prompt`. [`NoPrefixReuse`] trades the reuse
//! speed-up for outputs that depend only on the request.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Capabilities, Model, ModelError, ModelId, Request, Response};

/// Forwards every request to the inner model with prefix reuse switched off, so a local
/// model's greedy output depends only on the request, not on the calls before it.
pub struct NoPrefixReuse(pub Arc<dyn Model>);

#[async_trait]
impl Model for NoPrefixReuse {
    fn id(&self) -> &ModelId {
        self.0.id()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kv_prefix_reuse: false,
            ..self.0.capabilities()
        }
    }

    async fn score(
        &self,
        request: crate::model::ScoreRequest,
    ) -> Result<crate::model::Scored, ModelError> {
        self.0.score(request).await
    }

    async fn generate(&self, req: Request) -> Result<Response, ModelError> {
        self.0.generate(req.with_prefix_reuse(false)).await
    }
}
