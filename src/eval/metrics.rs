//! Metrics over per-item results: accuracy before/after, the flip matrix, CL/CS/RSS, cost,
//! accuracy per turn, the ProcessBench critic metric and the BIG-Bench Mistake breakdown.
//!
//! Definitions (N items, Acc₁ = accuracy of the first attempt, Acc₂ = final accuracy):
//! - flips: right→right, right→wrong (negative flips), wrong→right, wrong→wrong;
//! - CL = P(right after | right before), CS = P(right after | wrong before), so that
//!   Acc₂ = Acc₁·CL + (1 − Acc₁)·CS (Yang et al., "Confidence v.s. Critique");
//! - RSS, the relative self-correction score: the change Acc₂ − Acc₁ divided by the most it
//!   could have been in that direction: (Acc₂ − Acc₁)/(1 − Acc₁) when it rose, (Acc₂ − Acc₁)/Acc₁
//!   when it fell; in [−1, 1];
//! - ProcessBench: error_acc = share of erroneous samples whose earliest wrong step is named
//!   exactly, correct_acc = share of correct samples answered -1, F1 = their harmonic mean;
//!   an unparseable critic output is a wrong prediction and is also counted in `unparsed`.
//!
//! Every accuracy carries its 95% Wilson interval and every flip matrix its exact McNemar
//! p-value ([`crate::stats`]). The chance floor of GSM8K-format items is the accuracy of
//! answering each with a number chosen uniformly among the number mentions of its question;
//! an accuracy whose interval does not clear it says nothing about the model's arithmetic. "Before" is the greedy one-pass answer on the same item (for
//! BIG-Bench Mistake, the given trace's own answer).

use serde::{Deserialize, Serialize};

pub use super::result::ItemResult;
use crate::model::Usage;
use crate::stats::{self, Interval, Verdict};

/// The flip matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flips {
    /// Right before and after.
    pub right_to_right: u64,
    /// Right before, wrong after (negative flip).
    pub right_to_wrong: u64,
    /// Wrong before, right after (fixed).
    pub wrong_to_right: u64,
    /// Wrong before and after.
    pub wrong_to_wrong: u64,
}

/// Accuracy after `turn` turns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TurnAccuracy {
    /// 1-based turn.
    pub turn: usize,
    /// m1@tK: accuracy of the turn-K answer (an item that stopped earlier keeps its last answer).
    pub m1: f64,
    /// p1@tK: some turn ≤ K was right (oracle stopping).
    pub p1: f64,
    /// Majority over turns ≤ K (ties → latest) is right.
    pub majority: f64,
    /// 95% intervals of `m1`, `p1`, `majority`.
    #[serde(default)]
    pub m1_ci: Interval,
    /// See `m1_ci`.
    #[serde(default)]
    pub p1_ci: Interval,
    /// See `m1_ci`.
    #[serde(default)]
    pub majority_ci: Interval,
}

/// Cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Prompt tokens (including reused).
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub generated_tokens: u64,
    /// Prompt tokens reused from the KV cache.
    pub reused_tokens: u64,
    /// Model calls.
    pub calls: u64,
    /// Infrastructure retries.
    pub infra_retries: u64,
    /// Summed item wall time, seconds.
    pub wall_s: f64,
    /// (prompt − reused + generated) tokens per item.
    pub tokens_per_item: f64,
    /// Tokens of the whole run per wrong→right flip (`None` when nothing was fixed).
    pub tokens_per_fixed_answer: Option<f64>,
}

/// The ProcessBench metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CriticScores {
    /// Accuracy on erroneous samples (exact earliest index).
    pub error_acc: f64,
    /// Accuracy on correct samples (must say -1).
    pub correct_acc: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Outputs with no parseable index.
    pub unparsed: u64,
    /// Erroneous samples.
    pub n_error: u64,
    /// Correct samples.
    pub n_correct: u64,
    /// Erroneous samples named exactly.
    #[serde(default)]
    pub error_right: u64,
    /// Correct samples answered -1.
    #[serde(default)]
    pub correct_right: u64,
}

/// Accuracy change within one group of BIG-Bench Mistake traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupChange {
    /// Traces in the group.
    pub n: u64,
    /// Accuracy before (the trace's own answer).
    pub accuracy_before: f64,
    /// Accuracy after.
    pub accuracy_after: f64,
    /// after − before, in percentage points.
    pub delta_pp: f64,
    /// 95% interval of `accuracy_before`.
    #[serde(default)]
    pub before_ci: Interval,
    /// 95% interval of `accuracy_after`.
    #[serde(default)]
    pub after_ci: Interval,
    /// Exact McNemar p of the group's flips.
    #[serde(default = "one")]
    pub mcnemar_p: f64,
}

fn one() -> f64 {
    1.0
}

/// Tyen et al.'s table layout: traces whose own answer was right vs wrong before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PriorBreakdown {
    /// Traces that were right before.
    pub right_before: GroupChange,
    /// Traces that were wrong before.
    pub wrong_before: GroupChange,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Items with a result.
    pub n: u64,
    /// Items that ended in an error.
    pub errors: u64,
    /// Items a budget cut short.
    #[serde(default)]
    pub budget_stops: u64,
    /// Final accuracy.
    pub accuracy: f64,
    /// 95% Wilson interval of `accuracy`.
    #[serde(default)]
    pub accuracy_ci: Interval,
    /// Accuracy before correction: of the greedy one-pass answer (BIG-Bench Mistake: the
    /// trace's own answer).
    pub accuracy_before: f64,
    /// 95% Wilson interval of `accuracy_before`.
    #[serde(default)]
    pub accuracy_before_ci: Interval,
    /// The flip matrix.
    pub flips: Flips,
    /// Exact McNemar p-value of the flip matrix (before vs final on the same items).
    #[serde(default = "one")]
    pub mcnemar_p: f64,
    /// What the flip matrix supports: a significant gain or loss (p < 0.05), or no
    /// significant difference.
    #[serde(default)]
    pub verdict: Verdict,
    /// GSM8K-format items: the accuracy of answering with a number chosen uniformly from the
    /// question (over the items whose results keep their question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chance_floor: Option<f64>,
    /// P(right after | right before).
    pub cl: Option<f64>,
    /// P(right after | wrong before).
    pub cs: Option<f64>,
    /// Relative self-correction score.
    pub rss: Option<f64>,
    /// Cost.
    pub usage: Cost,
    /// Accuracy per turn (multi-turn strategies; one entry otherwise).
    pub accuracy_by_turn: Vec<TurnAccuracy>,
    /// ProcessBench scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_acc: Option<f64>,
    /// 95% interval of `error_acc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_acc_ci: Option<Interval>,
    /// ProcessBench scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_acc: Option<f64>,
    /// 95% interval of `correct_acc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_acc_ci: Option<Interval>,
    /// ProcessBench F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// ProcessBench unparseable critic outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unparsed: Option<u64>,
    /// BIG-Bench Mistake breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_prior: Option<PriorBreakdown>,
    /// Items whose prefills took each path (`native`, `continue_final_message`,
    /// `conversation`); empty when no strategy call had a prefill.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub prefill: std::collections::BTreeMap<crate::model::Prefill, u64>,
    /// Verified selection: mean samples per item the verifier accepted, and the items where it
    /// flagged every sample (their answer is the majority of all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivors: Option<Survivors>,
}

/// How many samples verified selection kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Survivors {
    /// Mean accepted samples per item.
    pub mean: f64,
    /// Items with no accepted sample.
    pub none: u64,
    /// Items that report survivors.
    pub items: u64,
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Critic scores over results that carry a label.
pub fn critic_scores(results: &[ItemResult]) -> Option<CriticScores> {
    let labelled: Vec<&ItemResult> = results.iter().filter(|r| r.label.is_some()).collect();
    if labelled.is_empty() {
        return None;
    }
    let mut s = CriticScores::default();
    let (mut err_ok, mut cor_ok) = (0u64, 0u64);
    for r in labelled {
        let label = r.label.unwrap_or(-1);
        if r.predicted_step.is_none() {
            s.unparsed += 1;
        }
        if label == -1 {
            s.n_correct += 1;
            cor_ok += u64::from(r.predicted_step == Some(-1));
        } else {
            s.n_error += 1;
            err_ok += u64::from(r.predicted_step == Some(label));
        }
    }
    s.error_acc = ratio(err_ok, s.n_error);
    s.correct_acc = ratio(cor_ok, s.n_correct);
    s.error_right = err_ok;
    s.correct_right = cor_ok;
    s.f1 = if s.error_acc + s.correct_acc > 0.0 {
        2.0 * s.error_acc * s.correct_acc / (s.error_acc + s.correct_acc)
    } else {
        0.0
    };
    Some(s)
}

fn group(rs: &[&ItemResult]) -> GroupChange {
    let n = rs.len() as u64;
    let right_before = rs.iter().filter(|r| r.correct_before).count() as u64;
    let right_after = rs.iter().filter(|r| r.correct_after).count() as u64;
    let gained = rs
        .iter()
        .filter(|r| !r.correct_before && r.correct_after)
        .count() as u64;
    let lost = rs
        .iter()
        .filter(|r| r.correct_before && !r.correct_after)
        .count() as u64;
    let (before, after) = (ratio(right_before, n), ratio(right_after, n));
    GroupChange {
        n,
        accuracy_before: before,
        accuracy_after: after,
        delta_pp: (after - before) * 100.0,
        before_ci: stats::wilson(right_before, n),
        after_ci: stats::wilson(right_after, n),
        mcnemar_p: stats::mcnemar(gained, lost),
    }
}

/// Per-turn accuracies, padding short histories with their last answer.
pub fn by_turn(results: &[ItemResult]) -> Vec<TurnAccuracy> {
    let turns = results
        .iter()
        .map(|r| r.correct_by_turn.len())
        .max()
        .unwrap_or(0);
    let n = results.len() as u64;
    (1..=turns)
        .map(|k| {
            let (mut m1, mut p1, mut maj) = (0u64, 0u64, 0u64);
            for r in results {
                let upto = k.min(r.correct_by_turn.len());
                if upto == 0 {
                    continue;
                }
                m1 += u64::from(r.correct_by_turn.get(upto - 1).copied().unwrap_or(false));
                p1 += u64::from(r.correct_by_turn.iter().take(upto).any(|c| *c));
                if let Some((idx, _)) = crate::answer::majority(
                    r.answers
                        .get(..upto.min(r.answers.len()))
                        .unwrap_or_default(),
                ) {
                    maj += u64::from(r.correct_by_turn.get(idx).copied().unwrap_or(false));
                }
            }
            TurnAccuracy {
                turn: k,
                m1: ratio(m1, n),
                p1: ratio(p1, n),
                majority: ratio(maj, n),
                m1_ci: stats::wilson(m1, n),
                p1_ci: stats::wilson(p1, n),
                majority_ci: stats::wilson(maj, n),
            }
        })
        .collect()
}

/// The chance floor of one item (the accuracy of answering it with a number chosen
/// uniformly among the number mentions of its question): the share of the number mentions in `question` that equal
/// `gold`; `None` when the question mentions no number or the gold answer is not a number.
pub fn item_floor(question: &str, gold: &str) -> Option<f64> {
    let gold = crate::answer::Number::parse(gold)?;
    let nums = crate::answer::numbers(question);
    if nums.is_empty() {
        return Some(0.0);
    }
    let hits = nums.iter().filter(|(_, _, n)| *n == gold).count();
    Some(hits as f64 / nums.len() as f64)
}

/// The mean chance floor ([`item_floor`]) over the results that keep their question and
/// have a numeric gold answer (GSM8K format); `None` when there are none.
pub fn chance_floor(results: &[ItemResult]) -> Option<f64> {
    let floors: Vec<f64> = results
        .iter()
        .filter(|r| r.label.is_none() && r.prior_right.is_none())
        .filter_map(|r| item_floor(r.question.as_deref()?, &r.gold))
        .collect();
    (!floors.is_empty()).then(|| floors.iter().sum::<f64>() / floors.len() as f64)
}

/// Compute the summary of a set of results.
pub fn summarize(results: &[ItemResult]) -> Summary {
    let n = results.len() as u64;
    let mut s = Summary {
        n,
        ..Summary::default()
    };
    let mut usage = Usage::default();
    for r in results {
        s.errors += u64::from(r.error.is_some());
        if let Some(p) = r.prefill {
            *s.prefill.entry(p).or_default() += 1;
        }

        s.budget_stops += u64::from(r.budget_stop.is_some());
        usage += r.usage;
        s.usage.wall_s += r.wall_s;
        match (r.correct_before, r.correct_after) {
            (true, true) => s.flips.right_to_right += 1,
            (true, false) => s.flips.right_to_wrong += 1,
            (false, true) => s.flips.wrong_to_right += 1,
            (false, false) => s.flips.wrong_to_wrong += 1,
        }
    }
    let f = s.flips;
    let right_before = f.right_to_right + f.right_to_wrong;
    let wrong_before = f.wrong_to_right + f.wrong_to_wrong;
    s.accuracy_before = ratio(right_before, n);
    s.accuracy = ratio(f.right_to_right + f.wrong_to_right, n);
    s.accuracy_before_ci = stats::wilson(right_before, n);
    s.accuracy_ci = stats::wilson(f.right_to_right + f.wrong_to_right, n);
    s.mcnemar_p = stats::mcnemar(f.wrong_to_right, f.right_to_wrong);
    s.verdict = Verdict::of(f.wrong_to_right, f.right_to_wrong);
    s.chance_floor = chance_floor(results);
    s.cl = (right_before > 0).then(|| ratio(f.right_to_right, right_before));
    s.cs = (wrong_before > 0).then(|| ratio(f.wrong_to_right, wrong_before));
    let delta = s.accuracy - s.accuracy_before;
    s.rss = (n > 0).then(|| {
        if delta > 0.0 {
            delta / (1.0 - s.accuracy_before)
        } else if delta < 0.0 {
            delta / s.accuracy_before
        } else {
            0.0
        }
    });
    let spent = usage.decoded_prompt_tokens() + usage.generated_tokens;
    s.usage = Cost {
        prompt_tokens: usage.prompt_tokens,
        generated_tokens: usage.generated_tokens,
        reused_tokens: usage.reused_tokens,
        calls: usage.calls,
        infra_retries: usage.infra_retries,
        wall_s: s.usage.wall_s,
        tokens_per_item: ratio(spent, n),
        tokens_per_fixed_answer: (f.wrong_to_right > 0).then(|| ratio(spent, f.wrong_to_right)),
    };
    s.accuracy_by_turn = by_turn(results);
    let kept: Vec<u32> = results.iter().filter_map(|r| r.survivors).collect();
    s.survivors = (!kept.is_empty()).then(|| Survivors {
        mean: kept.iter().map(|&k| f64::from(k)).sum::<f64>() / kept.len() as f64,
        none: kept.iter().filter(|&&k| k == 0).count() as u64,
        items: kept.len() as u64,
    });
    if let Some(c) = critic_scores(results) {
        s.error_acc = Some(c.error_acc);
        s.correct_acc = Some(c.correct_acc);
        s.error_acc_ci = Some(stats::wilson(c.error_right, c.n_error));
        s.correct_acc_ci = Some(stats::wilson(c.correct_right, c.n_correct));
        s.f1 = Some(c.f1);
        s.unparsed = Some(c.unparsed);
    }
    if results.iter().any(|r| r.prior_right.is_some()) {
        let right: Vec<&ItemResult> = results
            .iter()
            .filter(|r| r.prior_right == Some(true))
            .collect();
        let wrong: Vec<&ItemResult> = results
            .iter()
            .filter(|r| r.prior_right == Some(false))
            .collect();
        s.by_prior = Some(PriorBreakdown {
            right_before: group(&right),
            wrong_before: group(&wrong),
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chance_floor_counts_number_mentions() {
        assert_eq!(
            item_floor("Tom has 3 apples and buys 4 more.", "7"),
            Some(0.0)
        );
        assert_eq!(item_floor("A box holds 6 eggs; 6 boxes.", "6"), Some(1.0));
        assert_eq!(item_floor("Pay $1,200 for 3 chairs.", "1200"), Some(0.5));
        assert_eq!(item_floor("No numbers here.", "4"), Some(0.0));
        assert_eq!(item_floor("2 and 3", "(C)"), None);
    }
}
