//! `amend pipeline`: check a pipeline file, or run it.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use futures::StreamExt;
use serde_json::{json, Value};

use super::mistakes::MistakesArgs;
use super::{CriticModelArgs, ModelArgs};
use amend::pipeline::{self, NodeKind, Status};

/// `amend pipeline` subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once per process; boxing buys nothing.
pub enum PipelineAction {
    /// Load a pipeline file and print its nodes in run order (errors name the file and line).
    Check {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a pipeline on one input (`--input JSON`) or on each line of a JSON Lines file
    /// (`--data FILE`), printing each outcome (status, outputs, result, routed events).
    Run {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// One input, a JSON object (templates see it as `input`).
        #[arg(long, conflicts_with = "data", required_unless_present = "data")]
        input: Option<String>,
        /// A JSON Lines file of inputs, one object per line.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Trace file (default: traces/RUN_ID.jsonl).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print one JSON outcome per input.
        #[arg(long)]
        json: bool,
        /// Replace the file's `max_reasks` (0: one pass, no re-asks).
        #[arg(long)]
        max_reasks: Option<u32>,
        /// Inputs in flight at once (an API serves them concurrently; the local model decodes
        /// them together in its slots). Outcomes are printed in input order.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Decode every `llm` node that has a `schema` under it (grammar-constrained; the
        /// local model and endpoints with structured outputs).
        #[arg(long)]
        constrain: bool,
        #[command(flatten)]
        critic_model: CriticModelArgs,
        #[command(flatten)]
        mistakes: MistakesArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Inject each internal error class (hallucinated tool, wrong tool, bad argument keys,
    /// bad argument values) in place of a tool-call node's first output, on every input of
    /// `--data`, and report the routing and how often the re-asked model corrects it (beside
    /// the same inputs without a fault). A `gold` value in an input is compared with the result.
    Faults {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// A JSON Lines file of inputs, one object per line (`gold`: the right result).
        #[arg(long)]
        data: PathBuf,
        /// The `llm` node whose tool call is replaced.
        #[arg(long)]
        node: String,
        /// Use only the first N inputs.
        #[arg(long)]
        limit: Option<usize>,
        /// Runs in flight at once.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Trace file (default: traces/RUN_ID.jsonl).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        critic_model: CriticModelArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn read_inputs(d: &std::path::Path) -> Result<Vec<Value>> {
    let f =
        std::fs::File::open(d).with_context(|| format!("cannot read --data {}", d.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_input(&line, &format!("{}:{}", d.display(), n + 1))?);
    }
    Ok(out)
}

fn parse_input(text: &str, what: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(text).with_context(|| format!("{what} is not JSON"))?;
    if !v.is_object() {
        bail!("{what} must be a JSON object (templates read its fields as input.NAME)");
    }
    Ok(v)
}

/// Run an `amend pipeline` subcommand.
pub async fn run(action: PipelineAction) -> Result<()> {
    match action {
        PipelineAction::Run {
            file,
            input,
            data,
            trace,
            json,
            max_reasks,
            jobs,
            constrain,
            critic_model,
            mistakes,
            model,
        } => {
            let mut p = pipeline::load(&file)?;
            if let Some(n) = max_reasks {
                p = p.with_max_reasks(n);
            }
            if constrain {
                p = p.constrained();
            }
            let inputs: Vec<Value> = match (input, data) {
                (Some(i), _) => vec![parse_input(&i, "--input")?],
                (None, Some(d)) => read_inputs(&d)?,
                (None, None) => bail!("give --input JSON or --data FILE"),
            };
            let store = mistakes.open()?;
            let mut cx =
                super::common::context(&model, Some(&critic_model), None, trace.as_deref(), true)
                    .await?;
            if let Some(store) = store {
                cx = cx.with_mistakes(store);
            }
            // A `gold` object in an input is for scoring; the pipeline never sees it.
            let mut scored = Vec::new();
            let runs = futures::stream::iter(inputs.into_iter().map(|mut input| {
                let gold = input.as_object_mut().and_then(|o| o.remove("gold"));
                let (p, cx) = (&p, &cx);
                async move { (pipeline::run(p, cx, &input).await, gold) }
            }))
            .buffered(jobs.max(1));
            futures::pin_mut!(runs);
            while let Some((out, gold)) = runs.next().await {
                let out = out?;
                if let Some(g) = gold {
                    scored.push((out.clone(), g));
                }
                if json {
                    println!("{}", serde_json::to_string(&out)?);
                    continue;
                }
                for e in &out.events {
                    println!("  {:?} at {} ({}): {}", e.kind, e.node, e.class, e.message);
                }
                match &out.status {
                    Status::Complete => println!(
                        "result: {}",
                        out.result_text().unwrap_or_else(|| "none".into())
                    ),
                    Status::Finished { node, reason } => println!(
                        "finished early at {node}: {reason}; partial result: {}",
                        out.result_text().unwrap_or_else(|| "none".into())
                    ),
                }
            }
            if !scored.is_empty() {
                let s = pipeline::score::score(scored.iter().map(|(o, g)| (o, g)));
                match json {
                    true => println!("{}", json!({ "scores": s })),
                    false => print_scores(&s),
                }
            }
            if let Some(t) = cx.trace() {
                eprintln!("trace: {}", t.path().display());
            }
            Ok(())
        }
        PipelineAction::Faults {
            file,
            data,
            node,
            limit,
            jobs,
            trace,
            json,
            critic_model,
            model,
        } => {
            let p = pipeline::load(&file)?;
            let mut inputs = read_inputs(&data)?;
            if let Some(l) = limit {
                inputs.truncate(l);
            }
            let cx =
                super::common::context(&model, Some(&critic_model), None, trace.as_deref(), true)
                    .await?;
            let r = pipeline::faults::run(&p, &cx, &inputs, &node, jobs).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: faults in node {}, {} inputs",
                    r.pipeline,
                    r.node,
                    inputs.len()
                );
                println!("class                 runs routed completed [95% CI]   right/gold  calls/run over-budget");
                for row in &r.rows {
                    let ci = row
                        .completed_ci
                        .as_ref()
                        .map(|c| format!("[{:.1}, {:.1}]", c.lo * 100.0, c.hi * 100.0))
                        .unwrap_or_default();
                    println!(
                        "{:<21} {:>4} {:>6} {:>5.1}% {:<14} {:>4}/{:<5} {:>9.2} {:>11}",
                        row.class,
                        row.runs,
                        row.routed,
                        100.0 * row.completed as f64 / row.runs.max(1) as f64,
                        ci,
                        row.right,
                        row.with_gold,
                        row.calls_per_run,
                        row.over_budget
                    );
                }
            }
            if let Some(t) = cx.trace() {
                eprintln!("trace: {}", t.path().display());
            }
            Ok(())
        }
        PipelineAction::Check { file, json } => {
            let p = pipeline::load(&file)?;
            let order: Vec<&pipeline::Node> =
                p.order.iter().filter_map(|&i| p.nodes.get(i)).collect();
            if json {
                println!(
                    "{}",
                    json!({"name": p.name, "file": p.file, "limits": p.limits, "nodes": order})
                );
                return Ok(());
            }
            println!(
                "{}: pipeline {:?}, {} nodes, in run order:",
                p.file,
                p.name,
                order.len()
            );
            for n in order {
                let what = match &n.kind {
                    NodeKind::Llm(l) => {
                        format!("llm, template {}, output {:?}", l.template, l.output)
                    }
                    NodeKind::Tool(t) => format!(
                        "tool {} ({}{}{})",
                        t.tool,
                        t.imp.kind(),
                        if t.imp.side_effects() {
                            ", side effects"
                        } else {
                            ""
                        },
                        if t.idempotent { ", idempotent" } else { "" }
                    ),
                    NodeKind::Critic(c) => {
                        format!("critic {} {:?} {}", c.critic, c.when, c.target).to_lowercase()
                    }
                };
                let after = match n.after.is_empty() {
                    true => String::new(),
                    false => format!(" after {}", n.after.join(", ")),
                };
                println!("  {} (line {}): {what}{after}", n.id, n.line);
            }
            Ok(())
        }
    }
}

fn print_scores(s: &pipeline::score::Scores) {
    let pct = |k: u64| 100.0 * k as f64 / s.n.max(1) as f64;
    let ci = |c: &Option<amend::stats::Interval>| {
        c.as_ref()
            .map(|c| format!(" [{:.1}, {:.1}]", c.lo * 100.0, c.hi * 100.0))
            .unwrap_or_default()
    };
    println!(
        "{} runs: completed with a result {:.1}%{}; every field right {:.1}%{}; {:.2} calls, {:.2} re-asks and {:.0} generated tokens per run",
        s.n,
        pct(s.valid),
        ci(&s.valid_ci),
        pct(s.all_fields),
        ci(&s.all_fields_ci),
        s.calls_per_run,
        s.reasks_per_run,
        s.tokens_per_run
    );
    for (f, k) in &s.field_matches {
        println!("  {f}: {:.1}% right", pct(*k));
    }
}
