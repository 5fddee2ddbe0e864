//! The `arith` critic: an exact verifier of arithmetic claims.
//!
//! Every `a op b = c` claim in a step (chains like `a = b op c = d` included, with `+ - * / x ×`,
//! parentheses, unary minus, decimals, `$` and thousands separators) and every GSM8K
//! calculator annotation `<<expr=c>>` is evaluated with exact rational arithmetic. A claimed
//! value written with d decimals is accepted when it is the exact value rounded to d places.
//! The first step holding a false claim is the mistake.

use async_trait::async_trait;

use super::{Critic, CriticError, Submission, Verdict};
use crate::calc::expr::{parse_all, tokenize};
use crate::calc::{agrees, equations};
use crate::run::Env;

/// One checked claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The claim as written.
    pub text: String,
    /// It holds.
    pub holds: bool,
    /// The exact value of its left side.
    pub value: String,
}

/// Every arithmetic claim of one step, checked.
pub fn check(step: &str) -> Vec<Claim> {
    let mut claims = Vec::new();
    let mut rest = String::new();
    let mut s = step;
    while let Some(open) = s.find("<<") {
        rest.push_str(&s[..open]);
        let Some(close) = s[open..].find(">>") else {
            s = &s[open..];
            break;
        };
        let inner = &s[open + 2..open + close];
        if let Some((lhs, rhs)) = inner.rsplit_once('=') {
            if let (Some((v, _, _)), Some((c, _, d))) =
                (parse_all(&tokenize(lhs)), parse_all(&tokenize(rhs)))
            {
                claims.push(Claim {
                    text: format!("<<{inner}>>"),
                    holds: agrees(v, c, d),
                    value: v.to_string(),
                });
            }
        }
        s = &s[open + close + 2..];
    }
    rest.push_str(s);
    claims.extend(equations(&rest).into_iter().map(|e| Claim {
        text: format!(
            "{} = {}",
            rest.get(e.left.clone()).unwrap_or_default(),
            rest.get(e.right.clone()).unwrap_or_default()
        ),
        holds: e.holds,
        value: e.value.to_string(),
    }));
    claims
}

/// The first step with a false claim, and that claim.
pub fn first_false(steps: &[String]) -> Option<(usize, Claim)> {
    steps
        .iter()
        .enumerate()
        .find_map(|(i, s)| check(s).into_iter().find(|c| !c.holds).map(|c| (i, c)))
}

/// The exact arithmetic verifier as a critic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arith;

#[async_trait]
impl Critic for Arith {
    fn name(&self) -> &str {
        "arith"
    }

    async fn locate(&self, _env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        Ok(match first_false(input.steps) {
            Some((i, c)) => Verdict {
                step: Some(i),
                parsed: true,
                confidence: 1.0,
                rationale: format!("`{}` is false: its left side is {}.", c.text, c.value),
                usage: Default::default(),
            },
            None => {
                let n: usize = input.steps.iter().map(|s| check(s).len()).sum();
                Verdict {
                    step: None,
                    parsed: true,
                    confidence: 1.0,
                    rationale: format!("all {n} arithmetic claims hold"),
                    usage: Default::default(),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_false_claim_is_quoted_without_the_prose_around_it() {
        // The wrong equation sits at the end of a long sentence: the quote is the equation.
        let step = "We can now calculate the amount of money Betty needs to buy the wallet. \
                    Since Betty has only half of the money she needs, she needs to buy \
                    1/2 * 100 = 20 dollars.";
        let (i, claim) = first_false(&steps(&[step])).expect("a false claim");
        assert_eq!(
            (i, claim.text.as_str(), claim.value.as_str()),
            (0, "1/2 * 100 = 20", "50")
        );
        let two = check("The price is 4 * 1.25 = 5.00, and 5.00 + 2 = 7.5 in all.");
        let texts: Vec<(&str, bool)> = two.iter().map(|c| (c.text.as_str(), c.holds)).collect();
        assert_eq!(
            texts,
            [("4 * 1.25 = 5.00", true), ("5.00 + 2 = 7.5", false)]
        );
        let annotated = check("She sold 48+24 = <<48+24=73>>73 in all.");
        assert!(annotated
            .iter()
            .any(|c| c.text == "<<48+24=73>>" && !c.holds));
    }

    #[test]
    fn finds_the_planted_step() {
        let s = steps(&[
            "Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
            "She sold 48+24 = <<48+24=73>>73 in all.",
            "#### 73",
        ]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(1));
        let s = steps(&[
            "A = (-9 - 5 - 0) = (-9 - 5) = -14.",
            "C = ((3 * 4 * 5) * (7 - -7 * 4)) = ((3 * 4 * 5) * (7 - 28)) = -1260.",
        ]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(1));
        let s = steps(&[
            "Each costs $1.25, so 4 x $1.25 = $5.00.",
            "Half of that is 5 / 2 = 2.5.",
            "Then 2.5 - 3 = -0.5.",
            "And -0.5 * 4 = -3.",
        ]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(3));
        let s = steps(&["1/3 + 1/6 = 1/2", "12 / 7 = 1.71", "12 / 7 = 1.72"]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(2));
        let s = steps(&["The total is 1,200 + 300 = 1,500.", "So 1,500 / 4 = 375."]);
        assert_eq!(first_false(&s), None);
        let s = steps(&["He has 5 boxes.", "x = 7", "3 x 4 = 12", "3 × 5 = 16"]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(3));
    }

    #[test]
    fn annotation_errors_count_even_when_the_prose_is_right() {
        let s = steps(&["0.2 x 50 = $<<0.2*50=11>>10."]);
        assert_eq!(first_false(&s).map(|x| x.0), Some(0));
        assert_eq!(
            check("12/60 = $<<12/60=0.2>>0.2 per minute")
                .iter()
                .filter(|c| !c.holds)
                .count(),
            0
        );
    }

    #[test]
    fn latex_operators_and_delimiters_are_read() {
        let c = check("\\[ 200 + (0.45 \\times 200) = 200 + 91 \\]");
        assert!(c.iter().any(|c| !c.holds), "{c:?}");
        let c = check("\\( 6 \\cdot 7 = 42 \\) and \\( 84 \\div 2 = 42 \\)");
        assert_eq!(c.iter().filter(|c| c.holds).count(), 2, "{c:?}");
        assert!(check("\\text{total} = 5").is_empty());
        // A side cut at an operator or a variable is not a claim.
        assert!(check("20\\% \\times 500 = 0.20 \\times 500 = 100")
            .iter()
            .all(|c| c.holds));
        assert!(check("we can write: 28 = 2 \\times 2f").is_empty());
        assert!(check("25% of $2,000 = 0.25 * 2000 = 500")
            .iter()
            .all(|c| c.holds));
        let c = check("4 \\times 2^3 = 4 \\times 8 = 32, and 3^2 = 10");
        assert_eq!(
            c.iter().map(|c| c.holds).collect::<Vec<_>>(),
            [true, true, false]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = check(&s);
        }

        #[test]
        fn true_sums_hold_and_off_by_one_fails(a in -10_000i64..10_000, b in -10_000i64..10_000) {
            let ok = format!("{a} + {b} = {}", a + b);
            proptest::prop_assert!(check(&ok).iter().all(|c| c.holds), "{}", ok);
            let bad = format!("{a} * {b} = {}", a * b + 1);
            proptest::prop_assert!(check(&bad).iter().any(|c| !c.holds), "{}", bad);
        }
    }
}
