use super::*;

fn slip(text: &str) -> Option<(String, String, String)> {
    first_slip(text, true).map(|s| (s.expr, s.written, s.exact))
}

#[test]
fn the_first_wrong_result_is_found_with_its_place() {
    let t = "He has 8 + 9 = 16 stamps, then 16 - 3 = 13.";
    let s = first_slip(t, true).expect("a slip");
    assert_eq!(
        (s.expr.as_str(), s.written.as_str(), s.exact.as_str()),
        ("8 + 9", "16", "17")
    );
    assert_eq!(&t[s.at.clone()], "16");
    assert_eq!(
        s.at.start,
        t.find("= 16").map(|p| p + 2).unwrap_or_default()
    );
    // Right results are counted, not changed.
    assert_eq!(results("3 * 4 = 12 and 12 / 5 = 2.4", true), (2, None));
}

#[test]
fn currency_decimals_and_fractions_are_written_as_a_calculator_would() {
    assert_eq!(
        slip("It costs 4 * $1.25 = $6."),
        Some(("4 * $1.25".into(), "6".into(), "5".into()))
    );
    assert_eq!(slip("10 / 3 = 3.33 each"), None, "a rounded decimal agrees");
    assert_eq!(slip("10 / 3 = 3 each").map(|s| s.2), Some("3.33".into()));
    assert_eq!(slip("7 / 2 = 3 each").map(|s| s.2), Some("3.5".into()));
    assert_eq!(slip("2 - 7 / 3 = 1").map(|s| s.2), Some("-0.33".into()));
}

#[test]
fn never_inside_a_number_nor_a_non_arithmetic_equals() {
    // Assignments, names and prose around `=` are not results.
    assert_eq!(slip("Let x = 5 and total = 7"), None);
    assert_eq!(
        slip("x = 3 + 4"),
        None,
        "the right side has the operator: not a result"
    );
    assert_eq!(slip("the answer = 12 apples"), None);
    // "2 + 3 = 5th" and "2 x 3 = 6x" are not numbers.
    assert_eq!(slip("2 + 3 = 4th place"), None);
    // A text cut at a token limit may stop inside the number: not read.
    assert_eq!(first_slip("so 12 + 5 = 1", false), None);
    assert!(first_slip("so 12 + 5 = 1", true).is_some());
    // The whole number is replaced, never a part of it.
    let t = "so 12 + 5 = 1,700 in all";
    let s = first_slip(t, true).expect("a slip");
    assert_eq!(&t[s.at], "1,700");
}

#[test]
fn a_decoder_knows_when_it_writes_a_result() {
    for t in [
        "so 17 + 25 =",
        "so 17 + 25 = ",
        "so 17 + 25 = 4",
        "so 17 + 25 = 42",
        "It costs 3 * $4 = $",
        "It costs 3 * $4 = $1",
        "2 * 3 = 6 * 2 = 1",
        "total: 1,200 / 4 = 30",
        "1.5 * 2 = 3.",
    ] {
        assert!(in_result(t), "{t}");
    }
    for t in [
        "",
        "x =",
        "x = 5",
        "so 17 + 25",
        "so 17 + 25 = 42 ",
        "so 17 + 25 = 42 and 3",
        "12 = 1",
        "5 - 8 = -",
        "25% of 2000 = 5",
    ] {
        assert!(!in_result(t), "{t}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics(s in ".{0,200}", complete: bool) {
        let _ = results(&s, complete);
        let _ = in_result(&s);
    }

    #[test]
    fn a_result_is_being_written_from_its_equals_sign_to_its_last_digit(
        a in 0i64..10_000, b in 0i64..10_000, v in 0i64..100_000, mul: bool,
    ) {
        let op = if mul { "*" } else { "+" };
        let t = format!("Then {a} {op} {b} = {v} apples.");
        let eq = t.find('=').unwrap_or(0);
        let end = eq + 2 + v.to_string().len();
        for p in 0..=t.len() {
            let expected = p > eq && p <= end;
            proptest::prop_assert_eq!(in_result(&t[..p]), expected, "{:?}", &t[..p]);
        }
    }

    #[test]
    fn a_substituted_result_holds(a in -1000i64..1000, b in 1i64..1000, off in 1i64..50) {
        for (op, v) in [("+", a + b), ("-", a - b), ("*", a * b)] {
            let t = format!("so {a} {op} {b} = {} now", v + off);
            let s = first_slip(&t, true);
            proptest::prop_assert!(s.is_some(), "{}", t);
            if let Some(s) = s {
                let fixed = format!("{}{}{}", &t[..s.at.start], s.exact, &t[s.at.end..]);
                proptest::prop_assert_eq!(results(&fixed, true), (1, None), "{}", fixed);
            }
        }
    }
}
