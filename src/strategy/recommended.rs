//! The recommended strategy: what `solve`, `eval` and the demo run when the caller names no
//! strategy. Policy lives here, so the CLI, a server and a library caller behave alike.

use super::{Kind, Options};
use crate::critic::Spec;

/// A strategy and the settings it is recommended with.
///
/// Chosen by measurement (BENCHMARKS.md, "The recommended strategy"): the best of the measured
/// combinations whose tokens per item stay within 10× one greedy pass, picked on ladder
/// problems of a seed that is not among the reported evaluation slices, then reported on the
/// slices.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommended {
    /// The strategy.
    pub kind: Kind,
    /// The critic it runs with, when the caller names none.
    pub critic: Option<Spec>,
    /// Whether the exact calculator runs in the decode loop.
    pub calculator: bool,
}

impl Recommended {
    /// `opts` with the recommended settings filled in: the critic when `opts` names none,
    /// and the calculator switched on when the recommendation uses it. Every other setting
    /// of `opts` is kept.
    pub fn apply(&self, mut opts: Options) -> (Kind, Options) {
        if opts.critic.is_none() {
            opts.critic = self.critic.clone();
        }
        opts.calculator |= self.calculator;
        (self.kind, opts)
    }

    /// A one-line description (`baseline --calculator`).
    pub fn describe(&self) -> String {
        let mut s = self.kind.as_str().to_string();
        if let Some(c) = &self.critic {
            s.push_str(&format!(" --critic {c}"));
        }
        if self.calculator {
            s.push_str(" --calculator");
        }
        s
    }
}

/// The recommended strategy (see [`Recommended`]): one greedy pass with the exact calculator
/// in the decode loop.
///
/// The choice (README, "The recommended strategy"): on 100 level-1 problems of an unreported
/// seed, among the candidates within 10× the greedy pass's tokens and turning at most 2% of
/// the items from right to wrong, the calculator alone and backtracking on
/// `chain:arith,ground` with the calculator tied on accuracy, and the calculator costs fewer
/// tokens; anchored selection was lower, and verified self-consistency with the calculator,
/// one item higher, turned 8% of the items from right to wrong.
pub fn recommended() -> Recommended {
    Recommended {
        kind: Kind::Baseline,
        critic: None,
        calculator: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_the_callers_critic_and_settings() {
        let r = Recommended {
            kind: Kind::Backtrack,
            critic: Some(Spec::Chain(vec![Spec::Arith, Spec::Ground])),
            calculator: true,
        };
        let mine = Options {
            critic: Some(Spec::Arith),
            samples: 9,
            ..Options::default()
        };
        let (kind, o) = r.apply(mine);
        assert_eq!(kind, r.kind);
        assert_eq!(o.critic, Some(Spec::Arith));
        assert_eq!(o.samples, 9);
        assert_eq!(o.calculator, r.calculator);
        let (_, o) = r.apply(Options::default());
        assert_eq!(o.critic, r.critic);
        assert_eq!(
            r.describe(),
            "backtrack --critic chain:arith,ground --calculator"
        );
        assert_eq!(recommended().describe(), "baseline --calculator");
    }

    #[test]
    fn the_recommendation_builds() {
        let (kind, o) = recommended().apply(Options::default());
        assert!(super::super::build(kind, &o).is_ok());
    }
}
