//! `amend leap learn|promote`: learn principles from mistakes, gate them on validation data.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Subcommand;

use super::mistakes::MistakesArgs;
use super::{ModelArgs, OutArgs};
use amend::data::{Gold, Task};
use amend::eval;
use amend::leap::{self, Example, LearnConfig, Level, PrincipleSet};
use amend::mistakes::Filter;
use amend::model::Spec;
use amend::run::Context;
use amend::strategy::Kind;
use amend::Prompts;

/// `amend leap ...`.
#[derive(Debug, Subcommand)]
pub enum LeapAction {
    /// Induce mistakes on K examples (and/or take them from the log) and learn principles.
    Learn {
        /// Task the principles are for (gsm8k).
        #[arg(long, default_value = "gsm8k")]
        task: String,
        /// GSM8K-format data the examples come from.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Examples to induce mistakes on (0: learn from the log only).
        #[arg(long, default_value_t = 3)]
        examples: usize,
        /// Skip the first N items of --data.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Zero-shot answers sampled per example.
        #[arg(long, default_value_t = 15)]
        samples: u32,
        /// Sampling temperature of the induction.
        #[arg(long, default_value_t = 0.7)]
        temperature: f32,
        /// Seed of the induction.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also learn from mistakes already in the log (same task and student model).
        #[arg(long)]
        from_log: bool,
        /// Model that writes the principles (default: the student, --model).
        #[arg(long)]
        teacher: Option<Spec>,
        /// Most mistakes turned into principles.
        #[arg(long, default_value_t = 100)]
        max_mistakes: usize,
        /// Output principles file (TOML).
        #[arg(long)]
        out: PathBuf,
        /// Directory of prompt templates overriding the built-in ones.
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[command(flatten)]
        mistakes: MistakesArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        out_args: OutArgs,
    },
    /// Evaluate without and with the principles; accept the file only if accuracy does not
    /// drop and negative flips stay under the cap.
    Promote {
        /// The principles file.
        file: PathBuf,
        /// Validation data (GSM8K format).
        #[arg(long)]
        validate: PathBuf,
        /// Task format of the validation data.
        #[arg(long, value_enum, default_value_t = Task::Gsm8k)]
        task: Task,
        /// Validation items.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Skip the first N validation items (keep them apart from the learning examples).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Most negative flips allowed, as a share of the items.
        #[arg(long, default_value_t = 0.02)]
        max_negative_flips: f64,
        /// Which principles go into the prompt: low or high.
        #[arg(long, value_enum, default_value_t)]
        principles_level: Level,
        /// Token limit of one attempt.
        #[arg(long, default_value_t = amend::run::DEFAULT_MAX_TOKENS)]
        max_tokens: u32,
        /// Directory of prompt templates overriding the built-in ones.
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[command(flatten)]
        mistakes: MistakesArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        out_args: OutArgs,
    },
}

/// Run `amend leap ACTION`.
pub async fn run(action: LeapAction) -> Result<()> {
    match action {
        LeapAction::Learn {
            task,
            data,
            examples,
            offset,
            samples,
            temperature,
            seed,
            from_log,
            teacher,
            max_mistakes,
            out,
            prompts,
            mistakes,
            model,
            out_args,
        } => {
            let exs = match (&data, examples) {
                (_, 0) => Vec::new(),
                (None, _) => bail!("--examples {examples} needs --data FILE"),
                (Some(d), k) => examples_from(d, offset, k)?,
            };
            if exs.is_empty() && !from_log {
                bail!("nothing to learn from: give --examples K with --data, or --from-log");
            }
            let store = mistakes.open()?;
            let mut student = super::common::context(&model, None, prompts.as_deref(), None, true)
                .await?
                .with_task(task.clone());
            let logged = match (&store, from_log) {
                (Some(s), true) => {
                    // The student's identity, and the spec it was given as (older records).
                    let mut models = super::mistakes::model_names(&model.model.to_string());
                    models.push(student.model().id().key.clone());
                    models.dedup();
                    s.list(&Filter {
                        task: Some(task.clone()),
                        models,
                        ..Filter::default()
                    })?
                }
                (None, true) => bail!("--from-log needs the mistakes store (drop --no-mistakes)"),
                _ => Vec::new(),
            };
            if let Some(store) = store {
                student = student.with_mistakes(store);
            }
            let teacher_cx = match &teacher {
                None => student.clone(),
                Some(t) => {
                    let m = super::common::load_model(t, &model, true).await?;
                    let mut cx = Context::new(m, student.prompts().clone())
                        .with_prefix_reuse(!model.no_prefix_reuse);
                    if let Some(w) = student.trace() {
                        cx = cx.with_trace(w.clone());
                    }
                    cx
                }
            };
            let cfg = LearnConfig {
                task: task.clone(),
                data: data.map(|d| d.display().to_string()).unwrap_or_default(),
                samples,
                temperature,
                seed,
                max_mistakes,
                max_high: 8,
            };
            let set = leap::learn(&student, &teacher_cx, &exs, logged, &cfg).await?;
            set.save(&out)?;
            if out_args.json {
                println!("{}", serde_json::to_string(&set)?);
            } else {
                print_set(&set, &out);
            }
        }
        LeapAction::Promote {
            file,
            validate,
            task,
            limit,
            offset,
            max_negative_flips,
            principles_level,
            max_tokens,
            prompts,
            mistakes,
            model,
            out_args,
        } => {
            PrincipleSet::load(&file)?;
            let base = eval::Config {
                limit: Some(limit),
                offset,
                max_tokens,
                principles_level,
                progress: !out_args.json,
                prefix_reuse: !model.no_prefix_reuse,
                ..eval::Config::new(
                    task,
                    validate,
                    Kind::Baseline,
                    model.model.clone(),
                    std::path::PathBuf::new(),
                )
            };
            // `base.prefix_reuse` carries --no-prefix-reuse: the runner applies it.
            let m = super::common::load_model(&model.model, &model, true).await?;
            let prompts = Arc::new(Prompts::load(prompts.as_deref())?);
            let mut cx = Context::new(m, prompts);
            if let Some(store) = mistakes.open()? {
                cx = cx.with_mistakes(store);
            }
            let d = leap::promote(&file, &base, principles_level, cx, max_negative_flips).await?;
            if out_args.json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                println!("{}: {} ({})", file.display(), d.status, d.reason);
                println!("evaluation: {}", d.eval_dir);
            }
        }
    }
    Ok(())
}

fn examples_from(data: &std::path::Path, offset: usize, k: usize) -> Result<Vec<Example>> {
    let loaded = amend::data::load(Task::Gsm8k, data, false)?;
    let out: Vec<Example> = loaded
        .items
        .into_iter()
        .skip(offset)
        .filter_map(|i| match i.gold {
            Gold::Answer { answer, solution } => Some(Example {
                question: i.question,
                solution,
                answer,
            }),
            _ => None,
        })
        .take(k)
        .collect();
    if out.len() < k {
        bail!(
            "{} has only {} usable examples after offset {offset}, {k} asked for",
            data.display(),
            out.len()
        );
    }
    Ok(out)
}

fn print_set(set: &PrincipleSet, out: &std::path::Path) {
    println!(
        "{} mistakes ({} induced on {} examples x {} samples, {} from the log); {} low-level principles ({} answers without one), {} high-level",
        set.induced + set.from_log,
        set.induced,
        set.examples,
        set.samples,
        set.from_log,
        set.low.len(),
        set.low_unmarked,
        set.high.len()
    );
    println!("high-level principles:");
    for p in &set.high {
        println!("  - {}", p.text);
    }
    println!("wrote {}", out.display());
}
