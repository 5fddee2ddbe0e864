//! "Wait" (Self-Correction Bench): the model's own draft goes back into the assistant turn
//! with " Wait" appended, and the model continues that same message at T=0. The final answer
//! is taken from the continuation (the draft's answer when the continuation has none).

use async_trait::async_trait;

use super::{finish, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::model::ModelError;
use crate::run::{Context, Ledger, Problem};

/// Draft, then continue it after " Wait".
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait;

#[async_trait]
impl Strategy for Wait {
    fn name(&self) -> &str {
        "wait"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        if !cx.model().capabilities().assistant_prefill {
            return Err(ModelError::Unsupported {
                backend: cx.model().id().key.clone(),
                what: "assistant prefill, which the wait strategy needs (use a local model, or an API that continues a final assistant message)".into(),
            }
            .into());
        }
        let mut ledger = Ledger::new(cx.budget());
        let mut attempts = Vec::new();
        let mut budget_stop = None;
        let mut answer = None;
        match cx.call(&mut ledger, cx.solve_request(problem)?).await? {
            None => budget_stop = ledger.stop("no draft made"),
            Some(draft) => {
                let draft_text = draft.text().trim_end().to_string();
                let draft_answer = crate::answer::extract_str(&draft_text);
                answer = draft_answer.clone();
                attempts.push(Attempt {
                    text: draft_text.clone(),
                    answer: draft_answer.clone(),
                });
                let prefill = format!("{draft_text} Wait");
                let req = cx.solve_request(problem)?.with_prefill(prefill.clone());
                match cx.call(&mut ledger, req).await? {
                    None => budget_stop = ledger.stop("no continuation after the draft"),
                    Some(resp) => {
                        let cont = resp.text().to_string();
                        answer = crate::answer::extract_str(&cont).or(draft_answer);
                        attempts.push(Attempt {
                            text: format!("{prefill}{cont}"),
                            answer: answer.clone(),
                        });
                    }
                }
            }
        }
        let end = Finished::new(attempts, answer, budget_stop);
        Ok(finish(cx, self.name(), &ledger, end))
    }
}
