//! Exact arithmetic over text, shared by the `arith` and `ground` critics and the calculator
//! the runtime runs in the decode loop: a reader of arithmetic ([`expr`]: numbers with
//! thousands separators, decimals and currency, `+ - * / ^ x × · ÷ −`, parentheses, LaTeX
//! operators and delimiters, exact rationals), the equations written in a text
//! ([`equations`]), and the first result a writer got wrong ([`first_slip`]).

pub(crate) mod expr;

use std::ops::Range;

use crate::answer::Number;
use expr::{add, parse_all, tokenize_spans, Tok};

pub use expr::eval;

/// The longest suffix (left of `=`) or prefix (right of `=`) of a segment that is an
/// expression: (value, operator count, decimals if a lone number, where it is in `segment`).
fn side(segment: &str, left: bool) -> Option<(Number, usize, Option<u32>, Range<usize>)> {
    let spanned = tokenize_spans(segment);
    let toks: Vec<Tok> = spanned.iter().map(|(t, _)| *t).collect();
    let (lo, hi) = if left {
        let start = toks
            .iter()
            .rposition(|t| *t == Tok::Break)
            .map_or(0, |p| p + 1);
        (start, toks.len())
    } else {
        let end = toks
            .iter()
            .position(|t| *t == Tok::Break)
            .unwrap_or(toks.len());
        (0, end)
    };
    let n = hi - lo;
    (0..n)
        .find_map(|k| {
            let (a, z) = if left { (lo + k, hi) } else { (lo, hi - k) };
            let (v, ops, dec) = parse_all(toks.get(a..z)?)?;
            let start = spanned.get(a)?.1.start;
            let end = spanned.get(z.checked_sub(1)?)?.1.end;
            Some((v, ops, dec, start, end, a, z))
        })
        .and_then(|(v, ops, dec, start, end, a, z)| {
            // An expression cut at an operator ("20% × 500": the `%` ends the left side, so `500`
            // alone is not what the writer equated) or at a variable's coefficient ("2 × 2f") is
            // not a claim.
            let cut = if left {
                a.checked_sub(1).and_then(|p| toks.get(p))
            } else {
                toks.get(z)
            };
            if matches!(cut, Some(Tok::Op(_))) {
                return None;
            }
            if !left
                && segment
                    .get(end..)
                    .is_some_and(|r| r.starts_with(|c: char| c.is_alphabetic()))
            {
                return None;
            }
            Some((v, ops, dec, start..end))
        })
}

/// Is `claimed` the exact `value`, or `value` rounded to the claim's `decimals` places?
pub(crate) fn agrees(value: Number, claimed: Number, decimals: Option<u32>) -> bool {
    if value == claimed {
        return true;
    }
    let Some(d) = decimals.filter(|d| (1..=6).contains(d)) else {
        return false;
    };
    let Some(diff) = add(
        value,
        Number::new(-claimed.num, claimed.den).unwrap_or(claimed),
    ) else {
        return false;
    };
    // |diff| * 10^d * 2 <= 1
    let scale = 10i128.pow(d) * 2;
    diff.num
        .checked_abs()
        .and_then(|n| n.checked_mul(scale))
        .is_some_and(|n| n <= diff.den)
}

/// One equation written in a text: `left = right`, both sides arithmetic, at least one of them
/// with an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Equation {
    /// Where the left side is in the text (byte range).
    pub left: Range<usize>,
    /// Where the right side is.
    pub right: Range<usize>,
    /// The exact value of the left side.
    pub value: Number,
    /// Operators on the left side and on the right.
    pub ops: (usize, usize),
    /// The right side equals the left (a lone number written with d decimals: rounded to d
    /// places).
    pub holds: bool,
}

impl Equation {
    /// A computed result: an expression with an operator `=` a lone number (`17 + 25 = 42`,
    /// not `x = 5`, `12 = 12` or `6 × 7 = 2 × 21`).
    pub fn is_result(&self) -> bool {
        self.ops.0 > 0 && self.ops.1 == 0
    }
}

/// Every equation in `text`, left to right (chains `a = b + c = d` give one per `=`). A side
/// cut at an operator or at a variable's coefficient is not a side; "25% of 2000 = 500" (a
/// share of a lone number) is not an equation.
pub fn equations(text: &str) -> Vec<Equation> {
    let mut out = Vec::new();
    let mut starts = vec![0];
    starts.extend(text.match_indices('=').map(|(i, _)| i + 1));
    let segments: Vec<(usize, &str)> = starts
        .iter()
        .zip(text.split('='))
        .map(|(&s, seg)| (s, seg))
        .collect();
    for (&(lo, l), &(ro, r)) in segments.iter().zip(segments.iter().skip(1)) {
        let (Some((lv, lops, _, lr)), Some((rv, rops, rdec, rr))) = (side(l, true), side(r, false))
        else {
            continue;
        };
        if lops == 0 && rops == 0 {
            continue;
        }
        // "25% of 2000 = 0.25 × 2000": the left side is a share of the lone number, not it.
        let before = l.get(..lr.start).unwrap_or_default();
        let before = before
            .trim_end()
            .trim_end_matches(['$', '€', '£'])
            .trim_end();
        if lops == 0 && before.to_lowercase().ends_with(" of") {
            continue;
        }
        let holds = if rops == 0 {
            agrees(lv, rv, rdec)
        } else {
            lv == rv
        };
        out.push(Equation {
            left: lo + lr.start..lo + lr.end,
            right: ro + rr.start..ro + rr.end,
            value: lv,
            ops: (lops, rops),
            holds,
        });
    }
    out
}

/// A computed result written wrong: `expr = written` where `expr` has an operator, `written`
/// is a lone number, and it is not `expr`'s value.
#[derive(Debug, Clone, PartialEq)]
pub struct Slip {
    /// The expression (the equation's left side) as written.
    pub expr: String,
    /// The result as written.
    pub written: String,
    /// The exact result, written as a calculator would ([`write_value`]).
    pub exact: String,
    /// Where `written` is in the text (byte range).
    pub at: Range<usize>,
}

/// The results computed in `text` (`expr = number`, `expr` with an operator): how many were
/// right, and the first one written wrong. With `complete = false` (the text may stop inside a
/// number, e.g. at a token limit) a result running to the end of the text is not read.
pub fn results(text: &str, complete: bool) -> (usize, Option<Slip>) {
    results_from(text, 0, complete)
}

/// [`results`] over the results written at or after byte `from` of `text` (the text before
/// it is context: an expression may start there).
pub fn results_from(text: &str, from: usize, complete: bool) -> (usize, Option<Slip>) {
    let mut right = 0;
    for e in equations(text) {
        if !e.is_result() || e.right.start < from {
            continue;
        }
        if !complete && e.right.end >= text.trim_end().len() {
            break;
        }
        if e.holds {
            right += 1;
            continue;
        }
        // The number only: a currency sign or unit around it stays as written.
        let written = text.get(e.right.clone()).unwrap_or_default();
        let exact = write_value(e.value);
        return (
            right,
            Some(Slip {
                expr: text.get(e.left.clone()).unwrap_or_default().to_string(),
                written: written.to_string(),
                exact,
                at: e.right,
            }),
        );
    }
    (right, None)
}

/// Does `text` end where a computed result is being written — right after `expr =` (an
/// expression with an operator, read as [`equations`] reads a left side), or after a currency
/// sign or inside the number that follows it (`17 + 25 = 4`)? The question a decoder asks
/// before it chooses the next token; `x =`, `3 + 4` with no `=`, and `17 + 25 = 42 ` (the
/// number ended) are not. A negative result's sign is not read (`5 - 8 = -` is `false`).
pub fn in_result(text: &str) -> bool {
    let t = text
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == ',' || c == '.')
        .trim_end()
        .trim_end_matches(['$', '€', '£'])
        .trim_end();
    let Some(before) = t.strip_suffix('=') else {
        return false;
    };
    let start = before.rfind('=').map_or(0, |i| i + 1);
    before
        .get(start..)
        .and_then(|segment| side(segment, true))
        .is_some_and(|(_, ops, _, _)| ops > 0)
}

/// The first result in `text` written wrong (see [`results`]).
pub fn first_slip(text: &str, complete: bool) -> Option<Slip> {
    results(text, complete).1
}

/// A value as a calculator writes it: integers and terminating decimals exactly (`42`,
/// `2.5`), other fractions rounded to two decimals (`3.33`, which the `arith` critic accepts
/// for 10/3).
pub fn write_value(v: Number) -> String {
    let exact = v.to_string();
    if !exact.contains('/') {
        return exact;
    }
    // Round half away from zero to 2 places: (|num| * 200 / den + 1) / 2.
    let neg = v.num < 0;
    let scaled = v
        .num
        .checked_abs()
        .and_then(|n| n.checked_mul(200))
        .map(|n| (n / v.den + 1) / 2);
    match scaled {
        Some(c) => format!("{}{}.{:02}", if neg { "-" } else { "" }, c / 100, c % 100),
        None => exact,
    }
}

#[cfg(test)]
mod tests;
