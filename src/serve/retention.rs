//! Trace retention: the server keeps at most `trace_keep` request traces, deleting the oldest.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests between two looks at the trace directory (a look lists the whole directory).
const EVERY: u64 = 32;

static SEEN: AtomicU64 = AtomicU64::new(0);

/// Count one request; every [`EVERY`] requests, delete the oldest trace files of `dir` (by
/// name: run ids start with their UTC time) past the newest `keep`. `keep = 0` keeps all. A
/// file that cannot be deleted is left, with a warning.
pub fn prune(dir: &Path, keep: usize) {
    if keep == 0 || !SEEN.fetch_add(1, Ordering::Relaxed).is_multiple_of(EVERY) {
        return;
    }
    prune_now(dir, keep);
}

/// Delete the oldest trace files of `dir` past the newest `keep`, now.
pub fn prune_now(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".jsonl") || n.ends_with(".jsonl.gz"))
        })
        .collect();
    if names.len() <= keep {
        return;
    }
    names.sort();
    let excess = names.len() - keep;
    for p in names.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!("trace retention: cannot delete {}: {e}", p.display());
        }
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
        super::prune_now(dir.path(), 2);
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
    }
}
