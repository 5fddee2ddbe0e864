//! The strategies' settings, their defaults (the library's policy: the CLI, a server and a
//! library caller get the same), and building a strategy from them.

use serde::{Deserialize, Serialize};

use super::{
    Backtrack, Baseline, Rise, RiseMode, Search, SearchOptions, SelfConsistency, Strategy,
    StrategyError, Wait,
};
use crate::critic::{self, Spec};
use crate::run::{Budget, OptionError};

/// The strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// One greedy chain-of-thought pass.
    Baseline,
    /// `samples` samples, majority answer.
    #[serde(alias = "sc")]
    #[value(alias = "sc")]
    SelfConsistency,
    /// The draft continued after " Wait" (needs assistant prefill).
    Wait,
    /// Multi-turn "try again" (RISE).
    Rise,
    /// Locate the first wrong step with a critic, keep the steps before it, resample it.
    Backtrack,
    /// Verifier-guided step search: K candidates per step, the verified ones ranked, a beam.
    Search,
}

impl Kind {
    /// The strategy's name (`self-consistency`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::SelfConsistency => "self-consistency",
            Self::Wait => "wait",
            Self::Rise => "rise",
            Self::Backtrack => "backtrack",
            Self::Search => "search",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, OptionError> {
        <Self as clap::ValueEnum>::from_str(s, false).map_err(|_| {
            OptionError::new(
                "strategy",
                format!("{s:?} is not a strategy; use baseline, self-consistency, wait, rise, backtrack or search"),
            )
        })
    }
}

/// Backtracking: which revisions are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accept {
    /// Keep a revision only when the verifier (the critic unless `verifier` is set) does not
    /// flag it. The default: on 200 synthetic problems with the `arith` critic, `always` turned
    /// 4 right answers wrong and fixed 1, `verified` turned 1 wrong and fixed the same 1, at
    /// the same token cost (BENCHMARKS.md).
    #[default]
    Verified,
    /// Keep every revision.
    Always,
}

/// Backtracking: how long the wrong step is resampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ResampleUntil {
    /// Until a candidate differs from the original step.
    #[default]
    Differs,
    /// Until the critic accepts the steps up to the candidate.
    Accepted,
}

/// Self-consistency: how the answer is chosen among the samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The majority answer of all samples.
    #[default]
    Majority,
    /// The majority answer of the samples the verifier (`verifier`, else the critic) does not
    /// flag; of all samples when it flags every one.
    Verified,
    /// The greedy pass first: its answer when the verifier accepts it. Only when it is flagged
    /// are the samples drawn, and the verified majority of them taken (the greedy answer
    /// stays when the verifier flags every sample too). Samples are paid for only where the
    /// greedy pass is flagged, and an accepted greedy answer is never replaced.
    Anchored,
}

impl Select {
    fn is_majority(&self) -> bool {
        *self == Self::Majority
    }
}

/// Step-wise backtracking: what becomes of a step still flagged when its correction budget
/// (`max_backtracks` resample rounds per solve) has ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Unverified {
    /// Keep it, reported unverified (the solve goes on after it).
    #[default]
    Send,
    /// End the answer at the last verified step.
    Stop,
}

impl Unverified {
    fn is_send(&self) -> bool {
        *self == Self::Send
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Settings of the strategies. [`Options::default`] is amend's policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Self-consistency: samples.
    pub samples: u32,
    /// Self-consistency: sampling temperature.
    pub temperature: f32,
    /// RISE: turns.
    pub turns: usize,
    /// RISE: previous attempts kept in the conversation.
    pub window: usize,
    /// RISE: mode.
    pub rise_mode: RiseMode,
    /// The critic of backtracking and of RISE's critic mode (and oracle mode without a gold
    /// answer).
    pub critic: Option<Spec>,
    /// Caps on each solve.
    pub budget: Budget,
    /// Backtracking: most backtracks per solve.
    pub max_backtracks: usize,
    /// Backtracking: how long the wrong step is resampled.
    pub resample_until: ResampleUntil,
    /// Backtracking: which revisions are kept.
    pub accept: Accept,
    /// Backtracking with `accept = verified`: the verifier; `None` = the critic.
    pub verifier: Option<Spec>,
    /// Critiques an `llm` critic draws and votes over.
    pub critic_votes: u32,
    /// Self-consistency: how the answer is chosen among the samples.
    #[serde(skip_serializing_if = "Select::is_majority")]
    pub select: Select,
    /// Every strategy: the exact calculator in the generator's decode loop (see
    /// `run::Calculator`).
    #[serde(skip_serializing_if = "is_false")]
    pub calculator: bool,
    /// Step search: its settings.
    #[serde(skip_serializing_if = "SearchOptions::is_default")]
    pub search: SearchOptions,
    /// Backtracking: write the answer a line at a time, checking each line with the critic as
    /// it is written and resampling a flagged one before going on, so every step is final
    /// once checked (commit points; see `run::Commit`). Off: one whole draft, then
    /// backtracking on its first located mistake.
    #[serde(skip_serializing_if = "is_false")]
    pub stepwise: bool,
    /// Step-wise backtracking: what becomes of a step still flagged when the correction
    /// budget has ended.
    #[serde(skip_serializing_if = "Unverified::is_send")]
    pub unverified: Unverified,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            samples: 5,
            temperature: 0.7,
            turns: 5,
            window: 2,
            rise_mode: RiseMode::Majority,
            critic: None,
            budget: Budget::default(),
            max_backtracks: 1,
            resample_until: ResampleUntil::Differs,
            accept: Accept::Verified,
            verifier: None,
            critic_votes: 1,
            select: Select::Majority,
            calculator: false,
            search: SearchOptions::default(),
            stepwise: false,
            unverified: Unverified::Send,
        }
    }
}

impl Options {
    /// The verifier self-consistency selects samples by (`select = verified`): `verifier`,
    /// else the critic.
    pub fn selection_verifier(&self) -> Option<&Spec> {
        match self.select {
            Select::Majority => None,
            Select::Verified | Select::Anchored => self.verifier.as_ref().or(self.critic.as_ref()),
        }
    }

    /// The verifier of the step search: `verifier`, else the critic, else the model-free chain
    /// `arith,ground` (the search's default: exact, and blind to the model's own judgement).
    pub fn search_verifier(&self) -> Spec {
        self.verifier
            .clone()
            .or_else(|| self.critic.clone())
            .unwrap_or(Spec::Chain(vec![Spec::Arith, Spec::Ground]))
    }

    /// The verifier backtracking keeps revisions by: `None` with `accept = always`, else
    /// `verifier`, else the critic.
    pub fn effective_verifier(&self) -> Option<&Spec> {
        match self.accept {
            Accept::Always => None,
            Accept::Verified => self.verifier.as_ref().or(self.critic.as_ref()),
        }
    }

    /// These options with the settings `kind` does not read reset to their defaults, so two
    /// runs of one strategy that differ only in settings it ignores compare equal.
    pub fn relevant_to(&self, kind: Kind) -> Self {
        let d = Self::default();
        let mut o = self.clone();
        if kind != Kind::Backtrack {
            o.accept = d.accept;
        }
        if kind != Kind::SelfConsistency {
            o.select = d.select;
        }
        if kind != Kind::Search {
            o.search = d.search;
        }
        if kind != Kind::Backtrack {
            o.stepwise = d.stepwise;
            o.unverified = d.unverified;
        }
        if kind != Kind::Backtrack
            && kind != Kind::Search
            && !(kind == Kind::SelfConsistency && o.select != Select::Majority)
        {
            o.verifier = None;
        }
        o
    }
}

/// The options as written by any version of amend: older ones wrote `until_accepted` (a
/// boolean) and `verifier` (the critic when revisions were verified, `null` for "always").
#[derive(Deserialize)]
struct Wire {
    samples: u32,
    temperature: f32,
    turns: usize,
    window: usize,
    rise_mode: RiseMode,
    critic: Option<Spec>,
    budget: Budget,
    #[serde(default = "one")]
    max_backtracks: usize,
    #[serde(default)]
    until_accepted: Option<bool>,
    #[serde(default)]
    resample_until: Option<ResampleUntil>,
    #[serde(default)]
    accept: Option<Accept>,
    #[serde(default)]
    verifier: Option<Spec>,
    #[serde(default = "one_u32")]
    critic_votes: u32,
    #[serde(default)]
    select: Select,
    #[serde(default)]
    calculator: bool,
    #[serde(default)]
    search: SearchOptions,
    #[serde(default)]
    stepwise: bool,
    #[serde(default)]
    unverified: Unverified,
}

fn one() -> usize {
    1
}

fn one_u32() -> u32 {
    1
}

impl<'de> Deserialize<'de> for Options {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let resample_until = w.resample_until.unwrap_or(match w.until_accepted {
            Some(true) => ResampleUntil::Accepted,
            _ => ResampleUntil::Differs,
        });
        let (accept, verifier) = match w.accept {
            Some(a) => (a, w.verifier),
            // Older files: a verifier meant "verified" (by it), none meant "always".
            None => match w.verifier {
                Some(v) if Some(&v) == w.critic.as_ref() => (Accept::Verified, None),
                Some(v) => (Accept::Verified, Some(v)),
                None => (Accept::Always, None),
            },
        };
        Ok(Self {
            samples: w.samples,
            temperature: w.temperature,
            turns: w.turns,
            window: w.window,
            rise_mode: w.rise_mode,
            critic: w.critic,
            budget: w.budget,
            max_backtracks: w.max_backtracks,
            resample_until,
            accept,
            verifier,
            critic_votes: w.critic_votes,
            select: w.select,
            calculator: w.calculator,
            search: w.search,
            stepwise: w.stepwise,
            unverified: w.unverified,
        })
    }
}

/// The strategy `kind`, configured by `opts`.
///
/// # Errors
/// [`StrategyError::Option`] for options that are out of range or do not fit `kind` (e.g.
/// backtracking without a `critic`).
pub fn build(kind: Kind, opts: &Options) -> Result<Box<dyn Strategy>, StrategyError> {
    let votes = opts.critic_votes.max(1);
    Ok(match kind {
        Kind::Baseline => Box::new(Baseline),
        Kind::SelfConsistency => {
            if opts.samples == 0 {
                return Err(OptionError::new("samples", "must be at least 1").into());
            }
            let verifier = match opts.select {
                Select::Majority => None,
                Select::Verified | Select::Anchored => Some(critic::build(
                    opts.selection_verifier().ok_or_else(|| {
                        OptionError::new(
                            "select",
                            "= verified and = anchored need a `verifier` or a `critic` (e.g. chain:arith,ground)",
                        )
                    })?,
                    votes,
                )),
            };
            Box::new(SelfConsistency {
                samples: opts.samples,
                temperature: opts.temperature,
                verifier,
                anchored: opts.select == Select::Anchored,
            })
        }
        Kind::Wait => Box::new(Wait),
        Kind::Backtrack => {
            let spec = opts.critic.as_ref().ok_or_else(|| {
                OptionError::new(
                    "critic",
                    "is needed by backtrack, to locate mistakes (e.g. arith, gold or llm)",
                )
            })?;
            Box::new(Backtrack {
                critic: critic::build(spec, votes),
                max_backtracks: opts.max_backtracks.max(1),
                until_accepted: opts.resample_until == ResampleUntil::Accepted,
                verifier: opts.effective_verifier().map(|v| critic::build(v, votes)),
                stepwise: opts.stepwise.then_some(opts.unverified),
            })
        }
        Kind::Search => {
            let o = opts.search;
            if o.k == 0 || o.beam == 0 || o.max_steps == 0 {
                return Err(OptionError::new(
                    "search",
                    "needs `k`, `beam` and `max_steps` of at least 1",
                )
                .into());
            }
            Box::new(Search {
                verifier: critic::build(&opts.search_verifier(), votes),
                options: o,
            })
        }
        Kind::Rise => {
            let critic = opts.critic.as_ref().map(|c| critic::build(c, votes));
            if opts.rise_mode == RiseMode::Critic && critic.is_none() {
                return Err(OptionError::new(
                    "critic",
                    "is needed by rise_mode = critic (e.g. arith)",
                )
                .into());
            }
            if opts.turns == 0 {
                return Err(OptionError::new("turns", "must be at least 1").into());
            }
            Box::new(Rise {
                turns: opts.turns,
                window: opts.window,
                mode: opts.rise_mode,
                critic,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_defaults_to_the_critic() {
        let opts = Options {
            critic: Some(Spec::Arith),
            ..Options::default()
        };
        assert_eq!(opts.effective_verifier(), Some(&Spec::Arith));
        let always = Options {
            accept: Accept::Always,
            ..opts.clone()
        };
        assert_eq!(always.effective_verifier(), None);
    }

    #[test]
    fn options_written_by_older_versions_read_the_same() -> Result<(), serde_json::Error> {
        let old = |verifier: serde_json::Value, until: bool| {
            serde_json::json!({"samples": 5, "temperature": 0.7, "turns": 5, "window": 2,
                "rise_mode": "majority", "critic": "arith", "budget": {"max_tokens_total": null, "max_calls": null},
                "max_backtracks": 1, "until_accepted": until, "verifier": verifier, "critic_votes": 1})
        };
        let o: Options = serde_json::from_value(old("arith".into(), false))?;
        assert_eq!((o.accept, o.verifier.clone()), (Accept::Verified, None));
        let o: Options = serde_json::from_value(old(serde_json::Value::Null, true))?;
        assert_eq!(
            (o.accept, o.resample_until),
            (Accept::Always, ResampleUntil::Accepted)
        );
        let o: Options = serde_json::from_value(old("llm".into(), false))?;
        assert_eq!(o.verifier, Some(Spec::Llm));
        let now = Options::default();
        let back: Options = serde_json::from_value(serde_json::to_value(&now)?)?;
        assert_eq!(back, now);
        Ok(())
    }

    #[test]
    fn bad_options_name_the_option() {
        let e = build(Kind::Backtrack, &Options::default())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("`critic` is needed")),
            "{e:?}"
        );
        let e = build(
            Kind::SelfConsistency,
            &Options {
                samples: 0,
                ..Options::default()
            },
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("`samples` must be at least 1"));
        assert_eq!("sc".parse::<Kind>().ok(), Some(Kind::SelfConsistency));
        assert!("nope".parse::<Kind>().is_err());
    }
}
