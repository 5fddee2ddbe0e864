//! The grounding critic against the difficulty ladder's problems (an integration test: the
//! ladder's generator sits in a layer above the critics).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use amend::critic::first_ungrounded;
use amend::data::ladder::{self, Level};

#[test]
fn the_ladders_gold_solutions_are_grounded() {
    // Every level, many seeds: a gold solution never trips the critic (no false alarms on
    // solutions that only use given numbers, results and the constants).
    for lv in 1..=ladder::MAX_LEVEL {
        let level = Level::new(lv).unwrap_or_else(|| panic!("level {lv}"));
        for p in ladder::generate(60, &level, 7 + u64::from(lv)) {
            let s: Vec<String> = p.answer.lines().map(str::to_string).collect();
            assert_eq!(
                first_ungrounded(&p.question, &s),
                None,
                "level {lv}: {}\n{}",
                p.question,
                p.answer
            );
        }
    }
}

proptest::proptest! {
    #[test]
    fn a_planted_operand_is_located_at_its_step(seed in 0u64..10_000, lv in 1u8..=3) {
        let level = Level::new(lv).unwrap_or_else(|| panic!("level {lv}"));
        let mut rng = amend::rng::Rng::new(seed);
        let p = ladder::problem(&mut rng, &level);
        let mut s: Vec<String> = p.answer.lines().map(str::to_string).collect();
        // Plant an operand far from anything the problem gives into one step.
        let t = (seed as usize) % s.len().saturating_sub(1).max(1);
        if let Some(l) = s.get_mut(t) {
            l.push_str(" So 7919 * 2 = 15838.");
        }
        let got = first_ungrounded(&p.question, &s);
        proptest::prop_assert_eq!(got.map(|(i, n, _)| (i, n)), Some((t, "7919".to_string())), "{:?}", s);
    }
}
