//! Backtracking on a located mistake (Tyen et al. 2024): a critic finds the first wrong step
//! k; the steps before it are kept byte for byte, step k is resampled at T=1 until it differs
//! from the original (at most 8 candidates, drawn as one batch), and the rest is generated
//! greedily from there. The kept steps go back as an assistant prefill, so on the local
//! backend the KV cache already holds them and only the new suffix is decoded.

use async_trait::async_trait;
use serde_json::json;

use super::{solve_request, Attempt, Context, Ledger, Problem, Solution, Strategy, StrategyError};
use crate::answer;
use crate::critic::{Critic, Critique};
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
}

/// The text that re-opens a solution at step `k`: steps `0..k`, each ending in a newline.
pub fn prefix_text(steps: &[String], k: usize) -> String {
    steps[..k.min(steps.len())]
        .iter()
        .map(|s| format!("{s}\n"))
        .collect()
}

/// Is `candidate` a different step from `original` (ignoring surrounding white space)?
pub fn differs(candidate: &str, original: &str) -> bool {
    let c = candidate.trim();
    !c.is_empty() && c != original.trim()
}

impl Backtrack {
    /// Record a located mistake and its outcome: a `mistake` trace event and, when the
    /// context has a log, a record in it. `revision` is the revised attempt, `kept` whether
    /// it replaced the original.
    #[allow(clippy::too_many_arguments)]
    fn note(
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
                correction: revision.map(|r| steps::join(&r[k.min(r.len())..])),
                kept,
                detail,
            },
        );
    }

    async fn accepts(
        &self,
        cx: &Context,
        problem: &Problem<'_>,
        steps: &[String],
        k: usize,
    ) -> Result<bool, StrategyError> {
        let v = self
            .critic
            .locate(
                cx,
                &Critique {
                    problem: problem.question,
                    steps,
                    gold: None,
                },
            )
            .await?;
        Ok(v.parsed && v.step.is_none_or(|s| s > k))
    }
}

#[async_trait]
impl Strategy for Backtrack {
    fn name(&self) -> &str {
        "backtrack"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let start = std::time::Instant::now();
        let mut ledger = Ledger::new(cx.budget);
        let mut current: Vec<String> = match problem.draft {
            Some(d) => d.to_vec(),
            None => {
                let r = cx
                    .model
                    .generate(solve_request(cx, problem.question)?)
                    .await?;
                ledger.add(r.usage);
                steps::split(r.text())
            }
        };
        let first = steps::join(&current);
        let mut attempts = vec![Attempt {
            answer: answer::extract_str(&first),
            text: first,
        }];
        let mut budget_stop = None;
        let mut located = Vec::new();
        for round in 0..self.max_backtracks {
            let gold = if round == 0 { problem.gold_step } else { None };
            let verdict = self
                .critic
                .locate(
                    cx,
                    &Critique {
                        problem: problem.question,
                        steps: &current,
                        gold,
                    },
                )
                .await?;
            ledger.add(verdict.usage);
            let Some(k) = verdict.step.filter(|_| verdict.parsed) else {
                break;
            };
            if k >= current.len() {
                break;
            }
            located.push(super::Located {
                step: k,
                text: current[k].clone(),
                critic: self.critic.name().into(),
                rationale: verdict.rationale.chars().take(300).collect(),
            });
            if let Some(why) = ledger.exhausted() {
                budget_stop = Some(format!("{why}; mistake at step {k} left as it is"));
                break;
            }
            let prefix = prefix_text(&current, k);
            let n = cx.model.capabilities().samples_per_call(TRIES);
            let mut chosen = None;
            let mut tried = 0;
            while tried < TRIES && chosen.is_none() {
                let want = n.min(TRIES - tried);
                let req = solve_request(cx, problem.question)?
                    .with_prefill(prefix.clone())
                    .with_stop(["\n"])
                    .with_sampling(1.0, 1.0)
                    .with_seed(u64::from(tried) + 7919 * round as u64)
                    .with_n(want);
                let r = cx.model.generate(req).await?;
                ledger.add(r.usage);
                tried += want;
                for s in r.samples {
                    if !differs(&s.text, &current[k]) {
                        continue;
                    }
                    let mut trial = current[..k].to_vec();
                    trial.push(s.text.trim().to_string());
                    if self.until_accepted && !self.accepts(cx, problem, &trial, k).await? {
                        continue;
                    }
                    chosen = Some(s.text.trim().to_string());
                    break;
                }
            }
            let Some(new_step) = chosen else {
                self.note(
                    cx,
                    problem,
                    &ledger,
                    &current,
                    k,
                    &verdict.rationale,
                    None,
                    false,
                    json!({"why": format!("no different step in {tried} tries")}),
                );
                break;
            };
            let cont_prefill = format!("{prefix}{new_step}\n");
            let r = cx
                .model
                .generate(solve_request(cx, problem.question)?.with_prefill(cont_prefill))
                .await?;
            ledger.add(r.usage);
            let mut revised = current[..k].to_vec();
            revised.push(new_step.clone());
            revised.extend(steps::split(r.text()));
            let refused = match &self.verifier {
                Some(v) => {
                    let vv = v
                        .locate(
                            cx,
                            &Critique {
                                problem: problem.question,
                                steps: &revised,
                                gold: None,
                            },
                        )
                        .await?;
                    ledger.add(vv.usage);
                    vv.parsed && vv.step.is_some()
                }
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
                json!({"tries": tried, "verifier_refused": refused}),
            );
            if refused {
                break;
            }
            current = revised;
            let text = steps::join(&current);
            attempts.push(Attempt {
                answer: answer::extract_str(&text),
                text,
            });
        }
        let answer = attempts.last().and_then(|a| a.answer.clone());
        Ok(Solution {
            strategy: self.name().into(),
            answer,
            attempts,
            usage: ledger.usage,
            wall: start.elapsed(),
            budget_stop,
            located,
        })
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
