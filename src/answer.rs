//! Final-answer extraction and numeric normalisation.
//!
//! [`extract`] looks, in order, for `#### N`, `\boxed{N}`, "the answer is N", and else takes the
//! last number in the text. Numbers are compared exactly as rationals ([`Number`]), after
//! dropping `$`, thousands separators, units and trailing zeros; `1/2`, `0.5` and `0.50` are equal.
//! Nothing here panics on any input string.

use std::fmt;

/// An exact rational number, reduced, with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Number {
    /// Numerator.
    pub num: i128,
    /// Denominator (> 0).
    pub den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a.max(1)
}

impl Number {
    /// `num/den`, reduced; `None` for a zero denominator.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den);
        let s = if den < 0 { -1 } else { 1 };
        Some(Self {
            num: s * num / g,
            den: s * den / g,
        })
    }

    /// Parse one number: `-1,234.50`, `$12`, `3/4`, `7.0`, `12%` (units and symbols dropped).
    pub fn parse(s: &str) -> Option<Self> {
        let t: String = s
            .trim()
            .trim_end_matches(['.', '%'])
            .chars()
            .filter(|c| !matches!(c, '$' | ',' | ' ' | '€' | '£'))
            .collect();
        if let Some((a, b)) = t.split_once('/') {
            let a = Self::parse_decimal(a)?;
            let b = Self::parse_decimal(b)?;
            return Self::new(a.num.checked_mul(b.den)?, a.den.checked_mul(b.num)?);
        }
        Self::parse_decimal(&t)
    }

    fn parse_decimal(t: &str) -> Option<Self> {
        let (neg, t) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if int.len() + frac.len() > 30 {
            return None;
        }
        let digits = format!("{int}{frac}");
        let num: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let den = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        Self::new(if neg { -num } else { num }, den)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            return write!(f, "{}", self.num);
        }
        // Terminating decimals print as decimals, others as fractions.
        let mut d = self.den;
        while d % 2 == 0 {
            d /= 2;
        }
        while d % 5 == 0 {
            d /= 5;
        }
        if d != 1 {
            return write!(f, "{}/{}", self.num, self.den);
        }
        let mut places = 0u32;
        let mut scaled = self.den;
        while scaled != 1 && places < 38 {
            places += 1;
            let p = 10i128.pow(places);
            if p % self.den == 0 {
                scaled = 1;
            }
        }
        let p = 10i128.pow(places);
        let v = self.num * (p / self.den);
        let sign = if v < 0 { "-" } else { "" };
        let v = v.abs();
        let frac = format!("{:0width$}", v % p, width = places as usize);
        write!(f, "{sign}{}.{}", v / p, frac.trim_end_matches('0'))
    }
}

/// Every number in `text`, in order, with its byte span.
pub fn numbers(text: &str) -> Vec<(usize, usize, Number)> {
    let b = text.as_bytes();
    // The byte at `k`, or 0 (no digit, sign or separator) outside the text.
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !(at(i).is_ascii_digit() || at(i) == b'.' && at(i + 1).is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut start = i;
        if start > 0
            && at(start - 1) == b'-'
            && (start < 2 || !at(start - 2).is_ascii_alphanumeric())
        {
            start -= 1;
        }
        let mut j = i;
        while j < b.len() {
            let c = at(j);
            let next_digit = at(j + 1).is_ascii_digit();
            if c.is_ascii_digit() || ((c == b',' || c == b'.' || c == b'/') && next_digit) {
                j += 1;
            } else {
                break;
            }
        }
        let raw = text.get(start..j).unwrap_or_default();
        let parsed = Number::parse(raw).or_else(|| {
            // "3/4/2020" or "1.2.3": fall back to the leading plain number.
            let lead: String = raw
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            Number::parse(&lead)
        });
        if let Some(n) = parsed {
            out.push((start, j, n));
        }
        i = j.max(i + 1);
    }
    out
}

fn last_number(text: &str) -> Option<Number> {
    numbers(text).last().map(|x| x.2)
}

fn first_number(text: &str) -> Option<Number> {
    numbers(text).first().map(|x| x.2)
}

/// The contents of the last `\boxed{...}` (braces balanced), if any.
pub fn boxed(text: &str) -> Option<&str> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// After `####`.
    Hashes,
    /// Inside `\boxed{}`.
    Boxed,
    /// After "the answer is".
    Phrase,
    /// The last number in the text.
    LastNumber,
}

/// The answer in the rest of a line after "the answer is": its first number, unless that number
/// opens an expression ("5 * 6 = 30"), whose result after the last `=` is the answer.
fn phrase_number(line: &str) -> Option<Number> {
    let &(_, end, first) = numbers(line).first()?;
    let next = line
        .get(end..)
        .unwrap_or_default()
        .trim_start()
        .chars()
        .next();
    let opens_expression = matches!(next, Some('+' | '-' | '*' | '/' | 'x' | '×' | '÷' | '−'));
    if opens_expression {
        if let Some(n) = line.rsplit_once('=').and_then(|(_, r)| first_number(r)) {
            return Some(n);
        }
    }
    Some(first)
}

/// Extract the final numeric answer of a solution text.
pub fn extract(text: &str) -> Option<(Number, Source)> {
    if let Some(pos) = text.rfind("####") {
        if let Some(n) = first_number(&text[pos + 4..]) {
            return Some((n, Source::Hashes));
        }
    }
    if let Some(inner) = boxed(text) {
        if let Some(n) = last_number(inner) {
            return Some((n, Source::Boxed));
        }
    }
    // The phrase that comes last in the text wins ("the answer is 5 ... the final answer is
    // 7" answers 7); at one position the longer phrase ("final answer:" over "answer:").
    let lower = text.to_ascii_lowercase();
    let last = [
        "the answer is",
        "final answer is",
        "final answer:",
        "answer:",
    ]
    .iter()
    .filter_map(|p| lower.rfind(p).map(|pos| (pos + p.len(), p.len())))
    .max();
    if let Some((end, _)) = last {
        let line = text
            .get(end..)
            .unwrap_or_default()
            .split('\n')
            .next()
            .unwrap_or("");
        if let Some(n) = phrase_number(line) {
            return Some((n, Source::Phrase));
        }
    }
    last_number(text).map(|n| (n, Source::LastNumber))
}

/// Extract and print the answer canonically (`None` when the text has no number).
pub fn extract_str(text: &str) -> Option<String> {
    extract(text).map(|(n, _)| n.to_string())
}

/// Do two answer strings denote the same number?
pub fn same_number(a: &str, b: &str) -> bool {
    match (Number::parse(a), Number::parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The majority answer of `answers` (ties → the latest of the tied); `None` if all are `None`.
pub fn majority(answers: &[Option<String>]) -> Option<(usize, &str)> {
    let mut best: Option<(usize, usize, &str)> = None; // (count, last index, answer)
    for (i, a) in answers.iter().enumerate() {
        let Some(a) = a.as_deref() else { continue };
        let count = answers.iter().filter(|b| b.as_deref() == Some(a)).count();
        let last = answers
            .iter()
            .rposition(|b| b.as_deref() == Some(a))
            .unwrap_or(i);
        if best.is_none_or(|(c, l, _)| count > c || (count == c && last > l)) {
            best = Some((count, last, a));
        }
    }
    best.map(|(_, l, a)| (l, a))
}

/// The one option letter `(X)` that `s` names; `None` when it names none, or several different
/// ones ("not (A), (B) or (G)" is not an answer of (G)).
fn mc_letter(s: &str) -> Option<char> {
    let mut letters = s.as_bytes().windows(3).filter_map(|w| match w {
        [b'(', c, b')'] if c.is_ascii_uppercase() => Some(*c as char),
        _ => None,
    });
    let first = letters.next()?;
    letters.all(|c| c == first).then_some(first)
}

/// The final answer part of a BIG-Bench Mistake style text ("... So the answer is X").
pub fn bb_answer(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let tail = match lower.rfind("the answer is") {
        Some(p) => text.get(p + "the answer is".len()..).unwrap_or_default(),
        None => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
    };
    tail.trim().trim_end_matches('.').trim().to_string()
}

/// Does `got` (an answer or a full text) match the BIG-Bench Mistake `target`?
/// Multiple choice compares letters, numbers compare numerically, text compares words.
pub fn bb_match(got: &str, target: &str) -> bool {
    let got = bb_answer(got);
    if let Some(t) = mc_letter(target) {
        return mc_letter(&got) == Some(t);
    }
    if let Some(t) = Number::parse(target) {
        return extract(&got).is_some_and(|(n, _)| n == t);
    }
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let t = words(target);
    !t.is_empty() && words(&got) == t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ex(t: &str) -> Option<String> {
        extract_str(t)
    }

    #[test]
    fn extraction_order() {
        assert_eq!(ex("so 3+4=7\n#### 7"), Some("7".into()));
        assert_eq!(
            ex("We get \\boxed{\\frac{1}{2}} hmm \\boxed{42}"),
            Some("42".into())
        );
        assert_eq!(
            ex("5 apples. The answer is $1,234.50."),
            Some("1234.5".into())
        );
        assert_eq!(ex("Final answer: 12 cups"), Some("12".into()));
        assert_eq!(ex("she has 3 then 10 left"), Some("10".into()));
        assert_eq!(ex("no numbers here"), None);
        assert_eq!(ex("it is -5 degrees"), Some("-5".into()));
        assert_eq!(ex("x-5"), Some("5".into()));
    }

    #[test]
    fn normalisation() {
        assert!(same_number("1,000", "1000"));
        assert!(same_number("$18.00", "18"));
        assert!(same_number("1/2", "0.5"));
        assert!(same_number("50%", "50"));
        assert!(!same_number("0.33", "1/3"));
        assert_eq!(
            Number::parse("2/3").map(|n| n.to_string()),
            Some("2/3".into())
        );
        assert_eq!(
            Number::parse("-0.250").map(|n| n.to_string()),
            Some("-0.25".into())
        );
        assert_eq!(Number::parse("1/0"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = extract(&s);
            let _ = numbers(&s);
            let _ = Number::parse(&s);
        }

        #[test]
        fn integers_round_trip(n in -1_000_000_000i64..1_000_000_000) {
            let text = format!("blah {n} blah\nThe answer is {n}.");
            prop_assert_eq!(ex(&text), Some(n.to_string()));
        }

        #[test]
        fn decimals_round_trip(a in 0u32..100_000, b in 1u32..100) {
            let s = format!("{a}.{b:02}");
            let n = Number::parse(&s);
            prop_assert!(n.is_some());
            let back = n.map(|n| n.to_string()).unwrap_or_default();
            prop_assert!(same_number(&back, &s));
        }
    }

    #[test]
    fn bbmistake_matching() {
        assert!(bb_match(
            "Alice has Moby Dick. So the answer is (C).",
            "(C)"
        ));
        assert!(!bb_match("So the answer is (A)", "(C)"));
        assert!(bb_match("So the answer is -2116.", "-2116"));
        assert!(!bb_match("So the answer is 1244", "-2116"));
        assert!(bb_match(
            "So the answer is apple banana cherry",
            "apple banana cherry"
        ));
        assert!(!bb_match(
            "So the answer is banana apple cherry",
            "apple banana cherry"
        ));
        assert!(!bb_match("", "(A)"));
        assert!(!bb_match("anything", ""));
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter()
            .map(|s| {
                if s.is_empty() {
                    None
                } else {
                    Some(s.to_string())
                }
            })
            .collect()
    }

    #[test]
    fn majority_ties_go_to_the_latest_and_skip_unparsed() {
        assert_eq!(
            majority(&some(&["1", "2", "1", "2"])).map(|x| x.1),
            Some("2")
        );
        assert_eq!(
            majority(&some(&["1", "", "1", "2"])).map(|x| x.1),
            Some("1")
        );
        assert_eq!(majority(&some(&["", ""])), None);
        assert_eq!(majority(&some(&["3", "", ""])).map(|x| x.1), Some("3"));
    }

    #[test]
    fn a_later_final_answer_wins_over_an_earlier_the_answer_is() {
        let t =
            "The answer is 5 boxes of eggs, so we multiply.\n5 * 6 = 30\nThe final answer is 30.";
        assert_eq!(extract_str(t).as_deref(), Some("30"));
        let t = "Final answer: 12. Checking again, the answer is 14.";
        assert_eq!(extract_str(t).as_deref(), Some("14"));
    }

    #[test]
    fn the_answer_phrase_takes_the_result_of_an_equation_not_its_first_operand() {
        assert_eq!(
            extract_str("The answer is 5 * 6 = 30 eggs.").as_deref(),
            Some("30")
        );
        assert_eq!(
            extract_str("The answer is 30 = 5 * 6.").as_deref(),
            Some("30")
        );
        assert_eq!(
            extract_str("The answer is: 12 - 5 = 7.").as_deref(),
            Some("7")
        );
        assert_eq!(
            extract_str("The answer is $1,200.").as_deref(),
            Some("1200")
        );
        assert_eq!(
            extract_str("The answer is 7 (Tom has 3 + 4).").as_deref(),
            Some("7")
        );
    }

    #[test]
    fn a_multiple_choice_answer_naming_several_options_is_none_of_them() {
        assert!(!bb_match("So the answer is not (A), (B), or (G).", "(G)"));
        assert!(bb_match("So the answer is (G).", "(G)"));
        assert!(bb_match("(G) is right, so the answer is (G) (G).", "(G)"));
    }
}
