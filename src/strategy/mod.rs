//! Strategies: ways of turning a question into an answer with a [`Model`].
//!
//! A strategy is a plain library call ([`Strategy::solve`]) over a [`Context`]; the CLI, the
//! evaluation harness and a future proxy all call it the same way. Strategies read
//! `model.capabilities()` and never ask which backend they run on.

mod backtrack;
mod baseline;
mod found;
mod rise;
mod sc;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use backtrack::{differs, prefix_text, Backtrack};
pub use baseline::Baseline;
pub(crate) use found::{note_mistake, Found};
pub use rise::{Rise, RiseMode};
pub use sc::SelfConsistency;
pub use wait::Wait;

use crate::model::{Message, Model, ModelError, Request, Usage};
use crate::prompt::{CompletionContext, PromptError, Prompts, SolveContext};
use crate::trace::Writer;

/// A strategy failed.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A prompt failed to render.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// No strategy by that name.
    #[error(
        "unknown strategy {0:?}; available: baseline, self-consistency, rise, wait, backtrack"
    )]
    Unknown(String),
    /// Strategy options that do not fit together.
    #[error("{0}")]
    Options(String),
    /// No critic by that name.
    #[error("unknown critic {0:?}; available: llm, llm-step, arith, gold, chain:A,B")]
    UnknownCritic(String),
}

/// What a strategy runs with.
#[derive(Clone)]
pub struct Context {
    /// The model (usually wrapped in [`crate::trace::Traced`]).
    pub model: Arc<dyn Model>,
    /// Prompt templates.
    pub prompts: Arc<Prompts>,
    /// Where strategy events go, if anywhere.
    pub trace: Option<Arc<Writer>>,
    /// Token limit of one solution attempt.
    pub max_tokens: u32,
    /// How solve prompts are laid out (chat or plain completion, worked examples).
    pub style: PromptStyle,
    /// Caps on what one `solve` may spend.
    pub budget: Budget,
    /// Where located mistakes are recorded, if anywhere.
    pub log: Option<crate::log::Sink>,
}

/// Caps on one `solve` call. Infrastructure retries do not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Most tokens (decoded prompt + generated) the whole strategy may spend.
    pub max_tokens_total: Option<u64>,
    /// Most model calls the whole strategy may make.
    pub max_calls: Option<u64>,
}

/// Running spend against a [`Budget`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ledger {
    budget: Budget,
    /// Spent so far.
    pub usage: Usage,
}

impl Ledger {
    /// A ledger for `budget`.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            usage: Usage::default(),
        }
    }
    /// Record a call's usage.
    pub fn add(&mut self, u: Usage) {
        self.usage += u;
    }
    /// Tokens spent so far (decoded prompt + generated).
    pub fn tokens(&self) -> u64 {
        self.usage.decoded_prompt_tokens() + self.usage.generated_tokens
    }
    /// Why another call is not allowed, if it is not.
    pub fn exhausted(&self) -> Option<String> {
        if let Some(max) = self.budget.max_calls {
            if self.usage.calls >= max {
                return Some(format!(
                    "--max-calls {max} reached after {} calls",
                    self.usage.calls
                ));
            }
        }
        if let Some(max) = self.budget.max_tokens_total {
            if self.tokens() >= max {
                return Some(format!(
                    "--max-tokens-total {max} reached ({} tokens spent)",
                    self.tokens()
                ));
            }
        }
        None
    }
}

/// A question, and what a verifier may check answers against.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The question.
    pub question: &'a str,
    /// The gold answer, when known (evaluation): oracle strategies may stop on it.
    pub gold: Option<&'a str>,
    /// A given first attempt, as steps (BIG-Bench Mistake traces): strategies that correct
    /// an attempt start from it instead of generating one.
    pub draft: Option<&'a [String]>,
    /// The label of the draft's first wrong step, when known (`Some(None)` = no mistake);
    /// only the `gold` critic reads it.
    pub gold_step: Option<Option<usize>>,
    /// The task's own grader of an attempt's text, when the answer is not a number (BIG-Bench
    /// Mistake); without it an attempt is right when its number equals `gold`.
    pub check: Option<Check<'a>>,
}

/// A grader: is this attempt's text right?
#[derive(Clone, Copy)]
pub struct Check<'a>(pub &'a (dyn Fn(&str) -> bool + Send + Sync));

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check(..)")
    }
}

impl<'a> Problem<'a> {
    /// A problem with no known answer.
    pub fn new(question: &'a str) -> Self {
        Self {
            question,
            gold: None,
            draft: None,
            gold_step: None,
            check: None,
        }
    }

    /// Is `text` a right attempt? `None` when there is nothing to judge it by.
    pub fn right(&self, text: &str) -> Option<bool> {
        if let Some(c) = self.check {
            return Some((c.0)(text));
        }
        let gold = self.gold?;
        Some(crate::answer::extract_str(text).is_some_and(|a| crate::answer::same_number(&a, gold)))
    }
}

/// Settings of the strategies, as the CLI and the eval config carry them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Samples for self-consistency.
    pub samples: u32,
    /// Sampling temperature for self-consistency.
    pub temperature: f32,
    /// Turns for RISE.
    pub turns: usize,
    /// Previous attempts RISE keeps in the conversation.
    pub window: usize,
    /// RISE mode.
    pub rise_mode: RiseMode,
    /// Critic for RISE critic mode (and oracle mode without a gold answer).
    pub critic: Option<String>,
    /// Budget.
    pub budget: Budget,
    /// Backtracking: most backtracks per solve.
    #[serde(default = "one")]
    pub max_backtracks: usize,
    /// Backtracking: resample until the critic accepts the step, not just until it differs.
    #[serde(default)]
    pub until_accepted: bool,
    /// Backtracking: keep a revision only when this verifier does not flag it.
    #[serde(default)]
    pub verifier: Option<String>,
    /// Critiques an `llm` critic votes over.
    #[serde(default = "one_u32")]
    pub critic_votes: u32,
}

fn one_u32() -> u32 {
    1
}

fn one() -> usize {
    1
}

impl Default for Options {
    fn default() -> Self {
        Self {
            samples: 5,
            temperature: 0.7,
            turns: 5,
            window: 2,
            rise_mode: RiseMode::Majority,
            critic: None,
            budget: Budget::default(),
            max_backtracks: 1,
            until_accepted: false,
            verifier: None,
            critic_votes: 1,
        }
    }
}

/// Chat or plain-completion prompting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Chat messages through the model's chat template.
    #[default]
    Chat,
    /// One plain-text prompt (base models).
    Completion,
}

/// A worked example shown before the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// The example's question.
    pub question: String,
    /// Its worked solution, ending in "The answer is N."
    pub solution: String,
}

/// How solve prompts are built.
#[derive(Debug, Clone, Default)]
pub struct PromptStyle {
    /// Chat or completion.
    pub format: Format,
    /// Worked examples (zero-shot when empty).
    pub shots: Arc<Vec<Shot>>,
    /// Principles put before the worked examples (LEAP), none when empty.
    pub principles: Arc<Vec<String>>,
}

/// The principles block of `cx`, rendered, if it has principles.
fn principles_block(cx: &Context) -> Result<Option<String>, StrategyError> {
    if cx.style.principles.is_empty() {
        return Ok(None);
    }
    Ok(Some(cx.prompts.render(
        "principles",
        &crate::prompt::PrinciplesContext {
            principles: &cx.style.principles,
        },
    )?))
}

/// The request of one chain-of-thought attempt at `question`, in the context's style.
///
/// # Errors
/// [`StrategyError::Prompt`] when a template fails to render.
pub fn solve_request(cx: &Context, question: &str) -> Result<Request, StrategyError> {
    let req = match cx.style.format {
        Format::Chat => {
            let mut msgs = Vec::new();
            if let Some(p) = principles_block(cx)? {
                msgs.push(Message::system(p.trim_end().to_string()));
            }
            for shot in cx.style.shots.iter() {
                let q = cx.prompts.render(
                    "solve",
                    &SolveContext {
                        question: &shot.question,
                    },
                )?;
                msgs.push(Message::user(q));
                msgs.push(Message::assistant(shot.solution.clone()));
            }
            msgs.push(Message::user(
                cx.prompts.render("solve", &SolveContext { question })?,
            ));
            Request::chat(msgs)
        }
        Format::Completion => {
            let mut text = principles_block(cx)?
                .map(|p| format!("{}\n\n", p.trim_end()))
                .unwrap_or_default();
            text.push_str(&cx.prompts.render(
                "completion",
                &CompletionContext {
                    shots: &cx.style.shots,
                    question,
                },
            )?);
            Request::raw(text).with_stop(["\nQuestion:", "\n\n\n"])
        }
    };
    Ok(req.with_max_tokens(cx.max_tokens))
}

impl Context {
    /// Record a strategy event (errors are logged, never fatal); returns where it is
    /// (`FILE#SEQ`) when it was written.
    pub fn record(&self, kind: &str, data: serde_json::Value) -> Option<String> {
        let t = self.trace.as_ref()?;
        match t.write(kind, data) {
            Ok(seq) => Some(format!("{}#{seq}", t.path().display())),
            Err(e) => {
                tracing::error!(error = %e, "could not write the trace");
                None
            }
        }
    }
}

/// One attempt at the problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The model's full text.
    pub text: String,
    /// The extracted answer, if any.
    pub answer: Option<String>,
}

/// A strategy's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Strategy name.
    pub strategy: String,
    /// Final answer (canonical number), if one was found.
    pub answer: Option<String>,
    /// Attempts in order; the first is the uncorrected one.
    pub attempts: Vec<Attempt>,
    /// Tokens and calls spent.
    pub usage: Usage,
    /// Wall time.
    #[serde(with = "secs")]
    pub wall: Duration,
    /// Set when a budget cut the strategy short: which one and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_stop: Option<String>,
    /// Mistakes a critic located along the way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub located: Vec<Located>,
}

/// A mistake a critic located.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Located {
    /// Index of the first wrong step.
    pub step: usize,
    /// The step as written.
    pub text: String,
    /// Which critic found it.
    pub critic: String,
    /// Its rationale.
    pub rationale: String,
}

/// A way of answering a question.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// The strategy's name.
    fn name(&self) -> &str;
    /// Answer `problem`.
    ///
    /// # Errors
    /// [`StrategyError`] when the model or a prompt fails.
    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError>;
}

/// The strategy registered under `name`, configured by `opts`.
///
/// # Errors
/// [`StrategyError::Unknown`], or [`StrategyError::UnknownCritic`] / [`StrategyError::Options`]
/// for options that do not fit.
pub fn by_name(name: &str, opts: &Options) -> Result<Box<dyn Strategy>, StrategyError> {
    match name {
        "baseline" => Ok(Box::new(Baseline)),
        "self-consistency" | "sc" => {
            if opts.samples == 0 {
                return Err(StrategyError::Options(
                    "--samples must be at least 1".into(),
                ));
            }
            Ok(Box::new(SelfConsistency {
                samples: opts.samples,
                temperature: opts.temperature,
            }))
        }
        "wait" => Ok(Box::new(Wait)),
        "backtrack" => {
            let name = opts.critic.as_deref().ok_or_else(|| {
                StrategyError::Options("backtrack needs --critic NAME (gold, arith or llm)".into())
            })?;
            Ok(Box::new(Backtrack {
                critic: crate::critic::build(name, opts.critic_votes)?,
                max_backtracks: opts.max_backtracks.max(1),
                until_accepted: opts.until_accepted,
                verifier: opts
                    .verifier
                    .as_deref()
                    .map(|c| crate::critic::build(c, opts.critic_votes))
                    .transpose()?,
            }))
        }
        "rise" => {
            let critic = opts
                .critic
                .as_deref()
                .map(|c| crate::critic::build(c, opts.critic_votes))
                .transpose()?;
            if opts.rise_mode == RiseMode::Critic && critic.is_none() {
                return Err(StrategyError::Options(
                    "--rise-mode critic needs --critic NAME (e.g. arith)".into(),
                ));
            }
            if opts.turns == 0 {
                return Err(StrategyError::Options("--turns must be at least 1".into()));
            }
            Ok(Box::new(Rise {
                turns: opts.turns,
                window: opts.window,
                mode: opts.rise_mode,
                critic,
            }))
        }
        other => Err(StrategyError::Unknown(other.to_string())),
    }
}

/// The answer texts of attempts, and the majority over them (ties → latest).
pub fn majority_answer(attempts: &[Attempt]) -> Option<String> {
    let answers: Vec<Option<String>> = attempts.iter().map(|a| a.answer.clone()).collect();
    crate::eval::metrics::majority(&answers).map(|(_, a)| a.to_string())
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}
