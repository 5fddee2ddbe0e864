//! Self-consistency: N samples of the same prompt (batched where the backend can), majority
//! answer (ties → the latest sample). The equal-compute baseline for RISE (m5@t1 vs m1@t5).

use async_trait::async_trait;

use super::{finish, majority_answer, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::run::{Context, Ledger, Problem};

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

    fn first_is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let mut ledger = Ledger::new(cx.budget());
        let mut attempts = Vec::new();
        let mut budget_stop = None;
        let chunk = cx.model().capabilities().samples_per_call(self.samples);
        let seed = problem
            .text()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        // The samples in calls of at most `chunk`, each seeded by the samples before it;
        // independent, so they go out together unless a budget caps calls or tokens.
        let mut reqs = Vec::new();
        let mut drawn = 0u32;
        while drawn < self.samples {
            let n = (self.samples - drawn).min(chunk);
            reqs.push(
                cx.solve_request(problem)?
                    .with_sampling(self.temperature, 1.0)
                    .with_seed(seed.wrapping_add(u64::from(drawn)))
                    .with_n(n),
            );
            drawn += n;
        }
        for resp in cx.call_many(&mut ledger, reqs).await? {
            match resp {
                Some(r) => attempts.extend(r.samples.into_iter().map(|s| Attempt::new(s.text))),
                None => {
                    if budget_stop.is_none() {
                        budget_stop = ledger.stop(format!(
                            "{} of {} samples drawn",
                            attempts.len(),
                            self.samples
                        ));
                    }
                }
            }
        }
        let answer = majority_answer(&attempts);
        let end = Finished::new(attempts, answer, budget_stop);
        Ok(finish(cx, self.name(), &ledger, end))
    }
}
