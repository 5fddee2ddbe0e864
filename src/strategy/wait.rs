//! "Wait" (Self-Correction Bench): the model's own draft goes back into the assistant turn
//! with " Wait" appended, and the model continues that same message at T=0. The final answer
//! is taken from the continuation (the draft's answer when the continuation has none).

use async_trait::async_trait;
use serde_json::json;

use super::{solve_request, Attempt, Context, Ledger, Problem, Solution, Strategy, StrategyError};
use crate::answer;
use crate::model::ModelError;

/// Draft, then continue it after " Wait".
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait;

#[async_trait]
impl Strategy for Wait {
    fn name(&self) -> &str {
        "wait"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        if !cx.model.capabilities().assistant_prefill {
            return Err(ModelError::Unsupported {
                backend: cx.model.name().to_string(),
                what: "assistant prefill, which the wait strategy needs (use a local model, or an API that continues a final assistant message)".into(),
            }
            .into());
        }
        let start = std::time::Instant::now();
        let mut ledger = Ledger::new(cx.budget);
        let draft = cx
            .model
            .generate(solve_request(cx, problem.question)?)
            .await?;
        ledger.add(draft.usage);
        let draft_text = draft.text().trim_end().to_string();
        let draft_answer = answer::extract_str(&draft_text);
        let mut attempts = vec![Attempt {
            text: draft_text.clone(),
            answer: draft_answer.clone(),
        }];
        let mut budget_stop = None;
        let mut answer = draft_answer.clone();
        if let Some(why) = ledger.exhausted() {
            budget_stop = Some(format!("{why}; no continuation after the draft"));
        } else {
            let prefill = format!("{draft_text} Wait");
            let resp = cx
                .model
                .generate(solve_request(cx, problem.question)?.with_prefill(prefill.clone()))
                .await?;
            ledger.add(resp.usage);
            let cont = resp.text().to_string();
            let cont_answer = answer::extract_str(&cont);
            answer = cont_answer.clone().or(draft_answer);
            attempts.push(Attempt {
                text: format!("{prefill}{cont}"),
                answer: answer.clone(),
            });
        }
        cx.record(
            "solve",
            json!({"strategy": "wait", "answer": answer, "budget_stop": budget_stop}),
        );
        Ok(Solution {
            strategy: self.name().into(),
            answer,
            attempts,
            usage: ledger.usage,
            wall: start.elapsed(),
            budget_stop,
            located: Vec::new(),
        })
    }
}
