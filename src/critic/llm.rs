//! The `llm` critic: the ProcessBench-style critique prompt (steps tagged and indexed from 0,
//! answer in `\boxed{}`), sent as a fresh conversation that never sees the generator's.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;

use super::{Critic, Critique, Verdict};
use crate::answer;
use crate::model::{Message, Request};
use crate::strategy::{Context, StrategyError};

/// An LLM critic with one greedy sample.
#[derive(Debug, Clone)]
pub struct Llm {
    /// Token limit of the critique.
    pub max_tokens: u32,
}

impl Default for Llm {
    fn default() -> Self {
        Self { max_tokens: 512 }
    }
}

#[derive(Serialize)]
struct PromptCx<'a> {
    problem: &'a str,
    steps: &'a [String],
}

/// Read the critic's `\boxed{}` index: `Some(None)` for -1, `Some(Some(i))` for a valid step,
/// `None` when there is no box, no integer in it, or the index is out of range.
pub fn parse_index(text: &str, n_steps: usize) -> Option<Option<usize>> {
    let inner = answer::boxed(text)?;
    let n = answer::Number::parse(inner.trim())?;
    if n.den != 1 {
        return None;
    }
    match n.num {
        -1 => Some(None),
        i if i >= 0 && (i as usize) < n_steps => Some(Some(i as usize)),
        _ => None,
    }
}

#[async_trait]
impl Critic for Llm {
    fn name(&self) -> &str {
        "llm"
    }

    async fn locate(&self, cx: &Context, input: &Critique<'_>) -> Result<Verdict, StrategyError> {
        let prompt = cx.prompts.render(
            "critic_processbench",
            &PromptCx {
                problem: input.problem,
                steps: input.steps,
            },
        )?;
        let req = Request::chat(vec![Message::user(prompt)]).with_max_tokens(self.max_tokens);
        let resp = cx.model.generate(req).await?;
        let text = resp.text().to_string();
        let parsed = parse_index(&text, input.steps.len());
        cx.record(
            "critic",
            json!({"critic": "llm", "parsed": parsed.is_some(), "step": parsed.flatten()}),
        );
        Ok(match parsed {
            Some(step) => Verdict {
                step,
                parsed: true,
                confidence: 1.0,
                rationale: text,
                usage: resp.usage,
            },
            None => Verdict {
                step: None,
                parsed: false,
                confidence: 0.0,
                rationale: text,
                usage: resp.usage,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_boxed_indices_and_refuses_guesses() {
        assert_eq!(parse_index("so \\boxed{2}", 4), Some(Some(2)));
        assert_eq!(parse_index("\\boxed{-1}", 4), Some(None));
        assert_eq!(parse_index("\\boxed{ 0 }", 1), Some(Some(0)));
        assert_eq!(parse_index("\\boxed{7}", 4), None);
        assert_eq!(parse_index("\\boxed{1.5}", 4), None);
        assert_eq!(parse_index("paragraph 2 is wrong", 4), None);
        assert_eq!(parse_index("\\boxed{two}", 4), None);
    }
}
