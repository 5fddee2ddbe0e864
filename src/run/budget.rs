//! Caps on what one solve may spend, and the running account against them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::model::Usage;

/// Caps on one `solve` call. Infrastructure retries do not count; a critic's calls count once
/// the critic returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Most tokens (decoded prompt + generated) the whole strategy may spend.
    pub max_tokens_total: Option<u64>,
    /// Most model calls the whole strategy may make.
    pub max_calls: Option<u64>,
    /// Most wall-clock time the whole strategy may take, from the start of `solve`. A model
    /// call still running when it passes is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub deadline: Option<Duration>,
}

impl Budget {
    /// No caps.
    pub fn new() -> Self {
        Self::default()
    }
    /// Cap the tokens.
    pub fn with_max_tokens_total(mut self, n: u64) -> Self {
        self.max_tokens_total = Some(n);
        self
    }
    /// Cap the calls.
    pub fn with_max_calls(mut self, n: u64) -> Self {
        self.max_calls = Some(n);
        self
    }
    /// Cap the wall-clock time.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }
}

/// Which cap of a [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// [`Budget::max_tokens_total`].
    MaxTokensTotal,
    /// [`Budget::max_calls`].
    MaxCalls,
    /// [`Budget::deadline`].
    Deadline,
}

impl Cap {
    /// The option's name (`max_calls`, `max_tokens_total`, `deadline`).
    pub fn option(self) -> &'static str {
        match self {
            Self::MaxTokensTotal => "max_tokens_total",
            Self::MaxCalls => "max_calls",
            Self::Deadline => "deadline",
        }
    }
}

/// A cap that was reached, and where the strategy stopped because of it. A strategy that stops
/// on a cap still returns its best answer so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStop {
    /// Which cap.
    pub cap: Cap,
    /// The cap's value, and what was spent (e.g. `8 calls`, `1200 tokens`, `2.0 s`).
    pub reached: String,
    /// Where the strategy stopped (e.g. `stopped before turn 3`).
    pub at: String,
}

impl std::fmt::Display for BudgetStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} reached ({}); {}",
            self.cap.option(),
            self.reached,
            self.at
        )
    }
}

/// Running spend against a [`Budget`], from the moment it is made.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    budget: Budget,
    started: Instant,
    /// Spent so far.
    pub usage: Usage,
    /// How the last prefill was continued, if a call had one (see `model::prefill`).
    pub prefill: Option<crate::model::Prefill>,
}

impl Ledger {
    /// A ledger for `budget`, its clock started now.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            started: Instant::now(),
            usage: Usage::default(),
            prefill: None,
        }
    }
    /// Record a call's usage.
    pub fn add(&mut self, u: Usage) {
        self.usage += u;
    }
    /// Tokens spent so far (decoded prompt + generated).
    pub fn tokens(&self) -> u64 {
        self.usage.decoded_prompt_tokens() + self.usage.generated_tokens
    }
    /// Time since the ledger was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    /// When the deadline passes, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.budget.deadline.map(|d| self.started + d)
    }
    /// Time left before the deadline (zero once passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
    /// The cap that forbids another call, if one does: which, and its value against the spend.
    pub fn exhausted(&self) -> Option<(Cap, String)> {
        if let Some(max) = self.budget.max_calls {
            if self.usage.calls >= max {
                return Some((
                    Cap::MaxCalls,
                    format!("{max}; {} calls made", self.usage.calls),
                ));
            }
        }
        if let Some(max) = self.budget.max_tokens_total {
            if self.tokens() >= max {
                return Some((
                    Cap::MaxTokensTotal,
                    format!("{max}; {} tokens spent", self.tokens()),
                ));
            }
        }
        if let Some(d) = self.budget.deadline {
            let spent = self.elapsed();
            if spent >= d {
                return Some((
                    Cap::Deadline,
                    format!(
                        "{:.1} s; {:.1} s taken",
                        d.as_secs_f64(),
                        spent.as_secs_f64()
                    ),
                ));
            }
        }
        None
    }
    /// A [`BudgetStop`] at `at` when a cap is reached, else `None`.
    pub fn stop(&self, at: impl Into<String>) -> Option<BudgetStop> {
        self.exhausted().map(|(cap, reached)| BudgetStop {
            cap,
            reached,
            at: at.into(),
        })
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?
            .filter(|s| s.is_finite())
            .map(|s| Duration::from_secs_f64(s.max(0.0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_their_option_and_the_spend() {
        let mut l = Ledger::new(Budget::new().with_max_calls(2).with_max_tokens_total(100));
        assert!(l.exhausted().is_none());
        l.add(Usage {
            calls: 2,
            ..Usage::default()
        });
        let stop = l.stop("stopped before turn 3");
        assert_eq!(
            stop.map(|s| s.to_string()).as_deref(),
            Some("max_calls reached (2; 2 calls made); stopped before turn 3")
        );
        let mut l = Ledger::new(Budget::new().with_max_tokens_total(10));
        l.add(Usage {
            prompt_tokens: 8,
            reused_tokens: 4,
            generated_tokens: 6,
            calls: 1,
            ..Usage::default()
        });
        assert_eq!(l.exhausted().map(|e| e.0), Some(Cap::MaxTokensTotal));
        let l = Ledger::new(Budget::new().with_deadline(Duration::ZERO));
        assert_eq!(l.exhausted().map(|e| e.0), Some(Cap::Deadline));
        assert_eq!(l.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn a_budget_without_a_deadline_serialises_as_before() {
        let b = Budget::new().with_max_calls(3);
        let v = serde_json::to_value(b).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"max_tokens_total": null, "max_calls": 3})
        );
        let d: Budget = serde_json::from_value(
            serde_json::json!({"max_tokens_total": null, "max_calls": null, "deadline": 1.5}),
        )
        .unwrap_or_default();
        assert_eq!(d.deadline, Some(Duration::from_millis(1500)));
    }
}
