use super::*;
use proptest::prelude::*;

fn steps(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn located(problem: &str, v: &[&str]) -> Option<(usize, String)> {
    first_underived(problem, &steps(v))
}

const STAMPS: &str = "Sven has 8 stamps. He finds 8 more stamps. He loses 9 stamps. How many \
                      stamps does Sven have now?";

#[test]
fn a_derivation_from_every_quantity_once_is_accepted() {
    let ok = ["8 + 8 = 16.", "16 - 9 = 7.", "The answer is 7."];
    assert_eq!(located(STAMPS, &ok), None);
    // One expression over all three, and prose around it.
    let one = ["Sven has 8 + 8 - 9 = 7 stamps now.", "The answer is 7."];
    assert_eq!(located(STAMPS, &one), None);
}

#[test]
fn a_quantity_used_again_is_located_and_named() {
    let p = "Greta has 3 tins of buttons, with 2 buttons in each. How many buttons does Greta \
             have now?";
    assert_eq!(
        located(p, &["3 x 2 = 6 buttons.", "The answer is 6."]),
        None
    );
    let twice = [
        "3 x 2 = 6 tins of buttons",
        "6 x 2 = 12 buttons",
        "The answer is 12.",
    ];
    let (step, why) = located(p, &twice).unwrap_or_default();
    assert_eq!(step, 1);
    assert!(why.contains("operand 2 is used more often"), "{why}");
    // A constant is no way around it: 2 is the problem's, not "double".
    let (step, _) =
        located(STAMPS, &["8 + 8 = 16.", "16 - 9 = 7.", "7 - 9 = -2."]).unwrap_or_default();
    assert_eq!(step, 2);
}

#[test]
fn an_invented_operand_is_located_but_a_constant_the_problem_lacks_is_not() {
    let p = "A film lasts 3 hours. How many minutes is that?";
    assert_eq!(located(p, &["3 * 60 = 180.", "The answer is 180."]), None);
    let (step, why) = located(p, &["3 * 45 = 135.", "The answer is 135."]).unwrap_or_default();
    assert_eq!(step, 0);
    assert!(why.contains("operand 45 is neither"), "{why}");
}

#[test]
fn a_result_is_used_as_often_as_it_was_computed() {
    let later = ["16 - 9 = 7.", "8 + 8 = 16.", "The answer is 16."];
    let (step, why) = located(STAMPS, &later).unwrap_or_default();
    assert_eq!(step, 0);
    assert!(why.contains("operand 16 is neither"), "{why}");
    let reused = [
        "8 + 8 = 16.",
        "16 - 9 = 7.",
        "16 + 7 = 23.",
        "The answer is 23.",
    ];
    assert_eq!(located(STAMPS, &reused).map(|(s, _)| s), Some(2));
}

#[test]
fn an_unused_quantity_a_missing_result_or_another_answer_flags_the_last_step() {
    let (step, why) = located(STAMPS, &["8 + 8 = 16.", "The answer is 16."]).unwrap_or_default();
    assert_eq!(step, 1);
    assert!(why.contains("problem's 9 is never used"), "{why}");
    let (step, why) =
        located(STAMPS, &["Sven has 7 stamps.", "The answer is 7."]).unwrap_or_default();
    assert_eq!(step, 1);
    assert!(why.contains("no step computes"), "{why}");
    let (step, why) =
        located(STAMPS, &["8 + 8 = 16.", "16 - 9 = 7.", "The answer is 16."]).unwrap_or_default();
    assert_eq!(step, 2);
    assert!(
        why.contains("answer 16 is not the last computed result, 7"),
        "{why}"
    );
}

#[test]
fn a_computation_written_again_restates_it_and_takes_nothing() {
    let p = "Zoe has 6 postcards. She finds 2 more postcards. How many postcards does Zoe have \
             now?";
    let again = [
        "1. 6 + 2 = 8",
        "2. Zoe has 6 + 2 = 8 postcards.",
        "The answer is 8.",
    ];
    assert_eq!(located(p, &again), None);
    // Another operation on spent operands is no restatement.
    let other = ["6 + 2 = 8", "So 6 * 2 = 12.", "The answer is 12."];
    let (step, why) = located(p, &other).unwrap_or_default();
    assert_eq!(step, 1);
    assert!(why.contains("operand 6 is used more often"), "{why}");
    // A restated earlier step is not the last result: the answer stays the last computed one.
    let recap = [
        "8 + 8 = 16.",
        "16 - 9 = 7.",
        "Recall 8 + 8 = 16.",
        "The answer is 7.",
    ];
    assert_eq!(located(STAMPS, &recap), None);
    let recap = [
        "8 + 8 = 16.",
        "16 - 9 = 7.",
        "Recall 8 + 8 = 16.",
        "The answer is 16.",
    ];
    assert_eq!(located(STAMPS, &recap).map(|(s, _)| s), Some(3));
    // While the operands are there to take, a repeat is a second computation, not a restatement.
    let p = "Ana buys 3 boxes of 5 pens on Monday and 3 boxes of 5 pens on Tuesday. How many \
             pens does she buy?";
    let twice = [
        "3 * 5 = 15.",
        "3 * 5 = 15.",
        "15 + 15 = 30.",
        "The answer is 30.",
    ];
    assert_eq!(located(p, &twice), None);
    let (step, why) =
        located(p, &["3 * 5 = 15.", "15 + 15 = 30.", "The answer is 30."]).unwrap_or_default();
    assert_eq!(step, 1);
    assert!(why.contains("operand 15 "), "{why}");
}

#[test]
fn words_percentages_commas_and_units_are_read() {
    let p = "A shop sells a $1,200 bike at a 25% discount, and twice a year it adds a bell \
             for 15 dollars. What does the bike cost with one bell?";
    let ok = [
        "The discount is 0.25 * $1,200 = $300.",
        "The bike costs $1,200 - $300 = $900.",
        "With the bell: 900 + 15 = 915 dollars.",
        "The answer is 915.",
    ];
    // `1,200` is used twice, but the problem gives it once.
    assert_eq!(located(p, &ok).map(|(s, _)| s), Some(1));
    let once = [
        "The bike costs 75% of it: 1,200 * 75 / 100 = 900 dollars.",
        "900 + 15 = 915 dollars.",
        "The answer is 915.",
    ];
    // 75 is neither given nor a constant; written as 100 - 25 it is derived.
    assert_eq!(located(p, &once).map(|(s, _)| s), Some(0));
    let derived = [
        "100 - 25 = 75 percent is paid.",
        "1,200 * 75 / 100 = 900 dollars.",
        "900 + 15 = 915 dollars.",
        "The answer is 915.",
    ];
    assert_eq!(located(p, &derived), None);
    // A number word may be used ("twice" = 2) but need not be.
    let p = "Ana reads 12 pages twice. How many pages?";
    assert_eq!(located(p, &["12 * 2 = 24.", "The answer is 24."]), None);
}

proptest! {
    #[test]
    fn never_panics(problem in ".{0,120}", step in ".{0,160}", answer in ".{0,40}") {
        let _ = first_underived(&problem, &[step, answer]);
    }

    /// Any chain of additions and subtractions over the problem's quantities, each used once
    /// and ending in the stated answer, is a derivation; leaving out the last quantity is not.
    #[test]
    fn every_generated_derivation_is_accepted(start in 1i64..50, moves in proptest::collection::vec((any::<bool>(), 1i64..20), 1..5)) {
        let mut problem = format!("Ana has {start} marbles.");
        let mut lines = Vec::new();
        let mut total = start;
        for (gain, k) in &moves {
            // Losses never take the count below one (a signed result is not a lone number).
            let (verb, op, next) = if *gain || *k >= total {
                ("finds", '+', total + k)
            } else {
                ("gives away", '-', total - k)
            };
            problem.push_str(&format!(" She {verb} {k} marbles."));
            lines.push(format!("{total} {op} {k} = {next} marbles."));
            total = next;
        }
        problem.push_str(" How many marbles does Ana have?");
        let mut all = lines.clone();
        all.push(format!("The answer is {total}."));
        prop_assert_eq!(first_underived(&problem, &all), None);
        let short: Vec<String> = lines.iter().take(lines.len() - 1).cloned().collect();
        if !short.is_empty() {
            let mut cut = short.clone();
            cut.push(format!("The answer is {}.", total - 1));
            prop_assert!(first_underived(&problem, &cut).is_some());
        }
    }
}
