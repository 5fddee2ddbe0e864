//! Grading one item: run the strategy (or the critic, for ProcessBench) and compare with gold.

use serde_json::json;

use super::metrics::ItemResult;
use crate::answer::{self, bb_answer, bb_match};
use crate::critic::{Critic, Submission};
use crate::data::{Gold, Item};
use crate::run::{Check, Context, Located, Problem};
use crate::strategy::{Baseline, Solution, Strategy};

/// Run one item through the strategy or critic and grade it. Model errors become a wrong
/// result carrying the error (the run goes on).
pub async fn item(
    item: &Item,
    strategy: &dyn Strategy,
    critic: Option<&dyn Critic>,
    cx: &Context,
) -> ItemResult {
    let start = std::time::Instant::now();
    let trace = cx.record("item", json!({"id": item.id}));
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
        question: Some(item.question.clone()),
        attempts: Vec::new(),
        located: Vec::new(),
        answer_before: None,
        usage_before: None,
        prefill: None,
        survivors: None,
    };
    match &item.gold {
        Gold::Steps { steps, label } => {
            r.gold = label.to_string();
            r.label = Some(*label);
            let gold = Some((*label >= 0).then_some(*label as usize));
            let input = Submission {
                problem: &item.question,
                steps,
                gold,
            };
            let Some(critic) = critic else {
                r.error = Some("`critic` is needed by processbench (e.g. llm or gold)".into());
                return r;
            };
            r.attempts = vec![crate::steps::join(steps)];
            match critic.locate(&cx.critic_env(None), &input).await {
                Ok(v) => {
                    if let Some(k) = v.located() {
                        let text = steps.get(k).map_or("", String::as_str);
                        r.located = vec![Located::new(k, text, critic.name(), &v.rationale)];
                    }
                    r.usage = v.usage;
                    r.predicted_step = v.as_label();
                    let ok = r.predicted_step == Some(*label);
                    r.answers = vec![r.predicted_step.map(|p| p.to_string())];
                    r.final_answer = r.answers.first().cloned().flatten();
                    r.correct_by_turn = vec![ok];
                    r.correct_before = ok;
                    r.correct_after = ok;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
        Gold::Answer { answer: gold, .. } => {
            r.gold = gold.clone();
            let problem = Problem::new(&item.question).with_gold(gold);
            let ok =
                |a: &Option<String>| a.as_deref().is_some_and(|a| answer::same_number(a, gold));
            match strategy.solve(cx, &problem).await {
                Ok(sol) => {
                    keep_record(&mut r, &sol);
                    r.answers = sol.attempts.iter().map(|a| a.answer.clone()).collect();
                    r.correct_by_turn = r.answers.iter().map(ok).collect();
                    r.correct_before = r.correct_by_turn.first().copied().unwrap_or(false);
                    r.correct_after = ok(&sol.answer);
                    r.final_answer = sol.answer;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
            if (!strategy.first_is_greedy() || cx.calculator()) && r.error.is_none() {
                // "Before" is one greedy pass for every strategy (without the calculator):
                // make it here.
                let plain = cx.clone().with_calculator(false);
                match Baseline.solve(&plain, &problem).await {
                    Ok(b) => {
                        let a = b.answer;
                        r.correct_before = ok(&a);
                        r.answer_before = Some(a.unwrap_or_default());
                        r.usage_before = Some(b.usage);
                    }
                    Err(e) => r.error = Some(format!("the greedy pass before: {e}")),
                }
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
                check: Some(Check(&judge)),
                ..Problem::new(&item.question)
            };
            match strategy.solve(cx, &problem).await {
                Ok(sol) => {
                    keep_record(&mut r, &sol);
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
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
    }
    r.wall_s = start.elapsed().as_secs_f64();
    r
}

/// What a result keeps of a solution besides its answers: usage, budget stop, the attempts'
/// texts and the located mistakes (for the report's per-item details).
fn keep_record(r: &mut ItemResult, sol: &Solution) {
    r.usage = sol.usage;
    r.budget_stop = sol.budget_stop.as_ref().map(ToString::to_string);
    r.attempts = sol.attempts.iter().map(|a| a.text.clone()).collect();
    r.located = sol.located.clone();
    r.prefill = sol.prefill;
    r.survivors = sol.survivors;
}
