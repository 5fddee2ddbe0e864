//! The promotion gate: run a validation slice without and with the principles (two resumable
//! evaluation runs in `NAME.promotion/`), then accept the file only when accuracy does not drop
//! and negative flips (right without principles, wrong with them) stay under the cap. The
//! decision is written to `NAME.promotion.json` and into the file; a rejected file stays
//! where it is, with its reason.

use std::collections::HashMap;
use std::path::Path;

use super::{LeapError, Level, PrincipleSet, Promotion};
use crate::eval::metrics::ItemResult;
use crate::eval::{runner, Config};
use crate::run::Context;
use crate::stats::{self, Verdict};

/// Judge the two runs on the items they share: the decision (status, reason, basis) and its
/// figures. A file is accepted when accuracy does not drop and negative flips stay within the
/// cap; the basis says whether that acceptance rests on a significant gain (exact McNemar
/// p < 0.05) or only on no significant harm, so a noisy difference never reads as a gain.
pub fn decide(
    baseline: &[ItemResult],
    principled: &[ItemResult],
    max_negative_flips: f64,
    eval_dir: &str,
) -> Promotion {
    let with: HashMap<&str, &ItemResult> = principled.iter().map(|r| (r.id.as_str(), r)).collect();
    let (mut n, mut base_right, mut with_right, mut neg, mut pos) = (0, 0, 0, 0, 0);
    for b in baseline {
        let Some(p) = with.get(b.id.as_str()) else {
            continue;
        };
        n += 1;
        base_right += usize::from(b.correct_after);
        with_right += usize::from(p.correct_after);
        neg += usize::from(b.correct_after && !p.correct_after);
        pos += usize::from(!b.correct_after && p.correct_after);
    }
    let acc = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let cap = (max_negative_flips * n as f64).floor() as usize;
    let p_value = stats::mcnemar(pos as u64, neg as u64);
    let verdict = Verdict::of(pos as u64, neg as u64);
    let evidence = format!(
        "{:.1}% -> {:.1}% on {n} items, {pos} gained / {neg} lost, McNemar p = {p_value:.3}: {}",
        acc(base_right) * 100.0,
        acc(with_right) * 100.0,
        verdict.words()
    );
    let (status, basis, reason) = if n == 0 {
        (
            "rejected",
            "no evidence",
            "no validation item was evaluated by both runs".to_string(),
        )
    } else if with_right < base_right {
        (
            "rejected",
            if verdict == Verdict::SignificantLoss {
                "significant harm"
            } else {
                "accuracy drops"
            },
            format!("accuracy drops: {evidence}"),
        )
    } else if neg > cap {
        (
            "rejected",
            "too many negative flips",
            format!(
                "{neg} negative flips exceed the cap of {:.1}% ({cap} items): {evidence}",
                max_negative_flips * 100.0
            ),
        )
    } else if verdict == Verdict::SignificantGain {
        (
            "accepted",
            "significant gain",
            format!("accepted on a significant gain: {evidence}"),
        )
    } else {
        (
            "accepted",
            "no significant harm",
            format!(
                "accepted on no significant harm (not a gain): {evidence}; negative flips within the cap of {cap}"
            ),
        )
    };
    Promotion {
        status: status.into(),
        reason,
        date: crate::mistakes::now(),
        n,
        baseline_accuracy: acc(base_right),
        principled_accuracy: acc(with_right),
        negative_flips: neg,
        positive_flips: pos,
        max_negative_flips,
        eval_dir: eval_dir.into(),
        p_value: Some(p_value),
        baseline_ci: Some(stats::wilson(base_right as u64, n as u64)),
        principled_ci: Some(stats::wilson(with_right as u64, n as u64)),
        basis: Some(basis.into()),
    }
}

/// Gate the principles file at `path`: `base` is the validation run's configuration (its
/// `out`, `principles` and `principles_level` are set here), `cx` the context both runs use
/// (the model, and a mistakes store when set).
///
/// # Errors
/// [`LeapError`] when the file, an evaluation run or writing the decision fails.
pub async fn promote(
    path: &Path,
    base: &Config,
    level: Level,
    cx: Context,
    max_negative_flips: f64,
) -> Result<Promotion, LeapError> {
    let mut set = PrincipleSet::load(path)?;
    let eval_dir = path.with_extension("promotion");
    let mut b = base.clone();
    b.out = eval_dir.join("baseline");
    b.principles = None;
    let mut p = base.clone();
    p.out = eval_dir.join("principled");
    p.principles = Some(path.to_path_buf());
    p.principles_level = level;
    let plan = runner::prepare(&b)?;
    runner::execute(&b, plan, cx.clone()).await?;
    let plan = runner::prepare(&p)?;
    runner::execute(&p, plan, cx).await?;
    let base_results = runner::read_results(&b.out.join("results.jsonl"))?;
    let with_results = runner::read_results(&p.out.join("results.jsonl"))?;
    let decision = decide(
        &base_results,
        &with_results,
        max_negative_flips,
        &eval_dir.display().to_string(),
    );
    let json_path = path.with_extension("promotion.json");
    let text = serde_json::to_string_pretty(&decision).map_err(|e| LeapError::Io(e.to_string()))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| {
        LeapError::Prompt(crate::prompt::PromptError::Principles {
            path: json_path.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    set.promotion = Some(decision.clone());
    set.save(path)?;
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, right: bool) -> ItemResult {
        let mut x: ItemResult = serde_json::from_value(serde_json::json!({
            "id": id, "gold": "1", "answers": [], "correct_by_turn": [], "final_answer": null,
            "correct_before": right, "correct_after": right,
            "usage": {"prompt_tokens": 0, "generated_tokens": 0, "reused_tokens": 0, "calls": 0, "infra_retries": 0},
            "wall_s": 0.0
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        x.correct_after = right;
        x
    }

    #[test]
    fn the_gate_refuses_drops_and_too_many_negative_flips() {
        let base: Vec<_> = (0..100).map(|i| r(&i.to_string(), i < 10)).collect();
        // Same accuracy, 2 negative and 2 positive flips: 2% cap allows 2.
        let with: Vec<_> = (0..100)
            .map(|i| r(&i.to_string(), (2..12).contains(&i)))
            .collect();
        let d = decide(&base, &with, 0.02, "d");
        assert_eq!(
            (d.status.as_str(), d.negative_flips, d.positive_flips),
            ("accepted", 2, 2)
        );
        // 2 gained / 2 lost is noise: accepted on no harm, never read as a gain.
        assert_eq!(d.basis.as_deref(), Some("no significant harm"));
        assert_eq!(d.p_value, Some(1.0));
        assert!(d.reason.contains("not a gain"), "{}", d.reason);
        // 8 gained / 0 lost: p = 2/256 < 0.05, a significant gain.
        let better: Vec<_> = (0..100).map(|i| r(&i.to_string(), i < 18)).collect();
        let d = decide(&base, &better, 0.02, "d");
        assert_eq!(
            (d.status.as_str(), d.basis.as_deref()),
            ("accepted", Some("significant gain"))
        );
        assert!(d.principled_ci.is_some_and(|c| c.lo > 0.1 && c.hi < 0.3));
        let d = decide(&base, &with, 0.01, "d");
        assert_eq!(d.status, "rejected");
        assert!(d.reason.contains("negative flips"), "{}", d.reason);
        let worse: Vec<_> = (0..100).map(|i| r(&i.to_string(), i < 9)).collect();
        let d = decide(&base, &worse, 0.02, "d");
        assert!(d.reason.contains("accuracy drops"), "{}", d.reason);
        assert_eq!(decide(&base, &[], 0.02, "d").status, "rejected");
    }
}
