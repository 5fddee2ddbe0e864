//! The model layer: one [`Model`] trait that every strategy is written against.
//!
//! A [`Request`] carries chat messages or a raw prompt, an optional assistant prefill, sampling
//! settings, stop strings, a seed, a sample count and an optional [`LogitsHook`]. A
//! [`Response`] carries every sample's text, its finish reason, token usage (including tokens
//! reused from a KV cache and infrastructure retries) and the wall time.
//!
//! Backends say what they can do through [`Capabilities`]; strategies read those and never ask
//! which backend they have. Backends: [`llama`] (in-process llama.cpp, feature `local`) and
//! [`openai`] (any OpenAI-compatible HTTP API).

mod capabilities;
mod error;
mod grammar;
mod hooked;
mod id;
mod kv;
pub(crate) mod lanes;
#[cfg(feature = "local")]
pub mod llama;
mod no_reuse;
pub mod openai;
pub mod prefill;
mod retry;
pub mod score;
pub mod shipped;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub(crate) use capabilities::check_supported;
pub use capabilities::Capabilities;
pub use error::ModelError;
pub use grammar::Grammar;
pub use hooked::WithHook;
pub use id::{fingerprint, ModelId};
pub use kv::{KvLayout, KV_SPLIT_BUDGET};
pub use no_reuse::NoPrefixReuse;
pub use prefill::{Prefill, PrefillMode};
pub use retry::RetryPolicy;
pub use score::{ScoreRequest, Scored, ScoredToken};
pub use spec::{LoadOptions, Spec};

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

impl Role {
    /// The role's name as chat templates and APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum Input {
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<Message>),
    /// A plain-completion prompt, used as it is (base models).
    Raw(String),
}

/// Per-token view handed to a [`LogitsHook`] before the token is sampled.
pub struct TokenStep<'a> {
    /// Which sample (0..n) this token belongs to.
    pub sample: usize,
    /// Index of this token among the sample's generated tokens.
    pub index: usize,
    /// The model's final hidden state at this position, when the backend exposes it.
    pub hidden: Option<&'a [f32]>,
    /// The text this sample has generated so far in this request (not the prompt, and not an
    /// assistant prefill the request continues), so a hook can act on what is being written.
    pub text: &'a str,
    /// The raw logits over the vocabulary; a hook may change them in place.
    pub logits: &'a mut [f32],
}

/// Reads and adjusts the logits of every generated token before sampling.
///
/// This is where the logit rectifier plugs in (p̃ = p̂ + λ·f_C). Implementations must be cheap:
/// the hook runs once per generated token on the decode thread.
pub trait LogitsHook: Send + Sync {
    /// Inspect the step and adjust `step.logits` in place.
    fn apply(&self, step: &mut TokenStep<'_>);

    /// Whether the hook reads [`TokenStep::hidden`]. Computing hidden states makes llama.cpp
    /// output every prompt token, which slows prompt decoding; a hook that only adjusts logits
    /// should return `false`.
    fn wants_hidden(&self) -> bool {
        true
    }
}

/// A model request. Build one with [`Request::chat`] or [`Request::raw`] and the `with_` setters.
#[derive(Clone)]
pub struct Request {
    /// Chat messages or a raw prompt.
    pub input: Input,
    /// Text the assistant's answer starts with; the model continues it.
    pub prefill: Option<String>,
    /// Sampling temperature; `0` is greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (1.0 = off).
    pub top_p: f32,
    /// Most tokens to generate per sample.
    pub max_tokens: u32,
    /// Generation stops before any of these strings; the stop string is not returned.
    pub stop: Vec<String>,
    /// Sampling seed (same seed, same text). `None` picks one.
    pub seed: Option<u64>,
    /// Number of samples of this one prompt.
    pub n: u32,
    /// Return per-token log-probabilities.
    pub logprobs: bool,
    /// Reuse a cached prefix of this prompt when the backend can (default on).
    pub reuse_prefix: bool,
    /// Hook that reads hidden states and adjusts logits (backends with
    /// [`Capabilities::logits_hidden`] only).
    pub hook: Option<Arc<dyn LogitsHook>>,
    /// Constrain every sample to this grammar (backends with [`Capabilities::gbnf`] or
    /// [`Capabilities::json_schema`]; see [`Grammar`]).
    pub grammar: Option<Grammar>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("input", &self.input)
            .field("prefill", &self.prefill)
            .field("temperature", &self.temperature)
            .field("top_p", &self.top_p)
            .field("max_tokens", &self.max_tokens)
            .field("stop", &self.stop)
            .field("seed", &self.seed)
            .field("n", &self.n)
            .field("logprobs", &self.logprobs)
            .field("reuse_prefix", &self.reuse_prefix)
            .field("hook", &self.hook.is_some())
            .field("grammar", &self.grammar)
            .finish()
    }
}

impl Request {
    fn new(input: Input) -> Self {
        Self {
            input,
            prefill: None,
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 256,
            stop: Vec::new(),
            seed: None,
            n: 1,
            logprobs: false,
            reuse_prefix: true,
            hook: None,
            grammar: None,
        }
    }
    /// A greedy request over chat messages.
    pub fn chat(messages: Vec<Message>) -> Self {
        Self::new(Input::Chat(messages))
    }
    /// A greedy request over a raw prompt.
    pub fn raw(prompt: impl Into<String>) -> Self {
        Self::new(Input::Raw(prompt.into()))
    }
    /// Set the assistant prefill.
    pub fn with_prefill(mut self, prefill: impl Into<String>) -> Self {
        self.prefill = Some(prefill.into());
        self
    }
    /// Set temperature and top-p.
    pub fn with_sampling(mut self, temperature: f32, top_p: f32) -> Self {
        self.temperature = temperature;
        self.top_p = top_p;
        self
    }
    /// Set the token limit per sample.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }
    /// Add stop strings.
    pub fn with_stop<I, S>(mut self, stop: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop.extend(stop.into_iter().map(Into::into));
        self
    }
    /// Constrain the samples to a grammar.
    pub fn with_grammar(mut self, grammar: Grammar) -> Self {
        self.grammar = Some(grammar);
        self
    }
    /// Set the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Set the number of samples.
    pub fn with_n(mut self, n: u32) -> Self {
        self.n = n;
        self
    }
    /// Ask for per-token log-probabilities.
    pub fn with_logprobs(mut self, on: bool) -> Self {
        self.logprobs = on;
        self
    }
    /// Allow or forbid reuse of a cached prompt prefix.
    pub fn with_prefix_reuse(mut self, on: bool) -> Self {
        self.reuse_prefix = on;
        self
    }
    /// Install a logits hook.
    pub fn with_hook(mut self, hook: Arc<dyn LogitsHook>) -> Self {
        self.hook = Some(hook);
        self
    }
    /// A short JSON summary of the request for traces (no hook, long texts kept whole).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "input": self.input,
            "prefill": self.prefill,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "n": self.n,
            "logprobs": self.logprobs,
            "reuse_prefix": self.reuse_prefix,
            "hook": self.hook.is_some(),
            "grammar": self.grammar,
        })
    }
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Eos,
    /// A stop string was produced (and cut off).
    Stop,
    /// The token limit was reached.
    Length,
    /// The backend gave another reason (content filter, tool call...).
    Other,
}

/// The log-probability of one generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Natural-log probability under the (hook-adjusted) distribution.
    pub logprob: f32,
}

/// One sample of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Generated text (without the prefill and without the stop string).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Tokens generated for this sample.
    pub tokens: u32,
    /// Per-token log-probabilities, when asked for and available.
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// Token and call accounting. Adds up across calls with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, including those reused from the cache.
    pub prompt_tokens: u64,
    /// Tokens generated across all samples.
    pub generated_tokens: u64,
    /// Prompt tokens not decoded again because a cached prefix was reused.
    pub reused_tokens: u64,
    /// Model calls made.
    pub calls: u64,
    /// Infrastructure retries (429/5xx/connection/timeout). Never a correction attempt.
    pub infra_retries: u64,
}

impl Usage {
    /// Prompt tokens that were actually decoded.
    pub fn decoded_prompt_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_sub(self.reused_tokens)
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.generated_tokens += o.generated_tokens;
        self.reused_tokens += o.reused_tokens;
        self.calls += o.calls;
        self.infra_retries += o.infra_retries;
    }
}

/// A model's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// One entry per requested sample.
    pub samples: Vec<Sample>,
    /// Token accounting for this call.
    pub usage: Usage,
    /// Wall time of the call, including queueing and retries.
    #[serde(with = "duration_ms")]
    pub wall: Duration,
    /// How the request's prefill was continued, when it had one (see [`prefill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<Prefill>,
}

impl Response {
    /// The first sample's text (empty when there is none).
    pub fn text(&self) -> &str {
        self.samples.first().map(|s| s.text.as_str()).unwrap_or("")
    }
}

/// A language model: local or remote, one interface.
///
/// # Contract
/// - **Identity.** [`Model::id`] names the model by what it is (a GGUF file's content, an API
///   model at its URL), not by how it was asked for; wrappers ([`NoPrefixReuse`],
///   `trace::Traced`) return the inner model's identity.
/// - **Samples.** `generate` returns exactly `request.n` samples, or an error; never fewer.
///   A backend that cannot draw `n` in one call says so in
///   [`Capabilities::max_samples_per_call`] and refuses larger `n` with
///   [`ModelError::InvalidRequest`]; callers split (see [`Capabilities::samples_per_call`]).
///   With `temperature = 0` a sample is the greedy continuation; the same `seed` with the
///   same request and the same earlier calls gives the same text.
/// - **Stop strings.** Generation of a sample ends before the first stop string; the stop
///   string is not in [`Sample::text`] and [`Sample::finish`] is [`FinishReason::Stop`].
/// - **Prefill.** With [`Request::prefill`], the assistant's message starts with the prefill
///   and the sample's text is only what follows it; [`Response::prefill`] says how it was
///   continued (an API may only emulate it: see [`prefill`]). Backends without
///   [`Capabilities::assistant_prefill`] refuse such a request.
/// - **Prefix reuse.** A backend with [`Capabilities::kv_prefix_reuse`] decodes only the
///   tokens after the longest prefix shared with what it holds, and reports them in
///   [`Usage::reused_tokens`]. This is not bit-exact: llama.cpp's arithmetic depends on how a
///   prompt is split into decode batches, so a greedy near-tie can come out the other way after
///   reuse. [`Request::reuse_prefix`] = false (or [`NoPrefixReuse`]) decodes from scratch.
/// - **Cancellation.** Dropping the future returned by `generate` cancels the call: a local
///   model stops decoding it at the next token and frees its sequences; an API call's
///   connection is dropped. Nothing of a cancelled call is reported.
/// - **Errors.** Every failure is a [`ModelError`] naming what failed and what to do.
///   [`ModelError::is_retryable`] tells the failures worth retrying (rate limits, 5xx,
///   timeouts, lost connections) from the ones that will fail again; an API backend has
///   already retried those within its retry policy, and counts them in
///   [`Usage::infra_retries`], never as model calls.
#[async_trait]
pub trait Model: Send + Sync {
    /// Who this model is (see [`ModelId`]).
    fn id(&self) -> &ModelId;
    /// What this backend offers.
    fn capabilities(&self) -> Capabilities;
    /// Generate `request.n` samples.
    ///
    /// # Errors
    /// A [`ModelError`] naming what failed and what to do about it.
    async fn generate(&self, request: Request) -> Result<Response, ModelError>;
    /// Teacher forcing: score `request.continuation` after `request.input` in one pass (see
    /// [`score`]). Backends without [`Capabilities::teacher_forcing`] refuse; wrappers
    /// forward it to the model they wrap.
    ///
    /// # Errors
    /// [`ModelError::Unsupported`] on backends that cannot; otherwise as
    /// [`Model::generate`].
    async fn score(&self, request: ScoreRequest) -> Result<Scored, ModelError> {
        let _ = request;
        Err(ModelError::Unsupported {
            backend: self.id().key.clone(),
            what: "teacher forcing (scoring a given continuation needs the local backend's \
                   logits and hidden states; API backends return at most top-20 \
                   log-probabilities)"
                .into(),
        })
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64((ms.max(0.0)) / 1000.0))
    }
}
