//! The statistics every reported comparison carries: a 95% interval for every accuracy
//! (Wilson score interval) and the exact McNemar test for every before/after or A/B comparison
//! on the same items.
//!
//! - Wilson: for k right of n, `(p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)` with
//!   z = 1.959964 (two-sided 95%). Unlike the normal approximation it stays inside [0, 1] and
//!   is not empty at 0 or n right, which is where this project's accuracies live.
//! - McNemar (exact): of the items the two answers disagree on (b right only before/in A, c
//!   right only after/in B), under "no difference" each is equally likely to fall either way,
//!   so the two-sided p-value is `min(1, 2·P[Bin(b + c, ½) ≤ min(b, c)])`; 1 when b + c = 0.
//!   A difference is reported as one only when p < 0.05; otherwise it is "no significant
//!   difference", whatever the direction of the counts.
//!
//! The chance floor of GSM8K-format items is computed with the evaluation metrics
//! (`eval::metrics::chance_floor`).

use serde::{Deserialize, Serialize};

/// z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The level below which a p-value is reported as a significant difference.
pub const ALPHA: f64 = 0.05;

/// A 95% interval of a proportion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// The Wilson score interval (95%) of `k` successes in `n` trials; [0, 1] when `n` is 0.
pub fn wilson(k: u64, n: u64) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Interval {
        lo: (center - half).max(0.0),
        hi: (center + half).min(1.0),
    }
}

/// The exact two-sided McNemar p-value of `b` and `c` discordant pairs (the items only the
/// first, resp. only the second, got right).
pub fn mcnemar(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P[Bin(n, 1/2) <= k] summed in log space: exact enough for any n this project sees.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// How a before/after (or A/B) comparison on the same items reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// p ≥ 0.05: the counts may point either way; nothing is claimed.
    #[default]
    NoSignificantDifference,
    /// p < 0.05 and more items went wrong → right (B better).
    SignificantGain,
    /// p < 0.05 and more items went right → wrong (B worse).
    SignificantLoss,
}

impl Verdict {
    /// The verdict of `gained` (wrong → right) and `lost` (right → wrong) items.
    pub fn of(gained: u64, lost: u64) -> Self {
        if mcnemar(gained, lost) >= ALPHA {
            Self::NoSignificantDifference
        } else if gained > lost {
            Self::SignificantGain
        } else {
            Self::SignificantLoss
        }
    }

    /// Words for reports.
    pub fn words(self) -> &'static str {
        match self {
            Self::NoSignificantDifference => "no significant difference",
            Self::SignificantGain => "significant gain",
            Self::SignificantLoss => "significant loss",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_hand_computed_bounds() {
        // 5 of 200: p = 0.025; z²/n = 0.0192073; centre = (0.025 + 0.0096036) / 1.0192073
        // = 0.0339515; half-width = 1.959964 · sqrt(0.025·0.975/200 + 0.0000240) / 1.0192073
        // = 0.0232268; so [0.010725, 0.057178].
        let w = wilson(5, 200);
        assert!(close(w.lo, 0.010725) && close(w.hi, 0.057178), "{w:?}");
        // 0 of 100: [0, z²/(n + z²)] = [0, 3.841459 / 103.841459] = [0, 0.036994].
        let w = wilson(0, 100);
        assert!(close(w.lo, 0.0) && close(w.hi, 0.036994), "{w:?}");
        let w = wilson(100, 100);
        assert!(close(w.lo, 0.963006) && close(w.hi, 1.0), "{w:?}");
        assert_eq!(wilson(0, 0), Interval { lo: 0.0, hi: 1.0 });
    }

    #[test]
    fn mcnemar_matches_hand_computed_p_values() {
        // b = 1, c = 4: 2 · (C(5,0) + C(5,1)) / 2^5 = 12/32.
        assert!(close(mcnemar(1, 4), 0.375));
        assert!(close(mcnemar(4, 1), 0.375));
        // 13 lost / 3 gained (backtracking on logical deduction): 2 · (1 + 16 + 120 + 560)
        // / 65536 = 0.021271.
        assert!(close(mcnemar(3, 13), 0.021271));
        // 1 lost / 2 gained (LEAP's gate): 2 · (1 + 3) / 8 = 1, capped at 1.
        assert!(close(mcnemar(1, 2), 1.0));
        assert!(close(mcnemar(0, 0), 1.0));
        // 0 vs 6: 2 / 64.
        assert!(close(mcnemar(0, 6), 0.03125));
        assert!(close(mcnemar(5, 5), 1.0));
        assert_eq!(Verdict::of(6, 0), Verdict::SignificantGain);
        assert_eq!(Verdict::of(0, 6), Verdict::SignificantLoss);
        assert_eq!(Verdict::of(4, 1), Verdict::NoSignificantDifference);
    }
}
