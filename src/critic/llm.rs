//! The `llm` critic: the ProcessBench-style critique prompt (steps tagged and indexed from 0,
//! answer in `\boxed{}`), sent as a fresh conversation that never sees the generator's. With
//! `votes > 1` it draws that many critiques (T=0.7, batched) and takes the majority of the
//! readable ones; an unreadable critique is no vote, never a guess.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;

use super::{Critic, CriticError, Submission, Verdict};
use crate::answer;
use crate::model::{Message, Request};
use crate::run::Env;

/// An LLM critic: one greedy critique, or a majority over `votes` sampled ones.
#[derive(Debug, Clone)]
pub struct Llm {
    /// Token limit of the critique.
    pub max_tokens: u32,
    /// Critiques to vote over (1 = one greedy critique).
    pub votes: u32,
}

impl Default for Llm {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            votes: 1,
        }
    }
}

/// The majority over readable predictions (`None` entries are unreadable critiques and cast no
/// vote). Ties go to the earlier step, and any step to "no mistake". Returns the winner and its
/// share of all critiques, or `None` when no critique was readable.
pub fn vote(preds: &[Option<Option<usize>>]) -> Option<(Option<usize>, f32)> {
    let mut counts: std::collections::BTreeMap<(u8, usize), usize> =
        std::collections::BTreeMap::new();
    for p in preds.iter().flatten() {
        let key = match p {
            Some(i) => (0, *i),
            None => (1, 0),
        };
        *counts.entry(key).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    let (key, n) = counts.into_iter().find(|(_, n)| *n == best)?;
    let winner = if key.0 == 0 { Some(key.1) } else { None };
    Some((winner, n as f32 / preds.len().max(1) as f32))
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

    async fn locate(&self, env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        let prompt = env.prompts.render(
            "critic_processbench",
            &PromptCx {
                problem: input.problem,
                steps: input.steps,
            },
        )?;
        let req = Request::chat(vec![Message::user(prompt)]).with_max_tokens(self.max_tokens);
        if self.votes > 1 {
            return self.locate_votes(env, req, input.steps.len()).await;
        }
        let resp = env.generate(req).await?;
        let text = resp.text().to_string();
        let parsed = parse_index(&text, input.steps.len());
        env.record(
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

impl Llm {
    async fn locate_votes(
        &self,
        env: &Env,
        req: Request,
        n_steps: usize,
    ) -> Result<Verdict, CriticError> {
        let per_call = env.model.capabilities().samples_per_call(self.votes);
        // The critiques in calls of at most `per_call`, independent, sent together.
        let mut calls = Vec::new();
        let mut drawn = 0u32;
        while drawn < self.votes {
            let n = (self.votes - drawn).min(per_call);
            calls.push(
                req.clone()
                    .with_sampling(0.7, 1.0)
                    .with_seed(u64::from(drawn) + 1)
                    .with_n(n),
            );
            drawn += n;
        }
        let mut texts = Vec::new();
        let mut usage = crate::model::Usage::default();
        for r in futures::future::join_all(calls.into_iter().map(|c| env.generate(c))).await {
            let r = r?;
            usage += r.usage;
            texts.extend(r.samples.into_iter().map(|s| s.text));
        }
        let preds: Vec<Option<Option<usize>>> =
            texts.iter().map(|t| parse_index(t, n_steps)).collect();
        let result = vote(&preds);
        env.record(
            "critic",
            json!({"critic": "llm", "votes": preds, "winner": result.map(|r| r.0), "parsed": result.is_some()}),
        );
        let rationale = texts.first().cloned().unwrap_or_default();
        Ok(match result {
            Some((step, share)) => Verdict {
                step,
                parsed: true,
                confidence: share,
                rationale,
                usage,
            },
            None => Verdict {
                step: None,
                parsed: false,
                confidence: 0.0,
                rationale,
                usage,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_counting() {
        assert_eq!(
            vote(&[Some(Some(2)), Some(Some(2)), Some(None)]),
            Some((Some(2), 2.0 / 3.0))
        );
        assert_eq!(vote(&[None, Some(None), None]), Some((None, 1.0 / 3.0)));
        assert_eq!(
            vote(&[None, None]),
            None,
            "unreadable critiques are no prediction"
        );
        assert_eq!(
            vote(&[Some(Some(3)), Some(Some(1))]).map(|v| v.0),
            Some(Some(1)),
            "ties go to the earlier step"
        );
        assert_eq!(
            vote(&[Some(None), Some(Some(4))]).map(|v| v.0),
            Some(Some(4)),
            "ties go to a step over none"
        );
        assert_eq!(vote(&[]), None);
    }

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
