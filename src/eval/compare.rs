//! `amend eval compare DIR1 DIR2 ...`: runs side by side on the items they share (each
//! accuracy with its 95% interval), every pair of runs paired on those items with the exact
//! McNemar p-value of their disagreements, and the items whose correctness differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::{self, ItemResult, Summary};
use super::runner::read_results;
use super::EvalError;
use crate::stats::{self, Verdict};

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

/// Two runs paired on their shared items.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// Column of the first run.
    pub a: usize,
    /// Column of the second run.
    pub b: usize,
    /// Items right in `a` only.
    pub a_only: u64,
    /// Items right in `b` only.
    pub b_only: u64,
    /// Exact McNemar p-value of `a_only` vs `b_only`.
    pub p: f64,
    /// What the pairing supports, read as "b against a".
    pub verdict: Verdict,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Runs in the order given.
    pub runs: Vec<RunColumn>,
    /// Items every run has.
    pub shared: usize,
    /// Every pair of runs (in column order), on the shared items.
    pub pairs: Vec<Pair>,
    /// Items that flipped between runs.
    pub flipped: Vec<Flipped>,
}

fn label(dir: &Path) -> String {
    match super::config::stored_config(dir) {
        Some(v) => {
            let c = v.get("config").cloned().unwrap_or_default();
            let c = |k: &str| c.get(k).cloned().unwrap_or_default();
            let what = match c("pipeline").as_str() {
                Some(p) => format!("pipeline {p}"),
                None => c("strategy").as_str().unwrap_or("?").to_string(),
            };
            let mut l = format!("{what} {}", c("model").as_str().unwrap_or("?"));
            if let Some(cr) = c("critic").as_str() {
                l.push_str(&format!(" critic={cr}"));
            }
            let opts = c("options");
            if opts.get("calculator").and_then(|b| b.as_bool()) == Some(true) {
                l.push_str(" +calculator");
            }
            if let Some(s) = opts.get("select").and_then(|s| s.as_str()) {
                l.push_str(&format!(" select={s}"));
            }
            // The search's settings that differ from its defaults (only those are written).
            if let Some(o) = opts.get("search").and_then(|o| o.as_object()) {
                let d = serde_json::to_value(crate::strategy::SearchOptions::default())
                    .unwrap_or_default();
                for (k, v) in o {
                    if d.get(k) != Some(v) && k != "temperature" {
                        l.push_str(&format!(" {k}={v}"));
                    }
                }
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
    let mut pairs = Vec::new();
    for a in 0..per_run.len() {
        for b in a + 1..per_run.len() {
            let (mut a_only, mut b_only) = (0u64, 0u64);
            for id in &shared {
                let right = |k: usize| {
                    per_run
                        .get(k)
                        .and_then(|m| m.get(id))
                        .is_some_and(|r| r.correct_after)
                };
                match (right(a), right(b)) {
                    (true, false) => a_only += 1,
                    (false, true) => b_only += 1,
                    _ => {}
                }
            }
            pairs.push(Pair {
                a,
                b,
                a_only,
                b_only,
                p: stats::mcnemar(a_only, b_only),
                verdict: Verdict::of(b_only, a_only),
            });
        }
    }
    Ok(Comparison {
        runs,
        shared: shared.len(),
        pairs,
        flipped,
    })
}

/// Render a comparison as a Markdown table plus the flipped items.
pub fn to_markdown(c: &Comparison) -> String {
    let mut s = format!("{} shared items\n\n| run | accuracy (95% CI) | before (95% CI) | R→W | W→R | McNemar p | tokens/item | calls |\n|---|---|---|---|---|---|---|---|\n", c.shared);
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let ci = |i: stats::Interval| format!("[{}, {}]", pct(i.lo), pct(i.hi));
    for r in &c.runs {
        let m = &r.summary;
        s.push_str(&format!(
            "| {} ({}) | {} {} | {} {} | {} | {} | {:.3} | {:.0} | {} |\n",
            r.label,
            r.dir.display(),
            pct(m.accuracy),
            ci(m.accuracy_ci),
            pct(m.accuracy_before),
            ci(m.accuracy_before_ci),
            m.flips.right_to_wrong,
            m.flips.wrong_to_right,
            m.mcnemar_p,
            m.usage.tokens_per_item,
            m.usage.calls
        ));
    }
    if !c.pairs.is_empty() {
        s.push_str("\n| pair (A vs B) | right in A only | right in B only | McNemar p | reading |\n|---|---|---|---|---|\n");
        for p in &c.pairs {
            let label = |k: usize| c.runs.get(k).map_or("?", |r| r.label.as_str());
            s.push_str(&format!(
                "| {} vs {} | {} | {} | {:.3} | {} |\n",
                label(p.a),
                label(p.b),
                p.a_only,
                p.b_only,
                p.p,
                p.verdict.words()
            ));
        }
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
