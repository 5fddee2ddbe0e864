//! The evaluation runner: bounded concurrency, a progress bar, and resume.
//!
//! Results append to `OUT/results.jsonl` as each item finishes (one write, flushed and
//! synced). A rerun with the same `--out` reads it back, drops a half-written last line (the
//! item that was in flight when the process died) and skips every finished item; Ctrl-C stops
//! launching items and loses at most those in flight. The run's configuration is kept in
//! `OUT/config.json`, and a rerun with a different task, data, strategy, critic, model, prefix
//! reuse or prompting is refused rather than mixed into the same results (see [`Config`]: models
//! are compared by identity, [`crate::model::ModelId`]).
//!
//! Every invocation traces its model calls into `OUT/traces/RUN_ID.jsonl` and compresses the
//! file to `RUN_ID.jsonl.gz` when it ends, so a run directory keeps what it did.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::config::check_config;
pub use super::config::Config;
use super::metrics::{self, ItemResult, Summary};
use super::{grade, report, EvalError};
use crate::critic::{self, Critic};
use crate::data::{self, Task};
use crate::prompt::{PrincipleSet, PromptStyle, Shot};
use crate::run::{Context, OptionError};
use crate::strategy::{self, Strategy};
use crate::trace::Writer;

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Summary over every result in the output directory.
    pub summary: Summary,
    /// Items finished by this invocation.
    pub finished_now: usize,
    /// Items skipped because an earlier invocation finished them.
    pub resumed: usize,
    /// Items still to do (interrupted runs).
    pub remaining: usize,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// Malformed records skipped.
    pub skipped_bad: usize,
    /// The output directory.
    pub out: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Read `results.jsonl`, truncating a half-written last line.
///
/// # Errors
/// [`EvalError::Results`] for a malformed line that is not the last one.
pub fn read_results(path: &Path) -> Result<Vec<ItemResult>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut out = Vec::new();
    let mut good_bytes = 0usize;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let complete = line.ends_with('\n');
        match serde_json::from_str::<ItemResult>(line.trim_end()) {
            Ok(r) if complete => {
                out.push(r);
                good_bytes += line.len();
            }
            _ if i + 1 == lines.len() => {
                tracing::warn!(path = %path.display(), "dropping a half-written last result line");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| io_err(path, e))?;
                f.set_len(good_bytes as u64).map_err(|e| io_err(path, e))?;
            }
            Err(e) => {
                return Err(EvalError::Results {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
            Ok(_) => {}
        }
    }
    Ok(out)
}

fn append(file: &mut std::fs::File, path: &Path, r: &ItemResult) -> Result<(), EvalError> {
    let mut line = serde_json::to_vec(r).map_err(|e| io_err(path, e))?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| io_err(path, e))?;
    file.flush().map_err(|e| io_err(path, e))?;
    file.sync_data().map_err(|e| io_err(path, e))
}

fn load_shots(cfg: &Config) -> Result<Vec<Shot>, EvalError> {
    if cfg.shots == 0 {
        return Ok(Vec::new());
    }
    let Some(file) = &cfg.fewshot else {
        return Err(OptionError::new(
            "shots",
            "needs `fewshot`, the file the worked examples come from (same format as `data`)",
        )
        .into());
    };
    let loaded = data::load(cfg.task, file, cfg.skip_bad)?;
    let shots: Vec<_> = loaded
        .items
        .iter()
        .filter_map(data::shot_from)
        .take(cfg.shots)
        .collect();
    if shots.len() < cfg.shots {
        return Err(OptionError::new(
            "shots",
            format!(
                "is {}, but {} has only {} usable worked examples",
                cfg.shots,
                file.display(),
                shots.len()
            ),
        )
        .into());
    }
    Ok(shots)
}

/// A checked run, ready to execute: data loaded and selected, worked examples and principles
/// read, strategy and critic built. Everything that can fail before a model is loaded fails
/// here.
pub struct Plan {
    items: Vec<data::Item>,
    skipped_bad: usize,
    style: PromptStyle,
    strategy: Box<dyn Strategy>,
    critic: Option<Box<dyn Critic>>,
}

/// Check a run's configuration and data.
///
/// # Errors
/// [`EvalError`] for bad data, a bad principles file or options that do not fit.
pub fn prepare(cfg: &Config) -> Result<Plan, EvalError> {
    let loaded = data::load(cfg.task, &cfg.data, cfg.skip_bad)?;
    let items = data::select(loaded.items, cfg.shuffle, cfg.offset, cfg.limit);
    let shots = load_shots(cfg)?;
    let principles = match &cfg.principles {
        Some(p) => PrincipleSet::load(p)?.texts(cfg.principles_level),
        None => Vec::new(),
    };
    let mut options = cfg.options.clone();
    if cfg.task != Task::Processbench {
        options.critic = cfg.critic.clone();
    }
    let strategy: Box<dyn strategy::Strategy> = match &cfg.pipeline {
        Some(p) => Box::new(crate::pipeline::PipelineStrategy {
            pipeline: crate::pipeline::load(p)?,
        }),
        None => strategy::build(cfg.strategy, &options)?,
    };
    let critic = cfg
        .effective_critic()
        .map(|c| critic::build(&c, cfg.options.critic_votes));
    Ok(Plan {
        items,
        skipped_bad: loaded.skipped.len(),
        style: PromptStyle::new()
            .with_format(cfg.format)
            .with_shots(shots)
            .with_principles(principles),
        strategy,
        critic,
    })
}

/// Execute a prepared run with `cx`: the context carries the model (and the critics' model and
/// a mistakes store, when set); the run sets everything else from `cfg` (trace in
/// `OUT/traces/`, prompt style, budget, token limit, prefix reuse, the task tag of mistakes).
///
/// # Errors
/// [`EvalError`] for a directory that holds another run, or file-system failures. Model
/// failures on single items are recorded in their results, not raised.
pub async fn execute(cfg: &Config, plan: Plan, cx: Context) -> Result<Outcome, EvalError> {
    let Plan {
        items,
        skipped_bad,
        style,
        strategy,
        critic,
    } = plan;
    std::fs::create_dir_all(&cfg.out).map_err(|e| io_err(&cfg.out, e))?;
    check_config(cfg, cx.model().id(), Some(cx.critic_model().id()))?;

    let results_path = cfg.out.join("results.jsonl");
    let previous = read_results(&results_path)?;
    let done: HashSet<String> = previous.iter().map(|r| r.id.clone()).collect();
    let pending: Vec<_> = items
        .iter()
        .filter(|i| !done.contains(&i.id))
        .cloned()
        .collect();
    let resumed = items.len() - pending.len();

    let traces = cfg.out.join("traces");
    compress_leftovers(&traces);
    // A resumed run with nothing left to do writes no (empty) trace.
    let writer = match pending.is_empty() {
        true => None,
        false => Some(Arc::new(
            Writer::in_dir(&traces).map_err(|e| io_err(&traces, e))?,
        )),
    };
    let cx = match &writer {
        Some(w) => cx.with_trace(w.clone()),
        None => cx,
    };
    let cx = cx
        .with_style(style)
        .with_budget(cfg.options.budget)
        .with_max_tokens(cfg.max_tokens)
        .with_prefix_reuse(cfg.prefix_reuse)
        .with_calculator(cfg.options.calculator)
        .with_task(cfg.task.to_string());

    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .map_err(|e| io_err(&results_path, e))?;
    let bar = progress_bar(cfg.progress, items.len() as u64, resumed as u64);
    let mut all = previous;
    let mut finished_now = 0usize;
    let mut interrupted = false;
    {
        let (strategy, critic, cx) = (&*strategy, critic.as_deref(), &cx);
        let mut stream = futures::stream::iter(pending.iter())
            .map(|item| async move { grade::item(item, strategy, critic, cx).await })
            .buffer_unordered(cfg.concurrency.max(1));
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(r) => {
                        append(&mut file, &results_path, &r)?;
                        all.push(r);
                        finished_now += 1;
                        let right = all.iter().filter(|r| r.correct_after).count();
                        bar.set_message(format!("acc {:.1}%", 100.0 * right as f64 / all.len() as f64));
                        bar.inc(1);
                    }
                    None => break,
                },
                _ = &mut ctrl_c => {
                    interrupted = true;
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    drop(cx);
    if let Some(w) = writer {
        let trace_path = w.path().to_path_buf();
        drop(w);
        if let Err(e) = crate::trace::compress(&trace_path) {
            tracing::warn!(error = %e, "the run's trace was left uncompressed");
        }
    }
    let wanted: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mine: Vec<ItemResult> = all
        .into_iter()
        .filter(|r| wanted.contains(r.id.as_str()))
        .collect();
    let summary = write_outputs(cfg, &mine)?;
    Ok(Outcome {
        remaining: items.len() - resumed - finished_now,
        summary,
        finished_now,
        resumed,
        interrupted,
        skipped_bad,
        out: cfg.out.clone(),
    })
}

/// Compress the plain traces an earlier invocation left behind (it was killed before it could).
fn compress_leftovers(traces: &Path) {
    let Ok(entries) = std::fs::read_dir(traces) else {
        return;
    };
    for p in entries.filter_map(Result::ok).map(|e| e.path()) {
        if p.extension().is_some_and(|x| x == "jsonl") {
            if let Err(e) = crate::trace::compress(&p) {
                tracing::warn!(error = %e, "an earlier trace was left uncompressed");
            }
        }
    }
}

/// Write `summary.json`, `report.md` and `report.html` of `results` into the run's directory.
fn write_outputs(cfg: &Config, results: &[ItemResult]) -> Result<Summary, EvalError> {
    let summary = metrics::summarize(results);
    let summary_path = cfg.out.join("summary.json");
    std::fs::write(
        &summary_path,
        serde_json::to_vec_pretty(&summary).map_err(|e| io_err(&summary_path, e))?,
    )
    .map_err(|e| io_err(&summary_path, e))?;
    report::write(cfg, &summary, results)?;
    Ok(summary)
}

fn progress_bar(show: bool, len: u64, done: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done);
    bar
}

/// Recompute `summary.json`, `report.md` and `report.html` of an existing run directory from
/// its `config.json` and `results.jsonl` (after an upgrade, or to look again).
///
/// # Errors
/// [`EvalError`] when the files are missing or malformed.
pub fn rereport(out: &Path) -> Result<Summary, EvalError> {
    let path = out.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
    let mut cfg: Config = serde_json::from_value(doc.get("config").cloned().unwrap_or_default())
        .map_err(|e| io_err(&path, e))?;
    cfg.out = out.to_path_buf();
    let results = read_results(&out.join("results.jsonl"))?;
    write_outputs(&cfg, &results)
}
