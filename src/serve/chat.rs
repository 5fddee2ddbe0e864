//! `POST /v1/chat/completions`: read the request, pick the policy, answer through the relay,
//! the model, or a strategy, and write the answer as one response or as a stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::error::ApiError;
use super::format::Format;
use super::policy::{Policy, Resolved};
use super::stream::{set, AbortOnDrop, Committed, Out};
use super::wire::{self, ChatRequest, WireUsage};
use super::{App, Caller};
use crate::model::{FinishReason, Model, Request, WithHook};
use crate::run::{Commits, Context, Problem};
use crate::strategy::{self, Kind};
use crate::trace::Writer;

/// What a request was answered with, before it is written out.
pub(super) struct Answer {
    pub(super) text: String,
    pub(super) finish: &'static str,
    pub(super) usage: WireUsage,
    pub(super) amend: Value,
}

/// The handler.
pub(super) async fn completions(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(app, caller, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    app: Arc<App>,
    caller: Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(app.config.max_body_bytes)
        } else {
            ApiError::bad_request(None, format!("the body could not be read: {r}"))
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(None, format!("the body is not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(
            None,
            "the body must be a JSON object",
        ));
    };
    let body_policy: Policy = match object.remove("amend") {
        None | Some(Value::Null) => Policy::default(),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(Some("amend"), format!("`amend`: {e}")))?,
    };
    let req: ChatRequest = serde_json::from_value(Value::Object(object.clone()))
        .map_err(|e| ApiError::bad_request(None, format!("the body is not a chat request: {e}")))?;
    if !app.served.contains(&req.model) {
        return Err(ApiError::model_not_found(&req.model, &app.served));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            Some("n"),
            "amend answers with one choice: leave `n` out or set it to 1",
        ));
    }
    let key = caller.0.and_then(|i| app.keys.get(i));
    let policy = app
        .config
        .defaults
        .overlay(&Policy::from_headers(headers)?)
        .overlay(&body_policy);
    let hook = super::policy::rectifier_hook(&app, &policy)?;
    let resolved = match policy.resolve()? {
        Some(mut r) => {
            r.options = app.config.ceilings.apply(r.options)?;
            if let Some(k) = key {
                r.options = k.ceilings.apply(r.options)?;
            }
            Some(r)
        }
        None => None,
    };
    let permit = app.permits.clone().try_acquire_owned().map_err(|_| {
        ApiError::rate_limited(
            format!(
                "{} requests are being answered, this server's limit (`max_in_flight`); retry shortly",
                app.config.max_in_flight
            ),
            1,
        )
    })?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    app.metrics
        .completions
        .get_or_create(&super::metrics::StrategyLabels {
            strategy: resolved
                .as_ref()
                .map_or("none", |r| r.kind.as_str())
                .to_string(),
        })
        .inc();
    if resolved.is_none() {
        if let Some(relay) = &app.relay {
            let r = relay.forward(object).await;
            drop(permit);
            return r;
        }
    }
    if let Some(field) = wire::passthrough_only(&req) {
        return Err(ApiError::bad_request(
            Some(field),
            match &resolved {
                Some(r) => format!("`{field}` cannot be honoured with strategy `{}` (amend's strategies answer in text); send it with `amend: {{\"strategy\": \"none\"}}` to an API upstream", r.kind),
                None => format!("`{field}` needs an API upstream (`--model openai:NAME`); the local model answers text messages"),
            },
        ));
    }
    let format = Format::parse(req.response_format.as_ref())?;
    let messages = wire::to_messages(&req.messages)?;
    let writer = Arc::new(
        Writer::in_dir(&app.config.trace_dir)
            .map_err(|e| ApiError::internal(format!("the request's trace: {e}")))?,
    );
    let trace_id = writer.run_id().to_string();
    let _ = writer.write(
        "request",
        json!({
            "key": key.map(|k| k.name.clone()),
            "strategy": resolved.as_ref().map_or("none", |r| r.kind.as_str()),
            "options": resolved.as_ref().map(|r| serde_json::to_value(&r.options).unwrap_or(Value::Null)),
            "stream": stream,
            "messages": if app.config.redact { Value::Null } else { serde_json::to_value(req.messages.iter().map(|m| json!({"role": m.role})).collect::<Vec<_>>()).unwrap_or(Value::Null) },
        }),
    );
    app.retention.add(writer.path());
    let id = format!("chatcmpl-{trace_id}");
    let task = key.map_or_else(|| "serve".to_string(), |k| format!("serve:{}", k.name));
    let model_name = req.model.clone();
    let timeout = Duration::from_secs_f64(app.config.request_timeout_s.clamp(0.001, 86_400.0));
    let (commits, mut crx) = Commits::channel();
    let stream_commits = !format.is_json();
    let work = {
        let app = app.clone();
        let writer = writer.clone();
        async move {
            let solve = async {
                let model: Arc<dyn Model> = match hook {
                    Some(h) => Arc::new(WithHook::new(app.model.clone(), h)),
                    None => app.model.clone(),
                };
                let a = answer(
                    &app,
                    &model,
                    &req,
                    messages.clone(),
                    resolved,
                    &writer,
                    commits,
                    &task,
                )
                .await?;
                super::format::apply(&app, &model, &req, &messages, a, &format, &writer).await
            };
            let out = tokio::time::timeout(timeout, solve)
                .await
                .unwrap_or_else(|_| Err(ApiError::timeout(app.config.request_timeout_s)));
            if let Ok(a) = &out {
                let _ = writer.write(
                    "response",
                    json!({
                        "text": if app.config.redact { Value::Null } else { Value::String(a.text.clone()) },
                        "usage": a.usage,
                        "amend": a.amend,
                    }),
                );
            }
            drop(permit);
            out.map(|mut a| {
                set(&mut a.amend, "trace_id", json!(writer.run_id()));
                a
            })
        }
    };
    let out = Out {
        id,
        created: wire::unix_now(),
        model: model_name,
        include_usage,
    };
    if !stream {
        let mut a = work.await?;
        let mut seen = Committed::default();
        while let Ok(c) = crx.try_recv() {
            seen.add(&c);
        }
        seen.annotate(&mut a.amend);
        return Ok(axum::Json(wire::ChatCompletion {
            id: out.id,
            object: "chat.completion",
            created: out.created,
            model: out.model,
            choices: vec![wire::Choice {
                index: 0,
                message: wire::AssistantMessage {
                    role: "assistant",
                    content: a.text,
                },
                finish_reason: a.finish,
                logprobs: None,
            }],
            usage: a.usage,
            amend: a.amend,
        })
        .into_response());
    }
    // Streamed: a progress note first (an SSE comment, which clients skip), the role, then
    // each commit point as the strategy reports it (a step-wise strategy: every step once
    // checked); a strategy without commit points has its answer sent a line at a time when it
    // is done. Nothing sent is taken back. The solve runs in a task that is aborted when the
    // client goes away (the body, which holds the guard, is dropped), cancelling its calls.
    let (etx, erx) = tokio::sync::mpsc::channel::<Event>(256);
    let task = tokio::spawn(async move {
        let _ = etx
            .send(Event::default().comment("amend: correcting"))
            .await;
        let _ = etx.send(out.event(out.role())).await;
        tokio::pin!(work);
        let mut seen = Committed::default();
        let result = loop {
            tokio::select! {
                biased;
                Some(c) = crx.recv() => {
                    // Formatted answers are sent whole, once checked.
                    if !stream_commits {
                        continue;
                    }
                    seen.add(&c);
                    if etx.send(out.event(out.content(c.text))).await.is_err() {
                        return;
                    }
                }
                r = &mut work => break r,
            }
        };
        while let Ok(c) = crx.try_recv() {
            if stream_commits {
                seen.add(&c);
                let _ = etx.send(out.event(out.content(c.text))).await;
            }
        }
        match result {
            Ok(mut a) => {
                if seen.count == 0 {
                    for piece in a.text.split_inclusive('\n') {
                        let _ = etx.send(out.event(out.content(piece.to_string()))).await;
                    }
                } else if seen.text != a.text {
                    tracing::warn!("a step-wise answer differs from its commit points");
                    set(&mut a.amend, "streamed_differs", json!(true));
                }
                seen.annotate(&mut a.amend);
                for e in out.finish(a) {
                    let _ = etx.send(e).await;
                }
            }
            Err(e) => {
                let _ = etx.send(Event::default().data(e.body().to_string())).await;
            }
        }
    });
    let guard = AbortOnDrop(task.abort_handle());
    let body = futures::stream::unfold((erx, guard), |(mut rx, g)| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), (rx, g)))
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response())
}

/// Answer `req`: one model call (`strategy: none` on the local model) or a strategy's solve.
#[allow(clippy::too_many_arguments)]
async fn answer(
    app: &App,
    model: &Arc<dyn Model>,
    req: &ChatRequest,
    messages: Vec<crate::model::Message>,
    resolved: Option<Resolved>,
    writer: &Arc<Writer>,
    commits: Commits,
    task: &str,
) -> Result<Answer, ApiError> {
    let max_tokens = max_tokens(app, req);
    // Mistakes hold the messages, so a redacting server records none.
    let traced = |cx: Context| {
        let cx = cx.with_prefix_reuse(app.config.prefix_reuse);
        if app.config.redact {
            return cx;
        }
        let cx = cx.with_trace(writer.clone()).with_task(task);
        match &app.mistakes {
            Some((store, _)) => cx.with_mistakes(store.clone()),
            None => cx,
        }
    };
    let Some(Resolved {
        kind,
        options: opts,
        strategy: strat,
    }) = resolved
    else {
        let mut r = Request::chat(messages)
            .with_sampling(req.temperature.unwrap_or(1.0), req.top_p.unwrap_or(1.0))
            .with_max_tokens(max_tokens);
        if let Some(stop) = req.stop.clone() {
            r = r.with_stop(stop.into_vec());
        }
        if let Some(seed) = req.seed {
            r = r.with_seed(seed);
        }
        let cx = traced(Context::new(model.clone(), app.prompts.clone()));
        let resp = cx.model().generate(r).await.map_err(upstream)?;
        app.metrics.add_usage(&resp.usage);
        let finish = match resp.samples.first().map(|s| s.finish) {
            Some(FinishReason::Length) => "length",
            _ => "stop",
        };
        return Ok(Answer {
            text: resp.text().to_string(),
            finish,
            usage: resp.usage.into(),
            amend: json!({"strategy": "none", "calls": resp.usage.calls}),
        });
    };
    let mut ignored = Vec::new();
    for (name, set) in [
        ("temperature", req.temperature.is_some()),
        ("top_p", req.top_p.is_some()),
        ("stop", req.stop.is_some()),
        ("seed", req.seed.is_some()),
    ] {
        if set {
            ignored.push(name);
        }
    }
    let cx = traced(Context::new(model.clone(), app.prompts.clone()))
        .with_budget(opts.budget)
        .with_calculator(opts.calculator)
        .with_max_tokens(max_tokens)
        .with_commits(commits);
    let sol = strat
        .solve(&cx, &Problem::chat(&messages))
        .await
        .map_err(|e| match e {
            strategy::StrategyError::Option(o) => {
                ApiError::bad_request(Some("amend"), format!("the `amend` policy: {o}"))
            }
            e => upstream(e),
        })?;
    app.metrics.add_usage(&sol.usage);
    app.metrics.located.inc_by(sol.located.len() as u64);
    let text = final_text(&sol);
    let verifier = opts
        .effective_verifier()
        .or(opts.selection_verifier())
        .cloned()
        .or_else(|| (kind == Kind::Search).then(|| opts.search_verifier()));
    let steps = crate::steps::split(&text);
    let problem_text = Problem::chat(&messages).text();
    let check = verifier.as_ref().and_then(|v| {
        crate::critic::locate_without_model(v, &problem_text, &steps)
            .map(|flagged| json!({"verifier": v.to_string(), "steps": steps.len(), "first_flagged": flagged}))
    });
    Ok(Answer {
        text,
        finish: "stop",
        usage: sol.usage.into(),
        amend: json!({
            "strategy": sol.strategy,
            "calls": sol.usage.calls,
            "answer": sol.answer,
            "attempts": sol.attempts.len(),
            "located": sol.located,
            "budget_stop": sol.budget_stop.as_ref().map(ToString::to_string),
            "survivors": sol.survivors,
            "calculator": opts.calculator,
            "check": check,
            "ignored": ignored,
        }),
    })
}

/// Most tokens per model call: the request's `max_completion_tokens` or `max_tokens`, else the
/// server's.
pub(super) fn max_tokens(app: &App, req: &ChatRequest) -> u32 {
    req.max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(app.config.max_tokens)
        .max(1)
}

/// The text of the attempt the strategy answered with: the last attempt whose answer is the
/// final answer, else the last attempt.
pub fn final_text(sol: &strategy::Solution) -> String {
    sol.attempts
        .iter()
        .rev()
        .find(|a| sol.answer.is_some() && a.answer == sol.answer)
        .or_else(|| sol.attempts.last())
        .map(|a| a.text.clone())
        .unwrap_or_default()
}

fn upstream(e: impl std::fmt::Display) -> ApiError {
    ApiError::upstream(format!("the model failed: {e}"))
}
