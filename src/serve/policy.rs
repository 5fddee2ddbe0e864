//! The per-request policy (`amend` in the request body, or the `x-amend-*` headers): which
//! strategy answers and every option the library's strategies take, over the server's
//! defaults and under the key's ceilings.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::critic::Spec as CriticSpec;
use crate::run::Budget;
use crate::strategy::{
    self, Accept, Kind, Options, Rank, ResampleUntil, RiseMode, SearchOptions, Select, Strategy,
    Unverified,
};

/// Which strategy answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// No correction: the request goes to the upstream as it is (an API upstream's answer and
    /// stream are relayed untouched).
    None,
    /// The library's recommended strategy ([`strategy::recommended`]).
    Recommended,
    /// One of the library's strategies.
    Strategy(Kind),
}

impl Choice {
    /// The name written in the response's `amend` object.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Recommended => "recommended",
            Self::Strategy(k) => k.as_str(),
        }
    }
}

impl std::str::FromStr for Choice {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s {
            "none" => Ok(Self::None),
            "recommended" | "default" => Ok(Self::Recommended),
            k => k.parse::<Kind>().map(Self::Strategy).map_err(|e| {
                ApiError::bad_request(
                    Some("amend.strategy"),
                    format!("{}; or none, recommended", e.message),
                )
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Choice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(|e: ApiError| serde::de::Error::custom(e.message))
    }
}

impl Serialize for Choice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Caps on one request's solve (every field optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBudget {
    /// Most model calls.
    pub max_calls: Option<u64>,
    /// Most tokens (decoded prompt + generated).
    pub max_tokens_total: Option<u64>,
    /// Most seconds from the start of the solve.
    pub deadline_s: Option<f64>,
}

/// The `amend` object: every field optional; what is absent comes from the server's defaults
/// (its config's `[defaults]`, else the library's). Unknown fields are refused, so a misspelt
/// option is an error rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `none`, `recommended`, or a strategy (`baseline`, `self-consistency`, `wait`, `rise`,
    /// `backtrack`, `search`).
    pub strategy: Option<Choice>,
    /// The critic (`arith`, `ground`, `chain:arith,ground`, `llm`, ...).
    pub critic: Option<CriticSpec>,
    /// The verifier of selection, backtracking's revisions and the search.
    pub verifier: Option<CriticSpec>,
    /// Self-consistency: `majority`, `verified` or `anchored`.
    pub select: Option<Select>,
    /// Self-consistency: samples.
    pub samples: Option<u32>,
    /// Self-consistency: sampling temperature.
    pub temperature: Option<f32>,
    /// RISE: turns.
    pub turns: Option<usize>,
    /// RISE: mode.
    pub rise_mode: Option<RiseMode>,
    /// Backtracking: most backtracks.
    pub max_backtracks: Option<usize>,
    /// Backtracking: `verified` or `always`.
    pub accept: Option<Accept>,
    /// Backtracking: `differs` or `accepted`.
    pub resample_until: Option<ResampleUntil>,
    /// `llm` critic: critiques voted over.
    pub critic_votes: Option<u32>,
    /// The exact calculator in the decode loop.
    pub calculator: Option<bool>,
    /// Step search: candidates per step.
    pub search_k: Option<u32>,
    /// Step search: beam.
    pub beam: Option<usize>,
    /// Step search: `logprob` or `rollout`.
    pub rank: Option<Rank>,
    /// Backtracking: a line at a time, each checked before the next (commit points: a
    /// stream sends each step once checked).
    pub stepwise: Option<bool>,
    /// Step-wise backtracking: a step still flagged when the budget ends is sent marked
    /// unverified (`send`) or ends the answer at the last verified step (`stop`).
    pub unverified: Option<Unverified>,
    /// A logit rectifier to decode with: a name from the server's `rectifiers` (local model
    /// only).
    pub rectifier: Option<String>,
    /// The rectifier's fusion weight λ (default: its file's; 0 changes nothing).
    pub lambda: Option<f32>,
    /// Caps on the solve.
    pub budget: Option<PolicyBudget>,
}

impl Policy {
    /// `over` laid over `self`: each field `over` sets wins (budget fields one by one).
    pub fn overlay(&self, over: &Policy) -> Policy {
        macro_rules! pick {
            ($($f:ident),*) => { Policy { $($f: over.$f.clone().or_else(|| self.$f.clone()),)* budget: None } };
        }
        let mut p = pick!(
            strategy,
            critic,
            verifier,
            select,
            samples,
            temperature,
            turns,
            rise_mode,
            max_backtracks,
            accept,
            resample_until,
            critic_votes,
            calculator,
            search_k,
            beam,
            rank,
            stepwise,
            unverified,
            rectifier,
            lambda
        );
        p.budget = match (self.budget, over.budget) {
            (None, b) | (b, None) => b,
            (Some(a), Some(b)) => Some(PolicyBudget {
                max_calls: b.max_calls.or(a.max_calls),
                max_tokens_total: b.max_tokens_total.or(a.max_tokens_total),
                deadline_s: b.deadline_s.or(a.deadline_s),
            }),
        };
        p
    }

    /// The policy from the `x-amend-strategy`, `x-amend-critic`, `x-amend-verifier`,
    /// `x-amend-calculator` and `x-amend-policy` (a whole `amend` object as JSON) headers.
    ///
    /// # Errors
    /// 400 naming the header when one cannot be read.
    pub fn from_headers(h: &HeaderMap) -> Result<Policy, ApiError> {
        let get = |name: &str| -> Result<Option<&str>, ApiError> {
            h.get(name)
                .map(|v| {
                    v.to_str().map_err(|_| {
                        ApiError::bad_request(Some(name), format!("header `{name}` is not text"))
                    })
                })
                .transpose()
        };
        let mut p = match get("x-amend-policy")? {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                ApiError::bad_request(
                    Some("x-amend-policy"),
                    format!("header `x-amend-policy` is not an `amend` object: {e}"),
                )
            })?,
            None => Policy::default(),
        };
        if let Some(s) = get("x-amend-strategy")? {
            p.strategy = Some(s.parse()?);
        }
        for (name, slot) in [
            ("x-amend-critic", &mut p.critic),
            ("x-amend-verifier", &mut p.verifier),
        ] {
            if let Some(s) = get(name)? {
                *slot = Some(s.parse().map_err(|e: crate::critic::CriticError| {
                    ApiError::bad_request(Some(name), format!("header `{name}`: {e}"))
                })?);
            }
        }
        if let Some(s) = get("x-amend-calculator")? {
            p.calculator = Some(match s {
                "true" | "1" | "on" => true,
                "false" | "0" | "off" => false,
                _ => {
                    return Err(ApiError::bad_request(
                        Some("x-amend-calculator"),
                        "header `x-amend-calculator` must be true or false",
                    ))
                }
            });
        }
        Ok(p)
    }

    /// The strategy, built, and its options: the library's defaults with this policy's fields
    /// set; `recommended` (or no strategy) applies [`strategy::recommended`]. `None` for
    /// `strategy: none`.
    ///
    /// # Errors
    /// 400 naming the option when the strategy cannot be built from it.
    pub fn resolve(&self) -> Result<Option<Resolved>, ApiError> {
        let mut o = Options::default();
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { o.$f = v; } )* };
        }
        set!(
            select,
            samples,
            temperature,
            turns,
            rise_mode,
            max_backtracks,
            accept,
            resample_until,
            critic_votes,
            calculator,
            stepwise,
            unverified
        );
        o.critic = self.critic.clone().or(o.critic);
        o.verifier = self.verifier.clone().or(o.verifier);
        let mut s: SearchOptions = o.search;
        if let Some(k) = self.search_k {
            s.k = k;
        }
        if let Some(b) = self.beam {
            s.beam = b;
        }
        if let Some(r) = self.rank {
            s.rank = r;
        }
        o.search = s;
        if let Some(b) = self.budget {
            o.budget = budget(b)?;
        }
        let (kind, o) = match self.strategy {
            Some(Choice::None) => return Ok(None),
            Some(Choice::Strategy(k)) => (k, o),
            Some(Choice::Recommended) | None => strategy::recommended().apply(o),
        };
        let strategy = strategy::build(kind, &o).map_err(|e| {
            ApiError::bad_request(Some("amend"), format!("the `amend` policy: {e}"))
        })?;
        Ok(Some(Resolved {
            kind,
            options: o,
            strategy,
        }))
    }
}

/// A policy resolved to a strategy: which one, its options, and the strategy built from them
/// (ceilings change only the options' budget, which the strategy reads from its context).
pub struct Resolved {
    /// The strategy.
    pub kind: Kind,
    /// Its options.
    pub options: Options,
    /// Built from `kind` and `options`.
    pub strategy: Box<dyn Strategy>,
}

/// The request's logit rectifier (`amend.rectifier`, `amend.lambda`) as a hook, if it names one.
///
/// # Errors
/// 400 naming the field: `lambda` without `rectifier`, a negative or non-finite λ, or a name
/// the server's `rectifiers` does not have.
pub(super) fn rectifier_hook(
    app: &super::App,
    p: &Policy,
) -> Result<Option<Arc<dyn crate::model::LogitsHook>>, ApiError> {
    let Some(name) = &p.rectifier else {
        return match p.lambda {
            Some(_) => Err(ApiError::bad_request(
                Some("amend.lambda"),
                "`lambda` is the weight of a rectifier: give `rectifier` too",
            )),
            None => Ok(None),
        };
    };
    if let Some(l) = p.lambda {
        if !(l.is_finite() && l >= 0.0) {
            return Err(ApiError::bad_request(
                Some("amend.lambda"),
                "`lambda` must be a finite number ≥ 0",
            ));
        }
    }
    let file = app.rectifiers.get(name).ok_or_else(|| {
        ApiError::bad_request(
            Some("amend.rectifier"),
            if app.rectifiers.is_empty() {
                format!("no rectifier `{name}`: this server has none (`rectifiers` in its config)")
            } else {
                format!(
                    "no rectifier `{name}`; this server has {}",
                    app.rectifiers
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        )
    })?;
    Ok(Some(Arc::new(crate::rectify::apply::RectifierHook::new(
        file.clone(),
        p.lambda,
    ))))
}

fn budget(b: PolicyBudget) -> Result<Budget, ApiError> {
    let mut out = Budget::new();
    if let Some(n) = b.max_calls {
        out = out.with_max_calls(n);
    }
    if let Some(n) = b.max_tokens_total {
        out = out.with_max_tokens_total(n);
    }
    if let Some(s) = b.deadline_s {
        if !(s.is_finite() && s > 0.0) {
            return Err(ApiError::bad_request(
                Some("amend.budget.deadline_s"),
                "`deadline_s` must be a positive number of seconds",
            ));
        }
        out = out.with_deadline(Duration::from_secs_f64(s.min(86_400.0)));
    }
    Ok(out)
}

/// Ceilings: the most a request may spend, whatever it asks for (the server's own, and each
/// key's under them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceilings {
    /// Most model calls per request.
    pub max_calls: Option<u64>,
    /// Most tokens per request.
    pub max_tokens_total: Option<u64>,
    /// Most seconds per request.
    pub deadline_s: Option<f64>,
    /// Most samples one request may ask for in any one place: self-consistency's `samples`,
    /// the `llm` critic's `critic_votes`, the search's `search_k` (a request asking for more is
    /// refused with a 400).
    pub max_samples: Option<u32>,
}

impl Ceilings {
    /// `opts` under these ceilings: each budget cap the lower of the request's and the
    /// ceiling's.
    ///
    /// # Errors
    /// 400 naming `amend.samples` when the request asks for more samples than allowed.
    pub fn apply(&self, mut opts: Options) -> Result<Options, ApiError> {
        if let Some(m) = self.max_samples {
            for (name, asked) in [
                ("samples", opts.samples),
                ("critic_votes", opts.critic_votes),
                ("search_k", opts.search.k),
            ] {
                if asked > m {
                    return Err(ApiError::bad_request(
                        Some(&format!("amend.{name}")),
                        format!("`{name}` = {asked} asked; at most {m} is allowed here"),
                    ));
                }
            }
        }
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let b = &mut opts.budget;
        b.max_calls = min(b.max_calls, self.max_calls);
        b.max_tokens_total = min(b.max_tokens_total, self.max_tokens_total);
        if let Some(s) = self.deadline_s.filter(|s| s.is_finite() && *s > 0.0) {
            let c = Duration::from_secs_f64(s);
            b.deadline = Some(b.deadline.map_or(c, |d| d.min(c)));
        }
        Ok(opts)
    }
}
