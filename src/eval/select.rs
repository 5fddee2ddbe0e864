//! `amend eval select`: majority and verified selection over the first n samples of a finished
//! self-consistency run, for every n up to the run's sample count, from its results alone.
//!
//! One run with N samples per item then answers what N runs of n ≤ N samples would: the first
//! n samples of a run are a run of n samples with the same seeds. The verifier must be
//! model-free (`arith`, `ground` or a chain of them): it is applied to the stored sample
//! texts, so no model is loaded. Every row is compared with the run's greedy pass on the same
//! items (exact McNemar).

use std::path::Path;

use serde::Serialize;

use super::metrics::ratio;
use super::runner::read_results;
use super::EvalError;
use crate::answer;
use crate::critic::{self, Spec};
use crate::stats::{self, Interval, Verdict};
use crate::steps;
use crate::strategy::{majority_of, select_verified};

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
    /// Some sample among the first n is right (what an oracle would pick).
    pub any_right: f64,
    /// Mean samples accepted per item.
    pub survivors: f64,
    /// Items where the verifier flagged every one of the first n samples.
    pub none_survived: u64,
    /// Generated tokens per item of n samples (the run's mean per sample, times n).
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
/// made before "before" was one greedy pass), or `verifier` needs a model.
pub fn select(dir: &Path, verifier: &Spec) -> Result<SelectTable, EvalError> {
    let path = dir.join("results.jsonl");
    let results = read_results(&path)?;
    let bad = |reason: String| EvalError::Io {
        path: path.clone(),
        reason,
    };
    struct Item {
        gold: String,
        greedy: bool,
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
        let mut flagged = Vec::with_capacity(r.attempts.len());
        for a in &r.attempts {
            let found = critic::locate_without_model(verifier, &problem, &steps::split(a)).ok_or_else(|| {
                bad(format!(
                    "the verifier `{verifier}` needs a model; `eval select` takes model-free ones: arith, ground, chain:arith,ground"
                ))
            })?;
            flagged.push(found.is_some());
        }
        items.push(Item {
            gold: r.gold.clone(),
            greedy: r.correct_before,
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
    let mut rows = Vec::new();
    for n in 1..=max_n {
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, gold: &str, greedy: bool, attempts: &[&str]) -> String {
        serde_json::json!({
            "id": id, "gold": gold, "answers": [], "correct_by_turn": [], "final_answer": null,
            "correct_before": greedy, "correct_after": false, "predicted_step": null,
            "label": null, "prior_right": null,
            "usage": {"prompt_tokens": 0, "generated_tokens": 30 * attempts.len(), "reused_tokens": 0, "calls": 1, "infra_retries": 0},
            "wall_s": 0.0, "trace": null, "error": null,
            "question": "Tom has 5 apples and finds 5 more. How many apples does he have?",
            "attempts": attempts,
        })
        .to_string()
    }

    #[test]
    fn verified_selection_drops_flagged_samples_after_the_fact() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rows = [
            // The invented 4 is flagged by `ground`: majority says 9, verified says 10.
            line(
                "a",
                "10",
                false,
                &[
                    "5 + 5 = 10.\n#### 10",
                    "5 + 4 = 9.\n#### 9",
                    "5 + 4 = 9.\n#### 9",
                ],
            ),
            // Every sample flagged: verified falls back to the majority of all.
            line(
                "b",
                "10",
                true,
                &[
                    "5 + 4 = 9.\n#### 9",
                    "5 + 6 = 11.\n#### 11",
                    "5 + 4 = 9.\n#### 9",
                ],
            ),
        ];
        std::fs::write(dir.path().join("results.jsonl"), rows.join("\n") + "\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let spec: Spec = "chain:arith,ground"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let t = select(dir.path(), &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.items, t.rows.len()), (2, 3));
        let r3 = t.rows.get(2).unwrap_or_else(|| panic!("n = 3"));
        assert_eq!((r3.majority, r3.verified), (0.0, 0.5));
        assert_eq!((r3.none_survived, r3.survivors), (1, 0.5));
        assert_eq!(
            r3.verified_flips,
            (1, 1),
            "gained a, lost b against the greedy pass"
        );
        assert_eq!(r3.any_right, 0.5);
        assert!((r3.tokens_per_item - 90.0).abs() < 1e-9);
        let llm: Spec = "llm".parse().unwrap_or_else(|e| panic!("{e}"));
        let err = select(dir.path(), &llm)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("needs a model"), "{err}");
    }
}
