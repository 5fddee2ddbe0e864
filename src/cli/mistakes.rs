//! `amend mistakes`: read and move the mistakes store; `--mistakes` / `--no-mistakes` for the
//! commands that write to it.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::OutArgs;
use amend::mistakes::{self, Filter, Mistake, Outcome, SledStore, Store, StoreError};
use amend::model::{ModelId, Spec};
use amend::serve::Remote;

/// The store's directory: `--mistakes`, else `$AMEND_MISTAKES`, else the older `$AMEND_LOG`,
/// else the default (`$AMEND_HOME/mistakes`).
fn store_path(flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned()
        .or_else(|| std::env::var_os("AMEND_LOG").map(PathBuf::from))
        .unwrap_or_else(mistakes::default_path)
}

/// Where the mistakes store is (commands that read or manage it).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Mistakes store directory (default: $AMEND_HOME/mistakes, i.e. ~/.amend/mistakes).
    #[arg(long, alias = "log", env = "AMEND_MISTAKES")]
    pub mistakes: Option<PathBuf>,
}

impl StoreArgs {
    /// Open the store to write to it. A store a running `amend serve` holds is refused, naming
    /// the server.
    pub fn open(&self) -> Result<SledStore> {
        let path = store_path(self.mistakes.as_ref());
        match SledStore::open(&path) {
            Err(e @ StoreError::Locked { .. }) => match Remote::for_store(&path, None) {
                Some(r) => bail!(
                    "{e}: amend serve (pid {}, {}) holds it and serves it for reading only; stop the server to write to it, or give this command another store (--mistakes DIR)",
                    r.holder().pid,
                    r.holder().url
                ),
                None => Err(e.into()),
            },
            other => Ok(other?),
        }
    }

    /// Open the store to read it: here, or, when a running `amend serve` holds it, through
    /// that server (with `$AMEND_API_KEY` when the server asks for a key).
    pub fn open_for_reading(&self) -> Result<Opened> {
        let path = store_path(self.mistakes.as_ref());
        match SledStore::open(&path) {
            Ok(s) => Ok(Opened::Here(s)),
            Err(e @ StoreError::Locked { .. }) => {
                match Remote::for_store(&path, std::env::var("AMEND_API_KEY").ok()) {
                    Some(r) => Ok(Opened::Served(r, path)),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A store opened for reading: here, or through the server that holds it.
pub enum Opened {
    /// Opened by this process.
    Here(SledStore),
    /// Held by `amend serve`, read through it.
    Served(Remote, PathBuf),
}

impl Opened {
    /// The records passing `filter`, oldest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Mistake>> {
        Ok(match self {
            Self::Here(s) => s.list(filter)?,
            Self::Served(r, _) => r.list(filter).await?,
        })
    }

    /// The record with this id.
    pub async fn get(&self, id: &str) -> Result<Option<Mistake>> {
        Ok(match self {
            Self::Here(s) => s.get(id)?,
            Self::Served(r, _) => r.get(id).await?,
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Here(s) => s.path(),
            Self::Served(_, p) => p,
        }
    }
}

/// Where commands that find mistakes record them.
#[derive(Debug, Clone, Args)]
pub struct MistakesArgs {
    /// Mistakes store directory (default: $AMEND_HOME/mistakes, i.e. ~/.amend/mistakes).
    #[arg(long, alias = "log", env = "AMEND_MISTAKES")]
    pub mistakes: Option<PathBuf>,
    /// Record nothing in the mistakes store (wins over --mistakes and the environment).
    #[arg(long, alias = "no-log")]
    pub no_mistakes: bool,
    /// Also record, for each located result written wrong, the model's prediction at every
    /// token of the right value (token records for `amend rectify train`; models that can
    /// teacher-force only; one extra pass with hidden states per such mistake).
    #[arg(long)]
    pub log_tokens: bool,
}

impl MistakesArgs {
    /// The store's directory, unless `--no-mistakes`.
    pub fn path(&self) -> Option<PathBuf> {
        (!self.no_mistakes).then(|| store_path(self.mistakes.as_ref()))
    }

    /// The store to record into, unless `--no-mistakes`.
    pub fn open(&self) -> Result<Option<Arc<dyn Store>>> {
        match self.path() {
            None => Ok(None),
            Some(p) => Ok(Some(Arc::new(SledStore::open(&p)?))),
        }
    }
}

/// The names a model's records may carry: its identity key and, for records written before
/// identities existed, the spec string given then. `name` is an identity key or a spec; a
/// spec naming a local file that is there adds the file's identity.
pub fn model_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if ModelId::is_key(name) {
        return names;
    }
    let path = match name.parse::<Spec>() {
        Ok(Spec::Default) => Some(amend::model::spec::default_path()),
        Ok(Spec::Path(p)) => Some(p),
        _ => None,
    };
    if let Some(id) = path
        .filter(|p| p.is_file())
        .and_then(|p| amend::model::fingerprint(&p).ok())
    {
        names.push(id.key);
    }
    names
}

/// Which records (list, stats, export).
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Only this model: its identity (`gguf-...`, `openai:MODEL@URL`) or a model spec (a local
    /// spec also matches its file's identity; records written before identities existed carry
    /// the spec).
    #[arg(long)]
    pub model: Option<String>,
    /// Only this outcome: fixed, not_fixed, made_worse, unverified.
    #[arg(long)]
    pub outcome: Option<Outcome>,
    /// Only records since this date (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records of this evaluation run.
    #[arg(long)]
    pub run: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter> {
        let since = match &self.since {
            None => None,
            Some(s) => Some(parse_since(s)?),
        };
        Ok(Filter {
            task: self.task.clone(),
            models: self.model.as_deref().map(model_names).unwrap_or_default(),
            outcome: self.outcome,
            since,
            run: self.run.clone(),
        })
    }
}

fn parse_since(s: &str) -> Result<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt)
        .with_context(|| format!("--since must be YYYY-MM-DD or RFC 3339, got {s:?}"))?;
    Ok(d.midnight().assume_utc())
}

/// `amend mistakes ...`.
#[derive(Debug, Subcommand)]
pub enum MistakesAction {
    /// List records, oldest first (the last --limit of them).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most the last N.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Show one record (a unique id prefix is enough).
    Show {
        /// The record's id or a unique prefix of it.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Counts by task, model, critic and outcome, and the most frequent located steps.
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Write records as JSON Lines to stdout.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add records from a JSON Lines file (all lines are checked first; a bad file imports
    /// nothing).
    Import {
        /// The file (as written by export).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Record JSON Lines records from stdin one at a time, printing `recorded ID` once each
    /// is durable (for pipelines that feed the log as they go).
    Record {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn short(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        format!("{}…", one.chars().take(n).collect::<String>())
    }
}

/// Run `amend mistakes ACTION`.
pub async fn run(action: MistakesAction) -> Result<()> {
    match action {
        MistakesAction::List {
            filter,
            limit,
            store,
            out,
        } => {
            let all = store.open_for_reading()?.list(&filter.filter()?).await?;
            let shown = all
                .get(all.len().saturating_sub(limit)..)
                .unwrap_or_default();
            if out.json {
                println!("{}", serde_json::to_string(shown)?);
                return Ok(());
            }
            println!(
                "{} record(s){}",
                all.len(),
                if shown.len() < all.len() {
                    format!(", the last {} shown", shown.len())
                } else {
                    String::new()
                }
            );
            for m in shown {
                println!(
                    "{}  {}  {:<10} {:<11} step {:<4} {:<8} {}",
                    m.id,
                    m.time.chars().take(19).collect::<String>(),
                    m.task,
                    m.outcome.as_str(),
                    m.step.map_or("-".to_string(), |s| s.to_string()),
                    m.critic,
                    short(&m.input, 50)
                );
            }
        }
        MistakesAction::Show { id, store, out } => {
            let s = store.open_for_reading()?;
            let m = match s.get(&id).await? {
                Some(m) => m,
                None => {
                    let hits: Vec<_> = s
                        .list(&Filter::default())
                        .await?
                        .into_iter()
                        .filter(|m| m.id.starts_with(&id))
                        .collect();
                    match hits.len() {
                        0 => bail!("no record with id {id:?} in {}", s.path().display()),
                        1 => hits.into_iter().next().context("one hit")?,
                        n => bail!("{n} records start with {id:?}; give more of the id"),
                    }
                }
            };
            if out.json {
                println!("{}", serde_json::to_string(&m)?);
                return Ok(());
            }
            println!("id:        {}", m.id);
            println!("time:      {}", m.time);
            println!(
                "task:      {}   model: {}   run: {}",
                m.task,
                m.model,
                m.run.as_deref().unwrap_or("-")
            );
            println!("input:     {}", m.input);
            println!("reference: {}", m.reference.as_deref().unwrap_or("-"));
            println!("attempt:");
            for (i, st) in m.steps.iter().enumerate() {
                let mark = if Some(i) == m.step { ">>" } else { "  " };
                println!("  {mark} {i}: {st}");
            }
            println!(
                "located:   {} by {}: {}",
                m.step
                    .map_or("no step (answer only)".into(), |s| format!("step {s}")),
                m.critic,
                m.rationale
            );
            println!("correction: {}", m.correction.as_deref().unwrap_or("-"));
            println!(
                "answer:    {} -> {}   outcome: {}   tokens: {}",
                m.answer_before.as_deref().unwrap_or("none"),
                m.answer_after.as_deref().unwrap_or("none"),
                m.outcome.as_str(),
                m.tokens
            );
            println!("trace:     {}", m.trace.as_deref().unwrap_or("-"));
        }
        MistakesAction::Stats { filter, store, out } => {
            let s = mistakes::stats(&store.open_for_reading()?.list(&filter.filter()?).await?);
            if out.json {
                println!("{}", serde_json::to_string(&s)?);
                return Ok(());
            }
            println!("{} record(s)", s.total);
            for (name, map) in [
                ("task", &s.by_task),
                ("model", &s.by_model),
                ("critic", &s.by_critic),
                ("outcome", &s.by_outcome),
            ] {
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("by {name:<8} {}", parts.join(", "));
            }
            let steps: Vec<String> = s
                .top_steps
                .iter()
                .map(|(k, n)| format!("step {k}: {n}"))
                .collect();
            println!(
                "located steps (most frequent): {}; not located: {}",
                if steps.is_empty() {
                    "none".to_string()
                } else {
                    steps.join(", ")
                },
                s.unlocated
            );
        }
        MistakesAction::Export { filter, store } => {
            let recs = store.open_for_reading()?.list(&filter.filter()?).await?;
            mistakes::write_export(&recs, std::io::stdout().lock())?;
        }
        MistakesAction::Import { file, store, out } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let recs = mistakes::parse_import(&file.display().to_string(), &text)?;
            let s = store.open()?;
            let mut new = 0;
            for m in &recs {
                new += usize::from(s.get(&m.id)?.is_none());
            }
            for chunk in recs.chunks(1000) {
                s.record_batch(chunk)?;
            }
            if out.json {
                println!("{}", json!({"imported": recs.len(), "new": new}));
            } else {
                println!(
                    "imported {} record(s) ({new} new) into {}",
                    recs.len(),
                    s.path().display()
                );
            }
        }
        MistakesAction::Record { store } => {
            let s = store.open()?;
            let mut stdout = std::io::stdout().lock();
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let recs = mistakes::parse_import(&format!("stdin line {}", i + 1), &line)?;
                s.record_batch(&recs)?;
                for m in &recs {
                    writeln!(stdout, "recorded {}", m.id)?;
                }
                stdout.flush()?;
            }
        }
    }
    Ok(())
}
