//! What each subcommand does: build the library objects, call them, print the result.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::common::{self, load_options};
use super::eval::EvalAction;
use super::{BenchKind, Cli, Command, ModelAction, ModelArgs, TraceAction};
use amend::model::{spec, Spec};
use amend::prompt::PromptStyle;
use amend::run::Problem;
use amend::strategy::{self, Solution};
use amend::trace;

fn print_solution(s: &Solution) {
    for (i, a) in s.attempts.iter().enumerate() {
        if s.attempts.len() > 1 {
            println!(
                "--- attempt {} (answer {})",
                i + 1,
                a.answer.as_deref().unwrap_or("none")
            );
        }
        println!("{}", a.text.trim());
        println!();
    }
    if let Some(stop) = &s.budget_stop {
        println!(
            "budget: stopped early: {}",
            super::speak(&format!(
                "`{}` reached ({}); {}",
                stop.cap.option(),
                stop.reached,
                stop.at
            ))
        );
    }
    println!("answer: {}", s.answer.as_deref().unwrap_or("(none found)"));
    let u = &s.usage;
    println!(
        "usage: {} prompt tokens ({} reused), {} generated, {} calls, {:.2}s",
        u.prompt_tokens,
        u.reused_tokens,
        u.generated_tokens,
        u.calls,
        s.wall.as_secs_f64()
    );
}

/// Run the parsed command line.
///
/// # Errors
/// Whatever the library reports, with context.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Solve {
            question,
            strategy,
            critic,
            strategy_args,
            critic_model,
            max_tokens,
            prompts,
            trace,
            principles,
            mistakes,
            model,
            out,
        } => {
            let opts = strategy_args.options(critic)?;
            let (kind, opts) = match strategy {
                Some(k) => (k, opts),
                None => strategy::recommended().apply(opts),
            };
            let strat = strategy::build(kind, &opts)?;
            let style = PromptStyle::new().with_principles(principles.texts()?);
            let store = mistakes.open()?;
            let mut cx = common::context(
                &model,
                Some(&critic_model),
                prompts.as_deref(),
                trace.as_deref(),
                false,
            )
            .await?
            .with_budget(opts.budget)
            .with_calculator(opts.calculator)
            .with_style(style)
            .with_max_tokens(max_tokens);
            if let Some(store) = store {
                cx = cx.with_mistakes(store).with_token_log(mistakes.log_tokens);
            }
            let sol = strat.solve(&cx, &Problem::new(&question)).await?;
            let trace_path = cx.trace().map(|t| t.path().display().to_string());
            if out.json {
                println!(
                    "{}",
                    json!({"solution": sol, "trace": trace_path, "model": cx.model().id()})
                );
            } else {
                print_solution(&sol);
                println!("trace: {}", trace_path.unwrap_or_default());
            }
        }
        Command::Demo {
            problems,
            level,
            seed,
            prompts,
            trace,
            critic_model,
            mistakes,
            model,
            out,
        } => {
            super::demo::demo(
                &model,
                &critic_model,
                &super::demo::Draw {
                    n: problems,
                    level,
                    seed,
                },
                prompts.as_deref(),
                trace.as_deref(),
                &mistakes,
                out.json,
            )
            .await?
        }
        Command::Mistakes { action } => super::mistakes::run(action).await?,
        Command::Leap { action } => super::leap::run(action).await?,
        Command::Pipeline { action } => super::pipeline::run(action).await?,
        Command::Rectify { action } => super::rectify::run(action).await?,
        Command::Serve(args) => super::serve::run(*args).await?,
        Command::Model {
            action: ModelAction::Fetch { out },
        } => {
            let path = tokio::task::spawn_blocking(spec::fetch_default).await??;
            if out.json {
                println!("{}", json!({"path": path}));
            } else {
                println!("default model at {}", path.display());
            }
        }
        Command::Model {
            action:
                ModelAction::Info {
                    spec: s,
                    model,
                    out,
                },
        } => info(&s, &model, out.json).await?,
        Command::Trace {
            action: TraceAction::Show { file, out },
        } => show_trace(&file, out.json)?,
        Command::Bench {
            which:
                BenchKind::Mistakes {
                    records,
                    batch,
                    lookups,
                    out,
                },
        } => {
            let dir =
                std::env::temp_dir().join(format!("amend-bench-mistakes-{}", std::process::id()));
            let r = amend::bench::mistakes::run(&dir, records, batch, lookups);
            let _ = std::fs::remove_dir_all(&dir);
            let r = r?;
            if out.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
        }
        Command::Bench {
            which: BenchKind::Overhead { seconds, hold, out },
        } => {
            if let Some(addr) = hold {
                let work = std::env::temp_dir()
                    .join(format!("amend-bench-overhead-hold-{}", std::process::id()));
                eprintln!("serving the instant upstream on {addr} until Ctrl-C");
                let r = amend::bench::overhead::hold(&addr, &work).await;
                let _ = std::fs::remove_dir_all(&work);
                r?;
            } else {
                let r = amend::bench::overhead::overhead(seconds).await?;
                if out.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                }
            }
        }
        Command::Bench {
            which: BenchKind::Pipeline { nodes, rounds, out },
        } => {
            let r = amend::bench::pipeline::run(nodes, rounds).await?;
            if out.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
        }
        Command::Bench {
            which: BenchKind::Fingerprint { model, rounds, out },
        } => {
            let path = spec::resolve_path(&model, true).await?;
            let r = amend::bench::fingerprint::run(&path, rounds)?;
            println!(
                "{}",
                if out.json {
                    serde_json::to_string(&r)?
                } else {
                    serde_json::to_string_pretty(&r)?
                }
            );
        }
        Command::Bench { which } => bench(which).await?,
        Command::Eval {
            action: Some(EvalAction::Compare { dirs, out }),
            ..
        } => {
            let c = amend::eval::compare::compare(&dirs)?;
            if out.json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                print!("{}", amend::eval::compare::to_markdown(&c));
            }
        }
        Command::Eval {
            action: Some(EvalAction::Claims { dirs, out }),
            ..
        } => {
            let runs = dirs
                .iter()
                .map(|d| amend::eval::claims::claims(d))
                .collect::<Result<Vec<_>, _>>()?;
            if out.json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                print!("{}", amend::eval::claims::to_markdown(&runs));
            }
        }
        Command::Eval {
            action: Some(EvalAction::Select { dir, verifier, out }),
            ..
        } => {
            let t = amend::eval::select::select(&dir, &verifier)?;
            if out.json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                print!("{}", amend::eval::select::to_markdown(&t));
            }
        }
        Command::Eval { action: None, run } => super::eval::run(*run).await?,
        Command::Eval {
            action: Some(EvalAction::Report { dir, out }),
            ..
        } => {
            let s = amend::eval::runner::rereport(&dir)?;
            if out.json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "{} items, accuracy {:.1}%; wrote {}",
                    s.n,
                    s.accuracy * 100.0,
                    dir.join("report.md").display()
                );
            }
        }
        Command::Data { action } => super::data::run(action)?,
    }
    Ok(())
}

async fn info(parsed: &Spec, m: &ModelArgs, json_out: bool) -> Result<()> {
    let model = spec::load(parsed, &load_options(m, false)).await?;
    let caps = model.capabilities();
    #[cfg(feature = "local")]
    let file_info = match parsed {
        Spec::OpenAi { .. } => None,
        _ => {
            let path = spec::resolve_path(parsed, false).await?;
            let local = amend::model::llama::LocalModel::load(&path, Default::default()).await?;
            Some(serde_json::to_value(local.info())?)
        }
    };
    #[cfg(not(feature = "local"))]
    let file_info: Option<serde_json::Value> = None;
    if json_out {
        println!(
            "{}",
            json!({"spec": parsed.to_string(), "id": model.id(), "capabilities": caps, "file": file_info})
        );
        return Ok(());
    }
    println!("model: {} ({parsed})", model.id());
    println!("capabilities: {}", serde_json::to_string_pretty(&caps)?);
    if let Some(fi) = file_info {
        for key in [
            "path",
            "general_name",
            "architecture",
            "n_params",
            "n_vocab",
            "n_embd",
            "n_layer",
            "n_ctx_train",
            "size_bytes",
        ] {
            println!("{key}: {}", fi.get(key).cloned().unwrap_or_default());
        }
        let has_tmpl = fi.get("chat_template").is_some_and(|t| !t.is_null());
        println!(
            "chat template: {}",
            if has_tmpl {
                "yes (from the GGUF)"
            } else {
                "none"
            }
        );
    }
    Ok(())
}

fn show_trace(file: &Path, json_out: bool) -> Result<()> {
    let events = trace::read(file)?;
    let sum = trace::summarize(&events);
    if json_out {
        println!("{}", json!({"summary": sum, "events": events}));
        return Ok(());
    }
    println!("trace {} — runs: {}", file.display(), sum.runs.join(", "));
    for ev in &events {
        let d = &ev.data;
        let at = |p: &str| d.pointer(p).cloned().unwrap_or_default();
        let line = match ev.kind.as_str() {
            "header" => format!(
                "schema {} (amend {})",
                d["schema"],
                d["amend"].as_str().unwrap_or("?")
            ),
            "call" => {
                let text = at("/output/0/text");
                let text = text.as_str().unwrap_or("");
                let short: String = text.chars().take(70).collect::<String>().replace('\n', " ");
                match d.get("error") {
                    Some(e) if !e.is_null() => {
                        format!("{} ERROR {}", d["model"].as_str().unwrap_or("?"), e)
                    }
                    _ => format!(
                        "{} n={} prompt={} reused={} gen={} {:.0}ms \"{short}\"",
                        d["model"].as_str().unwrap_or("?"),
                        at("/request/n"),
                        at("/usage/prompt_tokens"),
                        at("/usage/reused_tokens"),
                        at("/usage/generated_tokens"),
                        d["wall_ms"].as_f64().unwrap_or(0.0)
                    ),
                }
            }
            _ => d.to_string().chars().take(120).collect(),
        };
        println!("{:>4} {:<7} {line}", ev.seq, ev.kind);
    }
    let u = sum.usage;
    println!(
        "total: {} calls ({} failed), {} prompt tokens ({} reused), {} generated, {:.1}s in calls, {} infra retries",
        u.calls, sum.errors, u.prompt_tokens, u.reused_tokens, u.generated_tokens, sum.call_ms / 1000.0, u.infra_retries
    );
    Ok(())
}

#[cfg(feature = "local")]
async fn bench(which: BenchKind) -> Result<()> {
    use amend::bench;
    let (common, value) = match which {
        BenchKind::Decode { tokens, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::decode(&p, common.threads, tokens).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Prefix { common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::prefix(&p, common.threads).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Rise { window, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::rise(&p, common.threads, window).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Parallel {
            samples,
            kv_unified,
            rounds,
            common,
        } => {
            let p = bench_path(&common.model).await?;
            let r = bench::parallel(&p, common.threads, samples, !kv_unified, rounds).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Concurrent {
            requests,
            stagger_ms,
            rounds,
            greedy,
            common,
        } => {
            let p = bench_path(&common.model).await?;
            let r =
                bench::concurrent(&p, common.threads, requests, stagger_ms, rounds, greedy).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Backtrack { common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::backtrack(&p, common.threads).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Search { problems, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::search(&p, common.threads, problems).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Serve { rounds, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::serve_bench(&p, common.threads, rounds).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Format { problems, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::format_bench(&p, common.threads, problems).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Commits { problems, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::commits(&p, common.threads, problems).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Sampler {
            tokens,
            reps,
            common,
        } => {
            let p = bench_path(&common.model).await?;
            let r = bench::sampler(&p, common.threads, tokens, reps).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Rectify { rounds, common } => {
            let p = bench_path(&common.model).await?;
            let r = bench::rectify(&p, common.threads, rounds).await?;
            (common, serde_json::to_value(r)?)
        }
        BenchKind::Mistakes { .. }
        | BenchKind::Fingerprint { .. }
        | BenchKind::Pipeline { .. }
        | BenchKind::Overhead { .. } => {
            anyhow::bail!("this benchmark is run before the model benchmarks")
        }
    };
    if common.out.json {
        println!("{value}");
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

#[cfg(feature = "local")]
async fn bench_path(model: &Spec) -> Result<std::path::PathBuf> {
    spec::resolve_path(model, true)
        .await
        .map_err(|e| anyhow::Error::new(e).context("benchmarks need a local GGUF model"))
}

#[cfg(not(feature = "local"))]
async fn bench(_which: BenchKind) -> Result<()> {
    anyhow::bail!("benchmarks need the local backend: rebuild amend with the `local` feature")
}
