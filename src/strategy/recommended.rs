//! The recommended strategy: what `solve`, `eval` and the demo run when the caller names no
//! strategy. Policy lives here, so the CLI, a server and a library caller behave alike.

use super::{Kind, Options, Select};
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
    /// Self-consistency's selection, when the recommendation samples.
    pub selection: Option<Selection>,
}

/// How a recommended self-consistency chooses among its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The rule (`select`).
    pub select: Select,
    /// The verifier it selects by.
    pub verifier: Spec,
    /// Samples drawn.
    pub samples: u32,
}

impl Recommended {
    /// `opts` with the recommended settings filled in: the critic when `opts` names none,
    /// the calculator switched on when the recommendation uses it, and a recommended
    /// selection's rule, verifier and sample count where `opts` leaves them at their defaults
    /// (majority, no verifier, [`Options::default`]'s samples). Every other setting of `opts`
    /// is kept.
    pub fn apply(&self, mut opts: Options) -> (Kind, Options) {
        if opts.critic.is_none() {
            opts.critic = self.critic.clone();
        }
        opts.calculator |= self.calculator;
        if let Some(sel) = &self.selection {
            if opts.select == Select::Majority {
                opts.select = sel.select;
            }
            if opts.verifier.is_none() {
                opts.verifier = Some(sel.verifier.clone());
            }
            if opts.samples == Options::default().samples {
                opts.samples = sel.samples;
            }
        }
        (self.kind, opts)
    }

    /// A one-line description (`baseline --calculator`).
    pub fn describe(&self) -> String {
        let mut s = self.kind.as_str().to_string();
        if let Some(c) = &self.critic {
            s.push_str(&format!(" --critic {c}"));
        }
        if let Some(sel) = &self.selection {
            let rule = match sel.select {
                Select::Majority => "majority",
                Select::Verified => "verified",
                Select::Anchored => "anchored",
            };
            s.push_str(&format!(
                " --select {rule} --verifier {} --samples {}",
                sel.verifier, sel.samples
            ));
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
        selection: None,
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
            selection: None,
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
    fn a_selection_fills_only_what_the_caller_left_at_its_default() {
        let r = Recommended {
            kind: Kind::SelfConsistency,
            critic: None,
            calculator: false,
            selection: Some(Selection {
                select: Select::Anchored,
                verifier: Spec::Chain(vec![Spec::Arith, Spec::Derive]),
                samples: 8,
            }),
        };
        let (_, o) = r.apply(Options::default());
        assert_eq!(o.select, Select::Anchored);
        assert_eq!(
            o.verifier,
            Some(Spec::Chain(vec![Spec::Arith, Spec::Derive]))
        );
        assert_eq!(o.samples, 8);
        let mine = Options {
            select: Select::Verified,
            verifier: Some(Spec::Arith),
            samples: 3,
            ..Options::default()
        };
        let (_, o) = r.apply(mine);
        assert_eq!(
            (o.select, o.verifier, o.samples),
            (Select::Verified, Some(Spec::Arith), 3)
        );
        assert_eq!(
            r.describe(),
            "self-consistency --select anchored --verifier chain:arith,derive --samples 8"
        );
    }

    #[test]
    fn the_recommendation_builds() {
        let (kind, o) = recommended().apply(Options::default());
        assert!(super::super::build(kind, &o).is_ok());
    }
}
