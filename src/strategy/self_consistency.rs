//! Self-consistency: N samples of the same prompt (batched where the backend can), majority
//! answer (ties → the latest sample). The equal-compute baseline for RISE (m5@t1 vs m1@t5).
//!
//! With a verifier (`select = verified`), every sample is judged and the majority is taken over
//! the samples it does not flag (over all samples when it flags every one); each flagged sample
//! is a located mistake (recorded, not corrected), and the `solve` trace event and
//! [`Solution::survivors`] say how many samples survived.
//!
//! Anchored (`select = anchored`): the greedy pass comes first and is judged; its answer stands
//! when the verifier accepts it. Only a flagged greedy pass draws the samples, and the verified
//! majority of them replaces its answer (the greedy answer stays when every sample is flagged
//! too).

use async_trait::async_trait;
use serde_json::json;

use super::record::{note_mistake, Found};
use super::{
    finish, judge, majority_answer, majority_of, Attempt, Finished, Solution, Strategy,
    StrategyError,
};
use crate::critic::Critic;
use crate::run::{BudgetStop, Context, Ledger, Located, Problem};
use crate::steps;

/// N samples, majority vote (of the verified ones, with a verifier).
pub struct SelfConsistency {
    /// Samples.
    pub samples: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Verified selection: the majority is taken over the samples this verifier accepts.
    pub verifier: Option<Box<dyn Critic>>,
    /// Anchored selection (needs `verifier`): the greedy pass, and samples only when the
    /// verifier flags it.
    pub anchored: bool,
}

/// The answer of verified selection: the majority of the `answers` whose `flagged` entry is
/// false, or of all of them when every one is flagged. Returns the answer and how many
/// answers survived.
pub fn select_verified(answers: &[Option<String>], flagged: &[bool]) -> (Option<String>, usize) {
    let kept: Vec<Option<String>> = answers
        .iter()
        .zip(flagged)
        .filter(|(_, f)| !**f)
        .map(|(a, _)| a.clone())
        .collect();
    match kept.len() {
        0 => (majority_of(answers), 0),
        n => (majority_of(&kept), n),
    }
}

#[async_trait]
impl Strategy for SelfConsistency {
    fn name(&self) -> &str {
        "self-consistency"
    }

    fn first_is_greedy(&self) -> bool {
        self.anchored || self.temperature <= 0.0
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let mut ledger = Ledger::new(cx.budget());
        match (self.anchored, self.verifier.as_deref()) {
            (true, Some(v)) => self.anchored(cx, &mut ledger, problem, v).await,
            _ => self.sampled(cx, &mut ledger, problem).await,
        }
    }
}

impl SelfConsistency {
    /// Draw the samples: the attempts, and where a budget stopped the drawing.
    async fn draw(
        &self,
        cx: &Context,
        ledger: &mut Ledger,
        problem: &Problem<'_>,
    ) -> Result<(Vec<Attempt>, Option<BudgetStop>), StrategyError> {
        let mut attempts = Vec::new();
        let mut budget_stop = None;
        let chunk = cx.model().capabilities().samples_per_call(self.samples);
        let seed = super::problem_seed(problem);
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
        for resp in cx.call_many(ledger, reqs).await? {
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
        Ok((attempts, budget_stop))
    }

    /// Self-consistency with majority or verified selection.
    async fn sampled(
        &self,
        cx: &Context,
        ledger: &mut Ledger,
        problem: &Problem<'_>,
    ) -> Result<Solution, StrategyError> {
        let (attempts, mut budget_stop) = self.draw(cx, ledger, problem).await?;
        let Some(verifier) = self.verifier.as_deref() else {
            let answer = majority_answer(&attempts);
            let end = Finished::new(attempts, answer, budget_stop);
            return Ok(finish(cx, self.name(), ledger, end));
        };
        let (flagged, located) = verify(
            cx,
            ledger,
            problem,
            verifier,
            &attempts,
            &mut budget_stop,
            "verified",
        )
        .await?;
        let answers: Vec<Option<String>> = attempts.iter().map(|a| a.answer.clone()).collect();
        let (answer, survivors) = select_verified(&answers, &flagged);
        let mut end = Finished::new(attempts, answer, budget_stop);
        end.located = located;
        end.survivors = Some(survivors as u32);
        end.detail = json!({"selection": "verified", "verifier": verifier.name(), "survivors": survivors, "flagged": flagged});
        Ok(finish(cx, self.name(), ledger, end))
    }

    /// Anchored selection: the greedy pass, and the samples only when it is flagged.
    async fn anchored(
        &self,
        cx: &Context,
        ledger: &mut Ledger,
        problem: &Problem<'_>,
        verifier: &dyn Critic,
    ) -> Result<Solution, StrategyError> {
        let Some(r) = cx.call(ledger, cx.solve_request(problem)?).await? else {
            let stop = ledger.stop("the greedy pass was not made");
            return Ok(finish(
                cx,
                self.name(),
                ledger,
                Finished::new(Vec::new(), None, stop),
            ));
        };
        let greedy = Attempt::new(r.text());
        let mut budget_stop = None;
        let (flag, mut located) = verify(
            cx,
            ledger,
            problem,
            verifier,
            std::slice::from_ref(&greedy),
            &mut budget_stop,
            "anchored",
        )
        .await?;
        let greedy_answer = greedy.answer.clone();
        if !flag.first().copied().unwrap_or(false) || budget_stop.is_some() {
            let mut end = Finished::new(vec![greedy], greedy_answer, budget_stop);
            end.located = located;
            end.detail = json!({"selection": "anchored", "verifier": verifier.name(), "greedy_flagged": false});
            return Ok(finish(cx, self.name(), ledger, end));
        }
        let (samples, mut budget_stop) = self.draw(cx, ledger, problem).await?;
        let (flagged, more) = verify(
            cx,
            ledger,
            problem,
            verifier,
            &samples,
            &mut budget_stop,
            "anchored",
        )
        .await?;
        located.extend(more);
        let answers: Vec<Option<String>> = samples.iter().map(|a| a.answer.clone()).collect();
        let (answer, survivors) = match select_verified(&answers, &flagged) {
            (_, 0) => (greedy_answer, 0),
            (a, n) => (a, n),
        };
        let mut attempts = vec![greedy];
        attempts.extend(samples);
        let mut end = Finished::new(attempts, answer, budget_stop);
        end.located = located;
        end.survivors = Some(survivors as u32);
        end.detail = json!({"selection": "anchored", "verifier": verifier.name(), "greedy_flagged": true, "survivors": survivors, "flagged": flagged});
        Ok(finish(cx, self.name(), ledger, end))
    }
}

/// Judge every attempt: which are flagged, and the located mistakes (each recorded). A
/// deadline that cuts the judging short sets `budget_stop`; the attempts not judged count as
/// unflagged.
async fn verify(
    cx: &Context,
    ledger: &mut Ledger,
    problem: &Problem<'_>,
    verifier: &dyn Critic,
    attempts: &[Attempt],
    budget_stop: &mut Option<BudgetStop>,
    selection: &str,
) -> Result<(Vec<bool>, Vec<Located>), StrategyError> {
    let mut flagged = Vec::with_capacity(attempts.len());
    let mut located = Vec::new();
    for a in attempts {
        let parts = steps::split(&a.text);
        let Some(v) = judge(cx, ledger, verifier, problem, &parts, None).await? else {
            // Cut short by the deadline: the samples not judged count as unflagged.
            if budget_stop.is_none() {
                *budget_stop = ledger.stop(format!(
                    "{} of {} samples verified",
                    flagged.len(),
                    attempts.len()
                ));
            }
            break;
        };
        let step = v.located();
        flagged.push(step.is_some());
        if let Some(k) = step {
            let text = parts.get(k).cloned().unwrap_or_default();
            located.push(Located::new(k, &text, verifier.name(), &v.rationale));
            note_mistake(
                cx,
                problem,
                ledger,
                Found {
                    attempt: &a.text,
                    steps: parts,
                    step: k,
                    critic: verifier.name(),
                    rationale: &v.rationale,
                    revised: None,
                    correction: None,
                    kept: false,
                    detail: json!({"selection": selection}),
                },
            )
            .await;
        }
    }
    flagged.resize(attempts.len(), false);
    Ok((flagged, located))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(answers: &[&str]) -> Vec<Option<String>> {
        answers
            .iter()
            .map(|a| Attempt::new(format!("So it is {a}.\n#### {a}")).answer)
            .collect()
    }

    #[test]
    fn verified_selection_with_none_some_and_all_flagged() {
        let a = attempts(&["7", "7", "9", "9", "9"]);
        // None flagged: the plain majority.
        assert_eq!(select_verified(&a, &[false; 5]), (Some("9".into()), 5));
        // The three 9s flagged: the majority of the two survivors.
        assert_eq!(
            select_verified(&a, &[false, false, true, true, true]),
            (Some("7".into()), 2)
        );
        // All flagged: every sample counts again, and none survived.
        assert_eq!(select_verified(&a, &[true; 5]), (Some("9".into()), 0));
    }
}
