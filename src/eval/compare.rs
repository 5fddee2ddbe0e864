//! `amend eval compare DIR1 DIR2 ...`: runs side by side on the items they share, and the items
//! whose correctness differs between runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::{self, ItemResult, Summary};
use super::runner::read_results;
use super::EvalError;

/// One run in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RunColumn {
    /// Output directory.
    pub dir: PathBuf,
    /// Label: strategy / critic / model from its config.
    pub label: String,
    /// Summary over the shared items only.
    pub summary: Summary,
}

/// An item right in some runs and wrong in others.
#[derive(Debug, Clone, Serialize)]
pub struct Flipped {
    /// Item id.
    pub id: String,
    /// Final correctness in each run, in column order.
    pub correct: Vec<bool>,
    /// Final answer in each run.
    pub answers: Vec<Option<String>>,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Runs in the order given.
    pub runs: Vec<RunColumn>,
    /// Items every run has.
    pub shared: usize,
    /// Items that flipped between runs.
    pub flipped: Vec<Flipped>,
}

fn label(dir: &Path) -> String {
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    match cfg {
        Some(v) => {
            let c = v.get("config").cloned().unwrap_or_default();
            let c = |k: &str| c.get(k).cloned().unwrap_or_default();
            let mut l = format!(
                "{} {}",
                c("strategy").as_str().unwrap_or("?"),
                c("model").as_str().unwrap_or("?")
            );
            if let Some(cr) = c("critic").as_str() {
                l.push_str(&format!(" critic={cr}"));
            }
            l
        }
        None => dir.display().to_string(),
    }
}

/// Compare the runs in `dirs` on the items they all have.
///
/// # Errors
/// [`EvalError`] when a results file cannot be read.
pub fn compare(dirs: &[PathBuf]) -> Result<Comparison, EvalError> {
    let mut per_run: Vec<BTreeMap<String, ItemResult>> = Vec::new();
    for d in dirs {
        let rs = read_results(&d.join("results.jsonl"))?;
        if rs.is_empty() {
            return Err(EvalError::Io {
                path: d.join("results.jsonl"),
                reason: "no results (is this an evaluation run's directory?)".into(),
            });
        }
        per_run.push(rs.into_iter().map(|r| (r.id.clone(), r)).collect());
    }
    let mut shared: BTreeSet<String> = per_run
        .first()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for m in per_run.iter().skip(1) {
        shared.retain(|id| m.contains_key(id));
    }
    let runs = dirs
        .iter()
        .zip(&per_run)
        .map(|(d, m)| {
            let rs: Vec<ItemResult> = shared.iter().filter_map(|id| m.get(id).cloned()).collect();
            RunColumn {
                dir: d.clone(),
                label: label(d),
                summary: metrics::summarize(&rs),
            }
        })
        .collect();
    let flipped = shared
        .iter()
        .filter_map(|id| {
            let rs: Vec<&ItemResult> = per_run.iter().filter_map(|m| m.get(id)).collect();
            let correct: Vec<bool> = rs.iter().map(|r| r.correct_after).collect();
            (correct.iter().any(|c| *c) && correct.iter().any(|c| !*c)).then(|| Flipped {
                id: id.clone(),
                correct,
                answers: rs.iter().map(|r| r.final_answer.clone()).collect(),
            })
        })
        .collect();
    Ok(Comparison {
        runs,
        shared: shared.len(),
        flipped,
    })
}

/// Render a comparison as a Markdown table plus the flipped items.
pub fn to_markdown(c: &Comparison) -> String {
    let mut s = format!("{} shared items\n\n| run | accuracy | before | R→W | W→R | tokens/item | calls |\n|---|---|---|---|---|---|---|\n", c.shared);
    for r in &c.runs {
        let m = &r.summary;
        s.push_str(&format!(
            "| {} ({}) | {:.1}% | {:.1}% | {} | {} | {:.0} | {} |\n",
            r.label,
            r.dir.display(),
            m.accuracy * 100.0,
            m.accuracy_before * 100.0,
            m.flips.right_to_wrong,
            m.flips.wrong_to_right,
            m.usage.tokens_per_item,
            m.usage.calls
        ));
    }
    s.push_str(&format!(
        "\n{} items flipped between runs\n",
        c.flipped.len()
    ));
    for f in &c.flipped {
        let cells: Vec<String> = f
            .correct
            .iter()
            .zip(&f.answers)
            .map(|(ok, a)| {
                format!(
                    "{}:{}",
                    if *ok { "right" } else { "wrong" },
                    a.as_deref().unwrap_or("-")
                )
            })
            .collect();
        s.push_str(&format!("- `{}`: {}\n", f.id, cells.join("  ")));
    }
    s
}
