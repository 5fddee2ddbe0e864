//! Critic test data from correct solutions (`amend data inject`).
//!
//! Following Self-Correction Bench and "Subtle Errors Matter": take correct step-by-step GSM8K
//! solutions, plant one calculation error (a wrong result) or substitution error (a wrong
//! operand, its result recomputed) in a chosen step, propagate the changed value through every
//! later calculation to the final answer, and write ProcessBench-format items whose label is the
//! planted step. An equal share of solutions is kept untouched (label -1). Steps are written
//! without calculator annotations, as ProcessBench's are.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{strip_annotations, Gold, Item};
use crate::answer::{self, Number};
use crate::critic::eval_arith;
use crate::rng::Rng;

/// One ProcessBench-format record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Injected {
    /// Id: `SOURCE-ID` plus `-err` or `-ok`.
    pub id: String,
    /// Always `amend-inject`.
    pub generator: String,
    /// The question.
    pub problem: String,
    /// The steps (annotations stripped).
    pub steps: Vec<String>,
    /// The final answer is still right.
    pub final_answer_correct: bool,
    /// The planted step, -1 when untouched.
    pub label: i64,
    /// `calculation` (a wrong result) or `substitution` (a wrong operand, computed right);
    /// absent when untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
}

/// One `<<expr=result>>` annotation of a step.
struct Annotation {
    start: usize,
    end: usize,
    expr: String,
    result: Number,
}

fn annotations(step: &str) -> Vec<Annotation> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = step[from..].find("<<").map(|i| i + from) {
        let Some(close) = step[open..].find(">>").map(|i| i + open) else {
            break;
        };
        let inner = &step[open + 2..close];
        if let Some((expr, res)) = inner.rsplit_once('=') {
            if let Some(result) = Number::parse(res) {
                out.push(Annotation {
                    start: open,
                    end: close + 2,
                    expr: expr.to_string(),
                    result,
                });
            }
        }
        from = close + 2;
    }
    out
}

/// Replace every number in `text` that the map changes (exact value match).
fn substitute(text: &str, map: &BTreeMap<String, Number>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e, n) in answer::numbers(text) {
        if let Some(new) = map.get(&n.to_string()) {
            out.push_str(&text[last..s]);
            out.push_str(&new.to_string());
            last = e;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Plant one error in `steps` at an annotated step chosen by `rng`; `None` when the solution
/// has no annotation or the error would not reach the final answer.
fn plant(
    steps: &[String],
    final_answer: Number,
    rng: &mut Rng,
) -> Option<(Vec<String>, usize, &'static str)> {
    let candidates: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !annotations(s).is_empty())
        .map(|(i, _)| i)
        .collect();
    for _ in 0..6 {
        let k = *rng.pick(&candidates)?;
        let s = steps.get(k)?;
        let anns = annotations(s);
        let a = rng.pick(&anns)?;
        let substitution = rng.range(0, 1) == 1;
        let mut swapped: Option<(Number, Number)> = None;
        let new_expr;
        let new_result = if substitution {
            // Change one operand by a small amount, and recompute.
            let nums = answer::numbers(&a.expr);
            let Some(&(s, e, n)) = rng.pick(&nums) else {
                continue;
            };
            let delta = Number::new(rng.range(1, 9) as i128, 1)?;
            let changed = Number::new(n.num + delta.num * n.den, n.den)?;
            new_expr = format!("{}{}{}", &a.expr[..s], changed, &a.expr[e..]);
            swapped = Some((n, changed));
            eval_arith(&new_expr)?
        } else {
            new_expr = a.expr.clone();
            let delta = rng.range(1, 9) as i128 * if rng.range(0, 1) == 0 { 1 } else { -1 };
            Number::new(a.result.num + delta * a.result.den, a.result.den)?
        };
        if new_result == a.result {
            continue;
        }
        let mut map = BTreeMap::new();
        map.insert(a.result.to_string(), new_result);
        let mut out = steps.to_vec();
        // The planted step: the annotation and the visible result after it.
        let after = &s[a.end..];
        let after = match answer::numbers(after).first() {
            Some((ns, ne, n)) if *ns <= 2 && *n == a.result => {
                format!("{}{}{}", &after[..*ns], new_result, &after[*ne..])
            }
            _ => after.to_string(),
        };
        let mut before = s[..a.start].to_string();
        if let Some((old, new)) = swapped {
            // The prose writes the same operand before the annotation: change its last mention.
            if let Some((ns, ne, _)) = answer::numbers(&before)
                .into_iter()
                .rev()
                .find(|x| x.2 == old)
            {
                before.replace_range(ns..ne, &new.to_string());
            }
        }
        *out.get_mut(k)? = format!("{before}<<{new_expr}={new_result}>>{after}");
        // Propagate through later steps.
        for step in out.iter_mut().skip(k + 1) {
            let mut text = step.clone();
            for ann in annotations(step).iter().rev() {
                let expr = substitute(&ann.expr, &map);
                let Some(value) = eval_arith(&expr) else {
                    continue;
                };
                if value != ann.result {
                    map.insert(ann.result.to_string(), value);
                }
                text.replace_range(ann.start..ann.end, &format!("<<{expr}={value}>>"));
            }
            // Visible numbers outside annotations follow the map too.
            let mut rebuilt = String::new();
            let mut rest = text.as_str();
            while let Some(open) = rest.find("<<") {
                let close = rest[open..]
                    .find(">>")
                    .map(|c| c + open + 2)
                    .unwrap_or(rest.len());
                rebuilt.push_str(&substitute(&rest[..open], &map));
                rebuilt.push_str(&rest[open..close]);
                rest = &rest[close..];
            }
            rebuilt.push_str(&substitute(rest, &map));
            *step = rebuilt;
        }
        let new_final = map.get(&final_answer.to_string()).copied()?;
        if new_final != final_answer {
            return Some((
                out,
                k,
                if substitution {
                    "substitution"
                } else {
                    "calculation"
                },
            ));
        }
    }
    None
}

/// Make ProcessBench items from GSM8K items: half with one planted error, half untouched.
pub fn inject(items: &[Item], seed: u64) -> Vec<Injected> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut planted = 0usize;
    let mut kept = 0usize;
    for item in items {
        let Gold::Answer { answer, solution } = &item.gold else {
            continue;
        };
        let Some(final_answer) = Number::parse(answer) else {
            continue;
        };
        let steps: Vec<String> = solution
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if steps.is_empty() {
            continue;
        }
        let want_error = planted <= kept;
        let record = if want_error {
            match plant(&steps, final_answer, &mut rng) {
                Some((new_steps, k, kind)) => {
                    planted += 1;
                    Injected {
                        id: format!("{}-err", item.id),
                        generator: "amend-inject".into(),
                        problem: item.question.clone(),
                        steps: new_steps.iter().map(|s| strip_annotations(s)).collect(),
                        final_answer_correct: false,
                        label: k as i64,
                        error_kind: Some(kind.into()),
                    }
                }
                None => continue,
            }
        } else {
            kept += 1;
            Injected {
                id: format!("{}-ok", item.id),
                generator: "amend-inject".into(),
                problem: item.question.clone(),
                steps: steps.iter().map(|s| strip_annotations(s)).collect(),
                final_answer_correct: true,
                label: -1,
                error_kind: None,
            }
        };
        out.push(record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::critic::first_false;

    fn item(id: &str, q: &str, answer: &str) -> Item {
        let (solution, ans) = crate::data::split_gsm8k_answer(answer).unwrap_or_default();
        Item {
            id: id.into(),
            question: q.into(),
            gold: Gold::Answer {
                answer: ans,
                solution,
            },
        }
    }

    fn items() -> Vec<Item> {
        vec![
            item("a", "q", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72"),
            item("b", "q", "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"),
            item("c", "q", "There are 4 * 9 = <<4*9=36>>36 sheep.\nAfter selling, 36 - 5 = <<36-5=31>>31 are left.\nThen 31 * 2 = <<31*2=62>>62 legs... no, 31 sheep.\n#### 31"),
            item("d", "q", "He has 15 + 10 = <<15+10=25>>25 marbles.\nThen 25 - 7 = <<25-7=18>>18.\n#### 18"),
        ]
    }

    #[test]
    fn planted_errors_are_found_exactly_where_planted() {
        for seed in 0..40 {
            let out = inject(&items(), seed);
            let errs: Vec<&Injected> = out.iter().filter(|r| r.label >= 0).collect();
            let oks: Vec<&Injected> = out.iter().filter(|r| r.label < 0).collect();
            assert!(
                errs.len().abs_diff(oks.len()) <= 1,
                "balanced: {} vs {}",
                errs.len(),
                oks.len()
            );
            for r in errs {
                let found = first_false(&r.steps).map(|x| x.0 as i64);
                if r.error_kind.as_deref() == Some("calculation") {
                    assert_eq!(found, Some(r.label), "seed {seed}: {:?}", r.steps);
                } else {
                    // A wrong operand computed correctly: no false claim anywhere, which is
                    // exactly what an arithmetic verifier cannot see.
                    assert_eq!(found, None, "seed {seed}: {:?}", r.steps);
                }
                let original =
                    items()
                        .into_iter()
                        .find(|i| r.id.starts_with(&i.id))
                        .map(|i| match i.gold {
                            Gold::Answer { solution, .. } => solution,
                            _ => String::new(),
                        });
                let original: Vec<String> = original
                    .unwrap_or_default()
                    .lines()
                    .map(strip_annotations)
                    .collect();
                let k = r.label as usize;
                assert_eq!(
                    &r.steps[..k],
                    &original[..k],
                    "steps before the planted one are untouched"
                );
                assert_ne!(r.steps[k], original[k]);
            }
            for r in oks {
                assert_eq!(first_false(&r.steps), None, "{:?}", r.steps);
            }
        }
    }
}
