//! An exact calculator in the decode loop ([`Context::with_calculator`](super::Context)).
//!
//! When the model writes an arithmetic expression followed by `=` and a number, the runtime
//! computes the exact value ([`crate::calc`], the `arith` critic's reader). Where the model's
//! number is the value, nothing changes. Where it is not, the text is cut right after the `=`,
//! the exact value is written there, and the model goes on from it. That happens through an
//! assistant prefill, so on the local backend the KV cache already holds everything before
//! the value and only the new suffix is decoded. On an API backend the prefill takes the path
//! backtracking takes there (see [`crate::model::prefill`]).
//!
//! The check runs when a sample has been generated, so the model's own number after the `=`
//! is known: the trace records each substitution (the expression, what the model wrote, the
//! exact value) and how many results the model got right by itself. The tokens the model
//! generated after a wrong result are thrown away and are counted in the usage.
//!
//! What counts as a result: `expr = n` where `expr` has an operator and `n` is a lone number
//! (see [`crate::calc::results`]). `x = 5`, `total = 3 + 4`, `2 + 3 = 4th` and a number cut off
//! by the token limit are left alone, and only the number is replaced, never part of it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;

use crate::calc;
use crate::model::{
    Capabilities, FinishReason, Model, ModelError, ModelId, Request, Response, Sample, Usage,
};
use crate::trace::Writer;

/// Most substitutions in one sample.
pub const MAX_SUBSTITUTIONS: usize = 8;

/// A model whose computed results are exact: see the [module docs](self).
pub struct Calculator {
    inner: Arc<dyn Model>,
    trace: Option<Arc<Writer>>,
}

impl Calculator {
    /// Wrap `inner`; substitutions are recorded as `calculator` events in `trace`.
    pub fn new(inner: Arc<dyn Model>, trace: Option<Arc<Writer>>) -> Self {
        Self { inner, trace }
    }

    /// Fix the results of one sample: `prefill` is what the sample continues.
    async fn fix(
        &self,
        req: &Request,
        index: usize,
        mut sample: Sample,
    ) -> Result<(Sample, Usage), ModelError> {
        let mut usage = Usage::default();
        let prefill = req.prefill.clone().unwrap_or_default();
        let mut subs = Vec::new();
        while subs.len() < MAX_SUBSTITUTIONS {
            let full = format!("{prefill}{}", sample.text);
            let complete = sample.finish != FinishReason::Length;
            let Some(slip) = calc::results_from(&full, prefill.len(), complete).1 else {
                break;
            };
            let Some(kept) = full.get(..slip.at.start) else {
                break;
            };
            let cut = slip.at.start.saturating_sub(prefill.len());
            // Tokens left for the rest: the limit minus the kept part's share of the tokens.
            let share = (sample.tokens as usize * cut)
                .checked_div(sample.text.len().max(1))
                .unwrap_or(0);
            let left = req.max_tokens.saturating_sub(share as u32);
            if left == 0 {
                break;
            }
            let base = format!("{kept}{}", slip.exact);
            let cont = req
                .clone()
                .with_prefill(base.clone())
                .with_n(1)
                .with_max_tokens(left);
            let cont = Request {
                seed: req
                    .seed
                    .map(|s| s.wrapping_add(1000 * (index as u64 + 1) + subs.len() as u64)),
                ..cont
            };
            let r = self.inner.generate(cont).await?;
            usage += r.usage;
            let Some(next) = r.samples.into_iter().next() else {
                break;
            };
            let kept_text = base.get(prefill.len()..).unwrap_or_default();
            subs.push(json!({
                "expr": slip.expr,
                "written": slip.written,
                "exact": slip.exact,
                "at": cut,
                "thrown_away": sample.text.len().saturating_sub(cut),
            }));
            sample = Sample {
                text: format!("{kept_text}{}", next.text),
                finish: next.finish,
                tokens: share as u32 + next.tokens,
                logprobs: merge_logprobs(sample.logprobs, cut, next.logprobs),
            };
        }
        let full = format!("{prefill}{}", sample.text);
        let right = calc::results_from(&full, prefill.len(), true).0;
        if let Some(w) = &self.trace {
            if right > 0 || !subs.is_empty() {
                let data = json!({
                    "sample": index,
                    "substitutions": subs,
                    "agreed": right.saturating_sub(subs.len()),
                });
                if let Err(e) = w.write("calculator", data) {
                    tracing::error!(error = %e, "could not write the trace");
                }
            }
        }
        Ok((sample, usage))
    }
}

/// The log-probs of the kept tokens (those wholly before byte `cut`) followed by the
/// continuation's; the written value has none (the model did not choose it).
fn merge_logprobs(
    before: Option<Vec<crate::model::TokenLogprob>>,
    cut: usize,
    after: Option<Vec<crate::model::TokenLogprob>>,
) -> Option<Vec<crate::model::TokenLogprob>> {
    let mut kept = Vec::new();
    let mut at = 0;
    for t in before? {
        at += t.token.len();
        if at > cut {
            break;
        }
        kept.push(t);
    }
    kept.extend(after?);
    Some(kept)
}

#[async_trait]
impl Model for Calculator {
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

    async fn generate(&self, request: Request) -> Result<Response, ModelError> {
        if !self.inner.capabilities().assistant_prefill {
            return Err(ModelError::Unsupported {
                backend: self.inner.id().key.clone(),
                what: "the calculator (`calculator` needs assistant prefill, native or \
                       emulated; set `prefill` to auto or conversation)"
                    .into(),
            });
        }
        let start = Instant::now();
        let first = self.inner.generate(request.clone()).await?;
        let mut usage = first.usage;
        // The samples are fixed concurrently (a local engine decodes their continuations in
        // one batch); each continuation reuses its own prefix.
        let fixes = first
            .samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.fix(&request, i, s));
        let mut samples = Vec::new();
        for r in futures::future::join_all(fixes).await {
            let (s, u) = r?;
            usage += u;
            samples.push(s);
        }
        Ok(Response {
            samples,
            usage,
            wall: start.elapsed(),
            prefill: first.prefill,
        })
    }
}
