//! Critics: given a problem and the steps of a solution, find the first wrong step.
//!
//! A critic runs with an [`Env`] (a model, the prompts, the trace, a deadline) that need not be
//! the generator's: `Context::with_critic_model` puts the critics of a strategy on another
//! model. It returns a [`Verdict`]: the index of the first wrong step or none, whether its
//! output could be read at all, a confidence and a rationale. An unparseable critic output is
//! "no prediction" (`parsed = false`), never a guess. Implementations: [`Llm`] (the
//! ProcessBench-style critique prompt, in a fresh context, optionally with majority voting),
//! [`LlmStep`] (one yes/no question per step), [`Arith`] (an exact arithmetic verifier),
//! [`Ground`] (every number used is given, computed earlier or a common constant),
//! [`Derive`] (the answer is derived from every quantity of the problem, each used once),
//! [`Gold`] (the dataset's label) and [`Chain`] (several in order).

mod arith;
mod derive;
mod ground;
mod llm;
mod step;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::calc::eval as eval_arith;
pub use arith::{check as check_arith, first_false, Arith, Claim};
pub use derive::{first_underived, Derive};
pub use ground::{first_ungrounded, given, Ground, CONSTANTS};
pub use llm::{vote, Llm};
pub use step::{yes_no, Chain, LlmStep};

use crate::model::ModelError;
use crate::prompt::PromptError;
use crate::run::{CallError, Env};

/// A critic failed (an unreadable critic answer is not a failure: it is "no prediction").
#[derive(Debug, thiserror::Error)]
pub enum CriticError {
    /// The critic's model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A prompt failed to render.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The deadline passed during one of the critic's calls.
    #[error("the `deadline` passed while the critic was judging")]
    Deadline,
    /// A critic spec that names no critic.
    #[error(
        "unknown critic {0:?}; available: llm, llm-step, arith, ground, derive, gold, chain:A,B"
    )]
    Unknown(String),
}

impl From<CallError> for CriticError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Model(e) => Self::Model(e),
            CallError::Deadline => Self::Deadline,
        }
    }
}

/// What a critic is shown: a problem and the steps of a solution to it.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The problem statement.
    pub problem: &'a str,
    /// The solution's steps, in order.
    pub steps: &'a [String],
    /// The dataset's label, when known (only the `gold` critic reads it).
    pub gold: Option<Option<usize>>,
}

/// A critic's judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Index of the first wrong step; `None` when every step is judged right.
    pub step: Option<usize>,
    /// The critic's output could be read; when false, `step` carries no prediction.
    pub parsed: bool,
    /// Confidence in [0, 1] (the share of votes for the verdict, 1 for exact critics).
    pub confidence: f32,
    /// Why, in the critic's words.
    pub rationale: String,
    /// Tokens and calls the critic spent.
    #[serde(default)]
    pub usage: crate::model::Usage,
}

impl Verdict {
    /// The prediction as ProcessBench writes it: the step, -1 for none, `None` if unparsed.
    pub fn as_label(&self) -> Option<i64> {
        if !self.parsed {
            return None;
        }
        Some(self.step.map(|s| s as i64).unwrap_or(-1))
    }
    /// Did the critic read the solution and find no mistake?
    pub fn accepts(&self) -> bool {
        self.parsed && self.step.is_none()
    }
    /// The located step, when the critic read the solution and found one.
    pub fn located(&self) -> Option<usize> {
        self.step.filter(|_| self.parsed)
    }
}

/// Finds the first wrong step of a solution.
#[async_trait]
pub trait Critic: Send + Sync {
    /// The critic's name (its spec, e.g. `arith` or `chain:arith,llm`).
    fn name(&self) -> &str;
    /// Judge `input`, calling `env`'s model when the critic needs one.
    ///
    /// # Errors
    /// [`CriticError`] when the model or a prompt fails, or the deadline passes (an unreadable
    /// answer is not an error).
    async fn locate(&self, env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError>;
}

/// The oracle: the dataset's own label.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gold;

#[async_trait]
impl Critic for Gold {
    fn name(&self) -> &str {
        "gold"
    }

    async fn locate(&self, _env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        Ok(match input.gold {
            Some(step) => Verdict {
                step,
                parsed: true,
                confidence: 1.0,
                rationale: "dataset label".into(),
                usage: Default::default(),
            },
            None => Verdict {
                step: None,
                parsed: false,
                confidence: 0.0,
                rationale: "this item has no gold label".into(),
                usage: Default::default(),
            },
        })
    }
}

/// A critic, named: `gold`, `arith`, `ground`, `derive`, `llm`, `llm-step`, or `chain:A,B,...` (those critics in
/// order). Parse it once (`"chain:arith,llm".parse::<critic::Spec>()`); it prints and
/// serialises as the same text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// [`Gold`].
    Gold,
    /// [`Arith`].
    Arith,
    /// [`Ground`].
    Ground,
    /// [`Derive`].
    Derive,
    /// [`Llm`].
    Llm,
    /// [`LlmStep`].
    LlmStep,
    /// [`Chain`] of these.
    Chain(Vec<Spec>),
}

impl std::str::FromStr for Spec {
    type Err = CriticError;
    fn from_str(s: &str) -> Result<Self, CriticError> {
        let s = s.trim();
        if let Some(list) = s.strip_prefix("chain:") {
            let parts = list
                .split(',')
                .map(|n| n.trim().parse::<Spec>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| CriticError::Unknown(s.to_string()))?;
            if parts.is_empty() || parts.iter().any(|p| matches!(p, Spec::Chain(_))) {
                return Err(CriticError::Unknown(s.to_string()));
            }
            return Ok(Spec::Chain(parts));
        }
        match s {
            "gold" => Ok(Spec::Gold),
            "arith" => Ok(Spec::Arith),
            "ground" => Ok(Spec::Ground),
            "derive" => Ok(Spec::Derive),
            "llm" => Ok(Spec::Llm),
            "llm-step" => Ok(Spec::LlmStep),
            other => Err(CriticError::Unknown(other.to_string())),
        }
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Gold => f.write_str("gold"),
            Spec::Arith => f.write_str("arith"),
            Spec::Ground => f.write_str("ground"),
            Spec::Derive => f.write_str("derive"),
            Spec::Llm => f.write_str("llm"),
            Spec::LlmStep => f.write_str("llm-step"),
            Spec::Chain(parts) => {
                let names: Vec<String> = parts.iter().map(ToString::to_string).collect();
                write!(f, "chain:{}", names.join(","))
            }
        }
    }
}

impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The first wrong step of `steps` by the critic `spec`, judged without a model: `None` when
/// `spec` needs a model or a label (`llm`, `llm-step`, `gold`), else the located step, if any.
/// A chain decides as [`Chain`] does: the first of its critics that locates a mistake.
pub fn locate_without_model(spec: &Spec, problem: &str, steps: &[String]) -> Option<Option<usize>> {
    match spec {
        Spec::Arith => Some(first_false(steps).map(|(i, _)| i)),
        Spec::Ground => Some(first_ungrounded(problem, steps).map(|(i, _, _)| i)),
        Spec::Derive => Some(first_underived(problem, steps).map(|(i, _)| i)),
        Spec::Chain(parts) => {
            for p in parts {
                if let Some(i) = locate_without_model(p, problem, steps)? {
                    return Some(Some(i));
                }
            }
            Some(None)
        }
        Spec::Gold | Spec::Llm | Spec::LlmStep => None,
    }
}

/// The critic `spec` names; an `llm` critic draws `votes` critiques and takes the majority
/// (1: one greedy critique).
pub fn build(spec: &Spec, votes: u32) -> Box<dyn Critic> {
    match spec {
        Spec::Gold => Box::new(Gold),
        Spec::Arith => Box::new(Arith),
        Spec::Ground => Box::new(Ground),
        Spec::Derive => Box::new(Derive),
        Spec::Llm => Box::new(Llm {
            votes: votes.max(1),
            ..Llm::default()
        }),
        Spec::LlmStep => Box::new(LlmStep),
        Spec::Chain(parts) => Box::new(Chain {
            critics: parts.iter().map(|p| build(p, votes)).collect(),
            name: spec.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_print_and_build() {
        for s in [
            "gold",
            "arith",
            "ground",
            "derive",
            "llm",
            "llm-step",
            "chain:arith,ground",
            "chain:arith,derive",
        ] {
            let spec: Result<Spec, _> = s.parse();
            assert_eq!(
                spec.as_ref().map(ToString::to_string).ok().as_deref(),
                Some(s)
            );
            if let Ok(spec) = spec {
                assert_eq!(build(&spec, 3).name(), s);
            }
        }
        for bad in [
            "",
            "nope",
            "chain:",
            "chain:arith,nope",
            "chain:chain:arith",
        ] {
            let e = bad
                .parse::<Spec>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("unknown critic"), "{bad:?}: {e}");
        }
        let json =
            serde_json::to_string(&Spec::Chain(vec![Spec::Arith, Spec::Gold])).unwrap_or_default();
        assert_eq!(json, "\"chain:arith,gold\"");
    }
}
