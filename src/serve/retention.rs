//! Trace retention: the server keeps at most `trace_keep` request traces, none older than
//! `trace_max_age_s`, deleting the oldest first.
//!
//! The directory is listed once, when the server starts; from then on the server remembers the
//! traces it writes, in order, and deletes the oldest as each new one passes the limits — no
//! request lists the directory (at 10,000 traces a listing costs milliseconds).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The traces a server keeps, oldest first.
#[derive(Debug)]
pub struct Retention {
    keep: usize,
    max_age: Option<Duration>,
    files: Mutex<VecDeque<(PathBuf, SystemTime)>>,
}

impl Retention {
    /// The traces already in `dir` (by name: run ids start with their UTC time), those past the
    /// newest `keep` or older than `max_age` deleted now. `keep = 0` and no `max_age`: keep
    /// all (and remember none).
    pub fn new(dir: &Path, keep: usize, max_age: Option<Duration>) -> Self {
        let mut files = VecDeque::new();
        if keep > 0 || max_age.is_some() {
            let mut names = traces_in(dir);
            names.sort();
            files.extend(names.into_iter().map(|p| {
                let t = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                (p, t)
            }));
        }
        let r = Self {
            keep,
            max_age,
            files: Mutex::new(files),
        };
        r.trim();
        r
    }

    /// Count the trace just created at `path`; delete the oldest past the limits.
    pub fn add(&self, path: &Path) {
        if self.keep == 0 && self.max_age.is_none() {
            return;
        }
        if let Ok(mut f) = self.files.lock() {
            f.push_back((path.to_path_buf(), SystemTime::now()));
        }
        self.trim();
    }

    fn trim(&self) {
        let now = SystemTime::now();
        let excess: Vec<PathBuf> = match self.files.lock() {
            Ok(mut f) => {
                let mut n = if self.keep == 0 {
                    0
                } else {
                    f.len().saturating_sub(self.keep)
                };
                if let Some(age) = self.max_age {
                    while f
                        .get(n)
                        .is_some_and(|(_, t)| now.duration_since(*t).is_ok_and(|d| d > age))
                    {
                        n += 1;
                    }
                }
                f.drain(..n).map(|(p, _)| p).collect()
            }
            Err(_) => return,
        };
        for p in excess {
            remove(&p);
        }
    }
}

fn traces_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".jsonl") || n.ends_with(".jsonl.gz"))
        })
        .collect()
}

/// Delete a trace; one already gone is fine, any other failure is a warning.
fn remove(p: &Path) {
    match std::fs::remove_file(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("trace retention: cannot delete {}: {e}", p.display()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_oldest_traces_go_first() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "20260101-000000-a",
            "20260102-000000-b",
            "20260103-000000-c",
        ] {
            std::fs::write(dir.path().join(format!("{n}.jsonl")), "{}").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
        let r = super::Retention::new(dir.path(), 2, None);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20260102-000000-b.jsonl",
                "20260103-000000-c.jsonl",
                "notes.txt"
            ]
        );
        // A new trace pushes out the oldest of the remembered ones.
        let d = dir.path().join("20260104-000000-d.jsonl");
        std::fs::write(&d, "{}").unwrap();
        r.add(&d);
        assert!(!dir.path().join("20260102-000000-b.jsonl").exists());
        assert!(d.exists() && dir.path().join("20260103-000000-c.jsonl").exists());
    }

    #[test]
    fn traces_older_than_the_age_limit_go() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("20260101-000000-a.jsonl");
        std::fs::write(&old, "{}").unwrap();
        let r = super::Retention::new(dir.path(), 0, Some(std::time::Duration::from_millis(50)));
        assert!(old.exists(), "young enough at start");
        std::thread::sleep(std::time::Duration::from_millis(80));
        let new = dir.path().join("20260102-000000-b.jsonl");
        std::fs::write(&new, "{}").unwrap();
        r.add(&new);
        assert!(!old.exists() && new.exists());
    }
}
