//! Step-wise backtracking with the real default model: every line is checked before the next,
//! each is reported once as a commit point, in order, and never taken back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.
#![cfg(feature = "local")]

mod common;

use amend::critic::Spec as CriticSpec;
use amend::run::{Commit, Commits, Problem};
use amend::strategy::{self, Kind, Options, Unverified};

/// Problems whose products the default model gets wrong when it writes them out.
const QS: &[&str] = &[
    "A farm has 4837 rows of corn with 29 plants in each row. How many plants are there? Write the multiplication.",
    "A shop sells 386 boxes of 47 pencils each. How many pencils does it sell? Write the multiplication.",
];

fn stepwise(unverified: Unverified, max_backtracks: usize) -> Box<dyn amend::Strategy> {
    strategy::build(
        Kind::Backtrack,
        &Options {
            critic: Some(CriticSpec::Arith),
            stepwise: true,
            unverified,
            max_backtracks,
            ..Options::default()
        },
    )
    .unwrap()
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Commit>) -> Vec<Commit> {
    let mut out = Vec::new();
    while let Ok(c) = rx.try_recv() {
        out.push(c);
    }
    out
}

#[tokio::test]
async fn every_line_is_committed_once_in_order_and_verified_lines_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (cx, _, _) = common::local_context(dir.path(), 8).await;
    let cx = cx.with_max_tokens(200);
    let mut flagged_somewhere = false;
    for q in QS {
        let (commits, mut rx) = Commits::channel();
        let sol = stepwise(Unverified::Send, 2)
            .solve(&cx.clone().with_commits(commits), &Problem::new(q))
            .await
            .unwrap();
        let seen = drain(&mut rx);
        assert!(!seen.is_empty(), "a step-wise solve reports its lines");
        let text: String = seen.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            text, sol.attempts[0].text,
            "the answer is its commit points, in order"
        );
        let mut last = 0;
        for c in &seen {
            assert!(c.step >= last, "steps go forward");
            last = c.step;
            if c.verified && !c.text.trim().is_empty() {
                assert!(
                    amend::critic::first_false(&[c.text.trim().to_string()]).is_none(),
                    "a verified line holds a false claim: {:?}",
                    c.text
                );
            }
        }
        // Every flagged line is either fixed (verified) or listed unverified; at most 2
        // resample rounds were spent.
        flagged_somewhere |= !sol.located.is_empty();
        let unverified = seen.iter().filter(|c| !c.verified).count();
        assert!(unverified <= sol.located.len());
    }
    assert!(
        flagged_somewhere,
        "the critic flagged no line of either problem: the test checks nothing about resampling"
    );
}

#[tokio::test]
async fn with_unverified_stop_the_answer_ends_at_the_last_verified_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cx, _, _) = common::local_context(dir.path(), 8).await;
    let cx = cx.with_max_tokens(200);
    for q in QS {
        let (commits, mut rx) = Commits::channel();
        // One resample round: at most one flagged line is fixed, the next flagged one ends it.
        let sol = stepwise(Unverified::Stop, 1)
            .solve(&cx.clone().with_commits(commits), &Problem::new(q))
            .await
            .unwrap();
        let seen = drain(&mut rx);
        assert!(
            seen.iter().all(|c| c.verified),
            "`stop` sends no unverified line"
        );
        let text: String = seen.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(text, sol.attempts[0].text);
        assert!(sol.located.len() <= 2, "{:?}", sol.located);
    }
}
