//! A model wrapper the benchmarks use to read the usage of every call a strategy makes.

use std::sync::{Arc, Mutex};

use crate::model::{Capabilities, Model, ModelError, ModelId, Request, Response, Usage};

/// Records the usage of every call.
pub(crate) struct Recorder {
    inner: Arc<dyn Model>,
    /// The usage of every call, in order.
    pub calls: Mutex<Vec<Usage>>,
}

impl Recorder {
    /// Record the calls made to `inner`.
    pub(crate) fn new(inner: Arc<dyn Model>) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl Model for Recorder {
    fn id(&self) -> &ModelId {
        self.inner.id()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn score(
        &self,
        request: crate::model::ScoreRequest,
    ) -> Result<crate::model::Scored, ModelError> {
        self.inner.score(request).await
    }

    async fn generate(&self, req: Request) -> Result<Response, ModelError> {
        let r = self.inner.generate(req).await?;
        if let Ok(mut c) = self.calls.lock() {
            c.push(r.usage);
        }
        Ok(r)
    }
}
