//! The `ground` critic: a model-free check that every number a solution works with comes from
//! somewhere.
//!
//! A number is *grounded* when it is given by the problem (digits, with commas, decimals,
//! currency and units around them; percentages, which also give their fraction, `25%` → 0.25;
//! number words such as `three`, `twenty-five`, `two hundred`, `a dozen`, `half`, `twice`,
//! `triple`), the value of an arithmetic claim of an earlier step or earlier in the same step
//! (both sides of `a op b = c`, and calculator annotations), or one of [`CONSTANTS`].
//!
//! Each step is read left to right. A number next to an arithmetic operator is an *operand* and
//! must be grounded. A number right after `=` is a claimed result: it becomes grounded (whether
//! the claim is true is the `arith` critic's business). Any other number (prose: "so she has 15
//! left") must be grounded or follow from two grounded numbers by one operation (an implicit
//! step, "half of 10 is 5"). The first step holding a number that is none of these is the
//! mistake; the rationale names the number.

use async_trait::async_trait;

use super::arith::check;
use super::{Critic, CriticError, Submission, Verdict};
use crate::answer::Number;
use crate::calc::expr::{partials_ending, tokenize_spans, Tok};
use crate::run::Env;

/// Numbers every solution may use without the problem giving them: (value, why).
pub const CONSTANTS: &[(i128, &str)] = &[
    (1, "one of something"),
    (2, "double, half, twice, a pair"),
    (7, "days in a week"),
    (12, "months in a year, inches in a foot, a dozen"),
    (24, "hours in a day"),
    (52, "weeks in a year"),
    (60, "minutes in an hour, seconds in a minute"),
    (100, "percent, cents in a dollar, centimetres in a metre"),
    (365, "days in a year"),
    (
        1000,
        "grams in a kilogram, metres in a kilometre, millilitres in a litre",
    ),
];

const UNITS: &[(&str, i128)] = &[
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("sixteen", 16),
    ("seventeen", 17),
    ("eighteen", 18),
    ("nineteen", 19),
];

const TENS: &[(&str, i128)] = &[
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

/// Words that stand for a factor and its fraction.
const FACTORS: &[(&str, i128)] = &[
    ("half", 2),
    ("halves", 2),
    ("twice", 2),
    ("double", 2),
    ("doubles", 2),
    ("doubled", 2),
    ("pair", 2),
    ("pairs", 2),
    ("couple", 2),
    ("third", 3),
    ("thirds", 3),
    ("triple", 3),
    ("triples", 3),
    ("tripled", 3),
    ("thrice", 3),
    ("quarter", 4),
    ("quarters", 4),
    ("quadruple", 4),
    ("fourth", 4),
    ("fourths", 4),
    ("fifth", 5),
    ("fifths", 5),
    ("sixth", 6),
    ("sixths", 6),
    ("seventh", 7),
    ("sevenths", 7),
    ("eighth", 8),
    ("eighths", 8),
    ("ninth", 9),
    ("ninths", 9),
    ("tenth", 10),
    ("tenths", 10),
    ("twin", 2),
    ("twins", 2),
    ("triplet", 3),
    ("triplets", 3),
    ("dozen", 12),
    ("dozens", 12),
];

fn lookup(table: &[(&str, i128)], w: &str) -> Option<i128> {
    table.iter().find(|(k, _)| *k == w).map(|(_, v)| *v)
}

fn int(n: i128) -> Option<Number> {
    Number::new(n, 1)
}

/// The numbers a text gives in words: number words (compounds like `twenty-five` and
/// `three hundred` as one number, its parts too) and the factor words of `FACTORS` (with
/// their fractions: `half` gives 2 and 1/2).
pub(super) fn word_numbers(text: &str) -> Vec<Number> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut current: Option<i128> = None;
    let flush = |current: &mut Option<i128>, out: &mut Vec<Number>| {
        if let Some(v) = current.take() {
            out.extend(int(v));
        }
    };
    for w in words {
        if let Some(v) = lookup(UNITS, w).or_else(|| lookup(TENS, w)) {
            out.extend(int(v));
            current = Some(match current {
                // "twenty five": the tens take the unit.
                Some(c) if c % 100 >= 20 && c % 10 == 0 && v < 10 => c + v,
                Some(c) if c >= 100 && c % 100 == 0 => {
                    out.extend(int(c));
                    c + v
                }
                Some(c) => {
                    out.extend(int(c));
                    v
                }
                None => v,
            });
            continue;
        }
        if let Some(scale) = match w {
            "hundred" => Some(100),
            "thousand" => Some(1000),
            _ => None,
        } {
            out.extend(int(scale));
            current = Some(current.unwrap_or(1).saturating_mul(scale));
            continue;
        }
        // "two hundred and five": "and" joins a compound.
        if w == "and" && current.is_some_and(|c| c >= 100 && c % 100 == 0) {
            continue;
        }
        flush(&mut current, &mut out);
        if let Some(f) = lookup(FACTORS, w) {
            out.extend(int(f));
            out.extend(Number::new(1, f));
        }
    }
    flush(&mut current, &mut out);
    out
}

/// `n` / 100 when the number `n` ending at byte `end` of `text` is a percentage (`25%`,
/// `25 percent`).
pub(super) fn percent_value(text: &str, end: usize, n: Number) -> Option<Number> {
    let after = text.get(end..).unwrap_or_default().trim_start();
    let percent = after.starts_with('%') || after.to_lowercase().starts_with("percent");
    percent
        .then(|| Number::new(n.num, n.den.saturating_mul(100)))
        .flatten()
}

/// Every number a problem gives: its digits (a percentage also as a fraction) and its words.
pub fn given(problem: &str) -> Vec<Number> {
    let spans = tokenize_spans(problem);
    let mut out = Vec::new();
    for (k, (tok, range)) in spans.iter().enumerate() {
        let Tok::Num(n, _) = tok else { continue };
        out.push(*n);
        out.extend(percent_value(problem, range.end, *n));
        // "1/2 of the cake": a fraction written with a slash gives its value too.
        if let (Some((Tok::Op('/'), _)), Some((Tok::Num(d, _), _))) =
            (spans.get(k + 1), spans.get(k + 2))
        {
            if n.den == 1 && d.den == 1 && d.num != 0 {
                out.extend(Number::new(n.num, d.num));
            }
        }
    }
    out.extend(word_numbers(problem));
    out
}

/// The set of grounded numbers as a solution is read.
struct Known(Vec<Number>);

impl Known {
    fn has(&self, n: Number) -> bool {
        self.0.contains(&n)
    }
    fn add(&mut self, n: Number) {
        if !self.0.contains(&n) {
            self.0.push(n);
        }
    }
    /// `n` follows from two grounded numbers by one operation.
    fn derivable(&self, n: Number) -> bool {
        let k = &self.0;
        k.iter().any(|&a| {
            k.iter().any(|&b| {
                [
                    crate::calc::expr::add(a, b),
                    crate::calc::expr::sub(a, b),
                    crate::calc::expr::mul(a, b),
                    crate::calc::expr::div(a, b),
                ]
                .into_iter()
                .flatten()
                .any(|v| v == n)
            })
        })
    }
}

/// What a number in a step is.
#[derive(Debug, PartialEq)]
enum Role {
    Operand,
    Result,
    Prose,
}

fn is_equals(step: &str, span: &std::ops::Range<usize>) -> bool {
    step.get(span.clone()) == Some("=")
}

/// The first ungrounded number of `steps`: (step index, the number as written, its role).
pub fn first_ungrounded(problem: &str, steps: &[String]) -> Option<(usize, String, bool)> {
    let mut known = Known(given(problem));
    for &(c, _) in CONSTANTS {
        known.add(Number::new(c, 1)?);
    }
    known.add(Number::new(0, 1)?);
    for (i, step) in steps.iter().enumerate() {
        let spans = tokenize_spans(step);
        // Values computed in this step count as grounded within it: its claims' values, and
        // every operation's value after the expression that computes it (`20 - (12 + 4) = 20
        // - 16` computes 16 before the 16 after `=`; in `5 - 2 + 3` the literal 3 is not the
        // value of `5 - 2`, which is computed only where that expression ends).
        let claimed: Vec<Number> = check(step)
            .iter()
            .filter_map(|c| Number::parse(&c.value))
            .collect();
        let partial = partials_ending(step);
        let computed_before = |at: usize, n: &Number| {
            claimed.contains(n) || partial.iter().any(|(end, v)| *end <= at && v == n)
        };
        let mut computed: Vec<Number> = claimed.clone();
        computed.extend(partial.iter().map(|(_, v)| *v));
        for (k, (tok, range)) in spans.iter().enumerate() {
            let Tok::Num(n, _) = tok else { continue };
            let prev = k.checked_sub(1).and_then(|p| spans.get(p));
            let next = spans.get(k + 1);
            // Next to an operator (parentheses do not count: "1.5 (which is 150%)").
            let op = |t: Option<&(Tok, std::ops::Range<usize>)>| matches!(t, Some((Tok::Op(_), _)));
            // A leading minus sign is a sign, not an operator.
            let signed_start = matches!(prev, Some((Tok::Op('-'), _)))
                && k.checked_sub(2)
                    .and_then(|p| spans.get(p))
                    .is_none_or(|(t, _)| matches!(t, Tok::Break));
            let role = if op(next) || (op(prev) && !signed_start) {
                Role::Operand
            } else if prev.is_some_and(|(t, r)| *t == Tok::Break && is_equals(step, r)) {
                Role::Result
            } else {
                Role::Prose
            };
            let here = computed_before(range.start, n);
            let ok = match role {
                Role::Result => true,
                Role::Operand => known.has(*n) || here,
                Role::Prose => known.has(*n) || here || known.derivable(*n),
            };
            if !ok {
                let text = step.get(range.clone()).unwrap_or_default().to_string();
                return Some((i, text, role == Role::Operand));
            }
            known.add(*n);
            if let Some(p) = percent_value(step, range.end, *n) {
                known.add(p);
            }
        }
        for v in computed {
            known.add(v);
        }
    }
    None
}

/// The grounding verifier as a critic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ground;

#[async_trait]
impl Critic for Ground {
    fn name(&self) -> &str {
        "ground"
    }

    async fn locate(&self, _env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        Ok(match first_ungrounded(input.problem, input.steps) {
            Some((i, n, operand)) => Verdict {
                step: Some(i),
                parsed: true,
                confidence: 1.0,
                rationale: format!(
                    "{} {n} is neither in the problem, nor the result of an earlier step, nor a \
                     common constant.",
                    if operand { "the operand" } else { "the number" }
                ),
                usage: Default::default(),
            },
            None => Verdict {
                step: None,
                parsed: true,
                confidence: 1.0,
                rationale: "every number is given, computed or a common constant".into(),
                usage: Default::default(),
            },
        })
    }
}

#[cfg(test)]
#[path = "ground_tests.rs"]
mod tests;
