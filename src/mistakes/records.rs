//! Records as JSON Lines (export and a strict import), and the counts `amend mistakes stats`
//! shows.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{Mistake, FIELDS};

/// An import file has bad lines; nothing of it was recorded.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {} bad line(s), nothing imported:\n{}", .problems.len(), .problems.iter().map(|(l, r)| format!("  line {l}: {r}")).collect::<Vec<_>>().join("\n"))]
pub struct ImportError {
    /// The file.
    pub file: String,
    /// (line number, what is wrong), first 20.
    pub problems: Vec<(usize, String)>,
}

/// Write `records` as JSON Lines, one record per line, fields in [`FIELDS`] order.
///
/// # Errors
/// The writer's error.
pub fn write_export<W: Write>(records: &[Mistake], mut out: W) -> std::io::Result<()> {
    for m in records {
        serde_json::to_writer(&mut out, m)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Parse an import file strictly: every line (blank lines aside) must be a JSON object with
/// exactly the fields of a [`Mistake`], whose `id` is a UUID (hyphenated, as amend writes
/// them), whose `time` is an RFC 3339 time and whose `outcome` is one of the known outcomes.
/// All lines are checked before anything is returned, so a bad file imports nothing.
///
/// # Errors
/// [`ImportError`] listing the bad lines with their numbers.
pub fn parse_import(file: &str, text: &str) -> Result<Vec<Mistake>, ImportError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(m) => out.push(m),
            Err(reason) if problems.len() < 20 => problems.push((i + 1, reason)),
            Err(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ImportError {
            file: file.into(),
            problems,
        })
    }
}

fn parse_line(line: &str) -> Result<Mistake, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let missing: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| !obj.contains_key(*f))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing field(s) {}", missing.join(", ")));
    }
    let m: Mistake = serde_json::from_value(v).map_err(|e| e.to_string())?;
    if uuid::Uuid::try_parse(&m.id).is_err() || m.id.len() != 36 {
        return Err(format!(
            "id {:?} is not a UUID like those amend writes (e.g. 0197a3c2-7d1e-7b3a-9c4f-2e8d1a6b5c40)",
            m.id
        ));
    }
    if time::OffsetDateTime::parse(&m.time, &time::format_description::well_known::Rfc3339).is_err()
    {
        return Err(format!(
            "time {:?} is not an RFC 3339 time (e.g. 2026-11-30T10:07:30Z)",
            m.time
        ));
    }
    Ok(m)
}

/// Counts over a set of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Number of records.
    pub total: usize,
    /// Records per task.
    pub by_task: BTreeMap<String, usize>,
    /// Records per model.
    pub by_model: BTreeMap<String, usize>,
    /// Records per critic.
    pub by_critic: BTreeMap<String, usize>,
    /// Records per outcome.
    pub by_outcome: BTreeMap<String, usize>,
    /// The most frequent located step positions: (step index, count), most frequent first.
    pub top_steps: Vec<(usize, usize)>,
    /// Records whose step was not located (only the answer was known wrong).
    pub unlocated: usize,
}

/// Count `records` by task, model, critic, outcome and located step.
pub fn stats(records: &[Mistake]) -> Stats {
    let mut s = Stats {
        total: records.len(),
        ..Stats::default()
    };
    let mut steps: BTreeMap<usize, usize> = BTreeMap::new();
    for m in records {
        *s.by_task.entry(m.task.clone()).or_default() += 1;
        *s.by_model.entry(m.model.clone()).or_default() += 1;
        *s.by_critic.entry(m.critic.clone()).or_default() += 1;
        *s.by_outcome
            .entry(m.outcome.as_str().to_string())
            .or_default() += 1;
        match m.step {
            Some(k) => *steps.entry(k).or_default() += 1,
            None => s.unlocated += 1,
        }
    }
    let mut top: Vec<(usize, usize)> = steps.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    s.top_steps = top;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mistakes::{Discard, Outcome, Sink};
    use std::sync::Arc;

    fn sample(n: usize) -> Vec<Mistake> {
        let sink = Sink {
            store: Arc::new(Discard),
            task: "gsm8k".into(),
            model: "m".into(),
            run: Some("r".into()),
        };
        (0..n)
            .map(|i| {
                let mut m = sink.blank(&format!("q{i}"), Some("4"));
                m.steps = vec!["a".into(), "b \"quoted\"\n".into()];
                m.step = (i % 3 != 0).then_some(i % 2);
                m.critic = if i % 2 == 0 { "arith" } else { "gold" }.into();
                m.outcome = if i % 2 == 0 {
                    Outcome::Fixed
                } else {
                    Outcome::NotFixed
                };
                m
            })
            .collect()
    }

    #[test]
    fn export_then_import_is_the_same_records() -> std::io::Result<()> {
        let recs = sample(5);
        let mut buf = Vec::new();
        write_export(&recs, &mut buf)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let back = parse_import("x.jsonl", &text).map_err(std::io::Error::other)?;
        assert_eq!(back, recs);
        let mut again = Vec::new();
        write_export(&back, &mut again)?;
        assert_eq!(again, buf);
        Ok(())
    }

    #[test]
    fn bad_lines_are_named_and_nothing_is_returned() {
        let recs = sample(2);
        let good = serde_json::to_string(&recs[0]).unwrap_or_default();
        let mut v = serde_json::to_value(&recs[1]).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("task");
        }
        let text = format!("{good}\n\n{v}\nnot json\n");
        let e = parse_import("f.jsonl", &text).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("line 3: missing field(s) task"), "{e}");
        assert!(e.contains("line 4: not JSON"), "{e}");
        assert!(!e.contains("  line 1:"), "{e}");
    }

    #[test]
    fn times_ids_and_outcomes_are_validated_on_import() {
        let rec = sample(1).remove(0);
        let with = |field: &str, value: serde_json::Value| {
            let mut v = serde_json::to_value(&rec).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert(field.into(), value);
            }
            v.to_string()
        };
        let text = [
            with("time", "2026".into()),
            // A multi-byte character where `mistakes list` used to cut the time at byte 19.
            with("time", "2026-11-30T10:07:3é0Z".into()),
            with("id", "not-a-uuid".into()),
            with("outcome", "better".into()),
            with("time", "2026-11-30T10:07:30+01:00".into()),
        ]
        .join("\n");
        let e = parse_import("f.jsonl", &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("line 1: time \"2026\" is not an RFC 3339 time"),
            "{e}"
        );
        assert!(e.contains("line 2: time"), "{e}");
        assert!(e.contains("line 3: id \"not-a-uuid\" is not a UUID"), "{e}");
        assert!(e.contains("line 4: unknown variant `better`"), "{e}");
        assert!(!e.contains("line 5"), "{e}");
    }

    #[test]
    fn stats_count_and_rank_steps() {
        let s = stats(&sample(6));
        assert_eq!(s.total, 6);
        assert_eq!(s.by_task.get("gsm8k"), Some(&6));
        assert_eq!(s.by_outcome.get("fixed"), Some(&3));
        assert_eq!(s.unlocated, 2);
        assert_eq!(s.top_steps, vec![(0, 2), (1, 2)]);
    }
}
