//! `amend serve` driven by async-openai, the Rust client (typed requests and responses, and
//! its bring-your-own-types calls for the `amend` object), against the real binary over the
//! local default model and over llama-cpp-python's server as the upstream: the checks the
//! official Python client makes in tests/serve_clients.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use common::served::Served;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
};
use futures::StreamExt;
use serde_json::{json, Value};

/// async-openai without its retry layer (the default one waits out a 429's `Retry-After` and
/// tries again), as the Python client with `max_retries=0`: each error reaches the caller.
fn rust_client(base_url: &str, key: &str) -> async_openai::Client<OpenAIConfig> {
    async_openai::Client::with_config(
        OpenAIConfig::new()
            .with_api_base(base_url)
            .with_api_key(key),
    )
    .with_http_service(async_openai::middleware::ReqwestService::new(
        reqwest::Client::new(),
    ))
}

const QUESTION: &str = "Tom has 3 apples and buys 4 more. How many apples does he have?";

/// A typed request (async-openai's own struct, serialized by it).
fn typed(model: &str, max_tokens: u32, stream: bool) -> CreateChatCompletionRequest {
    serde_json::from_value(json!({
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_completion_tokens": max_tokens,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    }))
    .unwrap()
}

/// The HTTP status of an API error the client raised.
fn status(e: &OpenAIError) -> u16 {
    match e {
        OpenAIError::ApiError(r) => r.status_code.as_u16(),
        other => panic!("not an API error: {other}"),
    }
}

/// A stream's text, its usage chunk, the `amend` object of its last chunk, and the first error.
async fn collect_stream(
    client: &async_openai::Client<OpenAIConfig>,
    body: Value,
) -> (String, Option<Value>, Option<Value>, Option<OpenAIError>) {
    let mut s = client
        .chat()
        .create_stream_byot::<_, Value>(body)
        .await
        .unwrap();
    let (mut text, mut usage, mut amend) = (String::new(), None, None);
    while let Some(item) = s.next().await {
        let v = match item {
            Ok(v) => v,
            Err(e) => return (text, usage, amend, Some(e)),
        };
        // Every chunk must also be one async-openai's typed stream accepts.
        if let Err(e) = serde_json::from_value::<CreateChatCompletionStreamResponse>(v.clone()) {
            return (
                text,
                usage,
                amend,
                Some(OpenAIError::JSONDeserialize(e, v.to_string())),
            );
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
        if !v["amend"].is_null() {
            amend = Some(v["amend"].clone());
        }
    }
    (text, usage, amend, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_openai_client_on_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::served::keyed_config(dir.path());
    let mut s = Served::start(dir.path(), &config, &[], &[]);
    let client = rust_client(&s.base_url, "sk-test-0123456789");

    // Typed, with the server's default policy: the response is async-openai's own struct.
    let r = client
        .chat()
        .create(typed("default", 64, false))
        .await
        .unwrap();
    let content = r.choices[0].message.content.clone().unwrap_or_default();
    assert!(!content.trim().is_empty(), "a non-stream answer");
    let u = r.usage.clone().unwrap();
    assert!(u.total_tokens == u.prompt_tokens + u.completion_tokens && u.total_tokens > 0);

    // The policy as extra body fields (byot), the `amend` object read back.
    let policy = json!({"strategy": "baseline", "calculator": true});
    let body = json!({"model": "default", "max_tokens": 96,
        "messages": [{"role": "user", "content": QUESTION}], "amend": policy});
    let v: Value = client.chat().create_byot(body.clone()).await.unwrap();
    assert_eq!(v["amend"]["strategy"], "baseline", "{v}");
    assert_eq!(v["amend"]["calculator"], true);
    serde_json::from_value::<CreateChatCompletionResponse>(v.clone())
        .expect("the answer with an amend object is still a typed response");
    let whole = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    // The same request streamed, usage in the stream: the text equals the whole answer.
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let (text, usage, amend, err) = collect_stream(&client, sbody).await;
    assert!(err.is_none(), "stream failed: {err:?}");
    assert_eq!(text, whole, "the stream equals the non-streamed answer");
    assert_eq!(usage.unwrap()["total_tokens"], v["usage"]["total_tokens"]);
    assert_eq!(amend.unwrap()["strategy"], "baseline");

    // A typed stream (async-openai's own chunk type).
    let mut st = client
        .chat()
        .create_stream(typed("default", 32, true))
        .await
        .unwrap();
    let (mut chunks, mut saw_usage) = (0, false);
    while let Some(c) = st.next().await {
        let c = c.unwrap();
        chunks += 1;
        saw_usage |= c.usage.is_some();
    }
    assert!(
        chunks >= 3 && saw_usage,
        "{chunks} chunks, usage {saw_usage}"
    );

    // Errors, each raised by the client with its status.
    let e = client
        .chat()
        .create(typed("nope", 8, false))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404, "{e}");
    let mut bad = body.clone();
    bad["amend"] = json!({"strategy": "magic"});
    let e = client
        .chat()
        .create_byot::<_, Value>(bad)
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(
        e.to_string().contains("strategy"),
        "the 400 names the option: {e}"
    );
    let mut big = body.clone();
    big["messages"][0]["content"] = json!("x".repeat(common::served::BODY_LIMIT + 10));
    let e = client
        .chat()
        .create_byot::<_, Value>(big)
        .await
        .unwrap_err();
    assert_eq!(status(&e), 413, "{e}");
    let wrong = rust_client(&s.base_url, "sk-not-a-key-at-all");
    let e = wrong
        .chat()
        .create(typed("default", 8, false))
        .await
        .unwrap_err();
    assert_eq!(status(&e), 401, "{e}");
    let limited = rust_client(&s.base_url, "sk-limited-0123456789");
    let mut once = typed("default", 1, false);
    once.max_completion_tokens = Some(1);
    limited.chat().create(once.clone()).await.unwrap();
    let e = limited.chat().create(once).await.unwrap_err();
    assert_eq!(status(&e), 429, "{e}");

    // A prompt longer than the model's largest context: the stream has begun when the model
    // fails; the error event ends it and the client raises it.
    let long = json!({"model": "default", "stream": true, "amend": policy,
        "messages": [{"role": "user", "content": "apple ".repeat(9000)}]});
    let (_, _, _, err) = collect_stream(&client, long).await;
    let err = err.expect("the client raises the mid-stream error");
    assert!(err.to_string().contains("error"), "{err}");

    assert!(s.stop().success(), "SIGTERM ends the server cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_openai_client_through_llama_cpp_python_as_the_upstream() {
    let upstream = common::Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut s = Served::relaying(dir.path(), &upstream.base_url);
    let client = rust_client(&s.base_url, "unused");
    let none = json!({"strategy": "none"});
    let msgs = json!([{"role": "user", "content": QUESTION}]);

    // Relayed, typed response and stream.
    let r: CreateChatCompletionResponse = client
        .chat()
        .create_byot(json!({"model": "smollm2", "messages": msgs, "max_tokens": 48, "amend": none}))
        .await
        .unwrap();
    assert!(r.usage.unwrap().completion_tokens > 0);
    // (llama-cpp-python's server sends no usage chunk; the relay adds nothing.)
    let (text, _, _, err) = collect_stream(
        &client,
        json!({"model": "smollm2", "messages": msgs, "max_tokens": 48, "stream": true,
            "amend": none}),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    assert!(!text.is_empty());

    // A forced tool call passes through, typed; the tool message after it too.
    let tools = json!([{"type": "function", "function": {"name": "add",
        "description": "Add two numbers", "parameters": {"type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"]}}}]);
    let t: CreateChatCompletionResponse = client
        .chat()
        .create_byot(json!({"model": "smollm2", "messages": msgs, "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "add"}},
            "max_tokens": 64, "amend": none}))
        .await
        .unwrap();
    let calls = t.choices[0].message.tool_calls.clone().unwrap_or_default();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = serde_json::to_value(&calls[0]).unwrap();
    assert_eq!(call["function"]["name"], "add");
    let mut follow = msgs.as_array().unwrap().clone();
    follow.push(json!({"role": "assistant", "content": "", "tool_calls": [call.clone()]}));
    follow.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "7"}));
    let f: Value = client
        .chat()
        .create_byot(
            json!({"model": "smollm2", "messages": follow, "max_tokens": 32, "amend": none}),
        )
        .await
        .unwrap();
    assert!(f["choices"][0]["message"].is_object(), "{f}");

    // A strategy over the API upstream.
    let c: Value = client
        .chat()
        .create_byot(
            json!({"model": "smollm2", "messages": msgs, "max_tokens": 96,
            "amend": {"strategy": "baseline", "calculator": true}}),
        )
        .await
        .unwrap();
    assert_eq!(c["amend"]["strategy"], "baseline");
    assert!(c["amend"]["calls"].as_u64().unwrap() >= 1);
    assert!(s.stop().success());
}
