//! `amend eval select`: majority and verified selection over the first n samples of a finished
//! self-consistency run, for every n up to the run's sample count, from its results alone.
//!
//! One run with N samples per item then answers what N runs of n ≤ N samples would: the first
//! n samples of a run are a run of n samples with the same seeds. The verifier must be
//! model-free (`arith`, `ground` or a chain of them): it is applied to the stored sample
//! texts, so no model is loaded. Every row is compared with the run's greedy pass on the same
//! items (exact McNemar).
//!
//! Anchored selection is read too when the run's traces hold its greedy pass (the call with
//! one output at temperature 0 whose prompt holds the item's question; the last such call of
//! an item): the greedy answer stands when the verifier accepts the greedy text, else the
//! verified majority of the first n samples, else (none accepted) the greedy answer. Its
//! tokens count the greedy pass and, where the greedy text was flagged, the n samples.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::ratio;
use super::runner::read_results;
use super::EvalError;
use crate::answer;
use crate::critic::{self, Spec};
use crate::stats::{self, Interval, Verdict};
use crate::steps;
use crate::strategy::{majority_of, select_verified};
use crate::trace;

/// Selection over the first `n` samples.
#[derive(Debug, Clone, Serialize)]
pub struct SelectRow {
    /// Samples used.
    pub n: usize,
    /// Accuracy of the majority of the first n samples.
    pub majority: f64,
    /// Its 95% interval.
    pub majority_ci: Interval,
    /// Exact McNemar p of majority vs the greedy pass.
    pub majority_p: f64,
    /// Right only by majority / right only by the greedy pass.
    pub majority_flips: (u64, u64),
    /// Accuracy of the majority of the verified samples among the first n (all when none).
    pub verified: f64,
    /// Its 95% interval.
    pub verified_ci: Interval,
    /// Exact McNemar p of verified selection vs the greedy pass.
    pub verified_p: f64,
    /// Right only by verified selection / right only by the greedy pass.
    pub verified_flips: (u64, u64),
    /// Exact McNemar p of verified selection vs majority.
    pub verified_vs_majority_p: f64,
    /// Verified selection's reading against majority.
    pub verified_vs_majority: Verdict,
    /// Anchored selection (see the module doc), when every item's greedy text was found.
    pub anchored: Option<Anchored>,
    /// Some sample among the first n is right (what an oracle would pick).
    pub any_right: f64,
    /// Mean samples accepted per item.
    pub survivors: f64,
    /// Items where the verifier flagged every one of the first n samples.
    pub none_survived: u64,
    /// Generated tokens per item of n samples (the run's mean per sample, times n).
    pub tokens_per_item: f64,
}

/// Anchored selection over the first n samples.
#[derive(Debug, Clone, Serialize)]
pub struct Anchored {
    /// Accuracy.
    pub accuracy: f64,
    /// Its 95% interval.
    pub ci: Interval,
    /// Exact McNemar p against the greedy pass.
    pub p: f64,
    /// Right only by anchored selection / right only by the greedy pass.
    pub flips: (u64, u64),
    /// Items whose greedy text the verifier flagged (those that draw samples).
    pub drawn: u64,
    /// Generated tokens per item: the greedy pass, plus n samples where it was flagged.
    pub tokens_per_item: f64,
}

/// The selection table of one run.
#[derive(Debug, Clone, Serialize)]
pub struct SelectTable {
    /// Items used (those with a greedy pass and at least one sample).
    pub items: u64,
    /// Accuracy of the greedy pass.
    pub greedy: f64,
    /// Its 95% interval.
    pub greedy_ci: Interval,
    /// The verifier.
    pub verifier: String,
    /// One row per n.
    pub rows: Vec<SelectRow>,
}

/// Majority and verified selection over the first n samples of the run in `dir`, n = 1..=N.
///
/// # Errors
/// [`EvalError`] when the results cannot be read, hold no samples or no greedy pass (a run
/// made before "before" was one greedy pass), the run used anchored selection (its items
/// have samples only where the greedy pass was flagged), or `verifier` needs a model.
pub fn select(dir: &Path, verifier: &Spec) -> Result<SelectTable, EvalError> {
    if drew_only_where_flagged(dir) {
        return Err(EvalError::Io {
            path: dir.join("config.json"),
            reason: "this run used anchored selection, which draws samples only where its \
                     verifier flagged the greedy pass, so its items do not all have their first \
                     n samples; `eval select` reads a self-consistency run made with \
                     `select = majority` or `verified` (it reads anchored selection from those)"
                .into(),
        });
    }
    let path = dir.join("results.jsonl");
    let results = read_results(&path)?;
    let bad = |reason: String| EvalError::Io {
        path: path.clone(),
        reason,
    };
    let greedy_texts = greedy_texts(dir, &results);
    struct Item {
        gold: String,
        greedy: bool,
        // The verifier flagged the greedy text (None: the text was not found).
        greedy_flagged: Option<bool>,
        greedy_tokens: f64,
        answers: Vec<Option<String>>,
        flagged: Vec<bool>,
        tokens_per_sample: f64,
    }
    let mut items = Vec::new();
    for r in &results {
        if r.error.is_some() || r.attempts.is_empty() {
            continue;
        }
        let problem = r.question.clone().unwrap_or_default();
        let needs_model = || {
            bad(format!(
                "the verifier `{verifier}` needs a model; `eval select` takes model-free ones: arith, ground, derive, chain:arith,derive"
            ))
        };
        let greedy_flagged = match greedy_texts.get(&problem) {
            Some(t) => Some(
                critic::locate_without_model(verifier, &problem, &steps::split(t))
                    .ok_or_else(needs_model)?
                    .is_some(),
            ),
            None => None,
        };
        let mut flagged = Vec::with_capacity(r.attempts.len());
        for a in &r.attempts {
            let found = critic::locate_without_model(verifier, &problem, &steps::split(a))
                .ok_or_else(needs_model)?;
            flagged.push(found.is_some());
        }
        items.push(Item {
            gold: r.gold.clone(),
            greedy: r.correct_before,
            greedy_flagged,
            greedy_tokens: r
                .usage_before
                .as_ref()
                .map_or(0.0, |u| u.generated_tokens as f64),
            answers: r.attempts.iter().map(|a| answer::extract_str(a)).collect(),
            flagged,
            tokens_per_sample: r.usage.generated_tokens as f64 / r.attempts.len() as f64,
        });
    }
    if items.is_empty() {
        return Err(bad("no item with samples (is this a self-consistency run made since results keep their attempts?)".into()));
    }
    let max_n = items.iter().map(|i| i.answers.len()).min().unwrap_or(0);
    let total = items.len() as u64;
    let right =
        |a: &Option<String>, gold: &str| a.as_deref().is_some_and(|a| answer::same_number(a, gold));
    let greedy_right = items.iter().filter(|i| i.greedy).count() as u64;
    let all_greedy = items.iter().all(|i| i.greedy_flagged.is_some());
    let mut rows = Vec::new();
    for n in 1..=max_n {
        let (mut an, mut ag, mut al, mut drawn, mut atok) = (0u64, 0u64, 0u64, 0u64, 0.0);
        let (mut maj, mut ver, mut any, mut surv, mut none, mut tokens) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0.0);
        let (mut mg, mut ml, mut vg, mut vl, mut vm_g, mut vm_l) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for it in &items {
            let first = it.answers.get(..n).unwrap_or_default();
            let flags = it.flagged.get(..n).unwrap_or_default();
            let m = right(&majority_of(first), &it.gold);
            let (verified, kept) = select_verified(first, flags);
            let v = right(&verified, &it.gold);
            none += u64::from(kept == 0);
            surv += kept as u64;
            maj += u64::from(m);
            ver += u64::from(v);
            any += u64::from(first.iter().any(|a| right(a, &it.gold)));
            tokens += it.tokens_per_sample * n as f64;
            mg += u64::from(m && !it.greedy);
            ml += u64::from(!m && it.greedy);
            vg += u64::from(v && !it.greedy);
            vl += u64::from(!v && it.greedy);
            vm_g += u64::from(v && !m);
            vm_l += u64::from(!v && m);
            // Anchored: the greedy answer unless its text is flagged and a sample is accepted.
            let flagged = it.greedy_flagged.unwrap_or(false);
            let a = if flagged && kept > 0 { v } else { it.greedy };
            an += u64::from(a);
            ag += u64::from(a && !it.greedy);
            al += u64::from(!a && it.greedy);
            drawn += u64::from(flagged);
            atok += it.greedy_tokens
                + if flagged {
                    it.tokens_per_sample * n as f64
                } else {
                    0.0
                };
        }
        let share = |k: u64| ratio(k, total);
        rows.push(SelectRow {
            n,
            majority: share(maj),
            majority_ci: stats::wilson(maj, total),
            majority_p: stats::mcnemar(mg, ml),
            majority_flips: (mg, ml),
            verified: share(ver),
            verified_ci: stats::wilson(ver, total),
            verified_p: stats::mcnemar(vg, vl),
            verified_flips: (vg, vl),
            verified_vs_majority_p: stats::mcnemar(vm_g, vm_l),
            verified_vs_majority: Verdict::of(vm_g, vm_l),
            anchored: all_greedy.then(|| Anchored {
                accuracy: share(an),
                ci: stats::wilson(an, total),
                p: stats::mcnemar(ag, al),
                flips: (ag, al),
                drawn,
                tokens_per_item: atok / total as f64,
            }),
            any_right: share(any),
            survivors: ratio(surv, total),
            none_survived: none,
            tokens_per_item: tokens / total as f64,
        });
    }
    Ok(SelectTable {
        items: total,
        greedy: ratio(greedy_right, total),
        greedy_ci: stats::wilson(greedy_right, total),
        verifier: verifier.to_string(),
        rows,
    })
}

/// Whether the run in `dir` was made with anchored selection (its `config.json` says so).
fn drew_only_where_flagged(dir: &Path) -> bool {
    super::config::stored_config(dir)
        .and_then(|v| {
            v.pointer("/config/options/select")
                .and_then(|s| s.as_str().map(|s| s == "anchored"))
        })
        .unwrap_or(false)
}

/// The text of each item's greedy pass, by question, from the traces `results` point to (a
/// trace path is read as written, else under `dir/traces/`). Items whose text is not found are
/// left out; an unreadable trace leaves out its items.
fn greedy_texts(dir: &Path, results: &[super::ItemResult]) -> HashMap<String, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for r in results {
        let Some(file) = r.trace.as_deref().and_then(|t| t.split('#').next()) else {
            continue;
        };
        let path = PathBuf::from(file);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    // The prompt is JSON text: each question is looked for as JSON writes it.
    let questions: Vec<(&str, String)> = results
        .iter()
        .filter_map(|r| r.question.as_deref())
        .map(|q| {
            let quoted = serde_json::to_string(q).unwrap_or_default();
            (q, quoted.trim_matches('"').to_string())
        })
        .collect();
    let mut out = HashMap::new();
    for f in files {
        let local = f.file_name().map(|n| dir.join("traces").join(n));
        let Some(events) = trace::read(&f)
            .ok()
            .or_else(|| local.and_then(|l| trace::read(&l).ok()))
        else {
            continue;
        };
        for ev in events.iter().filter(|e| e.kind == "call") {
            let req = ev.data.get("request");
            let outputs = ev.data.get("output").and_then(|o| o.as_array());
            let greedy = req
                .and_then(|r| r.get("temperature"))
                .and_then(|t| t.as_f64())
                == Some(0.0)
                && outputs.is_some_and(|o| o.len() == 1);
            let text = outputs
                .and_then(|o| o.first())
                .and_then(|o| o.get("text"))
                .and_then(|t| t.as_str());
            let (true, Some(text)) = (greedy, text) else {
                continue;
            };
            let prompt = req
                .and_then(|r| r.get("input"))
                .map(ToString::to_string)
                .unwrap_or_default();
            for (q, quoted) in &questions {
                if prompt.contains(quoted.as_str()) {
                    out.insert(q.to_string(), text.to_string());
                }
            }
        }
    }
    out
}

/// The table as markdown.
pub fn to_markdown(t: &SelectTable) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let ci = |i: Interval| format!("[{:.1}, {:.1}]", i.lo * 100.0, i.hi * 100.0);
    let mut out = format!(
        "{} items; greedy pass {} {}; verifier {}\n\n| n | majority (95% CI) | gained / lost vs greedy | p | verified (95% CI) | gained / lost vs greedy | p | verified vs majority | some sample right | accepted per item | none accepted | tokens/item |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        t.items,
        pct(t.greedy),
        ci(t.greedy_ci),
        t.verifier
    );
    for r in &t.rows {
        out.push_str(&format!(
            "| {} | {} {} | {} / {} | {:.3} | {} {} | {} / {} | {:.3} | {} (p = {:.3}) | {} | {:.2} | {} | {:.0} |\n",
            r.n,
            pct(r.majority),
            ci(r.majority_ci),
            r.majority_flips.0,
            r.majority_flips.1,
            r.majority_p,
            pct(r.verified),
            ci(r.verified_ci),
            r.verified_flips.0,
            r.verified_flips.1,
            r.verified_p,
            r.verified_vs_majority.words(),
            r.verified_vs_majority_p,
            pct(r.any_right),
            r.survivors,
            r.none_survived,
            r.tokens_per_item
        ));
    }
    if t.rows.iter().all(|r| r.anchored.is_some()) && !t.rows.is_empty() {
        out.push_str("\nAnchored selection (the greedy pass stands unless the verifier flags it and accepts a sample):\n\n| n | anchored (95% CI) | gained / lost vs greedy | p | greedy flagged (items drawing samples) | tokens/item |\n|---|---|---|---|---|---|\n");
        for r in &t.rows {
            let Some(a) = &r.anchored else { continue };
            out.push_str(&format!(
                "| {} | {} {} | {} / {} | {:.3} | {} | {:.0} |\n",
                r.n,
                pct(a.accuracy),
                ci(a.ci),
                a.flips.0,
                a.flips.1,
                a.p,
                a.drawn,
                a.tokens_per_item
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
