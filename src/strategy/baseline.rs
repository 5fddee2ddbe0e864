//! The baseline: one greedy chain-of-thought pass, answer extracted.

use async_trait::async_trait;
use serde_json::json;

use super::{Attempt, Context, Problem, Solution, Strategy, StrategyError};
use crate::answer;

/// One chain-of-thought pass at T=0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Baseline;

#[async_trait]
impl Strategy for Baseline {
    fn name(&self) -> &str {
        "baseline"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let question = problem.question;
        let start = std::time::Instant::now();
        let req = super::solve_request(cx, question)?;
        let resp = cx.model.generate(req).await?;
        let text = resp.text().to_string();
        let ans = answer::extract_str(&text);
        cx.record(
            "solve",
            json!({"strategy": "baseline", "question": question, "answer": ans}),
        );
        Ok(Solution {
            strategy: self.name().into(),
            answer: ans.clone(),
            attempts: vec![Attempt { text, answer: ans }],
            usage: resp.usage,
            wall: start.elapsed(),
            budget_stop: None,
            located: Vec::new(),
        })
    }
}
