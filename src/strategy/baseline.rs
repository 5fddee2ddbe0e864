//! The baseline: one greedy chain-of-thought pass, answer extracted.

use async_trait::async_trait;

use super::{finish, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::run::{Context, Ledger, Problem};

/// One chain-of-thought pass at T=0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Baseline;

#[async_trait]
impl Strategy for Baseline {
    fn name(&self) -> &str {
        "baseline"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let mut ledger = Ledger::new(cx.budget());
        let req = cx.solve_request(problem)?;
        let mut attempts = Vec::new();
        let mut budget_stop = None;
        match cx.call(&mut ledger, req).await? {
            Some(resp) => attempts.push(Attempt::new(resp.text())),
            None => budget_stop = ledger.stop("no attempt made"),
        }
        let answer = attempts.first().and_then(|a| a.answer.clone());
        let end = Finished {
            detail: serde_json::json!({"question": problem.text()}),
            ..Finished::new(attempts, answer, budget_stop)
        };
        Ok(finish(cx, self.name(), &ledger, end))
    }
}
