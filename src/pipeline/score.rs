//! Scoring a pipeline's results against gold fields (`amend pipeline run --data` when each
//! line has a `gold` object): how often the run completed with a result (for a pipeline whose
//! last node checks a schema: the schema-valid rate), and how often each field equals the
//! gold one (numbers compared by value, text exactly after trimming).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::exec::{Outcome, Status};
use crate::stats::{wilson, Interval};

/// Scores over a set of runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    /// Runs scored.
    pub n: u64,
    /// Runs that completed with a result object.
    pub valid: u64,
    /// `valid / n` with its 95% Wilson interval.
    pub valid_rate: f64,
    /// The interval.
    pub valid_ci: Option<Interval>,
    /// Per gold field: runs whose result has it equal to the gold value.
    pub field_matches: BTreeMap<String, u64>,
    /// Runs whose every gold field matched.
    pub all_fields: u64,
    /// `all_fields / n` with its 95% Wilson interval.
    pub all_fields_rate: f64,
    /// The interval.
    pub all_fields_ci: Option<Interval>,
    /// Model calls per run.
    pub calls_per_run: f64,
    /// Re-asks per run.
    pub reasks_per_run: f64,
    /// Generated tokens per run (every model call's).
    pub tokens_per_run: f64,
}

/// Does `got` equal `want`? Numbers by value (`3.5` = `3.50` = `"3.50"`), strings trimmed
/// and case-insensitive, anything else exactly.
pub fn same(got: &Value, want: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_start_matches('$').parse::<f64>().ok(),
        _ => None,
    };
    match (got, want) {
        (_, Value::Number(_)) => match (num(got), num(want)) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            _ => false,
        },
        (Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => got == want,
    }
}

/// Score `runs`: each an outcome and the gold object its input carried.
pub fn score<'a>(runs: impl IntoIterator<Item = (&'a Outcome, &'a Value)>) -> Scores {
    let mut s = Scores::default();
    let (mut calls, mut reasks, mut tokens) = (0u64, 0u64, 0u64);
    for (out, gold) in runs {
        s.n += 1;
        calls += out.usage.calls;
        tokens += out.usage.generated_tokens;
        reasks += out
            .events
            .iter()
            .filter(|e| e.kind == super::EventKind::Reask)
            .count() as u64;
        let result = match (&out.status, &out.result) {
            (Status::Complete, Some(r @ Value::Object(_))) => Some(r),
            _ => None,
        };
        s.valid += u64::from(result.is_some());
        let Some(fields) = gold.as_object() else {
            continue;
        };
        let mut all = true;
        for (k, want) in fields {
            let ok = result.and_then(|r| r.get(k)).is_some_and(|g| same(g, want));
            *s.field_matches.entry(k.clone()).or_default() += u64::from(ok);
            all &= ok;
        }
        s.all_fields += u64::from(all);
    }
    if s.n > 0 {
        let n = s.n as f64;
        s.valid_rate = s.valid as f64 / n;
        s.valid_ci = Some(wilson(s.valid, s.n));
        s.all_fields_rate = s.all_fields as f64 / n;
        s.all_fields_ci = Some(wilson(s.all_fields, s.n));
        s.calls_per_run = calls as f64 / n;
        s.reasks_per_run = reasks as f64 / n;
        s.tokens_per_run = tokens as f64 / n;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_by_value_text_trimmed() {
        assert!(same(&json!("3.50"), &json!(3.5)));
        assert!(same(&json!(4), &json!(4.0)));
        assert!(same(&json!("$12"), &json!(12)));
        assert!(!same(&json!("twelve"), &json!(12)));
        assert!(same(&json!(" Lisbon"), &json!("lisbon")));
        assert!(!same(&json!("Lyon"), &json!("Lisbon")));
    }
}
