//! Strategies: ways of turning a problem into an answer with a model.
//!
//! A strategy is a plain library call ([`Strategy::solve`]) over a [`Context`] (the run
//! layer); the CLI, the evaluation harness and a server all call it the same way. Strategies
//! read `model.capabilities()` and never ask which backend they run on. Build one from
//! [`Options`] with [`build`].

mod backtrack;
mod baseline;
mod options;
mod recommended;
mod record;
mod rise;
mod search;
mod self_consistency;
mod stepwise;
mod wait;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use backtrack::{differs, prefix_text, Backtrack, TRIES};
pub use baseline::Baseline;
pub use options::{build, Accept, Kind, Options, ResampleUntil, Select, Unverified};
pub use recommended::{recommended, Recommended};
pub use record::{log_slip_tokens, token_records, LOG_TOP_K};
pub(crate) use record::{note_mistake, Found};
pub use rise::{window_messages, Rise, RiseMode};
pub use search::{Rank, Search, SearchOptions, STEP_TOKENS};
pub use self_consistency::{select_verified, SelfConsistency};
pub use wait::Wait;

use crate::critic::{Critic, CriticError, Submission, Verdict};
use crate::model::{ModelError, Usage};
use crate::prompt::PromptError;
use crate::run::{BudgetStop, Context, Ledger, Located, OptionError, Problem, RunError};

/// A strategy failed.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A prompt failed to render.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A critic failed.
    #[error(transparent)]
    Critic(#[from] CriticError),
    /// Options that are missing, out of range or do not fit together.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// The mistakes store refused a record.
    #[error(transparent)]
    Store(#[from] crate::mistakes::StoreError),
}

impl From<RunError> for StrategyError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Prompt(e) => Self::Prompt(e),
            RunError::Option(e) => Self::Option(e),
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

impl Attempt {
    /// An attempt with its answer extracted from `text`.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            answer: crate::answer::extract_str(&text),
            text,
        }
    }
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
    /// Tokens and calls spent (the critics' included).
    pub usage: Usage,
    /// Wall time.
    #[serde(with = "secs")]
    pub wall: Duration,
    /// Set when a budget cap cut the strategy short: which one and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_stop: Option<BudgetStop>,
    /// Mistakes a critic located along the way, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub located: Vec<Located>,
    /// How the strategy's prefills were continued, when it made any (an API model may only
    /// emulate a prefill: see `model::prefill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<crate::model::Prefill>,
    /// Verified selection (self-consistency with `select = verified`): how many samples the
    /// verifier accepted (0: it flagged every one, and the majority of all was taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivors: Option<u32>,
}

/// A way of answering a problem.
///
/// # Contract
/// - **Attempts.** `Solution::attempts` lists every attempt in order, the first being the
///   uncorrected one (a given draft, when the problem has one); `Solution::answer` is the
///   strategy's final answer, which need not be the last attempt's (a majority, say). The
///   first attempt is the greedy one-pass answer (the context's solve prompt at T = 0) unless
///   [`Strategy::first_is_greedy`] says otherwise; an evaluation then makes that pass itself,
///   so every before/after comparison is against one greedy pass.
/// - **Budgets.** Before each model call the strategy checks the context's budget through its
///   [`Ledger`] (use [`Context::call`], which also cancels a call at the deadline); when a cap
///   is reached it stops, returns its best answer so far and says which cap stopped it and
///   where in `Solution::budget_stop`. It never fails because of a budget. `Solution::usage`
///   counts every call, the critics' included.
/// - **Located mistakes.** Every mistake a critic locates is returned in `Solution::located`,
///   in order, and recorded (a `mistake` trace event and, when the context has a mistakes
///   store, a record with its outcome; see [`note_mistake`]).
/// - **Trace.** A strategy writes one `solve` event when it finishes ([`finish`]), besides the
///   `call` events of its model calls.
/// - **Errors.** A model, prompt or critic failure ends the solve with a [`StrategyError`];
///   options that do not fit the problem or the backend (a chat problem with completion
///   prompting, prefill on a backend without it) are errors naming the option.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// The strategy's name.
    fn name(&self) -> &str;
    /// Is the first attempt the greedy one-pass answer? (`false` for self-consistency, whose
    /// samples are drawn at T > 0.)
    fn first_is_greedy(&self) -> bool {
        true
    }
    /// Answer `problem`.
    ///
    /// # Errors
    /// [`StrategyError`] when the model, a prompt or a critic fails.
    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError>;
}

/// What a strategy ends with: its attempts, answer, spend, budget stop and located mistakes.
pub(crate) struct Finished {
    pub attempts: Vec<Attempt>,
    pub answer: Option<String>,
    pub budget_stop: Option<BudgetStop>,
    pub located: Vec<Located>,
    /// Strategy-specific fields of the `solve` trace event.
    pub detail: serde_json::Value,
    /// Verified selection: samples the verifier accepted.
    pub survivors: Option<u32>,
}

impl Finished {
    /// Attempts and an answer, nothing located, no strategy-specific detail.
    pub fn new(
        attempts: Vec<Attempt>,
        answer: Option<String>,
        budget_stop: Option<BudgetStop>,
    ) -> Self {
        Self {
            attempts,
            answer,
            budget_stop,
            located: Vec::new(),
            detail: serde_json::Value::Null,
            survivors: None,
        }
    }
}

/// The common end of every strategy: write the `solve` trace event and build the solution.
pub(crate) fn finish(cx: &Context, name: &str, ledger: &Ledger, f: Finished) -> Solution {
    let mut event = serde_json::json!({
        "strategy": name,
        "answers": f.attempts.iter().map(|a| a.answer.clone()).collect::<Vec<_>>(),
        "answer": f.answer,
        "budget_stop": f.budget_stop.as_ref().map(ToString::to_string),
        "located": f.located.len(),
        "prefill": ledger.prefill,
    });
    if let (Some(e), Some(d)) = (event.as_object_mut(), f.detail.as_object()) {
        e.extend(d.clone());
    }
    cx.record("solve", event);
    Solution {
        strategy: name.into(),
        answer: f.answer,
        attempts: f.attempts,
        usage: ledger.usage,
        wall: ledger.elapsed(),
        budget_stop: f.budget_stop,
        located: f.located,
        prefill: ledger.prefill,
        survivors: f.survivors,
    }
}

/// Ask `critic` about `steps` of `problem` on the context's critic model: `Ok(None)` when the
/// deadline passes during the judgement, else the verdict, its usage added to the ledger. The
/// other caps are not checked first: a critic's calls count once it returns (and an exact
/// critic makes none).
///
/// # Errors
/// The critic's failure.
pub(crate) async fn judge(
    cx: &Context,
    ledger: &mut Ledger,
    critic: &dyn Critic,
    problem: &Problem<'_>,
    steps: &[String],
    gold: Option<Option<usize>>,
) -> Result<Option<Verdict>, StrategyError> {
    let text = problem.text();
    let input = Submission {
        problem: &text,
        steps,
        gold,
    };
    match critic
        .locate(&cx.critic_env(ledger.deadline()), &input)
        .await
    {
        Ok(v) => {
            ledger.add(v.usage);
            Ok(Some(v))
        }
        Err(CriticError::Deadline) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A seed drawn from the problem's text (FNV-1a): the same problem samples the same way.
pub(crate) fn problem_seed(problem: &Problem<'_>) -> u64 {
    problem
        .text()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// The majority answer over attempts (ties → the latest).
pub fn majority_answer(attempts: &[Attempt]) -> Option<String> {
    let answers: Vec<Option<String>> = attempts.iter().map(|a| a.answer.clone()).collect();
    majority_of(&answers)
}

/// The majority of `answers` (ties → the latest; unparsed answers do not vote).
pub fn majority_of(answers: &[Option<String>]) -> Option<String> {
    crate::answer::majority(answers).map(|(_, a)| a.to_string())
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
