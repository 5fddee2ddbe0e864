//! `amend eval`: build the run configuration, load the model, run, print the summary.

use std::sync::Arc;

use anyhow::{bail, Result};

use super::EvalRun;
use amend::eval::{self, Task};
use amend::model::{spec, Spec};
use amend::strategy::Format;
use amend::Prompts;

/// Parse `1..3`, `1..=3` or `2` into an inclusive range.
pub fn parse_steps(s: &str) -> Result<(usize, usize)> {
    let s = s.trim();
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (
            a.trim().parse::<usize>()?,
            b.trim().trim_start_matches('=').parse::<usize>()?,
        ),
        None => {
            let v = s.parse::<usize>()?;
            (v, v)
        }
    };
    if lo == 0 || hi < lo {
        bail!("--steps must be like 1..3 with 1 <= low <= high, got {s:?}");
    }
    Ok((lo, hi))
}

/// Run `amend eval` with its flags.
pub async fn run(a: EvalRun) -> Result<()> {
    let (Some(task), Some(data), Some(out)) = (a.task.clone(), a.data.clone(), a.out.clone())
    else {
        bail!("amend eval needs --task, --data and --out");
    };
    let task: Task = task.parse().map_err(anyhow::Error::msg)?;
    let format = match a.format.as_str() {
        "chat" => Format::Chat,
        "completion" => Format::Completion,
        other => bail!("--format must be chat or completion, got {other:?}"),
    };
    let cfg = eval::Config {
        task,
        data,
        strategy: a.strategy.clone(),
        critic: a.critic.clone(),
        model: a.model.model.clone(),
        out,
        concurrency: a.jobs.max(1),
        limit: a.limit,
        offset: a.offset,
        shuffle: a.shuffle,
        skip_bad: a.skip_bad,
        shots: a.shots,
        fewshot: a.fewshot.clone(),
        format,
        max_tokens: a.max_tokens,
        options: a.strategy_args.options(a.critic.clone())?,
        principles: a.principles.principles.clone(),
        principles_level: a.principles.level()?,
        progress: !a.out_args.json,
        prefix_reuse: !a.model.no_prefix_reuse,
    };
    let parsed: Spec = cfg.model.parse()?;
    let prompts = Arc::new(Prompts::load(a.prompts.as_deref())?);
    let plan = eval::runner::prepare(&cfg)?;
    let log = a.log.open()?;
    // `cfg.prefix_reuse` carries --no-prefix-reuse: the runner applies it.
    let model = spec::load(&parsed, &super::commands::load_options(&a.model, false)).await?;
    let outcome = eval::runner::execute(&cfg, plan, model, prompts, log).await?;
    if a.out_args.json {
        println!("{}", serde_json::to_string(&outcome.summary)?);
        return Ok(());
    }
    let s = &outcome.summary;
    println!(
        "{} items ({} now, {} resumed{}{}) -> {}",
        s.n,
        outcome.finished_now,
        outcome.resumed,
        if outcome.interrupted {
            format!(", interrupted with {} left", outcome.remaining)
        } else {
            String::new()
        },
        if outcome.skipped_bad > 0 {
            format!(", {} malformed records skipped", outcome.skipped_bad)
        } else {
            String::new()
        },
        outcome.out.display()
    );
    println!(
        "accuracy {:.1}% (before {:.1}%), {} errors",
        s.accuracy * 100.0,
        s.accuracy_before * 100.0,
        s.errors
    );
    let f = s.flips;
    println!(
        "flips: right->right {} right->wrong {} wrong->right {} wrong->wrong {}",
        f.right_to_right, f.right_to_wrong, f.wrong_to_right, f.wrong_to_wrong
    );
    if let (Some(e), Some(c), Some(f1), Some(u)) = (s.error_acc, s.correct_acc, s.f1, s.unparsed) {
        println!(
            "processbench: error acc {:.1}%, correct acc {:.1}%, F1 {:.1}, unparsed {u}",
            e * 100.0,
            c * 100.0,
            f1 * 100.0
        );
    }
    if let Some(b) = s.by_prior {
        println!(
            "by prior: right before {} ({:+.1} pp), wrong before {} ({:+.1} pp)",
            b.right_before.n, b.right_before.delta_pp, b.wrong_before.n, b.wrong_before.delta_pp
        );
    }
    println!(
        "cost: {} calls, {:.0} tokens/item, {} prompt ({} reused), {} generated, {:.0}s",
        s.usage.calls,
        s.usage.tokens_per_item,
        s.usage.prompt_tokens,
        s.usage.reused_tokens,
        s.usage.generated_tokens,
        s.usage.wall_s
    );
    println!("report: {}", outcome.out.join("report.md").display());
    Ok(())
}
