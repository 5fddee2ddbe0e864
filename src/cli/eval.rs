//! `amend eval`: build the run configuration, load the model, run, print the summary.

use std::sync::Arc;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::{mistakes, CriticModelArgs, ModelArgs, OutArgs, PrinciplesArgs, StrategyArgs};
use amend::critic::Spec as CriticSpec;
use amend::data::Task;
use amend::eval;
use amend::prompt::Format;
use amend::run::Context;
use amend::strategy::Kind;
use amend::Prompts;

#[derive(Debug, Subcommand)]
pub enum EvalAction {
    /// Recompute summary.json and the reports of a run directory from its results.
    Report {
        /// The run's output directory.
        dir: PathBuf,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Put several runs side by side on the items they share.
    Compare {
        /// Output directories of earlier runs.
        #[arg(required = true, num_args = 2..)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// The share of true computed results (`expr = n`) in each run's final answers.
    Claims {
        /// Output directories of earlier runs.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Majority and verified selection over the first n samples of a self-consistency run,
    /// for every n up to its sample count, from its stored samples (no model is loaded).
    Select {
        /// The run's output directory.
        dir: PathBuf,
        /// A model-free verifier: arith, ground, derive or a chain of them.
        #[arg(long, default_value = "chain:arith,ground")]
        verifier: CriticSpec,
        #[command(flatten)]
        out: OutArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct EvalRun {
    /// Task format.
    #[arg(long, value_enum, required = true)]
    pub task: Option<Task>,
    /// Dataset file.
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
    /// Strategy (default on gsm8k data: the recommended one, see `amend solve --help`;
    /// on the other tasks: baseline).
    #[arg(long, value_enum)]
    pub strategy: Option<Kind>,
    /// Run this pipeline file (TOML, see pipelines/README.md) on each item instead of a
    /// strategy: its input is {"question": ...}, its answer the number in its result.
    #[arg(long, conflicts_with = "strategy")]
    pub pipeline: Option<PathBuf>,
    #[command(flatten)]
    pub strategy_args: StrategyArgs,
    /// Critic (processbench defaults to `llm`).
    #[arg(long)]
    pub critic: Option<CriticSpec>,
    #[command(flatten)]
    pub critic_model: CriticModelArgs,
    /// Output directory (results.jsonl, summary.json, report.md/html, traces/); reruns resume.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Items in flight at once (an API serves them concurrently; the local model decodes them
    /// together in its slots).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Keep the first N items (after --shuffle and --offset).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Skip the first N items.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Shuffle the items with this seed first.
    #[arg(long)]
    pub shuffle: Option<u64>,
    /// Skip malformed records (they are counted) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Worked examples before each question.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// File the worked examples come from (same format as --data).
    #[arg(long)]
    pub fewshot: Option<PathBuf>,
    /// Prompt format: chat, or completion for base models.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Token limit of one attempt.
    #[arg(long, default_value_t = amend::run::DEFAULT_MAX_TOKENS)]
    pub max_tokens: u32,
    /// Directory of prompt templates overriding the built-in ones.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub principles: PrinciplesArgs,
    #[command(flatten)]
    pub mistakes: mistakes::MistakesArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub out_args: OutArgs,
}

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
    let (Some(task), Some(data), Some(out)) = (a.task, a.data.clone(), a.out.clone()) else {
        bail!("amend eval needs --task, --data and --out");
    };
    let options = a.strategy_args.options(a.critic.clone())?;
    let (strategy, options) = match (a.strategy, &a.pipeline) {
        (Some(k), _) => (k, options),
        // A pipeline replaces the strategy; the recorded one is the plain pass.
        (None, Some(_)) => (amend::strategy::Kind::Baseline, options),
        (None, None) => eval::Config::default_strategy(task, options),
    };
    let cfg = eval::Config {
        critic: a.critic.clone(),
        critic_model: a.critic_model.critic_model.clone(),
        concurrency: a.jobs.max(1),
        limit: a.limit,
        offset: a.offset,
        shuffle: a.shuffle,
        skip_bad: a.skip_bad,
        shots: a.shots,
        fewshot: a.fewshot.clone(),
        format: a.format,
        max_tokens: a.max_tokens,
        options,
        pipeline: a.pipeline.clone(),
        rectifier: a.model.rectifier.clone().map(|p| (p, a.model.lambda)),
        principles: a.principles.principles.clone(),
        principles_level: a.principles.principles_level,
        progress: !a.out_args.json,
        prefix_reuse: !a.model.no_prefix_reuse,
        prefill: a.model.prefill,
        ..eval::Config::new(task, data, strategy, a.model.model.clone(), out)
    };
    let prompts = Arc::new(Prompts::load(a.prompts.as_deref())?);
    let plan = eval::runner::prepare(&cfg)?;
    let store = a.mistakes.open()?;
    // `cfg.prefix_reuse` carries --no-prefix-reuse: the runner applies it.
    let model = super::common::generator(&a.model, false).await?;
    let mut cx = Context::new(model, prompts);
    if let Some(cm) = super::common::load_critic_model(&a.critic_model, &a.model, false).await? {
        cx = cx.with_critic_model(cm);
    }
    if let Some(store) = store {
        cx = cx
            .with_mistakes(store)
            .with_token_log(a.mistakes.log_tokens);
    }
    let outcome = eval::runner::execute(&cfg, plan, cx).await?;
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
    let ci = |i: amend::stats::Interval| format!("[{:.1}%, {:.1}%]", i.lo * 100.0, i.hi * 100.0);
    println!(
        "accuracy {:.1}% {} (before, one greedy pass: {:.1}% {}), {} errors",
        s.accuracy * 100.0,
        ci(s.accuracy_ci),
        s.accuracy_before * 100.0,
        ci(s.accuracy_before_ci),
        s.errors
    );
    if !s.prefill.is_empty() {
        let paths: Vec<String> = s
            .prefill
            .iter()
            .map(|(k, v)| format!("{k:?} {v}"))
            .collect();
        println!("prefill paths (items): {}", paths.join(", "));
    }
    if let Some(sv) = s.survivors {
        println!(
            "verified selection: {:.2} samples per item accepted; {} of {} items had none accepted (verified: the majority of all taken; anchored: the greedy answer kept)",
            sv.mean, sv.none, sv.items
        );
    }
    if let Some(floor) = s.chance_floor {
        println!(
            "chance floor (a number from the question): {:.1}%",
            floor * 100.0
        );
    }
    let f = s.flips;
    println!(
        "flips: right->right {} right->wrong {} wrong->right {} wrong->wrong {}; McNemar p = {:.3}: {}",
        f.right_to_right,
        f.right_to_wrong,
        f.wrong_to_right,
        f.wrong_to_wrong,
        s.mcnemar_p,
        s.verdict.words()
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
