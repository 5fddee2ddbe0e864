//! The mistakes store: every located mistake and what became of it, kept across runs
//! (`amend mistakes` reads it).
//!
//! Strategies hand records to a [`Store`] through the [`Sink`] in their context; the
//! persistent store is [`SledStore`] (sled, one tree per index, versioned key layout),
//! [`Discard`] keeps nothing. Records travel as JSON Lines ([`write_export`] /
//! [`parse_import`]); LEAP reads them back to learn principles.
//!
//! A record names its model by the model's identity key (`crate::model::ModelId`); records
//! written before identities existed carry the model spec string that was given (e.g.
//! `default`). [`Filter::models`] takes several names so both can be asked for at once.

mod records;
mod sled_store;
mod tokens;

use std::sync::Arc;

pub use records::{parse_import, stats, write_export, ImportError, Stats};
pub use sled_store::{SledStore, SCHEMA_VERSION};
pub use tokens::{from_bf16, to_bf16, TokenRecord, TokenSource};

use serde::{Deserialize, Serialize};

/// What became of a located mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A correction was kept and the answer is now right (checked against a reference).
    Fixed,
    /// No correction was kept, or the corrected answer is still wrong.
    NotFixed,
    /// The answer was right before the correction and wrong after it.
    MadeWorse,
    /// A correction was kept but there is no reference answer to judge it by.
    Unverified,
}

impl Outcome {
    /// The name used on the command line and in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::NotFixed => "not_fixed",
            Self::MadeWorse => "made_worse",
            Self::Unverified => "unverified",
        }
    }

    /// Judge a correction: `kept` whether a correction replaced the attempt, `before` and
    /// `after` whether the attempt was right before and after (`None`: unknown).
    pub fn judge(kept: bool, before: Option<bool>, after: Option<bool>) -> Self {
        match (kept, before, after) {
            (false, _, _) => Self::NotFixed,
            (true, _, None) => Self::Unverified,
            (true, _, Some(true)) => Self::Fixed,
            (true, Some(true), Some(false)) => Self::MadeWorse,
            (true, _, Some(false)) => Self::NotFixed,
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.replace('-', "_").as_str() {
            "fixed" => Ok(Self::Fixed),
            "not_fixed" => Ok(Self::NotFixed),
            "made_worse" => Ok(Self::MadeWorse),
            "unverified" => Ok(Self::Unverified),
            o => Err(format!(
                "unknown outcome {o:?}; use fixed, not_fixed, made_worse or unverified"
            )),
        }
    }
}

/// One located mistake and what the strategy did about it. Every field is written on export
/// (none is skipped), so export → import → export is byte-identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistake {
    /// Unique id; generated ids are UUID v7, so they sort by time.
    pub id: String,
    /// When it was recorded (RFC 3339, UTC).
    pub time: String,
    /// Task (e.g. `gsm8k`, `bbmistake`, or `solve` outside an evaluation).
    pub task: String,
    /// The model that made the mistake: its identity key (older records: the spec given).
    pub model: String,
    /// The evaluation run that found it, if any.
    pub run: Option<String>,
    /// The problem.
    pub input: String,
    /// The known right answer, if any.
    pub reference: Option<String>,
    /// The wrong attempt's steps.
    pub steps: Vec<String>,
    /// Index of the first wrong step, when a critic located one (`None`: only the final
    /// answer is known to be wrong).
    pub step: Option<usize>,
    /// Which critic located it (`answer` when only a reference answer showed it).
    pub critic: String,
    /// The critic's rationale.
    pub rationale: String,
    /// The correction that was kept (the replacement step and what followed), if any.
    pub correction: Option<String>,
    /// The answer before the correction.
    pub answer_before: Option<String>,
    /// The answer after it.
    pub answer_after: Option<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// Tokens the strategy spent on the problem up to this record.
    pub tokens: u64,
    /// Where in the traces it is (`FILE#SEQ`), if traced.
    pub trace: Option<String>,
}

/// The names of every field of a [`Mistake`], in export order.
pub const FIELDS: &[&str] = &[
    "id",
    "time",
    "task",
    "model",
    "run",
    "input",
    "reference",
    "steps",
    "step",
    "critic",
    "rationale",
    "correction",
    "answer_before",
    "answer_after",
    "outcome",
    "tokens",
    "trace",
];

/// A fresh time-ordered record id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The current time as the log writes it.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("cannot open the mistake log at {path}: {reason}")]
    Open {
        /// The store's directory.
        path: String,
        /// Why, and what to do.
        reason: String,
    },
    /// Another process holds the store (sled lets one process open it at a time).
    #[error("cannot open the mistake log at {path}: another amend process has it open (the store is locked while in use); wait for it to finish, or give this run another `mistakes` store (or none)")]
    Locked {
        /// The store's directory.
        path: String,
    },
    /// The store was written by a newer amend.
    #[error("the mistake log at {path} has schema version {found}, newer than this amend understands ({supported}); upgrade amend, or point the `mistakes` option elsewhere")]
    TooNew {
        /// The store's directory.
        path: String,
        /// Its version.
        found: u32,
        /// The newest this binary reads.
        supported: u32,
    },
    /// The store is older than any version this binary can migrate.
    #[error("the mistake log at {path} has schema version {found}, which this amend cannot migrate (it migrates from {oldest} up); export it with the amend that wrote it and import the file here")]
    TooOld {
        /// The store's directory.
        path: String,
        /// Its version.
        found: u32,
        /// The oldest version with a migration.
        oldest: u32,
    },
    /// A read or write failed.
    #[error("mistake log: {0}")]
    Io(String),
    /// A stored record does not decode.
    #[error("mistake log: record {key} is unreadable ({reason}); the store may be damaged: export what is readable with `amend mistakes export` and import it into a new log")]
    Corrupt {
        /// Its key.
        key: String,
        /// The decoder's message.
        reason: String,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this task.
    pub task: Option<String>,
    /// Only these models (any of them; empty: every model). Give a model's identity key and,
    /// to include records written before identities existed, the spec string used then.
    pub models: Vec<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only records at or after this time.
    pub since: Option<time::OffsetDateTime>,
    /// Only this evaluation run.
    pub run: Option<String>,
}

impl Filter {
    /// Does `m` pass?
    pub fn matches(&self, m: &Mistake) -> bool {
        self.task.as_ref().is_none_or(|t| &m.task == t)
            && (self.models.is_empty() || self.models.iter().any(|t| &m.model == t))
            && self.outcome.is_none_or(|o| m.outcome == o)
            && self.run.as_ref().is_none_or(|r| m.run.as_ref() == Some(r))
            && self.since.is_none_or(|s| {
                time::OffsetDateTime::parse(&m.time, &time::format_description::well_known::Rfc3339)
                    .is_ok_and(|t| t >= s)
            })
    }
}

/// Where located mistakes go.
pub trait Store: Send + Sync {
    /// Record mistakes; returns only once all of them are durable (flushed).
    ///
    /// # Errors
    /// [`StoreError`] when they could not be recorded; then none is reported written.
    fn record_batch(&self, mistakes: &[Mistake]) -> Result<(), StoreError>;

    /// Record one mistake; returns only once it is durable.
    ///
    /// # Errors
    /// [`StoreError`] when it could not be recorded.
    fn record(&self, mistake: &Mistake) -> Result<(), StoreError> {
        self.record_batch(std::slice::from_ref(mistake))
    }

    /// The record with this id.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    fn get(&self, id: &str) -> Result<Option<Mistake>, StoreError>;

    /// Records passing `filter`, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    fn list(&self, filter: &Filter) -> Result<Vec<Mistake>, StoreError>;

    /// Record token-level records ([`TokenRecord`]); returns once they are durable.
    ///
    /// # Errors
    /// [`StoreError`] when they could not be recorded.
    fn record_tokens(&self, records: &[TokenRecord]) -> Result<(), StoreError>;

    /// The token-level records under `id` (a mistake or a collected item), by position.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an undecodable entry, or when the store cannot be read.
    fn tokens(&self, id: &str) -> Result<Vec<TokenRecord>, StoreError>;

    /// Visit every token-level record in key order until `visit` returns false; returns how
    /// many were visited.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an undecodable entry, or when the store cannot be read.
    fn each_token(&self, visit: &mut dyn FnMut(TokenRecord) -> bool) -> Result<u64, StoreError>;
}

/// A store that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Store for Discard {
    fn record_batch(&self, _mistakes: &[Mistake]) -> Result<(), StoreError> {
        Ok(())
    }
    fn get(&self, _id: &str) -> Result<Option<Mistake>, StoreError> {
        Ok(None)
    }
    fn list(&self, _filter: &Filter) -> Result<Vec<Mistake>, StoreError> {
        Ok(Vec::new())
    }
    fn record_tokens(&self, _records: &[TokenRecord]) -> Result<(), StoreError> {
        Ok(())
    }
    fn tokens(&self, _id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(Vec::new())
    }
    fn each_token(&self, _visit: &mut dyn FnMut(TokenRecord) -> bool) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// A store plus the tags every record written through it carries: what strategies get in
/// their context.
#[derive(Clone)]
pub struct Sink {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Task tag.
    pub task: String,
    /// Model tag.
    pub model: String,
    /// Evaluation run tag.
    pub run: Option<String>,
}

impl Sink {
    /// A blank record with this sink's tags, a fresh id and the current time.
    pub fn blank(&self, input: &str, reference: Option<&str>) -> Mistake {
        Mistake {
            id: new_id(),
            time: now(),
            task: self.task.clone(),
            model: self.model.clone(),
            run: self.run.clone(),
            input: input.into(),
            reference: reference.map(str::to_string),
            steps: Vec::new(),
            step: None,
            critic: String::new(),
            rationale: String::new(),
            correction: None,
            answer_before: None,
            answer_after: None,
            outcome: Outcome::NotFixed,
            tokens: 0,
            trace: None,
        }
    }

    /// Record `m`, logging (never failing) when the store refuses it: a strategy's answer
    /// is not lost because the log is unwritable.
    pub fn write(&self, m: &Mistake) {
        if let Err(e) = self.store.record(m) {
            tracing::error!(error = %e, id = %m.id, "could not record a located mistake");
        }
    }
}

/// The default store location: `$AMEND_HOME/mistakes` or `~/.amend/mistakes`.
pub fn default_path() -> std::path::PathBuf {
    crate::home::dir().join("mistakes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_judged_against_the_reference() {
        assert_eq!(
            Outcome::judge(false, Some(false), Some(true)),
            Outcome::NotFixed
        );
        assert_eq!(Outcome::judge(true, None, None), Outcome::Unverified);
        assert_eq!(
            Outcome::judge(true, Some(false), Some(true)),
            Outcome::Fixed
        );
        assert_eq!(
            Outcome::judge(true, Some(true), Some(false)),
            Outcome::MadeWorse
        );
        assert_eq!(
            Outcome::judge(true, Some(false), Some(false)),
            Outcome::NotFixed
        );
        for o in ["fixed", "not-fixed", "made_worse", "unverified"] {
            assert_eq!(
                o.parse::<Outcome>().map(|x| x.as_str().replace('_', "-")),
                Ok(o.replace('_', "-"))
            );
        }
    }

    #[test]
    fn the_field_list_is_the_export_order() {
        let s = Sink {
            store: Arc::new(Discard),
            task: "t".into(),
            model: "m".into(),
            run: None,
        };
        let v = serde_json::to_value(s.blank("q", None)).unwrap_or_default();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
    }
}
