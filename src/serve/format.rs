//! `response_format` where the server answers itself (a strategy, or the local model): the
//! answer is corrected first, then written in the requested format.
//!
//! An answer that already passes is sent as it is. Otherwise a formatting turn (the
//! conversation, the corrected answer, and [`INSTRUCTION`] with the answer and the schema) asks
//! for the JSON, greedily, decoded under the schema where the backend can (the local model:
//! llama.cpp's grammar sampler, so the output parses unless it runs out of tokens). Every
//! output is checked: it must parse as JSON (code fences and text around one JSON value are
//! dropped), be an object for `json_object`, pass the schema for `json_schema` (`jsonschema`),
//! and, when the strategy extracted a final answer, carry that number in one of its values (a
//! formatting turn must not change the corrected answer). A failing output is re-asked with its
//! violations; a re-ask draws [`RESAMPLES`] samples in one batch and keeps the first that
//! passes. After [`ATTEMPTS`] turns the request fails with a 502 naming the last violations.
//! Nothing unchecked is ever sent as the formatted answer.
//!
//! With `strategy: none` on an API upstream the field is relayed untouched instead, and the
//! upstream enforces it.

use std::sync::Arc;

use serde_json::{json, Value};

use super::error::ApiError;
use super::stream::set;
use super::wire::ChatRequest;
use super::App;
use crate::model::{Grammar, Message, Model, Request, Usage};
use crate::pipeline::JsonSchema;

/// Samples a re-asked formatting turn draws (at temperature 1, in one batch); the first that
/// passes is kept.
pub const RESAMPLES: u32 = 8;

/// The most formatting turns one request gets.
pub const ATTEMPTS: u32 = 3;

/// What the formatting turn asks (the schema, when there is one, follows it).
pub const INSTRUCTION: &str =
    "Now give the final answer of your reply above as JSON. Write only the JSON, nothing else.";

/// The format a request asks for.
pub enum Format {
    /// Plain text (no `response_format`, or `{"type": "text"}`).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON passing a schema.
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The schema.
        schema: Value,
        /// Its validator.
        validator: JsonSchema,
    },
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Some("response_format"), message)
}

impl Format {
    /// Read `response_format` (OpenAI's shapes: `{"type": "text" | "json_object"}` or
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}`).
    ///
    /// # Errors
    /// 400 naming `response_format` for another type, a missing or uncompilable schema.
    pub fn parse(v: Option<&Value>) -> Result<Self, ApiError> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Self::Text);
        };
        match v.get("type").and_then(Value::as_str) {
            Some("text") => Ok(Self::Text),
            Some("json_object") => Ok(Self::JsonObject),
            Some("json_schema") => {
                let js = v.get("json_schema").ok_or_else(|| {
                    bad("`response_format.json_schema` is missing: give {\"name\", \"schema\"}")
                })?;
                let schema = js
                    .get("schema")
                    .cloned()
                    .ok_or_else(|| bad("`response_format.json_schema.schema` is missing"))?;
                let validator = JsonSchema::new(schema.clone())
                    .map_err(|e| bad(format!("`response_format.json_schema.schema`: {e}")))?;
                Ok(Self::JsonSchema {
                    name: js
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("response")
                        .to_string(),
                    schema,
                    validator,
                })
            }
            _ => Err(bad(
                "`response_format.type` must be `text`, `json_object` or `json_schema`",
            )),
        }
    }

    /// Does this format need checking (anything but text)?
    pub fn is_json(&self) -> bool {
        !matches!(self, Self::Text)
    }

    /// The name written into the response's `amend` object.
    pub fn name(&self) -> &str {
        match self {
            Self::Text => "text",
            Self::JsonObject => "json_object",
            Self::JsonSchema { .. } => "json_schema",
        }
    }

    /// `text` as the formatted answer (compact JSON), or every violation. With `expected` (the
    /// corrected answer), the JSON must also carry that number in one of its values: a
    /// formatting turn must not change the answer.
    pub fn check(&self, text: &str, expected: Option<&str>) -> Result<String, Vec<String>> {
        let value = extract_json(text).ok_or_else(|| {
            vec!["the reply holds no JSON value (write only the JSON)".to_string()]
        })?;
        match self {
            Self::Text => {}
            Self::JsonObject => {
                if !value.is_object() {
                    return Err(vec!["/: the value must be a JSON object".into()]);
                }
            }
            Self::JsonSchema { validator, .. } => {
                let v = validator.violations(&value);
                if !v.is_empty() {
                    return Err(v);
                }
            }
        }
        if let Some(want) = expected {
            if !carries(&value, want) {
                return Err(vec![format!("the JSON does not carry the answer, {want}")]);
            }
        }
        serde_json::to_string(&value).map_err(|e| vec![e.to_string()])
    }

    /// The schema the output must pass (`{"type": "object"}` for `json_object`).
    fn schema(&self) -> Value {
        match self {
            Self::JsonSchema { schema, .. } => schema.clone(),
            Self::JsonObject => serde_json::json!({"type": "object"}),
            Self::Text => serde_json::json!({}),
        }
    }

    fn instruction(&self, expected: Option<&str>) -> String {
        let lead = match expected {
            Some(a) => format!("Your final answer is {a}. {INSTRUCTION}"),
            None => INSTRUCTION.to_string(),
        };
        match self {
            Self::JsonSchema { name, schema, .. } => format!(
                "{lead} It must match this JSON schema (\"{name}\"):\n{}",
                serde_json::to_string(schema).unwrap_or_default()
            ),
            Self::JsonObject => format!("{lead} It must be one JSON object."),
            Self::Text => lead,
        }
    }
}

/// Does some value of `v` (a number, or a string that is one) equal the number `want`?
fn carries(v: &Value, want: &str) -> bool {
    match v {
        Value::Number(n) => crate::answer::same_number(&n.to_string(), want),
        Value::String(s) => crate::answer::same_number(s, want),
        Value::Array(a) => a.iter().any(|x| carries(x, want)),
        Value::Object(o) => o.values().any(|x| carries(x, want)),
        _ => false,
    }
}

/// The first JSON value in `text`: the whole text, else inside a code fence, else from the
/// first `{` or `[` to the last matching closer.
fn extract_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let body = t.get(start + 3..)?;
        let body = body.trim_start_matches("json").trim_start_matches("JSON");
        if let Some(end) = body.find("```") {
            if let Ok(v) = serde_json::from_str(body.get(..end)?.trim()) {
                return Some(v);
            }
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(a), Some(b)) = (t.find(open), t.rfind(close)) {
            if a < b {
                if let Ok(v) = serde_json::from_str(t.get(a..=b)?) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// What [`enforce`] gives back.
pub struct Formatted {
    /// The formatted answer (compact JSON).
    pub text: String,
    /// Formatting turns spent (0: the answer already passed).
    pub turns: u32,
    /// Whether the turns were decoded under the schema.
    pub constrained: bool,
    /// Their usage.
    pub usage: Usage,
}

/// Write `answer` (the corrected answer to `messages`; `expected`: its final answer, when the
/// strategy extracted one, which the JSON must then carry) in `format`.
///
/// # Errors
/// 502 when the model fails, or when no formatting turn passes within [`ATTEMPTS`] (the
/// message lists the last violations).
pub async fn enforce(
    model: &dyn Model,
    messages: &[Message],
    answer: &str,
    expected: Option<&str>,
    format: &Format,
    max_tokens: u32,
) -> Result<Formatted, ApiError> {
    let mut usage = Usage::default();
    let mut violations = match format.check(answer, expected) {
        Ok(text) => {
            return Ok(Formatted {
                text,
                turns: 0,
                constrained: false,
                usage,
            })
        }
        Err(v) => v,
    };
    let mut constrained = model.capabilities().json_schema;
    let mut convo = messages.to_vec();
    convo.push(Message::assistant(answer));
    convo.push(Message::user(format.instruction(expected)));
    for turn in 1..=ATTEMPTS {
        // The first turn is greedy; a re-ask draws several samples in one batch and keeps the
        // first that passes (greedy decoding would repeat itself).
        let (n, temperature) = if turn == 1 {
            (1, 0.0)
        } else {
            (model.capabilities().samples_per_call(RESAMPLES), 1.0)
        };
        let req = Request::chat(convo.clone())
            .with_sampling(temperature, 1.0)
            .with_n(n)
            .with_seed(u64::from(turn))
            .with_max_tokens(max_tokens);
        let first = if constrained {
            model
                .generate(
                    req.clone()
                        .with_grammar(Grammar::JsonSchema(format.schema())),
                )
                .await
        } else {
            model.generate(req.clone()).await
        };
        // A schema llama.cpp's converter does not take is enforced by checking alone.
        let resp = match first {
            Err(e) if constrained => {
                tracing::warn!("response_format: decoding under the schema failed ({e}); checking the output instead");
                constrained = false;
                model.generate(req).await
            }
            r => r,
        }
        .map_err(|e| ApiError::upstream(format!("the model failed: {e}")))?;
        usage += resp.usage;
        let mut failed = None;
        for sample in &resp.samples {
            match format.check(&sample.text, expected) {
                Ok(text) => {
                    return Ok(Formatted {
                        text,
                        turns: turn,
                        constrained,
                        usage,
                    })
                }
                Err(v) => {
                    if failed.is_none() {
                        failed = Some((sample.text.clone(), v));
                    }
                }
            }
        }
        let (out, v) = failed.unwrap_or_default();
        violations = v;
        convo.push(Message::assistant(out));
        convo.push(Message::user(format!(
            "That does not pass: {}. Write only the corrected JSON.",
            violations.join("; ")
        )));
    }
    Err(ApiError {
        code: Some("response_format_failed"),
        ..ApiError::upstream(format!(
            "the model did not write JSON passing `response_format` ({}) in {ATTEMPTS} formatting turns; the last one: {}",
            format.name(),
            violations.join("; ")
        ))
    })
}

/// `a` written in the request's `response_format` (see the module doc): unchanged for
/// text; otherwise the checked JSON, the corrected answer kept in `amend.response_format`.
pub(super) async fn apply(
    app: &App,
    model: &Arc<dyn Model>,
    req: &ChatRequest,
    messages: &[Message],
    mut a: super::chat::Answer,
    format: &Format,
    writer: &Arc<crate::trace::Writer>,
) -> Result<super::chat::Answer, ApiError> {
    if !format.is_json() {
        return Ok(a);
    }
    let model: Arc<dyn Model> = if app.config.redact {
        model.clone()
    } else {
        Arc::new(crate::trace::Traced::new(model.clone(), writer.clone()))
    };
    let max_tokens = super::chat::max_tokens(app, req);
    let expected = a
        .amend
        .get("answer")
        .and_then(Value::as_str)
        .map(str::to_string);
    let f = enforce(
        model.as_ref(),
        messages,
        &a.text,
        expected.as_deref(),
        format,
        max_tokens,
    )
    .await?;
    app.metrics.add_usage(&f.usage);
    let calls = a.amend.get("calls").and_then(Value::as_u64).unwrap_or(0) + f.usage.calls;
    set(&mut a.amend, "calls", json!(calls));
    a.usage.prompt_tokens += f.usage.prompt_tokens;
    a.usage.completion_tokens += f.usage.generated_tokens;
    a.usage.total_tokens += f.usage.prompt_tokens + f.usage.generated_tokens;
    set(
        &mut a.amend,
        "response_format",
        json!({"type": format.name(), "turns": f.turns, "constrained": f.constrained, "answer": a.text}),
    );
    a.text = f.text;
    a.finish = "stop";
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_found_and_checked() {
        let f = Format::parse(Some(&json!({"type": "json_schema", "json_schema": {"name": "a",
            "schema": {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}}})))
        .unwrap();
        assert_eq!(f.check("{\"answer\": 7}", None).unwrap(), "{\"answer\":7}");
        assert_eq!(
            f.check("Sure:\n```json\n{\"answer\": 7}\n```", None)
                .unwrap(),
            "{\"answer\":7}"
        );
        assert_eq!(
            f.check("The JSON is {\"answer\": 7} as asked.", Some("7"))
                .unwrap(),
            "{\"answer\":7}"
        );
        let e = f.check("{\"answer\": \"seven\"}", None).unwrap_err();
        assert!(e[0].starts_with("/answer"), "{e:?}");
        assert!(f.check("The answer is 7.", None).is_err());
        let e = f.check("{\"answer\": 8}", Some("7")).unwrap_err();
        assert!(e[0].contains("carry the answer, 7"), "{e:?}");
        let o = Format::parse(Some(&json!({"type": "json_object"}))).unwrap();
        assert!(o.check("[1, 2]", None).is_err());
        assert!(o.check("{}", None).is_ok());
        assert!(o.check("{\"n\": [\"7.0\"]}", Some("7")).is_ok());
        assert!(!Format::parse(None).unwrap().is_json());
        assert!(!Format::parse(Some(&json!({"type": "text"})))
            .unwrap()
            .is_json());
        for bad in [
            json!({"type": "xml"}),
            json!({"type": "json_schema"}),
            json!({"type": "json_schema", "json_schema": {"name": "x"}}),
            json!({"type": "json_schema", "json_schema": {"schema": {"type": 12}}}),
            json!("json"),
        ] {
            let e = Format::parse(Some(&bad)).err().unwrap();
            assert_eq!(e.param.as_deref(), Some("response_format"), "{bad}");
        }
    }
}
