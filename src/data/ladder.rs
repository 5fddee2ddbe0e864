//! A difficulty ladder of synthetic word problems (`amend data synth --level N`), five levels
//! from one everyday operation on small numbers to long chains with large numbers and
//! irrelevant facts:
//!
//! | level | operations | numbers | distractor sentences | wording |
//! |---|---|---|---|---|
//! | 1 | 1–2 (add, take away, groups of) | below 20 | 0 | everyday |
//! | 2 | 2–3 (also doubling, sharing equally) | below 100 | 0 | everyday |
//! | 3 | 3–4 | below 1,000 | 1 | everyday and indirect |
//! | 4 | 4–5 | below 5,000 | 2 | everyday and indirect |
//! | 5 | 5–7 | below 10,000 | 3 | everyday and indirect |
//!
//! Problems are in GSM8K format, every intermediate value a non-negative integer, every
//! division exact, the solution one calculator annotation per operation; a problem is a pure
//! function of the seed. The levels were set against the default model on seeds that are never
//! reported (see BENCHMARKS.md): its one-pass accuracy is off the chance floor at level 1 and
//! near it at level 5.

use serde::Serialize;

use super::synth::{Problem, PEOPLE, THINGS};
use crate::rng::Rng;

/// The shape of one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Level {
    /// 1 (easiest) to 5.
    pub level: u8,
    /// Fewest operations.
    pub min_ops: usize,
    /// Most operations.
    pub max_ops: usize,
    /// Every number in the question and the solution stays below this.
    pub bound: u64,
    /// Irrelevant sentences with numbers of their own.
    pub distractors: usize,
    /// Indirect wordings ("ends up with three times as much", "one fourth is left").
    pub indirect: bool,
    /// Doubling/tripling and equal sharing are used (level 1 only adds, takes away and forms
    /// groups).
    pub mul_div: bool,
}

/// The highest level.
pub const MAX_LEVEL: u8 = 5;

impl Level {
    /// Level `n` (1..=5), `None` outside.
    pub fn new(n: u8) -> Option<Self> {
        let l = |min_ops, max_ops, bound, distractors, indirect, mul_div| Level {
            level: n,
            min_ops,
            max_ops,
            bound,
            distractors,
            indirect,
            mul_div,
        };
        Some(match n {
            1 => l(1, 2, 20, 0, false, false),
            2 => l(2, 3, 100, 0, false, true),
            3 => l(3, 4, 1_000, 1, true, true),
            4 => l(4, 5, 5_000, 2, true, true),
            5 => l(5, 7, 10_000, 3, true, true),
            _ => return None,
        })
    }
}

/// Irrelevant facts, with the range their number is drawn from. None names a person, so a
/// pronoun after one still refers to the problem's person.
const DISTRACTORS: &[(&str, u64, u64)] = &[
    ("The shop opens at {k} o'clock.", 7, 11),
    ("The bus ride to town takes {k} minutes.", 10, 55),
    ("There are {k} chairs in the kitchen.", 3, 12),
    ("The street has {k} houses on it.", 12, 90),
    ("The town library has {k} computers.", 4, 40),
    ("It rained on {k} days last month.", 2, 20),
    ("The school is {k} years old.", 15, 95),
    ("The park has {k} benches.", 5, 30),
];

fn divisors(n: u64) -> Vec<u64> {
    (2..=9).filter(|d| n > 0 && n.is_multiple_of(*d)).collect()
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// One problem of `level` (its operation count drawn from the level's range).
pub fn problem(rng: &mut Rng, level: &Level) -> Problem {
    let ops_n = rng.range(level.min_ops as u64, level.max_ops as u64) as usize;
    let (name, pron) = rng.choose(PEOPLE);
    let (thing, container) = rng.choose(THINGS);
    let other = loop {
        let (o, _) = rng.choose(PEOPLE);
        if o != name {
            break o;
        }
    };
    let cap_pron = {
        let mut c = pron.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    // Small numbers at level 1 stay small: operands up to a fifth of the bound (at least 9).
    let small = (level.bound / 5).max(9);
    let mut q: Vec<String> = Vec::new();
    let mut a: Vec<String> = Vec::new();
    let mut value;
    let mut left = ops_n;
    if rng.range(0, 2) == 0 && left > 0 {
        // "n containers of m each": the first operation.
        let n = rng.range(2, 5.min(small));
        let m = rng.range(2, ((level.bound - 1) / n).clamp(2, small));
        value = n * m;
        q.push(format!(
            "{name} has {n} {container} of {thing}, with {m} {thing} in each."
        ));
        a.push(format!(
            "{name} has {n} * {m} = <<{n}*{m}={value}>>{value} {thing}."
        ));
        left -= 1;
    } else {
        value = rng.range(3, small.min(level.bound - 1));
        q.push(format!("{name} has {value} {thing}."));
    }
    for _ in 0..left {
        // Amounts added or taken away are at least 2, so a plural noun always reads right.
        let mut ops = vec![Op::Sub];
        if value + 3 < level.bound {
            ops.push(Op::Add);
        }
        if level.mul_div && value * 2 < level.bound {
            ops.push(Op::Mul);
        }
        if level.mul_div && !divisors(value).is_empty() {
            ops.push(Op::Div);
        }
        if value < 3 {
            ops.retain(|o| !matches!(o, Op::Sub));
        }
        if ops.is_empty() {
            ops.push(Op::Add);
        }
        let op = *rng.pick(&ops).unwrap_or(&Op::Add);
        let before = value;
        let indirect = level.indirect && rng.range(0, 2) == 0;
        let (sentence, line) = match op {
            Op::Add => {
                let n = rng.range(2, (level.bound - 1 - before).clamp(2, small));
                value = before + n;
                let s = match (indirect, rng.range(0, 2)) {
                    (false, 0) => format!("{cap_pron} buys {n} more {thing}."),
                    (false, 1) => format!("{other} gives {name} {n} {thing}."),
                    (false, _) => format!("{cap_pron} finds {n} more {thing}."),
                    (true, _) => {
                        format!("{other} had {n} {thing} and gives all of them to {name}.")
                    }
                };
                (
                    s,
                    format!("{before} + {n} = <<{before}+{n}={value}>>{value}."),
                )
            }
            Op::Sub => {
                let n = rng.range(2, (before - 1).clamp(2, small));
                value = before - n;
                let s = match (indirect, rng.range(0, 2)) {
                    (false, 0) => format!("{cap_pron} gives {n} {thing} to {other}."),
                    (false, 1) => format!("{cap_pron} loses {n} {thing}."),
                    (false, _) => format!("{cap_pron} uses {n} of the {thing}."),
                    (true, _) => {
                        format!("{other} asks for {n} of the {thing}, and {name} hands them over.")
                    }
                };
                (
                    s,
                    format!("{before} - {n} = <<{before}-{n}={value}>>{value}."),
                )
            }
            Op::Mul => {
                let m = if before * 3 < level.bound && rng.range(0, 1) == 1 {
                    3
                } else {
                    2
                };
                value = before * m;
                let word = if m == 2 { "doubles" } else { "triples" };
                let s = if indirect {
                    let times = if m == 2 { "twice" } else { "three times" };
                    format!("Later, {pron} ends up with {times} as many {thing} as {pron} had.")
                } else {
                    format!("Then the number of {thing} {name} has {word}.")
                };
                (
                    s,
                    format!("{before} * {m} = <<{before}*{m}={value}>>{value}."),
                )
            }
            Op::Div => {
                let d = rng.choose(&divisors(before)).max(2);
                value = before / d;
                let s = if indirect {
                    format!("Only one part in {d} of the {thing} is kept; the rest is given away.")
                } else {
                    format!(
                        "{cap_pron} shares the {thing} equally among {d} friends and keeps one share."
                    )
                };
                (
                    s,
                    format!("{before} / {d} = <<{before}/{d}={value}>>{value}."),
                )
            }
        };
        q.push(sentence);
        a.push(line);
    }
    for _ in 0..level.distractors {
        let (template, lo, hi) = rng.choose(DISTRACTORS);
        let k = rng.range(lo, hi.min(level.bound - 1));
        let pos = rng.range(1, q.len() as u64) as usize;
        q.insert(pos.min(q.len()), template.replace("{k}", &k.to_string()));
    }
    q.push(format!("How many {thing} does {name} have now?"));
    a.push(format!("#### {value}"));
    Problem {
        question: q.join(" "),
        answer: a.join("\n"),
    }
}

/// `n` problems of `level` from `seed`.
pub fn generate(n: usize, level: &Level, seed: u64) -> Vec<Problem> {
    let mut rng = Rng::new(seed ^ (u64::from(level.level) << 56));
    (0..n).map(|_| problem(&mut rng, level)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{split_gsm8k_answer, strip_annotations};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    proptest! {
        #[test]
        fn every_level_keeps_its_bounds_and_its_arithmetic(seed in any::<u64>(), lv in 1u8..=5) {
            let level = Level::new(lv).unwrap_or_else(|| panic!("level {lv}"));
            let p = problem(&mut Rng::new(seed), &level);
            let anns: Vec<&str> = p.answer.match_indices("<<").map(|(i, _)| &p.answer[i + 2..]).collect();
            prop_assert!(anns.len() >= level.min_ops && anns.len() <= level.max_ops, "{}", p.answer);
            for a in anns {
                let expr = &a[..a.find(">>").unwrap_or(0)];
                let v = crate::critic::eval_arith(expr.split('=').next().unwrap_or(""));
                let claimed = expr.rsplit('=').next().and_then(|r| r.parse::<u64>().ok());
                prop_assert_eq!(v.map(|n| n.to_string()), claimed.map(|c| c.to_string()), "{}", expr);
                prop_assert!(claimed.is_some_and(|c| c < level.bound), "{} at level {}", expr, lv);
            }
            for (_, _, n) in crate::answer::numbers(&p.question) {
                prop_assert!(n.den == 1 && n.num >= 0 && (n.num as u64) < level.bound, "{}", p.question);
            }
            let (_, fin) = split_gsm8k_answer(&p.answer).unwrap_or_default();
            prop_assert!(!fin.is_empty());
            prop_assert!(!strip_annotations(&p.answer).contains("<<"));
        }
    }

    #[test]
    fn levels_are_seeded_and_grow_harder() {
        let l1 = Level::new(1).unwrap_or_else(|| panic!("level 1"));
        let l5 = Level::new(5).unwrap_or_else(|| panic!("level 5"));
        assert_eq!(generate(30, &l1, 9), generate(30, &l1, 9));
        assert_ne!(generate(30, &l1, 9), generate(30, &l5, 9));
        let ops = |ps: &[Problem]| {
            ps.iter()
                .map(|p| p.answer.matches("<<").count())
                .sum::<usize>()
        };
        assert!(ops(&generate(50, &l5, 3)) > 3 * ops(&generate(50, &l1, 3)));
        assert!(Level::new(0).is_none() && Level::new(6).is_none());
    }
}
