//! Step-wise backtracking (`Options::stepwise`): the answer is written one line at a time;
//! each line is checked by the critic in the context of the lines before it as soon as it is
//! written, and a flagged line is resampled (up to [`TRIES`] candidates at T = 1, drawn as one
//! batch; the first the critic accepts is taken) before the next line is asked for. Every line
//! is final once checked, so it is reported as a commit point ([`Context::commit`]) and a
//! stream can send it long before the answer ends. `max_backtracks` caps the resample rounds
//! of one solve; a line still flagged after them is kept and reported unverified, or ends the
//! answer (`Unverified::Stop`). Each call continues the accepted lines as an assistant prefill,
//! so the local engine decodes only the new line.

use serde_json::json;

use super::backtrack::{differs, Backtrack, TRIES};
use super::search::{states_answer, STEP_TOKENS};
use super::{finish, judge, Attempt, Finished, Solution, Strategy, StrategyError, Unverified};
use crate::critic::Critic;
use crate::model::FinishReason;
use crate::run::{Commit, Context, Ledger, Located, Problem};

/// Most lines of one answer.
pub const MAX_LINES: usize = 32;

/// Solve `problem` step-wise with `bt`'s critic and budget of resample rounds.
pub(super) async fn solve(
    bt: &Backtrack,
    unverified_policy: Unverified,
    cx: &Context,
    problem: &Problem<'_>,
) -> Result<Solution, StrategyError> {
    let critic: &dyn Critic = bt.critic.as_ref();
    let mut ledger = Ledger::new(cx.budget());
    let mut budget_stop = None;
    let mut located = Vec::new();
    let mut text = String::new();
    let mut steps: Vec<String> = Vec::new();
    let mut unverified: Vec<usize> = Vec::new();
    let mut rounds = 0usize;
    let mut tokens = 0u32;
    let mut ended_early = false;
    for depth in 0..MAX_LINES {
        let left = cx.max_tokens().saturating_sub(tokens).min(STEP_TOKENS);
        if left == 0 {
            break;
        }
        let mut req = cx
            .solve_request(problem)?
            .with_stop(["\n"])
            .with_max_tokens(left);
        if !text.is_empty() {
            req = req.with_prefill(text.clone());
        }
        let Some(r) = cx.call(&mut ledger, req).await? else {
            budget_stop = ledger.stop(format!("line {depth} not written"));
            break;
        };
        let Some(first) = r.samples.into_iter().next() else {
            break;
        };
        tokens = tokens.saturating_add(first.tokens);
        let (mut line, mut fin) = (first.text, first.finish);
        if line.trim().is_empty() {
            // A blank line: nothing to check; it ends the answer unless a stop string cut it.
            if fin != FinishReason::Stop {
                break;
            }
            let piece = format!("{line}\n");
            cx.commit(Commit {
                step: steps.len(),
                text: piece.clone(),
                verified: true,
            });
            text.push_str(&piece);
            continue;
        }
        let k = steps.len();
        let mut trial = steps.clone();
        trial.push(line.trim().to_string());
        let Some(v) = judge(cx, &mut ledger, critic, problem, &trial, None).await? else {
            budget_stop = ledger.stop(format!("line {k} not checked"));
            break;
        };
        // A model-free critic judges a line by what precedes it, so an accepted line stays
        // accepted; an LLM critic may flag an earlier line, which is final: the new line is
        // the one held responsible.
        let mut verified = v.accepts();
        if v.located().is_some() {
            located.push(Located::new(k, line.trim(), critic.name(), &v.rationale));
            let mut fixed = None;
            let mut tried = 0;
            if rounds < bt.max_backtracks && ledger.exhausted().is_none() {
                rounds += 1;
                let n = cx.model().capabilities().samples_per_call(TRIES);
                'draw: while tried < TRIES {
                    let want = n.min(TRIES - tried);
                    let mut req = cx
                        .solve_request(problem)?
                        .with_stop(["\n"])
                        .with_max_tokens(left)
                        .with_sampling(1.0, 1.0)
                        .with_seed(u64::from(tried) + 7919 * depth as u64)
                        .with_n(want);
                    if !text.is_empty() {
                        req = req.with_prefill(text.clone());
                    }
                    let Some(r) = cx.call(&mut ledger, req).await? else {
                        break;
                    };
                    tried += want;
                    for s in r.samples {
                        if !differs(&s.text, &line) {
                            continue;
                        }
                        let mut t = steps.clone();
                        t.push(s.text.trim().to_string());
                        match bt.accepts(cx, &mut ledger, problem, &t, k).await? {
                            Some(true) => {
                                fixed = Some((s.text, s.finish, s.tokens));
                                break 'draw;
                            }
                            Some(false) => {}
                            None => break 'draw,
                        }
                    }
                }
            }
            let revised = fixed.as_ref().map(|(t, _, _)| {
                let mut r = steps.clone();
                r.push(t.trim().to_string());
                r
            });
            bt.note(
                cx,
                problem,
                &ledger,
                &trial,
                k,
                &v.rationale,
                revised.as_deref(),
                fixed.is_some(),
                json!({"stepwise": true, "tries": tried, "round": rounds}),
            )
            .await;
            if let Some((t, f, n)) = fixed {
                tokens = tokens.saturating_add(n);
                (line, fin, verified) = (t, f, true);
            }
        }
        if !verified {
            if unverified_policy == Unverified::Stop {
                ended_early = true;
                break;
            }
            unverified.push(k);
        }
        let piece = if fin == FinishReason::Stop {
            format!("{line}\n")
        } else {
            line.clone()
        };
        cx.commit(Commit {
            step: k,
            text: piece.clone(),
            verified,
        });
        text.push_str(&piece);
        steps.push(line.trim().to_string());
        if fin != FinishReason::Stop || states_answer(&line) {
            break;
        }
    }
    let attempt = Attempt::new(text);
    let answer = attempt.answer.clone();
    Ok(finish(
        cx,
        bt.name(),
        &ledger,
        Finished {
            attempts: vec![attempt],
            answer,
            budget_stop,
            located,
            detail: json!({
                "critic": critic.name(),
                "stepwise": true,
                "steps": steps.len(),
                "unverified": unverified,
                "ended_at_unverified": ended_early,
                "rounds": rounds,
            }),
            survivors: None,
        },
    ))
}
