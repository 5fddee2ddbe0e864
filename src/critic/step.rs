//! The `llm-step` critic (Tyen et al.'s direct step-level prompting): one yes/no question per
//! step, in a fresh conversation each, with the steps before it as context; the first "no"
//! is the mistake. An answer that is neither yes nor no is no prediction for that step; if no
//! step was judged wrong and some answers were unreadable, the verdict is "no prediction".

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;

use super::{Critic, CriticError, Submission, Verdict};
use crate::model::{Message, Request, Usage};
use crate::run::Env;

/// One yes/no question per step.
#[derive(Debug, Clone, Copy, Default)]
pub struct LlmStep;

#[derive(Serialize)]
struct StepCx<'a> {
    problem: &'a str,
    previous: &'a [String],
    step: &'a str,
}

/// Read a yes/no answer: `Some(true)` for yes, `Some(false)` for no, `None` otherwise.
pub fn yes_no(text: &str) -> Option<bool> {
    let first: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    match first.as_str() {
        "yes" | "correct" => Some(true),
        "no" | "incorrect" => Some(false),
        _ => None,
    }
}

#[async_trait]
impl Critic for LlmStep {
    fn name(&self) -> &str {
        "llm-step"
    }

    async fn locate(&self, env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        let mut usage = Usage::default();
        let mut unreadable = 0;
        let mut answers = Vec::new();
        for (i, step) in input.steps.iter().enumerate() {
            let prompt = env.prompts.render(
                "critic_step",
                &StepCx {
                    problem: input.problem,
                    previous: input.steps.get(..i).unwrap_or_default(),
                    step,
                },
            )?;
            let r = env
                .generate(Request::chat(vec![Message::user(prompt)]).with_max_tokens(8))
                .await?;
            usage += r.usage;
            let said = yes_no(r.text());
            answers.push(said);
            match said {
                Some(false) => {
                    env.record(
                        "critic",
                        json!({"critic": "llm-step", "answers": answers, "step": i}),
                    );
                    return Ok(Verdict {
                        step: Some(i),
                        parsed: true,
                        confidence: 1.0,
                        rationale: format!("step {i} judged wrong: {}", r.text().trim()),
                        usage,
                    });
                }
                Some(true) => {}
                None => unreadable += 1,
            }
        }
        env.record(
            "critic",
            json!({"critic": "llm-step", "answers": answers, "step": null}),
        );
        Ok(Verdict {
            step: None,
            parsed: unreadable == 0,
            confidence: if unreadable == 0 { 1.0 } else { 0.0 },
            rationale: format!(
                "{} steps judged right, {unreadable} answers unreadable",
                input.steps.len() - unreadable
            ),
            usage,
        })
    }
}

/// Several critics in order: the first that locates a mistake decides; when none does, there
/// is no mistake (no prediction if any of them could not be read).
pub struct Chain {
    /// The critics, in order.
    pub critics: Vec<Box<dyn Critic>>,
    /// `chain:a,b`.
    pub name: String,
}

#[async_trait]
impl Critic for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    async fn locate(&self, env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        let mut usage = Usage::default();
        let mut all_parsed = true;
        let mut notes = Vec::new();
        for c in &self.critics {
            let v = c.locate(env, input).await?;
            usage += v.usage;
            if v.parsed && v.step.is_some() {
                return Ok(Verdict {
                    rationale: format!("{}: {}", c.name(), v.rationale),
                    usage,
                    ..v
                });
            }
            all_parsed &= v.parsed;
            notes.push(format!("{}: no mistake found", c.name()));
        }
        Ok(Verdict {
            step: None,
            parsed: all_parsed,
            confidence: if all_parsed { 1.0 } else { 0.0 },
            rationale: notes.join("; "),
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yes_and_no() {
        assert_eq!(yes_no("Yes, it is."), Some(true));
        assert_eq!(yes_no("  no"), Some(false));
        assert_eq!(yes_no("Incorrect: 5*6 is 30"), Some(false));
        assert_eq!(yes_no("The step is fine"), None);
        assert_eq!(yes_no(""), None);
    }
}
