//! `amend bench format`: `response_format` with a strategy on the default model, over HTTP.
//! Level-1 problems of the reporting seed, each asked with the server's default strategy (the
//! recommended one) and a JSON schema `{"answer": number}`: how many answers come back as
//! checked JSON, after how many formatting turns, whether the JSON's number is the corrected
//! answer it was written from (the formatting turn must not change the answer), and the
//! accuracy of each against the gold answer.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::commits::Loopback;
use super::CommitsError;
use crate::data::ladder::{self, Level};
use crate::model::ModelError;

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct FormatRow {
    /// HTTP status (200, or 502 when no formatting turn passed).
    pub status: u16,
    /// Formatting turns spent (0: the answer already passed).
    pub turns: u64,
    /// Whether the turns decoded under the schema.
    pub constrained: bool,
    /// The corrected answer (before formatting), extracted.
    pub corrected: Option<String>,
    /// The JSON's `answer`.
    pub json_answer: Option<String>,
    /// The gold answer.
    pub gold: String,
    /// Seconds for the request.
    pub seconds: f64,
}

/// Result of [`format_bench`].
#[derive(Debug, Clone, Serialize)]
pub struct FormatReport {
    /// Problems asked.
    pub problems: usize,
    /// Answered with checked JSON (200).
    pub formatted: usize,
    /// 502: no formatting turn passed.
    pub failed: usize,
    /// Formatted with no extra turn / one / more.
    pub turns_0: usize,
    /// One formatting turn.
    pub turns_1: usize,
    /// More than one.
    pub turns_more: usize,
    /// The JSON's number equals the corrected answer (of those formatted with a corrected
    /// answer).
    pub same_as_corrected: usize,
    /// Formatted answers whose corrected answer was extracted.
    pub with_corrected: usize,
    /// Corrected answers right against gold.
    pub corrected_right: usize,
    /// JSON answers right against gold.
    pub json_right: usize,
    /// Median seconds per request.
    pub median_s: f64,
    /// Every problem.
    pub rows: Vec<FormatRow>,
}

/// The schema asked for.
pub fn schema() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": {
        "type": "object", "required": ["answer"], "additionalProperties": false,
        "properties": {"answer": {"type": "number"}}}}})
}

/// Run it on the first `problems` level-1 problems of seed 13.
///
/// # Errors
/// [`CommitsError`] when the model, the server or a request fails (a 502 from the format is a
/// result, not an error).
pub async fn format_bench(
    path: &Path,
    threads: u32,
    problems: usize,
) -> Result<FormatReport, CommitsError> {
    let server = Loopback::start(path, threads, 8, "format").await?;
    let level =
        Level::new(1).ok_or_else(|| ModelError::InvalidRequest("level 1 is not defined".into()))?;
    let items = ladder::generate(problems, &level, 13);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/chat/completions", server.addr);
    let mut rows = Vec::with_capacity(items.len());
    for p in &items {
        let gold = p
            .answer
            .rsplit("####")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let t = Instant::now();
        let resp = http
            .post(&url)
            .json(
                &json!({"model": "default", "max_tokens": 256, "response_format": schema(),
                "messages": [{"role": "user", "content": p.question}]}),
            )
            .send()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| CommitsError::Http(e.to_string()))?;
        let seconds = t.elapsed().as_secs_f64();
        let f = v.pointer("/amend/response_format");
        let json_answer = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|j| j.get("answer").map(ToString::to_string));
        rows.push(FormatRow {
            status,
            turns: f
                .and_then(|f| f.get("turns"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            constrained: f
                .and_then(|f| f.get("constrained"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            corrected: v
                .pointer("/amend/answer")
                .and_then(Value::as_str)
                .map(str::to_string),
            json_answer,
            gold,
            seconds,
        });
    }
    server.stop().await;
    let same = |a: &Option<String>, b: &str| {
        a.as_deref()
            .is_some_and(|a| crate::answer::same_number(a, b))
    };
    let ok: Vec<&FormatRow> = rows.iter().filter(|r| r.status == 200).collect();
    let with_corrected: Vec<&&FormatRow> = ok.iter().filter(|r| r.corrected.is_some()).collect();
    Ok(FormatReport {
        problems: rows.len(),
        formatted: ok.len(),
        failed: rows.iter().filter(|r| r.status == 502).count(),
        turns_0: ok.iter().filter(|r| r.turns == 0).count(),
        turns_1: ok.iter().filter(|r| r.turns == 1).count(),
        turns_more: ok.iter().filter(|r| r.turns > 1).count(),
        same_as_corrected: with_corrected
            .iter()
            .filter(|r| same(&r.json_answer, r.corrected.as_deref().unwrap_or("")))
            .count(),
        with_corrected: with_corrected.len(),
        corrected_right: rows.iter().filter(|r| same(&r.corrected, &r.gold)).count(),
        json_right: ok.iter().filter(|r| same(&r.json_answer, &r.gold)).count(),
        median_s: super::fingerprint::median(rows.iter().map(|r| r.seconds).collect()),
        rows,
    })
}
