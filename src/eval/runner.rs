//! The evaluation runner: bounded concurrency, a progress bar, and resume.
//!
//! Results append to `OUT/results.jsonl` as each item finishes (one write, flushed and
//! synced). A rerun with the same `--out` reads it back, drops a half-written last line (the
//! item that was in flight when the process died) and skips every finished item; Ctrl-C stops
//! launching items and loses at most those in flight. The run's configuration is kept in
//! `OUT/config.json`, and a rerun with a different task, data, strategy, critic, model, prefix reuse or
//! prompting is refused rather than mixed into the same results.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::data::{self, Task};
use super::metrics::{self, ItemResult, Summary};
use super::{grade, report, EvalError};
use crate::critic::{self, Critic};
use crate::log::{MistakeStore, Sink};
use crate::model::{Model, NoPrefixReuse};
use crate::prompt::Prompts;
use crate::strategy::{self, Context, Format, PromptStyle, Strategy};
use crate::trace::Writer;

/// Everything that defines an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Task format.
    pub task: Task,
    /// Dataset file.
    pub data: PathBuf,
    /// Strategy name.
    pub strategy: String,
    /// Critic name (ProcessBench; correction strategies that use one).
    pub critic: Option<String>,
    /// Model spec as given.
    pub model: String,
    /// Output directory.
    pub out: PathBuf,
    /// Items in flight at once.
    pub concurrency: usize,
    /// Keep the first N selected items.
    pub limit: Option<usize>,
    /// Skip the first N items (after shuffling).
    pub offset: usize,
    /// Shuffle with this seed before offset/limit.
    pub shuffle: Option<u64>,
    /// Skip malformed records instead of stopping.
    pub skip_bad: bool,
    /// Worked examples before each question.
    pub shots: usize,
    /// Where worked examples come from (same format as the data).
    pub fewshot: Option<PathBuf>,
    /// Chat or plain-completion prompting.
    pub format: Format,
    /// Token limit of one attempt.
    pub max_tokens: u32,
    /// Strategy settings (samples, turns, window, mode, budget).
    #[serde(default)]
    pub options: strategy::Options,
    /// Principles file put into the prompt (LEAP).
    #[serde(default)]
    pub principles: Option<PathBuf>,
    /// Which of its principles.
    #[serde(default)]
    pub principles_level: crate::leap::Level,
    /// Show a progress bar on stderr.
    #[serde(skip)]
    pub progress: bool,
    /// Whether the model reuses the KV cache of a shared prompt prefix (`false`: [`execute`]
    /// wraps the model in [`NoPrefixReuse`], every prompt is decoded from scratch, and an
    /// item's output does not depend on the items before it). Part of the run's identity: a
    /// resumed run keeps its setting.
    #[serde(default = "reuse_default")]
    pub prefix_reuse: bool,
}

fn reuse_default() -> bool {
    true
}

impl Config {
    fn identity(&self) -> serde_json::Value {
        let mut id = serde_json::json!({
            "task": self.task, "data": self.data, "strategy": self.strategy, "critic": self.critic,
            "model": self.model, "shots": self.shots, "fewshot": self.fewshot, "format": self.format,
            "max_tokens": self.max_tokens, "shuffle": self.shuffle, "options": self.options,
            "principles": self.principles, "principles_level": self.principles_level,
        });
        // Only recorded when off, so directories written before the setting existed still match.
        if !self.prefix_reuse {
            id["prefix_reuse"] = serde_json::Value::Bool(false);
        }
        id
    }
}

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

fn check_config(cfg: &Config) -> Result<(), EvalError> {
    let path = cfg.out.join("config.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let old: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
        let new = cfg.identity();
        if old.get("identity") != Some(&new) {
            return Err(EvalError::ConfigMismatch {
                out: cfg.out.clone(),
                was: old.get("identity").cloned().unwrap_or_default().to_string(),
                now: new.to_string(),
            });
        }
    }
    let doc = serde_json::json!({"identity": cfg.identity(), "config": cfg});
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&doc).map_err(|e| io_err(&path, e))?,
    )
    .map_err(|e| io_err(&path, e))
}

fn load_shots(cfg: &Config) -> Result<Vec<strategy::Shot>, EvalError> {
    if cfg.shots == 0 {
        return Ok(Vec::new());
    }
    let Some(file) = &cfg.fewshot else {
        return Err(EvalError::Usage(
            "--shots needs --fewshot FILE (same format as --data)".into(),
        ));
    };
    let loaded = data::load(cfg.task, file, cfg.skip_bad)?;
    let shots: Vec<_> = loaded
        .items
        .iter()
        .filter_map(grade::shot_from)
        .take(cfg.shots)
        .collect();
    if shots.len() < cfg.shots {
        return Err(EvalError::Usage(format!(
            "{} has only {} usable worked examples, {} asked for",
            file.display(),
            shots.len(),
            cfg.shots
        )));
    }
    Ok(shots)
}

/// A checked run, ready to execute: data loaded and selected, worked examples, strategy and
/// critic resolved, output directory claimed. Everything that can fail before a model is
/// loaded fails here.
pub struct Plan {
    items: Vec<data::Item>,
    skipped_bad: usize,
    shots: Vec<strategy::Shot>,
    strategy: Box<dyn Strategy>,
    critic: Option<Box<dyn Critic>>,
}

/// Check a run's configuration and data.
///
/// # Errors
/// [`EvalError`] for bad data, unknown names, or a mismatched output directory.
pub fn prepare(cfg: &Config) -> Result<Plan, EvalError> {
    let loaded = data::load(cfg.task, &cfg.data, cfg.skip_bad)?;
    let items = data::select(loaded.items, cfg.shuffle, cfg.offset, cfg.limit);
    let shots = load_shots(cfg)?;
    let mut options = cfg.options.clone();
    if cfg.task != Task::Processbench {
        options.critic = cfg.critic.clone();
    }
    let strategy: Box<dyn Strategy> = strategy::by_name(&cfg.strategy, &options)?;
    let critic_name = match (cfg.task, &cfg.critic) {
        (Task::Processbench, None) => Some("llm".to_string()),
        (_, c) => c.clone(),
    };
    let critic: Option<Box<dyn Critic>> = critic_name
        .as_deref()
        .map(|c| critic::build(c, cfg.options.critic_votes))
        .transpose()?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| io_err(&cfg.out, e))?;
    check_config(cfg)?;
    Ok(Plan {
        items,
        skipped_bad: loaded.skipped.len(),
        shots,
        strategy,
        critic,
    })
}

/// Run (or resume) an evaluation: [`prepare`] then [`execute`].
///
/// # Errors
/// As [`prepare`] and [`execute`].
pub async fn run(
    cfg: &Config,
    model: Arc<dyn Model>,
    prompts: Arc<Prompts>,
) -> Result<Outcome, EvalError> {
    let plan = prepare(cfg)?;
    execute(cfg, plan, model, prompts, None).await
}

/// Execute a prepared run.
///
/// # Errors
/// [`EvalError`] for file-system failures. Model failures on single items are recorded in
/// their results, not raised.
pub async fn execute(
    cfg: &Config,
    plan: Plan,
    model: Arc<dyn Model>,
    prompts: Arc<Prompts>,
    log: Option<Arc<dyn MistakeStore>>,
) -> Result<Outcome, EvalError> {
    let Plan {
        items,
        skipped_bad,
        shots,
        strategy,
        critic,
    } = plan;
    let model: Arc<dyn Model> = if cfg.prefix_reuse {
        model
    } else {
        Arc::new(NoPrefixReuse(model))
    };

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
    let writer = Arc::new(Writer::in_dir(&traces).map_err(|e| io_err(&traces, e))?);
    let traced: Arc<dyn Model> = Arc::new(crate::trace::Traced::new(model, writer.clone()));
    let run_id = writer.run_id().to_string();
    let principles = match &cfg.principles {
        Some(p) => crate::leap::PrincipleSet::load(p)
            .map_err(|e| EvalError::Usage(e.to_string()))?
            .texts(cfg.principles_level),
        None => Vec::new(),
    };
    let cx = Context {
        model: traced,
        prompts,
        trace: Some(writer),
        max_tokens: cfg.max_tokens,
        style: PromptStyle {
            format: cfg.format,
            shots: Arc::new(shots),
            principles: Arc::new(principles),
        },
        budget: cfg.options.budget,
        log: log.map(|store| Sink {
            store,
            task: cfg.task.to_string(),
            model: cfg.model.clone(),
            run: Some(run_id),
        }),
    };

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
    let wanted: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mine: Vec<ItemResult> = all
        .into_iter()
        .filter(|r| wanted.contains(r.id.as_str()))
        .collect();
    let summary = metrics::summarize(&mine);
    let summary_path = cfg.out.join("summary.json");
    std::fs::write(
        &summary_path,
        serde_json::to_vec_pretty(&summary).map_err(|e| io_err(&summary_path, e))?,
    )
    .map_err(|e| io_err(&summary_path, e))?;
    report::write(cfg, &summary, &mine)?;
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
    let summary = metrics::summarize(&results);
    let summary_path = out.join("summary.json");
    std::fs::write(
        &summary_path,
        serde_json::to_vec_pretty(&summary).map_err(|e| io_err(&summary_path, e))?,
    )
    .map_err(|e| io_err(&summary_path, e))?;
    report::write(&cfg, &summary, &results)?;
    Ok(summary)
}
