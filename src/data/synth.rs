//! Synthetic multi-step arithmetic word problems of controlled difficulty (`amend data synth`).
//!
//! In the spirit of iGSM ("Physics of Language Models" 2.1/2.2): each problem is a chain of
//! `steps` arithmetic operations (each step is one calculator annotation), written out in GSM8K
//! format (`question`, `answer` with `<<a op b=c>>` annotations and `#### N`). Names, pronouns,
//! objects, containers, operations, sentence templates, question forms and the money/count
//! setting all vary, so a strategy cannot succeed by matching a template. Every intermediate
//! value is a non-negative integer and every division is exact. The generator is a pure
//! function of its seed (SplitMix64), stable across platforms and versions.

use serde::Serialize;

use crate::rng::Rng;

/// One problem in GSM8K format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The word problem.
    pub question: String,
    /// Step-by-step solution with calculator annotations, ending in `#### N`.
    pub answer: String,
}

pub(super) const PEOPLE: &[(&str, &str)] = &[
    ("Maya", "she"),
    ("Liam", "he"),
    ("Priya", "she"),
    ("Kofi", "he"),
    ("Elena", "she"),
    ("Tomas", "he"),
    ("Aiko", "she"),
    ("Omar", "he"),
    ("Zoe", "she"),
    ("Ravi", "he"),
    ("Fatima", "she"),
    ("Jonas", "he"),
    ("Lucia", "she"),
    ("Mateo", "he"),
    ("Nadia", "she"),
    ("Sven", "he"),
    ("Amara", "she"),
    ("Diego", "he"),
    ("Hana", "she"),
    ("Ibrahim", "he"),
    ("Greta", "she"),
    ("Wei", "he"),
    ("Leila", "she"),
    ("Pavel", "he"),
    ("Chloe", "she"),
    ("Tariq", "he"),
    ("Ingrid", "she"),
    ("Kwame", "he"),
    ("Rosa", "she"),
    ("Felix", "he"),
];

/// (plural noun, container noun).
pub(super) const THINGS: &[(&str, &str)] = &[
    ("marbles", "bags"),
    ("stickers", "sheets"),
    ("apples", "baskets"),
    ("pencils", "boxes"),
    ("seashells", "jars"),
    ("cookies", "trays"),
    ("stamps", "albums"),
    ("beads", "strings"),
    ("trading cards", "packs"),
    ("tomatoes", "crates"),
    ("eggs", "cartons"),
    ("books", "shelves"),
    ("coins", "purses"),
    ("flowers", "bunches"),
    ("crayons", "boxes"),
    ("buttons", "tins"),
    ("postcards", "bundles"),
    ("chestnuts", "sacks"),
    ("candles", "packages"),
    ("toy cars", "cases"),
];

const SPEND_ON: &[&str] = &[
    "a book", "lunch", "a ticket", "paint", "a plant", "a scarf", "snacks", "a puzzle",
];

#[derive(Clone, Copy, Default)]
enum Op {
    #[default]
    Add,
    Sub,
    Mul,
    Div,
}

struct Setting {
    pron: &'static str,
    money: bool,
}

impl Setting {
    fn cap(&self) -> String {
        let mut c = self.pron.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    }
}

fn divisors(n: u64) -> Vec<u64> {
    (2..=9).filter(|d| n.is_multiple_of(*d)).collect()
}

/// Generate one problem of exactly `steps` operations.
pub fn problem(rng: &mut Rng, steps: usize) -> Problem {
    let (name, pron) = rng.choose(PEOPLE);
    let (thing, container) = rng.choose(THINGS);
    let money = rng.range(0, 3) == 0;
    let s = Setting { pron, money };
    let mut q_parts: Vec<String> = Vec::new();
    let mut a_lines: Vec<String> = Vec::new();

    // Opening: a plain amount (no operation) or "n containers of m each" (one operation).
    let mut value;
    let mut left = steps.max(1);
    if !s.money && rng.range(0, 2) == 0 {
        let (n, m) = (rng.range(2, 9), rng.range(3, 15));
        value = n * m;
        q_parts.push(match rng.range(0, 2) {
            0 => format!("{name} has {n} {container} of {thing}, and each one holds {m}."),
            1 => format!("There are {m} {thing} in each of the {n} {container} that {name} owns."),
            _ => format!("{name} collects {thing}: {pron} keeps them in {n} {container} with {m} in every one."),
        });
        a_lines.push(format!(
            "{name} starts with {n} * {m} = <<{n}*{m}={value}>>{value} {thing}."
        ));
        left -= 1;
    } else {
        value = rng.range(8, 60);
        q_parts.push(match (s.money, rng.range(0, 2)) {
            (true, 0) => format!("{name} has ${value} in a piggy bank."),
            (true, 1) => format!("{name} starts the week with ${value}."),
            (true, _) => format!("{name} saved ${value} from odd jobs."),
            (false, 0) => format!("{name} has {value} {thing}."),
            (false, 1) => format!("{name} owns a collection of {value} {thing}."),
            (false, _) => format!("At the start, {name} has {value} {thing}."),
        });
    }
    for _ in 0..left {
        let mut ops = vec![Op::Add, Op::Mul];
        if value > 2 {
            ops.push(Op::Sub);
        }
        if !divisors(value).is_empty() {
            ops.push(Op::Div);
        }
        if value > 200 {
            ops.retain(|o| !matches!(o, Op::Mul));
        }
        let op = rng.choose(&ops);
        let before = value;
        let (sentence, line) = match op {
            Op::Add => {
                let n = rng.range(2, 40);
                value += n;
                let sent = match (s.money, rng.range(0, 2)) {
                    (true, 0) => format!("Then {pron} earns ${n} more."),
                    (true, 1) => format!("A relative gives {name} another ${n}."),
                    (true, _) => format!("{} is paid ${n} for helping a neighbour.", s.cap()),
                    (false, 0) => format!("Then {pron} finds {n} more {thing}."),
                    (false, 1) => format!("A friend gives {name} {n} {thing}."),
                    (false, _) => format!("{} buys {n} more {thing} at the market.", s.cap()),
                };
                (
                    sent,
                    format!(
                        "After that {name} has {before} + {n} = <<{before}+{n}={value}>>{value}."
                    ),
                )
            }
            Op::Sub => {
                let n = rng.range(1, before - 1);
                value -= n;
                let sent = match (s.money, rng.range(0, 2)) {
                    (true, 0) => format!("{} spends ${n} on {}.", s.cap(), rng.choose(SPEND_ON)),
                    (true, 1) => format!("{name} pays ${n} for {}.", rng.choose(SPEND_ON)),
                    (true, _) => format!("Then {pron} lends ${n} to a friend."),
                    (false, 0) => format!("{} gives away {n} of the {thing}.", s.cap()),
                    (false, 1) => format!("Sadly, {n} of the {thing} get lost."),
                    (false, _) => format!("{name} trades {n} {thing} away."),
                };
                (
                    sent,
                    format!("Then {name} has {before} - {n} = <<{before}-{n}={value}>>{value}."),
                )
            }
            Op::Mul => {
                let m = rng.range(2, 4);
                value *= m;
                let times = match m {
                    2 => "twice".to_string(),
                    3 => "three times".to_string(),
                    _ => format!("{m} times"),
                };
                let sent = match rng.range(0, 2) {
                    0 => format!(
                        "Later, {pron} ends up with {times} as much as {pron} had at that point."
                    ),
                    1 => format!("Over the next month the amount grows to {times} what it was."),
                    _ => format!("Then {name}'s total becomes {times} as large."),
                };
                (
                    sent,
                    format!("Multiplying gives {before} * {m} = <<{before}*{m}={value}>>{value}."),
                )
            }
            Op::Div => {
                let d = rng.choose(&divisors(before)).max(1);
                value = before / d;
                let sent = match rng.range(0, 2) {
                    0 => format!("{} splits everything into {d} equal parts and keeps only one part.", s.cap()),
                    1 => format!("{name} shares it equally with friends so that {d} people (including {name}) get the same amount."),
                    _ => format!("Then only one {}-th of it is left, because the rest is packed away.", ordinal(d)),
                };
                (
                    sent,
                    format!("Each part is {before} / {d} = <<{before}/{d}={value}>>{value}."),
                )
            }
        };
        q_parts.push(sentence);
        a_lines.push(line);
    }
    let question_form = match (s.money, rng.range(0, 3)) {
        (true, 0) => format!("How many dollars does {name} have now?"),
        (true, 1) => format!("How much money, in dollars, is left with {name} at the end?"),
        (true, _) => format!("What is {name}'s final amount of money in dollars?"),
        (false, 0) => format!("How many {thing} does {name} have now?"),
        (false, 1) => format!("How many {thing} are left with {name} in the end?"),
        (false, 2) => format!("What is the final number of {thing} that {name} has?"),
        (false, _) => format!("Count {name}'s {thing} after all of this. How many are there?"),
    };
    q_parts.push(question_form);
    a_lines.push(format!("#### {value}"));
    Problem {
        question: q_parts.join(" "),
        answer: a_lines.join("\n"),
    }
}

fn ordinal(d: u64) -> String {
    match d {
        2 => "second".into(),
        3 => "third".into(),
        4 => "fourth".into(),
        5 => "fifth".into(),
        6 => "sixth".into(),
        7 => "seventh".into(),
        8 => "eighth".into(),
        9 => "ninth".into(),
        n => format!("{n}th"),
    }
}

/// Generate `n` problems with step counts drawn uniformly from `min_steps..=max_steps`.
pub fn generate(n: usize, min_steps: usize, max_steps: usize, seed: u64) -> Vec<Problem> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let steps = rng.range(
                min_steps.max(1) as u64,
                max_steps.max(min_steps).max(1) as u64,
            ) as usize;
            problem(&mut rng, steps)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{generate, problem, Rng};
    use crate::data::{split_gsm8k_answer, strip_annotations};
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    proptest! {
        #[test]
        fn annotations_are_true_and_final_answer_matches(seed in any::<u64>(), steps in 1usize..6) {
            let mut rng = Rng::new(seed);
            let p = problem(&mut rng, steps);
            let ann: Vec<&str> = p.answer.match_indices("<<").map(|(i, _)| &p.answer[i + 2..]).collect();
            prop_assert_eq!(ann.len(), steps);
            let mut last = None;
            for a in ann {
                let expr = &a[..a.find(">>").unwrap_or(0)];
                let (lhs, rhs) = expr.split_once('=').unwrap_or(("", ""));
                let op = lhs.find(['+', '-', '*', '/']).unwrap_or(0);
                let (x, y): (i64, i64) = (lhs[..op].parse().unwrap_or(-1), lhs[op + 1..].parse().unwrap_or(-1));
                let want: i64 = rhs.parse().unwrap_or(-2);
                let got = match &lhs[op..op + 1] { "+" => x + y, "-" => x - y, "*" => x * y, _ => if y != 0 && x % y == 0 { x / y } else { -3 } };
                prop_assert_eq!(got, want, "{}", expr);
                prop_assert!(want >= 0);
                last = Some(want);
            }
            let (_, fin) = split_gsm8k_answer(&p.answer).unwrap_or_default();
            prop_assert_eq!(Some(fin), last.map(|v| v.to_string()));
            prop_assert!(!strip_annotations(&p.answer).contains("<<"));
        }
    }

    #[test]
    fn seeded_and_varied() {
        assert_eq!(generate(20, 1, 3, 7), generate(20, 1, 3, 7));
        let ps = generate(200, 1, 3, 1);
        let firsts: std::collections::HashSet<String> = ps
            .iter()
            .map(|p| {
                p.question
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert!(firsts.len() > 60, "only {} distinct openings", firsts.len());
        let qs: std::collections::HashSet<&str> = ps
            .iter()
            .filter_map(|p| p.question.rsplit(". ").next())
            .collect();
        assert!(qs.len() > 40);
    }
}
