//! The persistent [`Store`]: sled 0.34.
//!
//! Layout (schema version 1): tree `meta` holds `schema_version` (u32, big-endian); records
//! live in `v1/mistakes` (key = id, value = the record as JSON); `v1/index` indexes them by
//! task, model and outcome with one posting list per value and batch (key = `t`/`m`/`o`,
//! value, 0, first id; value = the batch's ids with that value); `v1/tokens` holds token-level
//! records (the model's prediction beside the right token at one position, see
//! [`TokenRecord`]; key = id, 0, position).
//! Generated ids are UUID v7, so key order is time order. A batch is written index trees
//! first, records last, and flushed to disk before `record_batch` returns.

use std::path::{Path, PathBuf};

use sled::Tree;

use super::tokens::TokenRecord;
use super::{Filter, Mistake, Store, StoreError};

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = 1;
/// The oldest schema version this binary migrates from.
const OLDEST_MIGRATABLE: u32 = 1;
const VERSION_KEY: &[u8] = b"schema_version";

/// A mistakes store in a sled directory.
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    mistakes: Tree,
    index: Tree,
    tokens: Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

fn index_key(value: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + id.len() + 1);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// How many times, and how far apart, a locked store is retried before giving up.
const LOCK_RETRIES: u32 = 40;
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let err = |reason: String| StoreError::Open {
        path: path.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
    let locked = |e: &std::io::Error| {
        e.kind() == std::io::ErrorKind::WouldBlock
            || e.to_string().contains("could not acquire lock")
    };
    // sled releases its file lock only when its background flusher lets go of the database,
    // a moment after the last handle is dropped (or the last holder exits), so a lock is
    // retried for a short while before it is reported as another process's.
    let mut tries = 0;
    let opened = loop {
        let p = path.to_path_buf();
        // sled panics on some damaged files instead of returning an error; a damaged store
        // must give a message, not abort the program.
        let opened = std::panic::catch_unwind(move || sled::Config::new().path(p).open());
        match &opened {
            Ok(Err(sled::Error::Io(e))) if locked(e) && tries < LOCK_RETRIES => {
                tries += 1;
                std::thread::sleep(LOCK_WAIT);
            }
            _ => break opened,
        }
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) if locked(&e) => Err(StoreError::Locked {
            path: path.display().to_string(),
        }),
        Ok(Err(sled::Error::Corruption { .. })) | Err(_) => Err(err(
            "the store's files are damaged; move the directory away (keep it for recovery) and start a new store, or point the `mistakes` option elsewhere".into(),
        )),
        Ok(Err(e)) => Err(err(e.to_string())),
    }
}

/// Create a store atomically: build it (schema version written and flushed) in a sibling
/// directory, then rename it into place, so a process killed while creating leaves either
/// nothing or a complete empty store.
fn create(path: &Path) -> Result<(), StoreError> {
    let err = |reason: String| StoreError::Open {
        path: path.display().to_string(),
        reason,
    };
    if path.is_dir() {
        let mut entries = std::fs::read_dir(path).map_err(|e| err(e.to_string()))?;
        if entries.next().is_some() {
            return Err(err(
                "the directory exists but holds no mistakes store; choose an empty or new directory"
                    .into(),
            ));
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mistakes".into());
    let tmp = path.with_file_name(format!(".{name}.creating-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    {
        let db = open_db(&tmp)?;
        db.open_tree("meta")?
            .insert(VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
        db.flush()?;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process may have created it first.
        if !path.join("db").is_file() {
            return Err(err(e.to_string()));
        }
    }
    Ok(())
}

fn decode_token(k: &[u8], v: &[u8]) -> Result<TokenRecord, StoreError> {
    TokenRecord::decode(k, v).map_err(|reason| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason,
    })
}

impl SledStore {
    /// Open (or create) the store in directory `path`, checking and migrating its schema.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process holds it, [`StoreError::Open`] (damaged,
    /// unwritable), [`StoreError::TooNew`], [`StoreError::TooOld`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let damaged = |reason: &str| {
            StoreError::Open {
            path: shown.clone(),
            reason: format!("the store's files are damaged ({reason}); move the directory away (keep it for recovery) and start a new store, or point the `mistakes` option elsewhere"),
        }
        };
        let has_db = path.join("db").metadata().is_ok_and(|m| m.len() > 0);
        if !has_db {
            create(path)?;
        }
        let db = open_db(path)?;
        let meta = db.open_tree("meta")?;
        let version = match meta.get(VERSION_KEY)? {
            Some(v) => {
                let bytes: [u8; 4] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| damaged("its schema version entry is unreadable"))?;
                u32::from_be_bytes(bytes)
            }
            // A store is created with its version in place (see `create`), so a store
            // without one lost it: sled read the files as empty or partly garbage.
            None => return Err(damaged("no schema version found")),
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < OLDEST_MIGRATABLE {
            return Err(StoreError::TooOld {
                path: shown,
                found: version,
                oldest: OLDEST_MIGRATABLE,
            });
        }
        // Migrations from OLDEST_MIGRATABLE up go here, one step per version, each
        // rewriting the trees and then bumping `schema_version`. Version 1 is the first.
        Ok(Self {
            mistakes: db.open_tree("v1/mistakes")?,
            index: db.open_tree("v1/index")?,
            tokens: db.open_tree("v1/tokens")?,
            path: path.to_path_buf(),
            db,
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.mistakes.len()
    }

    /// Is the store empty?
    pub fn is_empty(&self) -> bool {
        self.mistakes.is_empty()
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<Mistake, StoreError> {
        serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }

    fn ids_from(tree: &Tree, value: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = index_key(value, "");
        let mut ids = Vec::new();
        for kv in tree.scan_prefix(&prefix) {
            let (_, v) = kv?;
            ids.extend(v.split(|b| *b == b'\n').map(<[u8]>::to_vec));
        }
        Ok(ids)
    }
}

impl Store for SledStore {
    fn record_tokens(&self, records: &[TokenRecord]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for r in records {
            batch.insert(r.key(), r.encode());
        }
        self.tokens.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn tokens(&self, id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tokens.scan_prefix(index_key(id, "")) {
            let (k, v) = kv?;
            out.push(decode_token(&k, &v)?);
        }
        Ok(out)
    }

    fn each_token(&self, visit: &mut dyn FnMut(TokenRecord) -> bool) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.tokens.iter() {
            let (k, v) = kv?;
            n += 1;
            if !visit(decode_token(&k, &v)?) {
                break;
            }
        }
        Ok(n)
    }

    fn record_batch(&self, mistakes: &[Mistake]) -> Result<(), StoreError> {
        // Index entries are written before the records and everything is flushed before
        // returning. sled persists writes in order, so after a crash a record that is there
        // has its index entries too. `list` decodes every record an index points to and
        // checks the filter again, so an entry whose record is missing (a crash between the
        // two) or stale (a record replaced under the same id with another task, model or
        // outcome) is skipped, never returned wrongly.
        // One index entry per indexed value and batch (a posting list): key = value, 0, the
        // first id of the batch with that value; value = the ids, newline-separated.
        let mut postings: std::collections::BTreeMap<String, (String, Vec<u8>)> =
            std::collections::BTreeMap::new();
        let mut recs = sled::Batch::default();
        for m in mistakes {
            let bytes = serde_json::to_vec(m).map_err(|e| StoreError::Io(e.to_string()))?;
            for value in [
                format!("t{}", m.task),
                format!("m{}", m.model),
                format!("o{}", m.outcome.as_str()),
            ] {
                let (_, ids) = postings
                    .entry(value)
                    .or_insert_with(|| (m.id.clone(), Vec::new()));
                if !ids.is_empty() {
                    ids.push(b'\n');
                }
                ids.extend_from_slice(m.id.as_bytes());
            }
            recs.insert(m.id.as_bytes(), bytes);
        }
        let mut index = sled::Batch::default();
        for (value, (first, ids)) in postings {
            index.insert(index_key(&value, &first), ids);
        }
        self.index.apply_batch(index)?;
        self.mistakes.apply_batch(recs)?;
        self.db.flush()?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Mistake>, StoreError> {
        self.mistakes
            .get(id.as_bytes())?
            .map(|v| Self::decode(id.as_bytes(), &v))
            .transpose()
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Mistake>, StoreError> {
        let ids = if let Some(t) = &filter.task {
            Some(Self::ids_from(&self.index, &format!("t{t}"))?)
        } else if !filter.models.is_empty() {
            let mut ids = Vec::new();
            for m in &filter.models {
                ids.extend(Self::ids_from(&self.index, &format!("m{m}"))?);
            }
            // Ids are UUID v7 (time-ordered): sorted, the union is oldest first again.
            ids.sort();
            ids.dedup();
            Some(ids)
        } else if let Some(o) = filter.outcome {
            Some(Self::ids_from(&self.index, &format!("o{}", o.as_str()))?)
        } else {
            None
        };
        let mut out = Vec::new();
        match ids {
            Some(ids) => {
                for id in ids {
                    if let Some(v) = self.mistakes.get(&id)? {
                        let m = Self::decode(&id, &v)?;
                        if filter.matches(&m) {
                            out.push(m);
                        }
                    }
                }
            }
            None => {
                for kv in self.mistakes.iter() {
                    let (k, v) = kv?;
                    let m = Self::decode(&k, &v)?;
                    if filter.matches(&m) {
                        out.push(m);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mistakes::{Outcome, Sink};
    use std::sync::Arc;

    fn sink() -> Sink {
        Sink {
            store: Arc::new(crate::mistakes::Discard),
            task: "gsm8k".into(),
            model: "m".into(),
            run: None,
        }
    }

    #[test]
    fn records_round_trip_and_indexes_follow_rewrites() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let store = SledStore::open(dir.path())?;
        let mut a = sink().blank("q1", Some("4"));
        a.outcome = Outcome::Fixed;
        let mut b = sink().blank("q2", None);
        b.task = "bbmistake".into();
        store.record_batch(&[a.clone(), b.clone()])?;
        assert_eq!(store.get(&a.id)?, Some(a.clone()));
        let gsm = Filter {
            task: Some("gsm8k".into()),
            ..Filter::default()
        };
        assert_eq!(store.list(&gsm)?, vec![a.clone()]);
        a.outcome = Outcome::MadeWorse;
        store.record(&a)?;
        let fixed = Filter {
            outcome: Some(Outcome::Fixed),
            ..Filter::default()
        };
        assert!(store.list(&fixed)?.is_empty());
        assert_eq!(store.list(&Filter::default())?.len(), 2);
        drop(store);
        let again = SledStore::open(dir.path())?;
        assert_eq!(
            again.get(&a.id)?.map(|m| m.outcome),
            Some(Outcome::MadeWorse)
        );
        Ok(())
    }

    #[test]
    fn schema_versions_are_checked() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        drop(SledStore::open(dir.path())?);
        {
            let db = open_db(dir.path())?;
            db.open_tree("meta")?
                .insert(VERSION_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())?;
            db.flush()?;
        }
        let e = SledStore::open(dir.path())
            .map(|_| ())
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("newer")), "{e:?}");
        {
            let db = open_db(dir.path())?;
            db.open_tree("meta")?
                .insert(VERSION_KEY, &0u32.to_be_bytes())?;
            db.flush()?;
        }
        let e = SledStore::open(dir.path())
            .map(|_| ())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("cannot migrate")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn token_records_of_old_and_new_formats_are_kept_and_visited() -> Result<(), StoreError> {
        use crate::mistakes::{TokenRecord, TokenSource};
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let store = SledStore::open(dir.path())?;
        let old = TokenRecord {
            mistake: "m1".into(),
            position: 3,
            source: None,
            model: String::new(),
            gold: None,
            gold_logit: None,
            token: 9,
            log_normaliser: None,
            top: Vec::new(),
            hidden: vec![0.25, -1.5],
            logits: vec![1.0, 2.0],
            result: None,
        };
        let new = TokenRecord {
            mistake: "m1".into(),
            position: 1,
            source: Some(TokenSource::TeacherForced),
            model: "gguf-1".into(),
            gold: Some(5),
            gold_logit: Some(2.0),
            token: 6,
            log_normaliser: Some(2.5),
            top: vec![(6, 3.0), (5, 2.0)],
            hidden: vec![0.5, 1.0],
            logits: Vec::new(),
            result: Some(false),
        };
        let other = TokenRecord {
            mistake: "m2".into(),
            ..new.clone()
        };
        store.record_tokens(&[old.clone(), new.clone(), other])?;
        drop(store);
        let store = SledStore::open(dir.path())?;
        // By position within an id; values that bf16 holds exactly come back exactly.
        assert_eq!(store.tokens("m1")?, vec![new, old]);
        let mut seen = Vec::new();
        let n = store.each_token(&mut |r| {
            seen.push(r.mistake.clone());
            true
        })?;
        assert_eq!((n, seen), (3, vec!["m1".into(), "m1".into(), "m2".into()]));
        let n = store.each_token(&mut |_| false)?;
        assert_eq!(n, 1);
        Ok(())
    }
}
