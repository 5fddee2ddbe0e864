//! `amend demo`: the recommended strategy on ladder problems drawn by the generator with a
//! fixed seed, each shown before (one greedy pass) and after (the strategy), with the
//! aggregate.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;

use super::mistakes::MistakesArgs;
use super::{CriticModelArgs, ModelArgs};
use amend::answer;
use amend::data::{ladder, split_gsm8k_answer};
use amend::model::{spec, Spec};
use amend::run::Problem;
use amend::strategy::{self, Baseline, Strategy};

/// Which problems the demo draws: `n` of ladder level `level`, generated from `seed`.
pub(super) struct Draw {
    pub n: usize,
    pub level: u8,
    pub seed: u64,
}

pub(super) async fn demo(
    m: &ModelArgs,
    critic_model: &CriticModelArgs,
    draw: &Draw,
    prompts: Option<&Path>,
    trace: Option<&Path>,
    mistakes: &MistakesArgs,
    json_out: bool,
) -> Result<()> {
    let Some(level) = ladder::Level::new(draw.level) else {
        bail!(
            "--level must be 1 to {}, got {}",
            ladder::MAX_LEVEL,
            draw.level
        );
    };
    let problems = ladder::generate(draw.n, &level, draw.seed);
    let store = mistakes.open()?;
    if !json_out && m.model == Spec::Default && !spec::default_path().is_file() {
        eprintln!("fetching the default model (SmolLM2-135M-Instruct, ~100 MB) ...");
    }
    let rec = strategy::recommended();
    let (kind, opts) = rec.apply(strategy::Options::default());
    let strat = strategy::build(kind, &opts)?;
    let plain = super::common::context(m, Some(critic_model), prompts, trace, true)
        .await?
        .with_task("demo");
    let mut cx = plain.clone().with_calculator(opts.calculator);
    if let Some(store) = store {
        cx = cx.with_mistakes(store).with_token_log(mistakes.log_tokens);
    }
    if !json_out {
        println!(
            "{} problems of ladder level {} (seed {}); before: one greedy pass; after: {}\n",
            draw.n,
            draw.level,
            draw.seed,
            rec.describe()
        );
    }
    let mut rows = Vec::new();
    let (mut right_before, mut right, mut located) = (0, 0, 0);
    for (i, p) in problems.iter().enumerate() {
        let Some((_, gold)) = split_gsm8k_answer(&p.answer) else {
            bail!("the generator wrote a problem without a `#### N` answer: {p:?}");
        };
        let q = &p.question;
        let problem = Problem::new(q);
        let before = Baseline.solve(&plain, &problem).await?;
        let sol = strat.solve(&cx, &problem).await?;
        located += sol.located.len();
        let is_right = |a: Option<&str>| a.is_some_and(|a| answer::same_number(a, &gold));
        let ok_before = is_right(before.answer.as_deref());
        let ok = is_right(sol.answer.as_deref());
        right_before += usize::from(ok_before);
        right += usize::from(ok);
        if !json_out {
            print_problem(i + 1, q, &gold, &before, &sol, ok_before, ok);
        }
        rows.push(
            json!({"question": q, "expected": gold, "answer_before": before.answer,
            "answer": sol.answer, "right_before": ok_before, "right": ok,
            "located": sol.located, "usage": sol.usage}),
        );
    }
    let trace_path = cx
        .trace()
        .map(|t| t.path().display().to_string())
        .unwrap_or_default();
    let n = problems.len();
    if json_out {
        println!(
            "{}",
            json!({"model": cx.model().id(), "strategy": rec.describe(), "level": draw.level,
                "seed": draw.seed, "problems": rows, "right_before": right_before,
                "right": right, "trace": trace_path})
        );
    } else {
        println!(
            "{right_before}/{n} right with one greedy pass -> {right}/{n} with {} ({})",
            rec.describe(),
            m.model,
        );
        println!("trace: {trace_path}  (read it with `amend trace show {trace_path}`)");
        if let Some(p) = mistakes.path() {
            println!(
                "mistakes located: {located} recorded in {}  (`amend mistakes list --task demo`)",
                p.display()
            );
        }
    }
    Ok(())
}

fn print_problem(
    i: usize,
    q: &str,
    gold: &str,
    before: &strategy::Solution,
    sol: &strategy::Solution,
    ok_before: bool,
    ok: bool,
) {
    let mark = |ok: bool| if ok { "right" } else { "wrong" };
    let show = |t: &str| t.trim().replace('\n', "\n    ");
    println!("[{i}] {q}");
    if let Some(first) = before.attempts.first() {
        println!("  one greedy pass:\n    {}", show(&first.text));
    }
    println!(
        "  => {} ({})",
        before.answer.as_deref().unwrap_or("no answer"),
        mark(ok_before)
    );
    for l in &sol.located {
        println!(
            "  critic `{}` located a mistake in step {}: {}",
            l.critic, l.step, l.rationale
        );
    }
    if let Some(last) = sol.attempts.last() {
        println!("  {}:\n    {}", sol.strategy, show(&last.text));
    }
    println!(
        "  => {} ({}; expected {gold})\n",
        sol.answer.as_deref().unwrap_or("no answer"),
        mark(ok)
    );
}
