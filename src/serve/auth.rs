//! Bearer keys (compared in constant time) and each key's request rate.

use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::policy::Ceilings;

/// A key the server accepts: its name (what traces and logs show), a digest of its secret,
/// its rate and its ceilings.
#[derive(Debug)]
pub struct Key {
    /// The key's name.
    pub name: String,
    digest: [u8; 32],
    rate: Option<Mutex<Bucket>>,
    /// Most a request made with this key may spend.
    pub ceilings: Ceilings,
}

impl Key {
    /// A key with secret `secret`, allowed `per_minute` requests a minute (`None`: no limit).
    pub fn new(name: &str, secret: &str, per_minute: Option<u32>, ceilings: Ceilings) -> Self {
        Self {
            name: name.to_string(),
            digest: digest(secret),
            rate: per_minute.map(|n| Mutex::new(Bucket::new(n))),
            ceilings,
        }
    }

    /// Take one request from the key's rate.
    ///
    /// # Errors
    /// 429 with the seconds until a request is allowed again.
    pub fn take(&self) -> Result<(), ApiError> {
        let Some(b) = &self.rate else {
            return Ok(());
        };
        let mut b = b
            .lock()
            .map_err(|_| ApiError::internal("a rate limiter's lock was poisoned"))?;
        b.take(Instant::now()).map_err(|secs| {
            ApiError::rate_limited(
                format!(
                    "key `{}` is over its rate of {} requests a minute; retry after {secs} s",
                    self.name, b.per_minute
                ),
                secs,
            )
        })
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The index of the key `presented` matches, comparing digests in constant time (every key is compared,
/// so the time does not tell which one matched either).
pub fn find(keys: &[Key], presented: &str) -> Option<usize> {
    let d = digest(presented);
    let mut found = None;
    for (i, k) in keys.iter().enumerate() {
        if bool::from(k.digest.ct_eq(&d)) {
            found = Some(i);
        }
    }
    found
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A token bucket: `per_minute` requests a minute, bursts up to `per_minute`.
#[derive(Debug)]
struct Bucket {
    per_minute: u32,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            tokens: f64::from(per_minute),
            at: Instant::now(),
        }
    }

    /// Take a token at `now`, or the whole seconds until one is there.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let rate = f64::from(self.per_minute) / 60.0;
        let cap = f64::from(self.per_minute);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(60);
        }
        // Less a nanosecond, so float rounding does not add a whole second.
        Err(((1.0 - self.tokens) / rate - 1e-9).ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_match_by_secret_and_bearer_reads_the_header() {
        let keys = vec![
            Key::new("alice", "sk-a", None, Ceilings::default()),
            Key::new("bob", "sk-b", None, Ceilings::default()),
        ];
        assert_eq!(find(&keys, "sk-b"), Some(1));
        assert!(find(&keys, "sk-c").is_none());
        assert!(find(&keys, "").is_none());
        assert_eq!(bearer("Bearer sk-a"), Some("sk-a"));
        assert_eq!(bearer("bearer  sk-a "), Some("sk-a"));
        assert_eq!(bearer("Basic xyz"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn the_bucket_allows_its_rate_and_says_when_to_retry() {
        let mut b = Bucket::new(2);
        let t0 = b.at;
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        // Empty: one token comes back every 30 s.
        assert_eq!(b.take(t0), Err(30));
        assert_eq!(b.take(t0 + Duration::from_secs(20)), Err(10));
        assert!(b.take(t0 + Duration::from_secs(31)).is_ok());
    }
}
