//! Grading one item: run the strategy (or the critic, for ProcessBench) and compare with gold.

use serde_json::json;

use super::data::{Gold, Item};
use super::metrics::ItemResult;
use crate::answer::{self, Number};
use crate::critic::{Critic, Critique};
use crate::strategy::{Context, Problem, Shot, Strategy};

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
        } if bb_match(answer, target) => Some(Shot {
            question: item.question.clone(),
            solution: steps.join("\n"),
        }),
        _ => None,
    }
}

fn mc_letter(s: &str) -> Option<char> {
    let b = s.as_bytes();
    let mut last = None;
    for i in 0..b.len().saturating_sub(2) {
        if b[i] == b'(' && b[i + 1].is_ascii_uppercase() && b[i + 2] == b')' {
            last = Some(b[i + 1] as char);
        }
    }
    last
}

/// The final answer part of a BIG-Bench Mistake style text ("... So the answer is X").
pub fn bb_answer(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let tail = match lower.rfind("the answer is") {
        Some(p) => &text[p + "the answer is".len()..],
        None => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
    };
    tail.trim().trim_end_matches('.').trim().to_string()
}

/// Does `got` (an answer or a full text) match the BIG-Bench Mistake `target`?
/// Multiple choice compares letters, numbers compare numerically, text compares words.
pub fn bb_match(got: &str, target: &str) -> bool {
    let got = bb_answer(got);
    if let Some(t) = mc_letter(target) {
        return mc_letter(&got) == Some(t);
    }
    if let Some(t) = Number::parse(target) {
        return answer::extract(&got).is_some_and(|(n, _)| n == t);
    }
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let t = words(target);
    !t.is_empty() && words(&got) == t
}

/// Run one item through the strategy or critic and grade it. Model errors become a wrong
/// result carrying the error (the run goes on).
pub async fn item(
    item: &Item,
    strategy: &dyn Strategy,
    critic: Option<&dyn Critic>,
    cx: &Context,
) -> ItemResult {
    let start = std::time::Instant::now();
    let trace = cx.trace.as_ref().and_then(|t| {
        t.write("item", json!({"id": item.id}))
            .ok()
            .map(|seq| format!("{}#{seq}", t.path().display()))
    });
    let mut r = ItemResult {
        id: item.id.clone(),
        gold: String::new(),
        answers: Vec::new(),
        correct_by_turn: Vec::new(),
        final_answer: None,
        correct_before: false,
        correct_after: false,
        predicted_step: None,
        label: None,
        prior_right: None,
        usage: Default::default(),
        wall_s: 0.0,
        trace,
        error: None,
        budget_stop: None,
    };
    match &item.gold {
        Gold::Steps { steps, label } => {
            r.gold = label.to_string();
            r.label = Some(*label);
            let gold = Some((*label >= 0).then_some(*label as usize));
            let input = Critique {
                problem: &item.question,
                steps,
                gold,
            };
            let Some(critic) = critic else {
                r.error = Some("processbench needs a critic (--critic llm|gold)".into());
                return r;
            };
            match critic.locate(cx, &input).await {
                Ok(v) => {
                    r.usage = v.usage;
                    r.predicted_step = v.as_label();
                    let ok = r.predicted_step == Some(*label);
                    r.answers = vec![r.predicted_step.map(|p| p.to_string())];
                    r.final_answer = r.answers[0].clone();
                    r.correct_by_turn = vec![ok];
                    r.correct_before = ok;
                    r.correct_after = ok;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
        Gold::Answer { answer: gold, .. } => {
            r.gold = gold.clone();
            let problem = Problem {
                gold: Some(gold),
                ..Problem::new(&item.question)
            };
            match strategy.solve(cx, &problem).await {
                Ok(sol) => {
                    r.usage = sol.usage;
                    r.answers = sol.attempts.iter().map(|a| a.answer.clone()).collect();
                    let ok = |a: &Option<String>| {
                        a.as_deref().is_some_and(|a| answer::same_number(a, gold))
                    };
                    r.correct_by_turn = r.answers.iter().map(ok).collect();
                    r.correct_before = r.correct_by_turn.first().copied().unwrap_or(false);
                    r.correct_after = ok(&sol.answer);
                    r.final_answer = sol.answer;
                    r.budget_stop = sol.budget_stop;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
        Gold::Trace {
            answer: own,
            target,
            steps,
            mistake_index,
        } => {
            r.gold = target.clone();
            let prior = bb_match(own, target);
            r.prior_right = Some(prior);
            r.correct_before = prior;
            let judge = |t: &str| bb_match(t, target);
            let problem = Problem {
                draft: Some(steps),
                gold_step: Some(*mistake_index),
                gold: Some(target),
                check: Some(crate::strategy::Check(&judge)),
                ..Problem::new(&item.question)
            };
            match strategy.solve(cx, &problem).await {
                Ok(sol) => {
                    r.usage = sol.usage;
                    r.answers = sol
                        .attempts
                        .iter()
                        .map(|a| Some(bb_answer(&a.text)))
                        .collect();
                    r.correct_by_turn = sol
                        .attempts
                        .iter()
                        .map(|a| bb_match(&a.text, target))
                        .collect();
                    r.correct_after = r.correct_by_turn.last().copied().unwrap_or(false);
                    r.final_answer = r.answers.last().cloned().flatten();
                    r.budget_stop = sol.budget_stop;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
    }
    r.wall_s = start.elapsed().as_secs_f64();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbmistake_matching() {
        assert!(bb_match(
            "Alice has Moby Dick. So the answer is (C).",
            "(C)"
        ));
        assert!(!bb_match("So the answer is (A)", "(C)"));
        assert!(bb_match("So the answer is -2116.", "-2116"));
        assert!(!bb_match("So the answer is 1244", "-2116"));
        assert!(bb_match(
            "So the answer is apple banana cherry",
            "apple banana cherry"
        ));
        assert!(!bb_match(
            "So the answer is banana apple cherry",
            "apple banana cherry"
        ));
        assert!(!bb_match("", "(A)"));
        assert!(!bb_match("anything", ""));
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
