//! Strategies: ways of turning a question into an answer with a [`Model`].
//!
//! A strategy is a plain library call ([`Strategy::solve`]) over a [`Context`]; the CLI, the
//! evaluation harness and a future proxy all call it the same way. Strategies read
//! `model.capabilities()` and never ask which backend they run on.

mod baseline;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use baseline::Baseline;

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
    #[error("unknown strategy {0:?}; available: baseline")]
    Unknown(String),
    /// No critic by that name.
    #[error("unknown critic {0:?}; available: llm, arith, gold")]
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
}

/// The request of one chain-of-thought attempt at `question`, in the context's style.
///
/// # Errors
/// [`StrategyError::Prompt`] when a template fails to render.
pub fn solve_request(cx: &Context, question: &str) -> Result<Request, StrategyError> {
    let req = match cx.style.format {
        Format::Chat => {
            let mut msgs = Vec::new();
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
            let text = cx.prompts.render(
                "completion",
                &CompletionContext {
                    shots: &cx.style.shots,
                    question,
                },
            )?;
            Request::raw(text).with_stop(["\nQuestion:", "\n\n\n"])
        }
    };
    Ok(req.with_max_tokens(cx.max_tokens))
}

impl Context {
    /// Record a strategy event (errors are logged, never fatal).
    pub fn record(&self, kind: &str, data: serde_json::Value) {
        if let Some(t) = &self.trace {
            if let Err(e) = t.write(kind, data) {
                tracing::error!(error = %e, "could not write the trace");
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
}

/// A way of answering a question.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// The strategy's name.
    fn name(&self) -> &str;
    /// Answer `question`.
    ///
    /// # Errors
    /// [`StrategyError`] when the model or a prompt fails.
    async fn solve(&self, cx: &Context, question: &str) -> Result<Solution, StrategyError>;
}

/// The strategy registered under `name`.
///
/// # Errors
/// [`StrategyError::Unknown`].
pub fn by_name(name: &str) -> Result<Box<dyn Strategy>, StrategyError> {
    match name {
        "baseline" => Ok(Box::new(Baseline)),
        other => Err(StrategyError::Unknown(other.to_string())),
    }
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
