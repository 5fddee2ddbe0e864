//! Critics: given a problem and the steps of a solution, find the first wrong step.
//!
//! A critic returns a [`Verdict`]: the index of the first wrong step or none, whether its
//! output could be read at all, a confidence and a rationale. An unparseable critic output is
//! "no prediction" (`parsed = false`), never a guess. Implementations: [`Llm`] (the
//! ProcessBench-style critique prompt, in a fresh context, optionally with majority voting),
//! [`LlmStep`] (one yes/no question per step), [`Arith`] (an exact arithmetic verifier),
//! [`Gold`] (the dataset's label) and [`Chain`] (several in order).

mod arith;
mod llm;
mod step;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use arith::{check as check_arith, eval as eval_arith, first_false, Arith, Claim};
pub use llm::{vote, Llm};
pub use step::{yes_no, Chain, LlmStep};

use crate::strategy::{Context, StrategyError};

/// What a critic is shown.
#[derive(Debug, Clone, Copy)]
pub struct Critique<'a> {
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
}

/// Finds the first wrong step of a solution.
#[async_trait]
pub trait Critic: Send + Sync {
    /// The critic's name.
    fn name(&self) -> &str;
    /// Judge `input`.
    ///
    /// # Errors
    /// [`StrategyError`] when the model or a prompt fails (an unreadable answer is not an error).
    async fn locate(&self, cx: &Context, input: &Critique<'_>) -> Result<Verdict, StrategyError>;
}

/// The oracle: the dataset's own label.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gold;

#[async_trait]
impl Critic for Gold {
    fn name(&self) -> &str {
        "gold"
    }

    async fn locate(&self, _cx: &Context, input: &Critique<'_>) -> Result<Verdict, StrategyError> {
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

/// The critic registered under `name`, with one critique per judgement.
///
/// # Errors
/// [`StrategyError::UnknownCritic`].
pub fn by_name(name: &str) -> Result<Box<dyn Critic>, StrategyError> {
    build(name, 1)
}

/// The critic a spec names: `gold`, `arith`, `llm` (majority over `votes` critiques),
/// `llm-step`, or `chain:A,B,...` (those critics in order).
///
/// # Errors
/// [`StrategyError::UnknownCritic`].
pub fn build(spec: &str, votes: u32) -> Result<Box<dyn Critic>, StrategyError> {
    if let Some(list) = spec.strip_prefix("chain:") {
        let critics = list
            .split(',')
            .map(|n| build(n.trim(), votes))
            .collect::<Result<Vec<_>, _>>()?;
        if critics.is_empty() {
            return Err(StrategyError::UnknownCritic(spec.to_string()));
        }
        return Ok(Box::new(Chain {
            critics,
            name: spec.to_string(),
        }));
    }
    match spec {
        "gold" => Ok(Box::new(Gold)),
        "llm" => Ok(Box::new(Llm {
            votes: votes.max(1),
            ..Llm::default()
        })),
        "llm-step" => Ok(Box::new(LlmStep)),
        "arith" => Ok(Box::new(Arith)),
        other => Err(StrategyError::UnknownCritic(other.to_string())),
    }
}
