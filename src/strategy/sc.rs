//! Self-consistency: N samples of the same prompt (batched where the backend can), majority
//! answer (ties → the latest sample). The equal-compute baseline for RISE (m5@t1 vs m1@t5).

use async_trait::async_trait;
use serde_json::json;

use super::{
    majority_answer, solve_request, Attempt, Context, Ledger, Problem, Solution, Strategy,
    StrategyError,
};
use crate::answer;

/// N samples, majority vote.
#[derive(Debug, Clone, Copy)]
pub struct SelfConsistency {
    /// Samples.
    pub samples: u32,
    /// Sampling temperature.
    pub temperature: f32,
}

#[async_trait]
impl Strategy for SelfConsistency {
    fn name(&self) -> &str {
        "self-consistency"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let start = std::time::Instant::now();
        let mut ledger = Ledger::new(cx.budget);
        let mut attempts = Vec::new();
        let mut budget_stop = None;
        let chunk = cx.model.capabilities().samples_per_call(self.samples);
        let seed = problem
            .question
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        while (attempts.len() as u32) < self.samples {
            if let Some(why) = ledger.exhausted() {
                budget_stop = Some(format!(
                    "{why}; {} of {} samples drawn",
                    attempts.len(),
                    self.samples
                ));
                break;
            }
            let n = (self.samples - attempts.len() as u32).min(chunk);
            let req = solve_request(cx, problem.question)?
                .with_sampling(self.temperature, 1.0)
                .with_seed(seed.wrapping_add(attempts.len() as u64))
                .with_n(n);
            let resp = cx.model.generate(req).await?;
            ledger.add(resp.usage);
            for s in resp.samples {
                let ans = answer::extract_str(&s.text);
                attempts.push(Attempt {
                    text: s.text,
                    answer: ans,
                });
            }
        }
        let answer = majority_answer(&attempts);
        cx.record(
            "solve",
            json!({"strategy": self.name(), "answers": attempts.iter().map(|a| a.answer.clone()).collect::<Vec<_>>(), "answer": answer, "budget_stop": budget_stop}),
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
