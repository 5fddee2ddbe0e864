//! Traces: a JSON Lines record of every model call and strategy step.
//!
//! Each line is an envelope `{"type": ..., "run_id": ..., "seq": n, "time": ..., "data": {...}}`;
//! the first line (`type: "header"`) carries the schema version. Every line is written with one
//! `write` and flushed, so a killed process loses at most the line being written.
//! [`Traced`] wraps any [`Model`] so that each call is recorded as a `call` event.
//! A finished trace can be gzip-compressed ([`compress`]: `RUN.jsonl` → `RUN.jsonl.gz`);
//! [`read`] reads either form. The format is described in `traces/README.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{Capabilities, Model, ModelError, ModelId, Request, Response, Usage};

/// The trace format's version, in the header line.
pub const SCHEMA_VERSION: u32 = 1;

/// A trace could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// File-system error.
    #[error("trace file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A line is not a trace event.
    #[error("trace file {path}, line {line}: not a trace event ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event kind: `header`, `call`, `solve`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The run this event belongs to.
    pub run_id: String,
    /// Position in the run (the header is 0).
    pub seq: u64,
    /// RFC 3339 time of writing.
    pub time: String,
    /// Kind-specific payload.
    pub data: Value,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A new run id: UTC time plus a random suffix.
pub fn new_run_id() -> String {
    let t = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let stamp = t.format(&fmt).unwrap_or_default();
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{stamp}-{}", &rand[..6])
}

/// Appends events to one trace file.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    run_id: String,
    seq: AtomicU64,
    file: Mutex<File>,
}

impl Writer {
    /// Create (or append to) `path` and write the header line.
    ///
    /// # Errors
    /// [`TraceError::Io`] when the file cannot be created.
    pub fn create(path: &Path, run_id: &str) -> Result<Self, TraceError> {
        let io = |e: std::io::Error| TraceError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let w = Self {
            path: path.to_path_buf(),
            run_id: run_id.to_string(),
            seq: AtomicU64::new(0),
            file: Mutex::new(file),
        };
        w.write(
            "header",
            json!({"schema": SCHEMA_VERSION, "amend": env!("CARGO_PKG_VERSION")}),
        )?;
        Ok(w)
    }

    /// A writer for a new run under `dir` (`DIR/RUN_ID.jsonl`).
    ///
    /// # Errors
    /// As [`Writer::create`].
    pub fn in_dir(dir: &Path) -> Result<Self, TraceError> {
        let run_id = new_run_id();
        Self::create(&dir.join(format!("{run_id}.jsonl")), &run_id)
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Append one event; returns its sequence number.
    ///
    /// # Errors
    /// [`TraceError::Io`] when the line cannot be written.
    pub fn write(&self, kind: &str, data: Value) -> Result<u64, TraceError> {
        let io = |e: String| TraceError::Io {
            path: self.path.clone(),
            reason: e,
        };
        let mut file = self
            .file
            .lock()
            .map_err(|_| io("writer lock poisoned".into()))?;
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let event = Event {
            kind: kind.into(),
            run_id: self.run_id.clone(),
            seq,
            time: now(),
            data,
        };
        let mut line = serde_json::to_vec(&event).map_err(|e| io(e.to_string()))?;
        line.push(b'\n');
        file.write_all(&line).map_err(|e| io(e.to_string()))?;
        file.flush().map_err(|e| io(e.to_string()))?;
        Ok(seq)
    }
}

/// Read every event of a trace file, plain (`.jsonl`) or gzip-compressed (`.jsonl.gz`). A
/// plain path that was compressed since ([`compress`]) reads the compressed file, so a
/// reference written before compression (`FILE#SEQ` in a result or a mistake record) still
/// opens. A malformed last line (a writer killed mid-line) is dropped with a warning.
///
/// # Errors
/// [`TraceError::Io`] / [`TraceError::Malformed`] with the line number.
pub fn read(path: &Path) -> Result<Vec<Event>, TraceError> {
    let mut gz_name = path.as_os_str().to_os_string();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    let path = if !path.exists() && gz.is_file() {
        gz.as_path()
    } else {
        path
    };
    let file = File::open(path).map_err(|e| TraceError::Io {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|x| x == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        )))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = Vec::new();
    let mut bad: Option<TraceError> = None;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| TraceError::Io {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = bad.take() {
            return Err(e);
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(ev) => out.push(ev),
            Err(e) => {
                bad = Some(TraceError::Malformed {
                    path: path.into(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    if let Some(e) = bad {
        tracing::warn!("{e}: dropped as the half-written last line of a killed writer");
    }
    Ok(out)
}

/// Compress a finished trace: write `PATH.gz` (gzip, best compression) and remove `PATH`.
/// Returns the new path. Call it only when nothing writes to `PATH` any more.
///
/// # Errors
/// [`TraceError::Io`]; on failure the plain file is kept.
pub fn compress(path: &Path) -> Result<PathBuf, TraceError> {
    let io = |p: &Path, e: std::io::Error| TraceError::Io {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let mut gz_name = path.as_os_str().to_os_string();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    let part = gz.with_extension("gz.part");
    let mut input = File::open(path).map_err(|e| io(path, e))?;
    let out = File::create(&part).map_err(|e| io(&part, e))?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    std::io::copy(&mut input, &mut enc).map_err(|e| io(&part, e))?;
    let out = enc.finish().map_err(|e| io(&part, e))?;
    out.sync_all().map_err(|e| io(&part, e))?;
    std::fs::rename(&part, &gz).map_err(|e| io(&gz, e))?;
    std::fs::remove_file(path).map_err(|e| io(path, e))?;
    Ok(gz)
}

/// Totals over a trace, for `amend trace show`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Run ids seen.
    pub runs: Vec<String>,
    /// Events by kind.
    pub events: std::collections::BTreeMap<String, u64>,
    /// Summed usage of all `call` events.
    pub usage: Usage,
    /// Summed wall time of calls, ms.
    pub call_ms: f64,
    /// Calls that failed.
    pub errors: u64,
}

/// Add up a trace's events.
pub fn summarize(events: &[Event]) -> Summary {
    let mut s = Summary::default();
    for ev in events {
        if !s.runs.contains(&ev.run_id) {
            s.runs.push(ev.run_id.clone());
        }
        *s.events.entry(ev.kind.clone()).or_default() += 1;
        if ev.kind == "call" {
            if let Some(u) = ev
                .data
                .get("usage")
                .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
            {
                s.usage += u;
            }
            s.call_ms += ev
                .data
                .get("wall_ms")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if ev.data.get("error").is_some_and(|e| !e.is_null()) {
                s.errors += 1;
            }
        }
    }
    s
}

/// A [`Model`] that records every call in a trace.
pub struct Traced {
    inner: Arc<dyn Model>,
    writer: Arc<Writer>,
}

impl Traced {
    /// Wrap `inner`, writing to `writer`.
    pub fn new(inner: Arc<dyn Model>, writer: Arc<Writer>) -> Self {
        Self { inner, writer }
    }
}

#[async_trait]
impl Model for Traced {
    fn id(&self) -> &ModelId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn score(
        &self,
        request: crate::model::ScoreRequest,
    ) -> Result<crate::model::Scored, ModelError> {
        self.inner.score(request).await
    }

    async fn generate(&self, request: Request) -> Result<Response, ModelError> {
        let summary = request.summary();
        let start = std::time::Instant::now();
        let start_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        let result = self.inner.generate(request).await;
        let data = match &result {
            Ok(r) => json!({
                "model": self.inner.id().key,
                "request": summary,
                "output": r.samples,
                "usage": r.usage,
                "prefill": r.prefill,
                "start_ms": start_ms,
                "wall_ms": start.elapsed().as_secs_f64() * 1000.0,
            }),
            Err(e) => json!({
                "model": self.inner.id().key,
                "request": summary,
                "error": e.to_string(),
                "start_ms": start_ms,
                "wall_ms": start.elapsed().as_secs_f64() * 1000.0,
            }),
        };
        if let Err(e) = self.writer.write("call", data) {
            tracing::error!(error = %e, "could not write the trace");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_trace_reads_as_the_plain_one() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("r.jsonl");
        let w = Writer::create(&path, "r")?;
        w.write("item", json!({"id": "7"}))?;
        w.write("solve", json!({"answer": "3"}))?;
        drop(w);
        let plain = read(&path)?;
        let gz = compress(&path)?;
        assert!(!path.exists() && gz.ends_with("r.jsonl.gz"));
        assert_eq!(read(&gz)?, plain);
        assert_eq!(
            read(&path)?,
            plain,
            "the plain path finds the compressed file"
        );
        assert_eq!(plain.len(), 3);
        assert_eq!(plain.first().map(|e| e.kind.as_str()), Some("header"));
        Ok(())
    }
}
