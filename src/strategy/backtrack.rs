//! Backtracking on a located mistake (Tyen et al. 2024): a critic finds the first wrong step
//! k; the steps before it are kept byte for byte, step k is resampled at T=1 until it differs
//! from the original (at most 8 candidates, drawn as one batch), and the rest is generated
//! greedily from there. The kept steps go back as an assistant prefill, so on the local
//! backend the KV cache already holds them and only the new suffix is decoded.

use async_trait::async_trait;
use serde_json::json;

use super::{finish, judge, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::critic::Critic;
use crate::run::{Context, Ledger, Located, Problem};
use crate::steps;

/// Candidates for the resampled step.
pub const TRIES: u32 = 8;

/// Locate, keep the prefix, resample the wrong step, continue.
pub struct Backtrack {
    /// Locates the first wrong step.
    pub critic: Box<dyn Critic>,
    /// Most backtracks per solve.
    pub max_backtracks: usize,
    /// Keep sampling step k until the critic accepts it (rather than until it differs).
    pub until_accepted: bool,
    /// Keep a revision only when this verifier does not flag it.
    pub verifier: Option<Box<dyn Critic>>,
    /// Step-wise (`Some`, with what becomes of a step still flagged when the budget ends):
    /// the answer is written a line at a time, each line checked by the critic as it is
    /// written and resampled when flagged (see `Options::stepwise`).
    pub stepwise: Option<super::Unverified>,
}

/// The text that re-opens a solution at step `k`: steps `0..k`, each ending in a newline.
pub fn prefix_text(steps: &[String], k: usize) -> String {
    steps.iter().take(k).map(|s| format!("{s}\n")).collect()
}

/// Is `candidate` a different step from `original` (ignoring surrounding white space)?
pub fn differs(candidate: &str, original: &str) -> bool {
    let c = candidate.trim();
    !c.is_empty() && c != original.trim()
}

impl Backtrack {
    /// Record a located mistake and its outcome: a `mistake` trace event and, when the
    /// context has a mistakes store, a record in it. `revision` is the revised attempt, `kept` whether
    /// it replaced the original.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn note(
        &self,
        cx: &Context,
        problem: &Problem<'_>,
        ledger: &Ledger,
        steps: &[String],
        k: usize,
        rationale: &str,
        revision: Option<&[String]>,
        kept: bool,
        detail: serde_json::Value,
    ) {
        let attempt = steps::join(steps);
        let revised = revision.map(steps::join);
        super::note_mistake(
            cx,
            problem,
            ledger,
            super::Found {
                attempt: &attempt,
                steps: steps.to_vec(),
                step: k,
                critic: self.critic.name(),
                rationale,
                revised: revised.as_deref(),
                correction: revision.map(|r| steps::join(r.get(k..).unwrap_or_default())),
                kept,
                detail,
            },
        )
        .await;
    }

    /// Does the critic accept the steps up to `k` (no mistake at or before `k`)? `None` when
    /// the deadline passed while it judged.
    pub(super) async fn accepts(
        &self,
        cx: &Context,
        ledger: &mut Ledger,
        problem: &Problem<'_>,
        steps: &[String],
        k: usize,
    ) -> Result<Option<bool>, StrategyError> {
        let v = judge(cx, ledger, self.critic.as_ref(), problem, steps, None).await?;
        Ok(v.map(|v| v.parsed && v.step.is_none_or(|s| s > k)))
    }
}

#[async_trait]
impl Strategy for Backtrack {
    fn name(&self) -> &str {
        "backtrack"
    }

    fn first_is_greedy(&self) -> bool {
        // Step-wise, the first line-by-line pass is already corrected as it goes.
        self.stepwise.is_none()
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        if let Some(unverified) = self.stepwise {
            return super::stepwise::solve(self, unverified, cx, problem).await;
        }
        let mut ledger = Ledger::new(cx.budget());
        let mut budget_stop = None;
        let mut located = Vec::new();
        let mut current: Vec<String> = match problem.draft {
            Some(d) => d.to_vec(),
            None => match cx.call(&mut ledger, cx.solve_request(problem)?).await? {
                Some(r) => steps::split(r.text()),
                None => {
                    let stop = ledger.stop("no first attempt made");
                    return Ok(self.end(cx, &ledger, Vec::new(), stop, located));
                }
            },
        };
        let mut attempts = vec![Attempt::new(steps::join(&current))];
        for round in 0..self.max_backtracks {
            let gold = if round == 0 { problem.gold_step } else { None };
            let Some(verdict) = judge(
                cx,
                &mut ledger,
                self.critic.as_ref(),
                problem,
                &current,
                gold,
            )
            .await?
            else {
                budget_stop = ledger.stop("the critic was cut short");
                break;
            };
            let Some(k) = verdict.located() else {
                break;
            };
            let Some(wrong) = current.get(k).cloned() else {
                break;
            };
            located.push(Located::new(
                k,
                &wrong,
                self.critic.name(),
                &verdict.rationale,
            ));
            if let Some(stop) = ledger.stop(format!("mistake at step {k} left as it is")) {
                budget_stop = Some(stop);
                break;
            }
            let prefix = prefix_text(&current, k);
            let n = cx.model().capabilities().samples_per_call(TRIES);
            let mut chosen = None;
            let mut tried = 0;
            while tried < TRIES && chosen.is_none() {
                let want = n.min(TRIES - tried);
                let req = cx
                    .solve_request(problem)?
                    .with_prefill(prefix.clone())
                    .with_stop(["\n"])
                    .with_sampling(1.0, 1.0)
                    .with_seed(u64::from(tried) + 7919 * round as u64)
                    .with_n(want);
                let Some(r) = cx.call(&mut ledger, req).await? else {
                    break;
                };
                tried += want;
                for s in r.samples {
                    if !differs(&s.text, &wrong) {
                        continue;
                    }
                    let mut trial = current.get(..k).unwrap_or_default().to_vec();
                    trial.push(s.text.trim().to_string());
                    if self.until_accepted {
                        match self.accepts(cx, &mut ledger, problem, &trial, k).await? {
                            Some(true) => {}
                            Some(false) => continue,
                            None => break,
                        }
                    }
                    chosen = Some(s.text.trim().to_string());
                    break;
                }
            }
            let Some(new_step) = chosen else {
                let why = match ledger.stop(format!("mistake at step {k} left as it is")) {
                    Some(stop) => {
                        let why = format!("budget: {stop}");
                        budget_stop = Some(stop);
                        why
                    }
                    None => format!("no different step in {tried} tries"),
                };
                self.note(
                    cx,
                    problem,
                    &ledger,
                    &current,
                    k,
                    &verdict.rationale,
                    None,
                    false,
                    json!({"why": why}),
                )
                .await;
                break;
            };
            let cont_prefill = format!("{prefix}{new_step}\n");
            let req = cx.solve_request(problem)?.with_prefill(cont_prefill);
            let Some(r) = cx.call(&mut ledger, req).await? else {
                budget_stop = ledger.stop(format!("revision of step {k} not continued"));
                break;
            };
            let mut revised = current.get(..k).unwrap_or_default().to_vec();
            revised.push(new_step.clone());
            revised.extend(steps::split(r.text()));
            let verifier = self.verifier.as_deref();
            let refused = match verifier {
                Some(v) => match judge(cx, &mut ledger, v, problem, &revised, None).await? {
                    Some(vv) => vv.located().is_some(),
                    None => {
                        budget_stop = ledger.stop("the verifier was cut short");
                        true
                    }
                },
                None => false,
            };
            self.note(
                cx,
                problem,
                &ledger,
                &current,
                k,
                &verdict.rationale,
                Some(&revised),
                !refused,
                json!({"tries": tried, "verifier": verifier.map(|v| v.name()), "verifier_refused": refused}),
            )
            .await;
            if refused {
                break;
            }
            current = revised;
            attempts.push(Attempt::new(steps::join(&current)));
        }
        Ok(self.end(cx, &ledger, attempts, budget_stop, located))
    }
}

impl Backtrack {
    fn end(
        &self,
        cx: &Context,
        ledger: &Ledger,
        attempts: Vec<Attempt>,
        budget_stop: Option<crate::run::BudgetStop>,
        located: Vec<Located>,
    ) -> Solution {
        let answer = attempts.last().and_then(|a| a.answer.clone());
        finish(
            cx,
            self.name(),
            ledger,
            Finished {
                attempts,
                answer,
                budget_stop,
                located,
                detail: json!({"critic": self.critic.name(), "verifier": self.verifier.as_ref().map(|v| v.name())}),
                survivors: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_difference() {
        let s: Vec<String> = vec!["a = 1".into(), "b = 2".into(), "c = 3".into()];
        assert_eq!(prefix_text(&s, 0), "");
        assert_eq!(prefix_text(&s, 2), "a = 1\nb = 2\n");
        assert_eq!(prefix_text(&s, 9), "a = 1\nb = 2\nc = 3\n");
        assert!(!differs("  b = 2 ", "b = 2"));
        assert!(!differs("   ", "b = 2"));
        assert!(differs("b = 3", "b = 2"));
    }
}
