//! RISE inference (Qu et al. 2024): after each attempt a feedback turn is appended ("that is
//! incorrect, try again" with the question, or a critic's located step and rationale) and the
//! model answers again, for N turns, keeping the last W attempts in the conversation.
//!
//! Modes: `oracle` stops at the first turn a verifier accepts (the gold answer in evaluation, a
//! critic otherwise); `majority` always runs N turns and answers with the majority over turns
//! (ties → latest); `critic` feeds the critic's verdict back and stops when it finds no mistake.
//! On the local backend each turn extends the previous conversation, so its KV cache is reused
//! (until the window starts dropping old attempts).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{finish, judge, majority_answer, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::critic::Critic;
use crate::model::{Input, Message, Request};
use crate::prompt::Format;
use crate::run::{Context, Ledger, Located, OptionError, Problem};

/// How RISE decides when to stop and what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RiseMode {
    /// Stop at the first verified turn.
    Oracle,
    /// Run every turn; majority answer.
    Majority,
    /// Critic feedback; stop when the critic accepts.
    Critic,
}

/// Multi-turn "try again".
pub struct Rise {
    /// Turns.
    pub turns: usize,
    /// Previous attempts kept in the conversation.
    pub window: usize,
    /// Mode.
    pub mode: RiseMode,
    /// Critic for `critic` mode, and the verifier of `oracle` mode when no gold answer is known.
    pub critic: Option<Box<dyn Critic>>,
}

#[derive(Serialize)]
struct FeedbackCx<'a> {
    question: &'a str,
    step: Option<usize>,
    rationale: Option<&'a str>,
}

/// The conversation of the next turn: the opening messages, then the last `window`
/// (attempt, feedback) pairs.
pub fn window_messages(
    base: &[Message],
    history: &[(String, String)],
    window: usize,
) -> Vec<Message> {
    let mut msgs = base.to_vec();
    let from = history.len().saturating_sub(window);
    for (attempt, feedback) in history.iter().skip(from) {
        msgs.push(Message::assistant(attempt.clone()));
        msgs.push(Message::user(feedback.clone()));
    }
    msgs
}

/// A located mistake waiting for the next turn (its correction).
struct Pending {
    attempt: String,
    step: usize,
    rationale: String,
}

impl Rise {
    /// Record a mistake the critic located in one turn, with the next turn as its correction
    /// (`None`: there was no next turn).
    async fn note(
        &self,
        cx: &Context,
        problem: &Problem<'_>,
        ledger: &Ledger,
        p: Pending,
        next: Option<&str>,
    ) {
        super::note_mistake(
            cx,
            problem,
            ledger,
            super::Found {
                attempt: &p.attempt,
                steps: crate::steps::split(&p.attempt),
                step: p.step,
                critic: self.critic.as_ref().map_or("", |c| c.name()),
                rationale: &p.rationale,
                revised: next,
                correction: next.map(str::to_string),
                kept: next.is_some(),
                detail: serde_json::Value::Null,
            },
        )
        .await;
    }
}

#[async_trait]
impl Strategy for Rise {
    fn name(&self) -> &str {
        "rise"
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        if cx.style().format != Format::Chat {
            return Err(
                OptionError::new("format", "must be chat for rise, which is multi-turn").into(),
            );
        }
        if self.mode == RiseMode::Oracle
            && problem.gold.is_none()
            && problem.check.is_none()
            && self.critic.is_none()
        {
            return Err(OptionError::new(
                "critic",
                "is needed by rise oracle mode when there is no gold answer to stop on",
            )
            .into());
        }
        let Input::Chat(base) = cx.solve_request(problem)?.input else {
            return Err(OptionError::new("format", "must be chat for rise").into());
        };
        let question = problem.text();
        let mut ledger = Ledger::new(cx.budget());
        let mut history: Vec<(String, String)> = Vec::new();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut located = Vec::new();
        let mut accepted: Option<usize> = None;
        let mut budget_stop = None;
        let mut pending: Option<Pending> = None;
        for turn in 0..self.turns {
            let msgs = window_messages(&base, &history, self.window);
            let req = Request::chat(msgs).with_max_tokens(cx.max_tokens());
            let Some(resp) = cx.call(&mut ledger, req).await? else {
                budget_stop = ledger.stop(format!("stopped before turn {}", turn + 1));
                break;
            };
            let text = resp.text().trim_end().to_string();
            if let Some(p) = pending.take() {
                self.note(cx, problem, &ledger, p, Some(&text)).await;
            }
            attempts.push(Attempt::new(text.clone()));
            let verdict = match (self.mode, problem.right(&text)) {
                (RiseMode::Oracle, Some(right)) => {
                    if right {
                        accepted = Some(turn);
                        break;
                    }
                    None
                }
                (RiseMode::Oracle | RiseMode::Critic, _) => match &self.critic {
                    None => None,
                    Some(critic) => {
                        let steps = crate::steps::split(&text);
                        let Some(v) =
                            judge(cx, &mut ledger, critic.as_ref(), problem, &steps, None).await?
                        else {
                            budget_stop =
                                ledger.stop(format!("critic cut short at turn {}", turn + 1));
                            break;
                        };
                        if v.accepts() {
                            accepted = Some(turn);
                            break;
                        }
                        if let Some(k) = v.located() {
                            let step_text = steps.get(k).map_or("", String::as_str);
                            located.push(Located::new(k, step_text, critic.name(), &v.rationale));
                        }
                        Some(v)
                    }
                },
                (RiseMode::Majority, _) => None,
            };
            if let Some(v) = &verdict {
                if let Some(k) = v.located() {
                    pending = Some(Pending {
                        attempt: text.clone(),
                        step: k,
                        rationale: v.rationale.clone(),
                    });
                }
            }
            let (step, rationale) = match (&verdict, self.mode) {
                (Some(v), RiseMode::Critic) if v.parsed => (v.step, Some(v.rationale.as_str())),
                _ => (None, None),
            };
            let feedback = cx.prompts().render(
                "rise_feedback",
                &FeedbackCx {
                    question: &question,
                    step,
                    rationale,
                },
            )?;
            history.push((text, feedback));
        }
        if let Some(p) = pending.take() {
            self.note(cx, problem, &ledger, p, None).await;
        }
        let answer = match (self.mode, accepted) {
            (_, Some(t)) => attempts.get(t).and_then(|a| a.answer.clone()),
            (RiseMode::Majority, None) => majority_answer(&attempts),
            (_, None) => attempts.last().and_then(|a| a.answer.clone()),
        };
        Ok(finish(
            cx,
            self.name(),
            &ledger,
            Finished {
                answer,
                budget_stop,
                located,
                detail: json!({"mode": self.mode, "turns": attempts.len(), "accepted_turn": accepted}),
                attempts,
                survivors: None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_opening_and_the_last_attempts() {
        let base = vec![Message::user("Q")];
        let h: Vec<(String, String)> = (1..=4)
            .map(|i| (format!("a{i}"), format!("f{i}")))
            .collect();
        let m = window_messages(&base, &h, 2);
        let texts: Vec<&str> = m.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, vec!["Q", "a3", "f3", "a4", "f4"]);
        assert_eq!(window_messages(&base, &h[..1], 2).len(), 3);
        assert_eq!(window_messages(&base, &h, 0), base);
    }
}
