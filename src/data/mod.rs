//! Datasets: the loaders of GSM8K (JSONL), ProcessBench (JSON array) and BIG-Bench Mistake
//! (JSONL), and the makers of new data: [`synth`] (synthetic word problems), [`ladder`] (a
//! five-level difficulty ladder of them) and [`inject`] (critic test items with planted errors).
//!
//! Any file path in these formats works. A malformed line or record is reported with the file
//! and its line (JSONL) or index (JSON array); with `skip_bad` it is skipped and counted.

pub mod inject;
pub mod ladder;
pub mod orders;
pub mod synth;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::prompt::Shot;

/// The three task formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// GSM8K-style word problems with `#### N` answers.
    Gsm8k,
    /// ProcessBench: locate the earliest wrong step of a given solution.
    Processbench,
    /// BIG-Bench Mistake: traces with a labelled first mistake.
    Bbmistake,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Gsm8k => "gsm8k",
            Task::Processbench => "processbench",
            Task::Bbmistake => "bbmistake",
        })
    }
}

/// What an item is graded against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gold {
    /// A numeric answer (GSM8K), with the reference solution's text.
    Answer {
        /// Canonical number.
        answer: String,
        /// The reference solution (reasoning lines, without the `####` line).
        solution: String,
    },
    /// A given solution and the index of its earliest wrong step (-1 = none).
    Steps {
        /// The steps.
        steps: Vec<String>,
        /// Earliest wrong step, -1 when every step is right.
        label: i64,
    },
    /// A BIG-Bench Mistake trace.
    Trace {
        /// The trace's steps.
        steps: Vec<String>,
        /// The trace's own answer (may be empty).
        answer: String,
        /// The gold answer.
        target: String,
        /// First wrong step, `None` when none.
        mistake_index: Option<usize>,
    },
}

/// One evaluation item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Stable id: the dataset's own id, else `LINE_OR_INDEX` in the file.
    pub id: String,
    /// The question / problem / input.
    pub question: String,
    /// What it is graded against.
    pub gold: Gold,
}

/// A dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read dataset {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A line or record is malformed.
    #[error("{path}, {at}: {reason}\n  fix or remove that record, or use `skip_bad` to skip malformed records")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// `line N` or `record N`.
        at: String,
        /// What is wrong.
        reason: String,
    },
}

/// Loaded items plus what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Items in file order.
    pub items: Vec<Item>,
    /// Malformed records skipped (only with `skip_bad`), with their messages.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct Gsm8kLine {
    question: String,
    answer: String,
}

#[derive(Deserialize)]
struct PbRecord {
    #[serde(default)]
    id: Option<String>,
    problem: String,
    steps: Vec<String>,
    label: i64,
}

#[derive(Deserialize)]
struct BbLine {
    input: String,
    steps: Vec<String>,
    #[serde(default)]
    answer: Option<String>,
    target: String,
    mistake_index: Option<i64>,
}

/// Split a GSM8K answer into its reasoning text and its final answer.
pub fn split_gsm8k_answer(answer: &str) -> Option<(String, String)> {
    let pos = answer.rfind("####")?;
    let final_raw = answer[pos + 4..].trim();
    let n = crate::answer::Number::parse(final_raw)?;
    Some((answer[..pos].trim_end().to_string(), n.to_string()))
}

fn parse_gsm8k(line: &str, idx: usize) -> Result<Item, String> {
    let rec: Gsm8kLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let (solution, answer) = split_gsm8k_answer(&rec.answer)
        .ok_or("`answer` has no `#### N` final answer with a number")?;
    Ok(Item {
        id: idx.to_string(),
        question: rec.question,
        gold: Gold::Answer { answer, solution },
    })
}

fn parse_bb(line: &str, idx: usize) -> Result<Item, String> {
    let rec: BbLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mistake_index = match rec.mistake_index {
        None => None,
        Some(i) if i >= 0 && (i as usize) < rec.steps.len() => Some(i as usize),
        Some(i) => {
            return Err(format!(
                "mistake_index {i} is outside the {} steps",
                rec.steps.len()
            ))
        }
    };
    Ok(Item {
        id: idx.to_string(),
        question: rec.input,
        gold: Gold::Trace {
            steps: rec.steps,
            answer: rec.answer.unwrap_or_default(),
            target: rec.target,
            mistake_index,
        },
    })
}

fn check_pb(rec: PbRecord, idx: usize) -> Result<Item, String> {
    if rec.label < -1 || rec.label >= rec.steps.len() as i64 {
        return Err(format!(
            "label {} is outside -1..{}",
            rec.label,
            rec.steps.len()
        ));
    }
    Ok(Item {
        id: rec.id.unwrap_or_else(|| idx.to_string()),
        question: rec.problem,
        gold: Gold::Steps {
            steps: rec.steps,
            label: rec.label,
        },
    })
}

/// Load every item of `path` in the format of `task`.
///
/// # Errors
/// [`DataError`] naming the file and the line or record.
pub fn load(task: Task, path: &Path, skip_bad: bool) -> Result<Loaded, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let mut out = Loaded::default();
    let bad = |at: String, reason: String, out: &mut Loaded| -> Result<(), DataError> {
        let err = DataError::Malformed {
            path: path.into(),
            at,
            reason,
        };
        if skip_bad {
            tracing::warn!("skipping: {err}");
            out.skipped.push(err.to_string());
            Ok(())
        } else {
            Err(err)
        }
    };
    match task {
        Task::Gsm8k | Task::Bbmistake => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = if task == Task::Gsm8k {
                    parse_gsm8k(line, i)
                } else {
                    parse_bb(line, i)
                };
                match parsed {
                    Ok(item) => out.items.push(item),
                    Err(reason) => bad(format!("line {}", i + 1), reason, &mut out)?,
                }
            }
        }
        Task::Processbench => {
            let records: Vec<serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| DataError::Malformed {
                    path: path.into(),
                    at: format!("line {}", e.line()),
                    reason: format!("not a JSON array of records: {e}"),
                })?;
            for (i, v) in records.into_iter().enumerate() {
                let parsed = serde_json::from_value::<PbRecord>(v)
                    .map_err(|e| e.to_string())
                    .and_then(|r| check_pb(r, i));
                match parsed {
                    Ok(item) => out.items.push(item),
                    Err(reason) => bad(format!("record {i}"), reason, &mut out)?,
                }
            }
        }
    }
    Ok(out)
}

/// Shuffle with `shuffle` (a seed), then skip `offset` items, then keep `limit` (in that order).
pub fn select(
    mut items: Vec<Item>,
    shuffle: Option<u64>,
    offset: usize,
    limit: Option<usize>,
) -> Vec<Item> {
    if let Some(seed) = shuffle {
        // Fisher-Yates over the same SplitMix64 stream as the synthetic generator: stable
        // across platforms and versions.
        crate::rng::Rng::new(seed).shuffle(&mut items);
    }
    let items: Vec<Item> = items.into_iter().skip(offset).collect();
    match limit {
        Some(n) => items.into_iter().take(n).collect(),
        None => items,
    }
}

/// Strip GSM8K calculator annotations (`<<48/2=24>>`).
pub fn strip_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        out.push_str(&rest[..start]);
        match rest[start..].find(">>") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A worked example made from an item (GSM8K: the reference solution; BIG-Bench Mistake: a
/// trace without mistakes). `None` for items that cannot serve as one.
pub fn shot_from(item: &Item) -> Option<Shot> {
    match &item.gold {
        Gold::Answer { answer, solution } => Some(Shot {
            question: item.question.clone(),
            solution: format!(
                "{}\nThe answer is {answer}.",
                strip_annotations(solution).trim()
            ),
        }),
        Gold::Trace {
            steps,
            answer,
            target,
            mistake_index: None,
        } if crate::answer::bb_match(answer, target) => Some(Shot {
            question: item.question.clone(),
            solution: steps.join("\n"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, content).expect("write");
        (dir, p)
    }

    #[test]
    fn gsm8k_lines_and_errors() {
        let good = r#"{"question": "q1", "answer": "a <<1+1=2>>2\n#### 2"}"#;
        let (_d, p) = write(&format!("{good}\n{{broken\n{good}\n"));
        let err = load(Task::Gsm8k, &p, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("d.jsonl, line 2"), "{err}");
        let l = load(Task::Gsm8k, &p, true).expect("skip");
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.skipped.len(), 1);
        assert_eq!(l.items[1].id, "2");
        assert!(matches!(&l.items[0].gold, Gold::Answer { answer, .. } if answer == "2"));
    }

    #[test]
    fn select_is_deterministic() {
        let items: Vec<Item> = (0..10)
            .map(|i| Item {
                id: i.to_string(),
                question: String::new(),
                gold: Gold::Steps {
                    steps: vec![],
                    label: -1,
                },
            })
            .collect();
        let a = select(items.clone(), Some(3), 2, Some(4));
        let b = select(items, Some(3), 2, Some(4));
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn annotations_are_stripped() {
        assert_eq!(
            strip_annotations("48/2 = <<48/2=24>>24 clips"),
            "48/2 = 24 clips"
        );
        assert_eq!(strip_annotations("a <<b"), "a <<b");
    }
}
