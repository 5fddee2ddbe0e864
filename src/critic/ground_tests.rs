use super::*;

fn steps(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn located(problem: &str, v: &[&str]) -> Option<(usize, String)> {
    first_ungrounded(problem, &steps(v)).map(|(i, n, _)| (i, n))
}

#[test]
fn an_invented_number_is_located_and_named() {
    let p = "Tom has 5 apples. He buys 3 more. How many apples does he have?";
    assert_eq!(located(p, &["He has 5 + 3 = 8 apples.", "#### 8"]), None);
    assert_eq!(
        located(p, &["He buys 3 more.", "5 + 4 = 9 apples.", "#### 9"]),
        Some((1, "4".into()))
    );
}

#[test]
fn a_number_from_a_later_step_is_not_grounded_yet() {
    let p = "Ana has 5 pens and buys 3 more. Then the number of pens doubles. How many now?";
    let ok = ["5 + 3 = 8 pens.", "8 * 2 = 16 pens.", "#### 16"];
    assert_eq!(located(p, &ok), None);
    let early = ["16 - 3 = 13 pens.", "5 + 3 = 8 pens.", "8 * 2 = 16 pens."];
    assert_eq!(located(p, &early), Some((0, "16".into())));
}

#[test]
fn units_currency_commas_decimals_and_percentages_are_read() {
    let p = "A trip takes 2 hours and costs $1,200. A 25% discount applies. \
             Each of 4 friends pays 1.5 dollars for snacks.";
    let ok = [
        "The trip takes 2 * 60 = 120 minutes.",
        "The discount is 0.25 * $1,200 = $300.",
        "So the trip costs 1,200 - 300 = $900.",
        "Snacks cost 4 x 1.5 = 6 dollars.",
        "900 + 6 = 906. #### 906",
    ];
    assert_eq!(located(p, &ok), None);
    let bad = ["The discount is 0.3 * 1,200 = 360."];
    assert_eq!(located(p, &bad), Some((0, "0.3".into())));
}

#[test]
fn numbers_written_as_words_are_given() {
    let p = "Mia has three dozen eggs and twenty-five cups. She uses half of the eggs.";
    let ok = [
        "3 * 12 = 36 eggs.",
        "36 / 2 = 18 eggs are used.",
        "She has 25 cups.",
        "#### 18",
    ];
    assert_eq!(located(p, &ok), None);
    assert_eq!(
        located(p, &["3 * 12 = 36", "36 * 0.5 = 18", "18 + 25 = 43"]),
        None,
        "half gives 1/2"
    );
    assert_eq!(located(p, &["3 * 13 = 39"]), Some((0, "13".into())));
    let words = given("two hundred and five, a dozen");
    for n in [2, 100, 205, 12] {
        assert!(
            words.contains(&Number::new(n, 1).unwrap_or_else(|| panic!("{n}"))),
            "{n}: {words:?}"
        );
    }
}

#[test]
fn prose_may_restate_or_take_one_implicit_step_but_operands_may_not() {
    let p = "Sam has 10 marbles and gives away 4.";
    // "half of 10 is 5" in prose: one operation on given numbers.
    assert_eq!(located(p, &["Half of 10 is 5.", "5 + 4 = 9"]), None);
    // An operand must be given or computed: 6 is 10 - 4, but nothing computed it.
    assert_eq!(located(p, &["He keeps 6 * 2 = 12"]), Some((0, "6".into())));
    // A prose number two operations away from the givens is invented.
    assert_eq!(
        located(p, &["He now has 97 marbles."]),
        Some((0, "97".into()))
    );
}

#[test]
fn annotations_and_chains_ground_their_results() {
    let p = "Natalia sold clips to 48 of her friends in April, and then she sold half as many \
             clips in May. How many clips did Natalia sell altogether in April and May?";
    let gold = [
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.",
        "#### 72",
    ];
    assert_eq!(located(p, &gold), None);
    assert_eq!(
        located(p, &["2 + 48 = 50 * 2 = 100 clips.", "#### 100"]),
        None,
        "a chained value is computed within the step"
    );
}

#[test]
fn latex_rewrites_percentages_and_ordinals_are_followed() {
    let p = "Of 20 cars, 12 are automatic and 4 are manual. Three-fourths of the 8 vans are red, \
             and 45% of the 200 trucks are new.";
    let ok = [
        "Semi-automatic: 20 - (12 + 4) = 20 - 16 = 4 cars.",
        "\\[ \\frac{3}{4} \\] of the vans: \\( 8 \\times 3/4 = 6 \\) red vans.",
        "New trucks: \\[ 200 + (0.45 \\times 200) = 200 + 90 = 290 \\]",
        "That is 45% of them, i.e. 0.45 of 200.",
        "The total is \\(5\\) kinds of answers.",
    ];
    assert_eq!(located(p, &ok), None);
    assert_eq!(
        located(p, &["\\( 8 \\times 5 = 40 \\)"]),
        Some((0, "5".into())),
        "LaTeX operators make operands"
    );
}

proptest::proptest! {
    #[test]
    fn never_panics(problem in ".{0,120}", step in ".{0,160}") {
        let _ = first_ungrounded(&problem, &[step]);
    }
}

#[test]
fn a_value_is_computed_only_where_its_expression_ends() {
    // 3 is the value of `5 - 2`, but the literal 3 in `5 - 2 + 3` is not that result.
    let p = "Lea has 5 cups and breaks 2. How many cups are left?";
    assert_eq!(located(p, &["5 - 2 + 3"]), Some((0, "3".into())));
    assert_eq!(located(p, &["5 - 2 = 3 cups.", "#### 3"]), None);
    // A value computed on the left of `=` grounds the same value after it.
    let q = "Ben has 20 stickers. He gives 12 to Ann and 4 to Bo. How many are left?";
    assert_eq!(located(q, &["20 - (12 + 4) = 20 - 16 = 4 stickers."]), None);
}
