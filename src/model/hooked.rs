//! [`WithHook`]: a model whose every request carries one [`LogitsHook`] (how a rectifier is
//! installed for all calls of a run).

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Capabilities, LogitsHook, Model, ModelError, ModelId, Request, Response, ScoreRequest, Scored,
};

/// Forwards to a model with `hook` on every generate request. A request that carries its own
/// hook keeps it (a request has one hook). Teacher forcing is forwarded unhooked: it scores
/// the model as it is.
pub struct WithHook {
    inner: Arc<dyn Model>,
    hook: Arc<dyn LogitsHook>,
}

impl WithHook {
    /// `inner` with `hook` on every request.
    pub fn new(inner: Arc<dyn Model>, hook: Arc<dyn LogitsHook>) -> Self {
        Self { inner, hook }
    }
}

#[async_trait]
impl Model for WithHook {
    fn id(&self) -> &ModelId {
        self.inner.id()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn score(&self, request: ScoreRequest) -> Result<Scored, ModelError> {
        self.inner.score(request).await
    }
    async fn generate(&self, req: Request) -> Result<Response, ModelError> {
        let req = match req.hook {
            Some(_) => req,
            None => req.with_hook(self.hook.clone()),
        };
        self.inner.generate(req).await
    }
}
