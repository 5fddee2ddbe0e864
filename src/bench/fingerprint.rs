//! `amend bench fingerprint`: what identifying a GGUF model by its content costs, against
//! reading the same file without hashing it, in the same run.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::model::{fingerprint, ModelError};

/// The figures of one run (medians of `rounds`).
#[derive(Debug, Clone, Serialize)]
pub struct FingerprintReport {
    /// File size.
    pub bytes: u64,
    /// Seconds to compute the model identity (read + SHA-256).
    pub fingerprint_s: f64,
    /// Seconds to read the same file in the same 1 MiB chunks, nothing else.
    pub read_s: f64,
    /// fingerprint_s / read_s.
    pub ratio: f64,
    /// Hashing throughput, MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Rounds (after one warm-up read that puts the file in the page cache).
    pub rounds: usize,
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn read_all(path: &Path) -> Result<u64, ModelError> {
    let fail = |e: std::io::Error| ModelError::Load {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = std::fs::File::open(path).map_err(fail)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(fail)?;
        if k == 0 {
            return Ok(n);
        }
        n += k as u64;
    }
}

/// Time [`fingerprint`] on `path` against a plain read, `rounds` times each.
///
/// # Errors
/// [`ModelError`] when the file cannot be read.
pub fn run(path: &Path, rounds: usize) -> Result<FingerprintReport, ModelError> {
    let bytes = read_all(path)?;
    let (mut hash, mut read) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        read_all(path)?;
        read.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        fingerprint(path)?;
        hash.push(t.elapsed().as_secs_f64());
    }
    let (fingerprint_s, read_s) = (median(hash), median(read));
    Ok(FingerprintReport {
        bytes,
        fingerprint_s,
        read_s,
        ratio: fingerprint_s / read_s.max(1e-9),
        mb_per_s: bytes as f64 / 1e6 / fingerprint_s.max(1e-9),
        rounds: rounds.max(1),
    })
}
