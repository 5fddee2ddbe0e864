//! A pipeline as a [`Strategy`], so the evaluation harness (and anything else that runs
//! strategies) runs it on word problems: the input is `{"question": PROBLEM}`, the answer the
//! number in the pipeline's result.

use std::time::Instant;

use async_trait::async_trait;

use super::exec::{self, EventKind};
use super::Pipeline;
use crate::run::{Context, Located, Problem};
use crate::strategy::{Attempt, Solution, Strategy, StrategyError};

/// Runs a pipeline on each problem (see the [module docs](self)).
pub struct PipelineStrategy {
    /// The pipeline.
    pub pipeline: Pipeline,
}

#[async_trait]
impl Strategy for PipelineStrategy {
    fn name(&self) -> &str {
        "pipeline"
    }

    fn first_is_greedy(&self) -> bool {
        false
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let start = Instant::now();
        let input = serde_json::json!({"question": problem.text()});
        let out = exec::run(&self.pipeline, cx, &input)
            .await
            .map_err(|e| match e {
                exec::RunError::Model(m) => StrategyError::Model(m),
                exec::RunError::Critic(c) => StrategyError::Critic(c),
                other => StrategyError::Option(crate::run::OptionError::new(
                    "pipeline",
                    other.to_string(),
                )),
            })?;
        let text = out.result_text().unwrap_or_default();
        let attempt = Attempt::new(text);
        let answer = attempt
            .answer
            .clone()
            .or_else(|| crate::answer::Number::parse(attempt.text.trim()).map(|n| n.to_string()));
        let located =
            out.events
                .iter()
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::Veto | EventKind::Rollback | EventKind::Reask
                    )
                })
                .map(|e| {
                    let step =
                        self.pipeline.order.iter().position(|&i| {
                            self.pipeline.nodes.get(i).is_some_and(|n| n.id == e.node)
                        });
                    Located::new(step.unwrap_or(0), &e.node, &e.class, &e.message)
                })
                .collect();
        let detail = serde_json::json!({"pipeline": self.pipeline.name, "status": out.status,
            "events": out.events, "tool_calls": out.tool_calls, "skipped": out.skipped});
        cx.record(
            "solve",
            serde_json::json!({"strategy": "pipeline", "answer": answer, "detail": detail}),
        );
        Ok(Solution {
            strategy: format!("pipeline:{}", self.pipeline.name),
            answer,
            attempts: vec![attempt],
            usage: out.usage,
            wall: start.elapsed(),
            budget_stop: None,
            located,
            prefill: None,
            survivors: None,
        })
    }
}
