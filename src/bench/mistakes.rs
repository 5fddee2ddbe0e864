//! `amend bench mistakes`: what the mistakes store costs. Appends are timed in flushed batches, and
//! lookups by id one at a time, each against bare sled doing the same (one tree, the same
//! bytes, the same flushes) in the same run.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::mistakes::{new_id, now, Mistake, Outcome, SledStore, Store, StoreError};

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LogBench {
    /// Records appended.
    pub records: usize,
    /// Records per flushed batch.
    pub batch: usize,
    /// amend's store: records appended per second (flush included).
    pub appends_per_s: f64,
    /// Bare sled: one tree, same bytes, same flushes.
    pub bare_appends_per_s: f64,
    /// appends_per_s / bare_appends_per_s.
    pub append_ratio: f64,
    /// amend's store: median lookup by id (decoded), milliseconds.
    pub p50_lookup_ms: f64,
    /// amend's store: 99th percentile lookup by id (decoded), milliseconds.
    pub p99_lookup_ms: f64,
    /// Bare sled get of the same keys, 99th percentile, milliseconds.
    pub bare_p99_lookup_ms: f64,
}

fn record(i: usize) -> Mistake {
    let tasks = ["gsm8k", "bbmistake", "solve"];
    let outcomes = [
        Outcome::Fixed,
        Outcome::NotFixed,
        Outcome::MadeWorse,
        Outcome::Unverified,
    ];
    Mistake {
        id: new_id(),
        time: now(),
        task: tasks.get(i % 3).copied().unwrap_or_default().into(),
        model: "default".into(),
        run: Some("bench".into()),
        input: format!("Problem {i}: a farmer has {i} apples and sells some of them at the market; how many are left after the second day of sales?"),
        reference: Some((i % 97).to_string()),
        steps: (0..4).map(|k| format!("Step {k}: {i} - {k} = {} apples remain after this part", i.saturating_sub(k))).collect(),
        step: Some(i % 4),
        critic: "arith".into(),
        rationale: format!("claim {i} - 1 = {i} is false"),
        correction: Some(format!("Step 1: {i} - 1 = {}", i.saturating_sub(1))),
        answer_before: Some(i.to_string()),
        answer_after: Some(i.saturating_sub(1).to_string()),
        outcome: outcomes.get(i % 4).copied().unwrap_or(Outcome::Fixed),
        tokens: 300 + (i % 50) as u64,
        trace: Some(format!("traces/bench.jsonl#{i}")),
    }
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs.get(i.min(xs.len() - 1)).copied().unwrap_or(0.0)
}

/// Append `records` records in flushed batches of `batch` to a fresh store under `dir`, then
/// look `lookups` random ids up; the same against bare sled.
///
/// # Errors
/// [`StoreError`] when a store fails.
pub fn run(
    dir: &Path,
    records: usize,
    batch: usize,
    lookups: usize,
) -> Result<LogBench, StoreError> {
    let batch = batch.max(1);
    let recs: Vec<Mistake> = (0..records).map(record).collect();
    let store = SledStore::open(&dir.join("amend"))?;
    let t = Instant::now();
    for chunk in recs.chunks(batch) {
        store.record_batch(chunk)?;
    }
    let amend_s = t.elapsed().as_secs_f64();

    let bare = sled::open(dir.join("bare"))?;
    let tree = bare.open_tree("records")?;
    let t = Instant::now();
    for chunk in recs.chunks(batch) {
        let mut b = sled::Batch::default();
        for m in chunk {
            let v = serde_json::to_vec(m).map_err(|e| StoreError::Io(e.to_string()))?;
            b.insert(m.id.as_bytes(), v);
        }
        tree.apply_batch(b)?;
        bare.flush()?;
    }
    let bare_s = t.elapsed().as_secs_f64();

    let mut rng = crate::rng::Rng::new(7);
    let picks: Vec<usize> = (0..lookups)
        .map(|_| (rng.next_u64() % records.max(1) as u64) as usize)
        .collect();
    let mut ours = Vec::with_capacity(lookups);
    let mut theirs = Vec::with_capacity(lookups);
    for &i in &picks {
        let Some(m) = recs.get(i) else { continue };
        let t = Instant::now();
        let got = store.get(&m.id)?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        if got.is_none() {
            return Err(StoreError::Io(format!(
                "record {} missing after append",
                m.id
            )));
        }
        let t = Instant::now();
        let raw = tree.get(m.id.as_bytes())?;
        theirs.push(t.elapsed().as_secs_f64() * 1000.0);
        if raw.is_none() {
            return Err(StoreError::Io(format!("bare record {} missing", m.id)));
        }
    }
    let per_s = |s: f64| if s > 0.0 { records as f64 / s } else { 0.0 };
    let (a, b) = (per_s(amend_s), per_s(bare_s));
    Ok(LogBench {
        records,
        batch,
        appends_per_s: a,
        bare_appends_per_s: b,
        append_ratio: if b > 0.0 { a / b } else { 0.0 },
        p50_lookup_ms: percentile(&mut ours.clone(), 0.5),
        p99_lookup_ms: percentile(&mut ours, 0.99),
        bare_p99_lookup_ms: percentile(&mut theirs, 0.99),
    })
}
