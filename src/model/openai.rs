//! Any OpenAI-compatible chat-completions API (OpenAI, vLLM, llama.cpp's server...).
//!
//! Requests go through async-openai's client with amend's [`RetryService`] below it, so that
//! 429/5xx/timeouts/connection errors are retried with exponential backoff that honours
//! `Retry-After`, and counted as infrastructure retries in [`Usage::infra_retries`]. A
//! semaphore bounds the calls in flight. A prefill takes the path the [`PrefillMode`] gives
//! (see [`super::prefill`]); `auto` asks the server once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequest, FinishReason as ApiFinish, StopConfiguration,
};
use async_openai::Client;
use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::prefill::{self, Prefill, PrefillMode};
use super::retry::{CallStats, RetryService};
use super::{
    check_supported, Capabilities, FinishReason, Input, Message, Model, ModelError, Request,
    Response, RetryPolicy, Role, Sample, TokenLogprob, Usage,
};

/// Default environment variable holding the API key.
pub const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";

/// Settings of an API backend.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Environment variable to read the API key from (may be unset for local servers).
    pub api_key_env: String,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Retry budget, backoff and per-attempt timeout.
    pub retry: RetryPolicy,
    /// How a prefill is continued (default: ask the server once).
    pub prefill: PrefillMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: DEFAULT_KEY_ENV.into(),
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            prefill: PrefillMode::Auto,
        }
    }
}

/// A model behind an OpenAI-compatible API.
pub struct ApiModel {
    model: String,
    id: super::ModelId,
    opts: Options,
    config: OpenAIConfig,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    /// The path `auto` found, once asked.
    probed: tokio::sync::OnceCell<Prefill>,
}

/// A chat request with the fields of the continue-final-message extension.
#[derive(serde::Serialize)]
struct Continued<'a> {
    #[serde(flatten)]
    inner: &'a CreateChatCompletionRequest,
    continue_final_message: bool,
    add_generation_prompt: bool,
}

impl ApiModel {
    /// A client for `model` at `opts.base_url`.
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] when the HTTP client cannot be built.
    pub fn new(model: impl Into<String>, opts: Options) -> Result<Self, ModelError> {
        let model = model.into();
        let key = std::env::var(&opts.api_key_env).unwrap_or_default();
        let base = opts.base_url.trim_end_matches('/').to_string();
        let config = OpenAIConfig::new().with_api_base(base).with_api_key(key);
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ModelError::InvalidRequest(format!("HTTP client: {e}")))?;
        let permits = Arc::new(Semaphore::new(opts.max_concurrency.max(1)));
        Ok(Self {
            id: super::ModelId::api(&model, &opts.base_url),
            model,
            opts,
            config,
            http,
            permits,
            probed: tokio::sync::OnceCell::new(),
        })
    }

    fn wire_request(&self, req: &Request, path: Option<Prefill>) -> CreateChatCompletionRequest {
        let base: Vec<Message> = match &req.input {
            Input::Chat(m) => m.clone(),
            // Unreachable after check_supported; kept total for safety.
            Input::Raw(p) => vec![Message::user(p.clone())],
        };
        let with_prefill = match (&req.prefill, path) {
            (Some(p), Some(Prefill::Conversation)) => prefill::conversation(&base, p),
            (Some(p), _) => {
                let mut m = base;
                m.push(Message::assistant(p.clone()));
                m
            }
            (None, _) => base,
        };
        let messages: Vec<ChatCompletionRequestMessage> =
            with_prefill.iter().map(wire_message).collect();
        #[allow(deprecated)]
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            temperature: Some(req.temperature),
            top_p: Some(req.top_p),
            max_tokens: Some(req.max_tokens),
            stop: (!req.stop.is_empty()).then(|| StopConfiguration::StringArray(req.stop.clone())),
            seed: req.seed.map(|s| (s & 0x7fff_ffff_ffff_ffff) as i64),
            n: Some(req.n.min(128) as u8),
            logprobs: req.logprobs.then_some(true),
            ..Default::default()
        }
    }

    fn classify(&self, err: OpenAIError, stats: &CallStats) -> ModelError {
        let url = self.opts.base_url.clone();
        if stats.timed_out {
            return ModelError::Timeout {
                url,
                after: self.opts.retry.timeout,
                attempts: stats.attempts,
            };
        }
        let exhausted = stats.retries >= self.opts.retry.max_retries && stats.retries > 0;
        if let Some(reason) = &stats.connect_error {
            if exhausted {
                return ModelError::RetriesExhausted {
                    url,
                    attempts: stats.attempts,
                    retries: stats.retries,
                    last: reason.clone(),
                };
            }
            return ModelError::Connect {
                url,
                reason: reason.clone(),
            };
        }
        let status = stats.last_status.unwrap_or(0);
        let retryable = status == 429 || status >= 500;
        let message = match &err {
            OpenAIError::ApiError(api) => api.api_error.message.clone(),
            other => other.to_string(),
        };
        if retryable && exhausted {
            return ModelError::RetriesExhausted {
                url,
                attempts: stats.attempts,
                retries: stats.retries,
                last: format!("HTTP {status}: {message}"),
            };
        }
        match err {
            OpenAIError::JSONDeserialize(e, _) if (200..300).contains(&status) => {
                ModelError::BadResponse {
                    url,
                    reason: e.to_string(),
                }
            }
            OpenAIError::ApiError(_) | OpenAIError::JSONDeserialize(..) => ModelError::Api {
                url,
                status,
                message,
            },
            OpenAIError::Reqwest(e) => ModelError::Connect {
                url,
                reason: e.to_string(),
            },
            other => ModelError::Api {
                url,
                status,
                message: other.to_string(),
            },
        }
    }
}

fn wire_message(m: &Message) -> ChatCompletionRequestMessage {
    let text = m.content.clone();
    match m.role {
        Role::System => ChatCompletionRequestSystemMessage::from(
            async_openai::types::chat::ChatCompletionRequestSystemMessageContent::from(text),
        )
        .into(),
        Role::User => ChatCompletionRequestUserMessage::from(
            async_openai::types::chat::ChatCompletionRequestUserMessageContent::from(text),
        )
        .into(),
        Role::Assistant => ChatCompletionRequestAssistantMessage::from(
            async_openai::types::chat::ChatCompletionRequestAssistantMessageContent::from(text),
        )
        .into(),
    }
}

fn finish(f: Option<ApiFinish>) -> FinishReason {
    match f {
        Some(ApiFinish::Stop) => FinishReason::Stop,
        Some(ApiFinish::Length) => FinishReason::Length,
        None => FinishReason::Eos,
        Some(_) => FinishReason::Other,
    }
}

#[async_trait]
impl Model for ApiModel {
    fn id(&self) -> &super::ModelId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            logprobs: true,
            logits_hidden: false,
            kv_prefix_reuse: false,
            assistant_prefill: self.opts.prefill != PrefillMode::Off,
            parallel_samples: true,
            max_samples_per_call: 128,
            raw_prompt: false,
            // Structured outputs differ per server (OpenAI's `json_schema` response format;
            // llama-cpp-python accepts only `json_object` with a `schema`; others neither):
            // not claimed: callers enforce a schema by validating and asking again.
            gbnf: false,
            json_schema: false,
            teacher_forcing: false,
        }
    }

    async fn generate(&self, req: Request) -> Result<Response, ModelError> {
        check_supported(&self.capabilities(), &self.id.key, &req)?;
        let start = Instant::now();
        let mut samples: Vec<Sample> = Vec::new();
        let mut usage = Usage::default();
        let path = match &req.prefill {
            None => None,
            Some(_) => Some(self.prefill_path(&mut usage).await?),
        };
        // Some servers (llama-cpp-python, for one) return one choice whatever `n` says: ask
        // again for the missing samples, with shifted seeds, until there are `n`.
        let mut round = 0u64;
        while samples.len() < req.n as usize {
            let mut part = req.clone();
            part.n = req.n - samples.len() as u32;
            part.seed = req.seed.map(|s| s.wrapping_add(round * 1_000_003));
            let (got, u) = self.call(&part, path).await?;
            usage += u;
            samples.extend(got);
            round += 1;
        }
        samples.truncate(req.n as usize);
        if let (Some(Prefill::Conversation), Some(p)) = (path, &req.prefill) {
            for s in &mut samples {
                s.text = prefill::strip_restated(&s.text, p);
            }
        }
        Ok(Response {
            samples,
            usage,
            wall: start.elapsed(),
            prefill: path,
        })
    }
}

impl ApiModel {
    /// The prefill path of this model: fixed by its mode, or (`auto`) asked of the server once.
    /// The probe's usage is added to `usage`. A probe that fails for infrastructure reasons
    /// (connection, timeout, 5xx) fails the request and is asked again next time.
    async fn prefill_path(&self, usage: &mut Usage) -> Result<Prefill, ModelError> {
        if let Some(p) = self.opts.prefill.fixed() {
            return Ok(p);
        }
        let mut spent = Usage::default();
        let p = self
            .probed
            .get_or_try_init(|| async {
                let probe = Request::chat(vec![Message::user(prefill::PROBE_QUESTION)])
                    .with_prefill(prefill::PROBE_PREFILL)
                    .with_max_tokens(12);
                match self.call(&probe, Some(Prefill::ContinueFinalMessage)).await {
                    Ok((samples, u)) => {
                        spent += u;
                        let reply = samples.first().map_or("", |s| s.text.as_str());
                        let continued = prefill::probe_continued(reply);
                        tracing::info!(url = %self.opts.base_url, reply, continued, "prefill probe");
                        Ok(if continued {
                            Prefill::ContinueFinalMessage
                        } else {
                            Prefill::Conversation
                        })
                    }
                    Err(e) if e.is_retryable() => Err(e),
                    Err(e) => {
                        tracing::info!(url = %self.opts.base_url, error = %e, "prefill probe refused");
                        Ok(Prefill::Conversation)
                    }
                }
            })
            .await?;
        *usage += spent;
        Ok(*p)
    }

    async fn call(
        &self,
        req: &Request,
        path: Option<Prefill>,
    ) -> Result<(Vec<Sample>, Usage), ModelError> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ModelError::InvalidRequest("client is shutting down".into()))?;
        let stats = Arc::new(Mutex::new(CallStats::default()));
        let service = RetryService::new(self.http.clone(), self.opts.retry, stats.clone());
        let client =
            Client::build(self.http.clone(), self.config.clone()).with_http_service(service);
        let wire = self.wire_request(req, path);
        let result = if path == Some(Prefill::ContinueFinalMessage) {
            let body = Continued {
                inner: &wire,
                continue_final_message: true,
                add_generation_prompt: false,
            };
            client
                .chat()
                .create_byot::<_, async_openai::types::chat::CreateChatCompletionResponse>(&body)
                .await
        } else {
            client.chat().create(wire).await
        };
        let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
        let resp = result.map_err(|e| self.classify(e, &stats))?;
        if resp.choices.is_empty() {
            return Err(ModelError::BadResponse {
                url: self.opts.base_url.clone(),
                reason: "no choices in the response".into(),
            });
        }
        let samples: Vec<Sample> = resp
            .choices
            .into_iter()
            .map(|c| {
                let logprobs = c.logprobs.and_then(|l| l.content).map(|v| {
                    v.into_iter()
                        .map(|t| TokenLogprob {
                            token: t.token,
                            logprob: t.logprob,
                        })
                        .collect::<Vec<_>>()
                });
                let tokens = logprobs.as_ref().map(|l| l.len() as u32).unwrap_or(0);
                Sample {
                    text: c.message.content.unwrap_or_default(),
                    finish: finish(c.finish_reason),
                    tokens,
                    logprobs,
                }
            })
            .collect();
        let (prompt, generated, cached) = resp
            .usage
            .map(|u| {
                let cached = u
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0);
                (u.prompt_tokens, u.completion_tokens, cached)
            })
            .unwrap_or((0, 0, 0));
        let usage = Usage {
            prompt_tokens: u64::from(prompt),
            generated_tokens: u64::from(generated),
            reused_tokens: u64::from(cached),
            calls: 1,
            infra_retries: u64::from(stats.retries),
        };
        Ok((samples, usage))
    }
}
