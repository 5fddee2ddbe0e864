//! The run layer: what a strategy or a critic runs with, built one way for every caller (the
//! CLI, the evaluation harness, LEAP, a server, a library user).
//!
//! - [`Context`]: the generator model, the critic's model (the generator's unless set), the
//!   prompts, the trace, the mistakes store, the budget, the prompt style and the token limit of
//!   one attempt. Build it with [`Context::new`] and the `with_` setters.
//! - [`Env`]: the narrower view a critic gets (a model, the prompts, the trace, a deadline).
//! - [`Budget`] / [`Ledger`] / [`BudgetStop`]: caps on one solve and the running account.
//! - [`Problem`]: a plain question or a chat, with what answers may be checked against.
//! - [`Located`]: a mistake a critic located.
//! - [`Commit`] / [`Commits`]: text a step-wise strategy will not take back, reported as it
//!   goes.
//!
//! Library errors name options (`max_calls`), never command-line flags: see [`OptionError`].

mod budget;
mod calculator;
mod commit;
mod env;
mod problem;

use std::sync::Arc;
use std::time::Instant;

pub use budget::{Budget, BudgetStop, Cap, Ledger};
pub use calculator::{Calculator, MAX_SUBSTITUTIONS};
pub use commit::{Commit, Commits};
use env::record;
pub use env::Env;
pub use problem::{Check, Located, Problem, Question};

use crate::mistakes::{Sink, Store};
use crate::model::{Message, Model, ModelError, NoPrefixReuse, Request, Response};
use crate::prompt::{
    CompletionContext, Format, PrinciplesContext, PromptError, PromptStyle, Prompts, SolveContext,
};
use crate::trace::{Traced, Writer};

/// Token limit of one solution attempt unless set ([`Context::with_max_tokens`]).
pub const DEFAULT_MAX_TOKENS: u32 = 384;
/// The task tag of recorded mistakes unless set ([`Context::with_task`]).
pub const DEFAULT_TASK: &str = "solve";

/// A setting that is missing, out of range or does not fit with another. `option` is the
/// library's name for it (a field of the options struct, e.g. `samples`); front ends map it to
/// their own spelling (the CLI to `--samples`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{option}` {message}")]
pub struct OptionError {
    /// The option's name.
    pub option: String,
    /// What is wrong, worded to follow the option's name.
    pub message: String,
}

impl OptionError {
    /// `option` is wrong: `message` follows its name ("must be at least 1").
    pub fn new(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            option: option.into(),
            message: message.into(),
        }
    }
}

/// Building a request for a problem failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A template failed to render.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The problem and the settings do not fit.
    #[error(transparent)]
    Option(#[from] OptionError),
}

/// A model call made under a deadline failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The deadline passed before the call finished; the call was cancelled.
    #[error("the `deadline` passed during a model call; the call was cancelled")]
    Deadline,
}

/// What a strategy runs with. Build it with [`Context::new`] and the `with_` setters; the
/// setters may come in any order.
///
/// The model a strategy calls ([`Context::model`]) is the generator wrapped as the settings
/// say: without prefix reuse ([`Context::with_prefix_reuse`], the one place amend switches it
/// off) and recording every call in the trace ([`Context::with_trace`]). The critic's model is
/// wrapped the same way.
#[derive(Clone)]
pub struct Context {
    base: Arc<dyn Model>,
    critic_base: Option<Arc<dyn Model>>,
    model: Arc<dyn Model>,
    critic_model: Arc<dyn Model>,
    prefix_reuse: bool,
    calculator: bool,
    prompts: Arc<Prompts>,
    trace: Option<Arc<Writer>>,
    mistakes: Option<Arc<dyn Store>>,
    commits: Option<Commits>,
    token_log: bool,
    task: String,
    budget: Budget,
    style: PromptStyle,
    max_tokens: u32,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("model", self.model.id())
            .field("critic_model", self.critic_model.id())
            .field("prefix_reuse", &self.prefix_reuse)
            .field("calculator", &self.calculator)
            .field("trace", &self.trace.as_ref().map(|t| t.path()))
            .field("mistakes", &self.mistakes.is_some())
            .field("task", &self.task)
            .field("budget", &self.budget)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `model` with `prompts`: no trace, no mistakes store, no budget, chat
    /// prompting zero-shot, [`DEFAULT_MAX_TOKENS`] per attempt, prefix reuse on, the critic on
    /// the same model.
    pub fn new(model: Arc<dyn Model>, prompts: Arc<Prompts>) -> Self {
        Self {
            base: model.clone(),
            critic_base: None,
            critic_model: model.clone(),
            model,
            prefix_reuse: true,
            calculator: false,
            prompts,
            trace: None,
            mistakes: None,
            commits: None,
            token_log: false,
            task: DEFAULT_TASK.into(),
            budget: Budget::default(),
            style: PromptStyle::default(),
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }

    fn wrap(&self, m: &Arc<dyn Model>) -> Arc<dyn Model> {
        let m: Arc<dyn Model> = if self.prefix_reuse {
            m.clone()
        } else {
            Arc::new(NoPrefixReuse(m.clone()))
        };
        match &self.trace {
            Some(w) => Arc::new(Traced::new(m, w.clone())),
            None => m,
        }
    }

    fn rewrap(mut self) -> Self {
        let model = self.wrap(&self.base);
        self.model = if self.calculator {
            Arc::new(Calculator::new(model, self.trace.clone()))
        } else {
            model
        };
        let critic = self
            .critic_base
            .clone()
            .unwrap_or_else(|| self.base.clone());
        self.critic_model = self.wrap(&critic);
        self
    }

    /// Run the critics on `model` instead of the generator's model.
    pub fn with_critic_model(mut self, model: Arc<dyn Model>) -> Self {
        self.critic_base = Some(model);
        self.rewrap()
    }
    /// Record every model call and strategy event in `trace`.
    pub fn with_trace(mut self, trace: Arc<Writer>) -> Self {
        self.trace = Some(trace);
        self.rewrap()
    }
    /// Reuse the KV cache of a shared prompt prefix (default), or decode every prompt from
    /// scratch so that an answer depends only on its request (see [`NoPrefixReuse`]).
    pub fn with_prefix_reuse(mut self, on: bool) -> Self {
        self.prefix_reuse = on;
        self.rewrap()
    }
    /// Run the generator with the exact calculator in its decode loop (see [`Calculator`]):
    /// every result it computes wrong is replaced by the exact one and it goes on from there.
    /// The critics' model is left as it is. Needs assistant prefill (native or emulated).
    pub fn with_calculator(mut self, on: bool) -> Self {
        self.calculator = on;
        self.rewrap()
    }
    /// Report commit points to `commits` (step-wise strategies report each step once it is
    /// checked; the others report nothing and their answer is known only at the end).
    pub fn with_commits(mut self, commits: Commits) -> Self {
        self.commits = Some(commits);
        self
    }
    /// Report a commit point (nothing without [`Context::with_commits`]); it is also written
    /// to the trace as a `commit` event.
    pub fn commit(&self, commit: Commit) {
        self.record(
            "commit",
            serde_json::json!({"step": commit.step, "chars": commit.text.len(), "verified": commit.verified}),
        );
        if let Some(c) = &self.commits {
            c.send(commit);
        }
    }
    /// Whether the generator runs with the calculator.
    pub fn calculator(&self) -> bool {
        self.calculator
    }
    /// Record located mistakes in `store`, tagged with the task (see [`Context::with_task`]),
    /// the generator's identity and the trace's run id.
    pub fn with_mistakes(mut self, store: Arc<dyn Store>) -> Self {
        self.mistakes = Some(store);
        self
    }
    /// Also record, for every located mistake whose right continuation is known (a result
    /// written wrong), the model's prediction at each token of the right value (token records
    /// for the logit rectifier; needs a store and a generator that can teacher-force, else
    /// nothing is written). Off by default: each record costs one teacher-forced pass with
    /// hidden states.
    pub fn with_token_log(mut self, on: bool) -> Self {
        self.token_log = on;
        self
    }
    /// Whether located mistakes also get token records.
    pub fn token_log(&self) -> bool {
        self.token_log
    }
    /// The task tag of recorded mistakes ([`DEFAULT_TASK`] unless set; an evaluation sets its
    /// task, e.g. `gsm8k`).
    pub fn with_task(mut self, task: impl Into<String>) -> Self {
        self.task = task.into();
        self
    }
    /// Caps on each solve.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }
    /// How solve prompts are built.
    pub fn with_style(mut self, style: PromptStyle) -> Self {
        self.style = style;
        self
    }
    /// Token limit of one solution attempt.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The generator, wrapped as the settings say.
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }
    /// The critics' model, wrapped as the settings say (the generator unless set).
    pub fn critic_model(&self) -> &Arc<dyn Model> {
        &self.critic_model
    }
    /// Prompt templates.
    pub fn prompts(&self) -> &Arc<Prompts> {
        &self.prompts
    }
    /// The trace, if any.
    pub fn trace(&self) -> Option<&Arc<Writer>> {
        self.trace.as_ref()
    }
    /// The trace's run id, if traced.
    pub fn run_id(&self) -> Option<&str> {
        self.trace.as_ref().map(|t| t.run_id())
    }
    /// Caps on each solve.
    pub fn budget(&self) -> Budget {
        self.budget
    }
    /// How solve prompts are built.
    pub fn style(&self) -> &PromptStyle {
        &self.style
    }
    /// Token limit of one attempt.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }
    /// Whether prompts reuse a cached prefix.
    pub fn prefix_reuse(&self) -> bool {
        self.prefix_reuse
    }

    /// Where located mistakes go, tagged with the task, the generator's identity and the
    /// trace's run id; `None` without a store.
    pub fn sink(&self) -> Option<Sink> {
        self.mistakes.as_ref().map(|store| Sink {
            store: store.clone(),
            task: self.task.clone(),
            model: self.base.id().key.clone(),
            run: self.run_id().map(str::to_string),
        })
    }

    /// What the critics run with: their model, the prompts, the trace, and `deadline`.
    pub fn critic_env(&self, deadline: Option<Instant>) -> Env {
        Env::new(self.critic_model.clone(), self.prompts.clone())
            .with_trace(self.trace.clone())
            .with_deadline(deadline)
    }

    /// Record a strategy event (errors are logged, never fatal); returns where it is
    /// (`FILE#SEQ`) when it was written.
    pub fn record(&self, kind: &str, data: serde_json::Value) -> Option<String> {
        record(self.trace.as_ref(), kind, data)
    }

    /// Make one generator call on `ledger`: `Ok(None)` when a cap is already reached, or when
    /// the deadline passes during the call (which is then cancelled); otherwise the response,
    /// its usage added to the ledger. Ask [`Ledger::stop`] which cap it was.
    ///
    /// # Errors
    /// The model's error.
    pub async fn call(
        &self,
        ledger: &mut Ledger,
        req: Request,
    ) -> Result<Option<Response>, ModelError> {
        if ledger.exhausted().is_some() {
            return Ok(None);
        }
        let env =
            Env::new(self.model.clone(), self.prompts.clone()).with_deadline(ledger.deadline());
        match env.generate(req).await {
            Ok(r) => {
                ledger.add(r.usage);
                ledger.prefill = r.prefill.or(ledger.prefill);
                Ok(Some(r))
            }
            Err(CallError::Deadline) => Ok(None),
            Err(CallError::Model(e)) => Err(e),
        }
    }

    /// Make independent generator calls on `ledger`: concurrently when the budget caps no calls
    /// or tokens (a backend that decodes requests together, the local engine's slots or an
    /// API, then runs them at once), else one after the other so that the caps hold. Each
    /// answer is `None` when a cap stopped it (see [`Context::call`]); the order is `reqs`'.
    ///
    /// # Errors
    /// The first model error.
    pub async fn call_many(
        &self,
        ledger: &mut Ledger,
        reqs: Vec<Request>,
    ) -> Result<Vec<Option<Response>>, ModelError> {
        let b = self.budget;
        if reqs.len() <= 1 || b.max_calls.is_some() || b.max_tokens_total.is_some() {
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                out.push(self.call(ledger, r).await?);
            }
            return Ok(out);
        }
        if ledger.exhausted().is_some() {
            return Ok(reqs.iter().map(|_| None).collect());
        }
        let env =
            Env::new(self.model.clone(), self.prompts.clone()).with_deadline(ledger.deadline());
        let results = futures::future::join_all(reqs.into_iter().map(|r| env.generate(r))).await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(resp) => {
                    ledger.add(resp.usage);
                    ledger.prefill = resp.prefill.or(ledger.prefill);
                    out.push(Some(resp));
                }
                Err(CallError::Deadline) => out.push(None),
                Err(CallError::Model(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The request of one chain-of-thought attempt at `problem`, in the context's style: a
    /// plain question goes into the `solve` template after the principles and worked examples
    /// (or into the `completion` template); a chat is sent as it is.
    ///
    /// # Errors
    /// [`RunError::Prompt`] when a template fails to render; [`RunError::Option`] for a chat
    /// problem with completion prompting.
    pub fn solve_request(&self, problem: &Problem<'_>) -> Result<Request, RunError> {
        let question = match problem.question {
            Question::Chat(msgs) => {
                if self.style.format != Format::Chat {
                    return Err(OptionError::new(
                        "format",
                        "must be chat for a problem given as chat messages",
                    )
                    .into());
                }
                return Ok(Request::chat(msgs.to_vec()).with_max_tokens(self.max_tokens));
            }
            Question::Text(q) => q,
        };
        let req = match self.style.format {
            Format::Chat => {
                let mut msgs = Vec::new();
                if let Some(p) = self.principles_block()? {
                    msgs.push(Message::system(p.trim_end().to_string()));
                }
                for shot in self.style.shots.iter() {
                    let q = self.prompts.render(
                        "solve",
                        &SolveContext {
                            question: &shot.question,
                        },
                    )?;
                    msgs.push(Message::user(q));
                    msgs.push(Message::assistant(shot.solution.clone()));
                }
                msgs.push(Message::user(
                    self.prompts.render("solve", &SolveContext { question })?,
                ));
                Request::chat(msgs)
            }
            Format::Completion => {
                let mut text = self
                    .principles_block()?
                    .map(|p| format!("{}\n\n", p.trim_end()))
                    .unwrap_or_default();
                text.push_str(&self.prompts.render(
                    "completion",
                    &CompletionContext {
                        shots: &self.style.shots,
                        question,
                    },
                )?);
                Request::raw(text).with_stop(["\nQuestion:", "\n\n\n"])
            }
        };
        Ok(req.with_max_tokens(self.max_tokens))
    }

    /// The principles block, rendered, if the style has principles.
    fn principles_block(&self) -> Result<Option<String>, PromptError> {
        if self.style.principles.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.prompts.render(
            "principles",
            &PrinciplesContext {
                principles: &self.style.principles,
            },
        )?))
    }
}
