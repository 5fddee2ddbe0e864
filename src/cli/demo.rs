//! `amend demo`: backtracking with the exact arithmetic critic on built-in word problems.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::mistakes::MistakesArgs;
use super::{CriticModelArgs, ModelArgs};
use amend::answer;
use amend::critic::Spec as CriticSpec;
use amend::model::{spec, Spec};
use amend::run::Problem;
use amend::strategy::{self, Kind};

/// Built-in word problems of the demo: (question, answer).
const DEMO_PROBLEMS: &[(&str, &str)] = &[
    (
        "Tom has 3 apples and buys 4 more. How many apples does Tom have now?",
        "7",
    ),
    ("A box holds 6 eggs. How many eggs are in 5 boxes?", "30"),
    (
        "Sara had 20 stickers and gave 8 to her brother. How many stickers does she have left?",
        "12",
    ),
    (
        "A pencil costs 2 dollars. How much do 9 pencils cost, in dollars?",
        "18",
    ),
];

pub(super) async fn demo(
    m: &ModelArgs,
    critic_model: &CriticModelArgs,
    prompts: Option<&Path>,
    trace: Option<&Path>,
    mistakes: &MistakesArgs,
    json_out: bool,
) -> Result<()> {
    let store = mistakes.open()?;
    if !json_out && m.model == Spec::Default && !spec::default_path().is_file() {
        eprintln!("fetching the default model (SmolLM2-135M-Instruct, ~100 MB) ...");
    }
    let mut cx = super::common::context(m, Some(critic_model), prompts, trace, true)
        .await?
        .with_max_tokens(256)
        .with_task("demo");
    if let Some(store) = store {
        cx = cx.with_mistakes(store);
    }
    // Backtracking with the exact arithmetic critic: the first attempt, the step it flags,
    // and the corrected answer, kept only when the verifier (the critic, by default) accepts
    // it.
    let opts = strategy::Options {
        critic: Some(CriticSpec::Arith),
        max_backtracks: 2,
        ..strategy::Options::default()
    };
    let strat = strategy::build(Kind::Backtrack, &opts)?;
    let mut rows = Vec::new();
    let (mut right_before, mut right, mut located) = (0, 0, 0);
    for (i, (q, gold)) in DEMO_PROBLEMS.iter().enumerate() {
        let problem = Problem::new(q).with_gold(gold);
        let sol = strat.solve(&cx, &problem).await?;
        located += sol.located.len();
        let is_right = |a: Option<&str>| a.is_some_and(|a| answer::same_number(a, gold));
        let first_answer = sol.attempts.first().and_then(|a| a.answer.clone());
        let ok_before = is_right(first_answer.as_deref());
        let ok = is_right(sol.answer.as_deref());
        right_before += usize::from(ok_before);
        right += usize::from(ok);
        if !json_out {
            println!("[{}] {q}", i + 1);
            let show = |t: &str| t.trim().replace('\n', "\n    ");
            if let Some(first) = sol.attempts.first() {
                println!("  first attempt:\n    {}", show(&first.text));
            }
            println!(
                "  first answer: {}",
                first_answer.as_deref().unwrap_or("none")
            );
            for l in &sol.located {
                println!(
                    "  critic `{}` located a mistake in step {}: {}",
                    l.critic, l.step, l.rationale
                );
            }
            if sol.located.is_empty() {
                println!("  critic `arith` found no false arithmetic claim");
            }
            if sol.attempts.len() > 1 {
                if let Some(last) = sol.attempts.last() {
                    println!("  corrected attempt:\n    {}", show(&last.text));
                }
            }
            println!(
                "  => answer {} (expected {gold}) {}\n",
                sol.answer.as_deref().unwrap_or("none"),
                if ok { "right" } else { "wrong" }
            );
        }
        rows.push(json!({"question": q, "expected": gold, "first_answer": first_answer, "answer": sol.answer,
            "right_before": ok_before, "right": ok, "located": sol.located, "usage": sol.usage}));
    }
    let trace_path = cx
        .trace()
        .map(|t| t.path().display().to_string())
        .unwrap_or_default();
    if json_out {
        println!(
            "{}",
            json!({"model": cx.model().id(), "problems": rows, "right_before": right_before, "right": right, "trace": trace_path})
        );
    } else {
        println!(
            "{right_before}/{n} right on the first attempt, {right}/{n} after backtracking with the `arith` critic ({})",
            m.model,
            n = DEMO_PROBLEMS.len(),
        );
        println!("trace: {trace_path}  (read it with `amend trace show {trace_path}`)");
        if let Some(p) = mistakes.path() {
            println!(
                "mistakes located: {} recorded in {}  (`amend mistakes list --task demo`)",
                located,
                p.display()
            );
        }
    }
    Ok(())
}
