//! The `derive` critic: a model-free check that a solution is a derivation of its answer from
//! the problem's quantities.
//!
//! It reads the computed results of the steps (`expr = n`, an expression with an operator and a
//! lone number: the calculator's reader) as the nodes of an expression tree. Each operand must
//! be a result computed earlier or a quantity the problem gives, and each of those is used
//! once: a quantity the problem states twice ("8 stamps ... 8 more") may be used twice, and a
//! result may be used as often as it was computed. A number the problem does not give may also
//! be one of [`CONSTANTS`](super::CONSTANTS), as often as needed. The derivation must use every
//! quantity the problem writes in digits (words such as `twice` or `a dozen` may be used but
//! need not be), and the answer must be the last computed result. A computation written again
//! token for token (the same operands and operators, the same result: "6 + 2 = 8 ... Zoe has
//! 6 + 2 = 8") restates an earlier step when its operands are spent: it takes nothing and
//! computes nothing new. Whether each result is right is not its business: chain it after
//! `arith` (`chain:arith,derive`).
//!
//! These are the constraints of an arithmetic word problem whose every quantity matters and is
//! combined once — the easy multi-step kind. A problem with a distractor, or one whose solution
//! rightly uses a quantity twice, is flagged: use the critic to *select* among samples
//! (`select = anchored`, `select = verified`), where a flag costs a candidate, not an answer.
//!
//! The first step that breaks a rule is the mistake: the step with the operand, or the step
//! that states the answer (the last) when a quantity is never used, nothing is computed, or the
//! answer is not the last result. The rationale names the number.

use async_trait::async_trait;

use super::ground::{percent_value, word_numbers};
use super::{Critic, CriticError, Submission, Verdict, CONSTANTS};
use crate::answer::{extract, Number};
use crate::calc::equations;
use crate::calc::expr::{tokenize_spans, Tok};
use crate::run::Env;

/// A quantity the problem gives: the values it may be read as (a percentage also as its
/// fraction), whether a derivation must use it, and whether it is used.
#[derive(Clone)]
struct Quantity {
    forms: Vec<Number>,
    written: String,
    required: bool,
    used: bool,
}

/// The quantities of a problem: every number written in digits (required), every number or
/// factor word (optional).
fn quantities(problem: &str) -> Vec<Quantity> {
    let mut out = Vec::new();
    for (tok, range) in tokenize_spans(problem) {
        let Tok::Num(n, _) = tok else { continue };
        let mut forms = vec![n];
        forms.extend(percent_value(problem, range.end, n));
        out.push(Quantity {
            forms,
            written: problem.get(range).unwrap_or_default().to_string(),
            required: true,
            used: false,
        });
    }
    for n in word_numbers(problem) {
        out.push(Quantity {
            forms: vec![n],
            written: n.to_string(),
            required: false,
            used: false,
        });
    }
    out
}

/// Why a step breaks the derivation.
fn operand_problem(
    x: Number,
    written: &str,
    quantities: &mut [Quantity],
    results: &mut Vec<Number>,
    given: &[Number],
) -> Option<String> {
    // An earlier result first (the latest), then an unused quantity of the problem.
    if let Some(k) = results.iter().rposition(|r| *r == x) {
        results.remove(k);
        return None;
    }
    // A required quantity before an optional one: "8" in the digits before "eight" in words.
    let free = |q: &Quantity| !q.used && q.forms.contains(&x);
    let pick = quantities
        .iter()
        .position(|q| free(q) && q.required)
        .or_else(|| quantities.iter().position(free));
    if let Some(q) = pick.and_then(|k| quantities.get_mut(k)) {
        q.used = true;
        return None;
    }
    let constant = CONSTANTS.iter().any(|(c, _)| Number::new(*c, 1) == Some(x));
    if constant && !given.contains(&x) {
        return None;
    }
    Some(if given.contains(&x) {
        format!(
            "the operand {written} is used more often than the problem gives it or an earlier \
             step computes it."
        )
    } else {
        format!(
            "the operand {written} is neither a quantity of the problem, nor a result of an \
             earlier step, nor a common constant."
        )
    })
}

/// The first step where `steps` stop being a derivation of their answer from `problem`'s
/// quantities, and why (see the module doc). An empty solution has no step to flag and is
/// accepted (it states no answer for a selection to take).
pub fn first_underived(problem: &str, steps: &[String]) -> Option<(usize, String)> {
    let mut quantities = quantities(problem);
    let given: Vec<Number> = quantities
        .iter()
        .flat_map(|q| q.forms.iter().copied())
        .collect();
    let mut results: Vec<Number> = Vec::new();
    // Each computation so far: its tokens (numbers and operators, spacing aside) and result.
    let mut computed: Vec<(Vec<Tok>, Number)> = Vec::new();
    let mut last = None;
    for (i, step) in steps.iter().enumerate() {
        for e in equations(step).into_iter().filter(|e| e.is_result()) {
            let left = step.get(e.left.clone()).unwrap_or_default();
            let spans = tokenize_spans(left);
            let tokens: Vec<Tok> = spans.iter().map(|(t, _)| *t).collect();
            // A repeat of an earlier computation may be a restatement: keep what to go back to.
            let key = (tokens, e.value);
            let before = computed
                .contains(&key)
                .then(|| (quantities.clone(), results.clone()));
            let broken = spans.iter().find_map(|(tok, range)| {
                let Tok::Num(x, _) = tok else { return None };
                let written = left.get(range.clone()).unwrap_or_default();
                operand_problem(*x, written, &mut quantities, &mut results, &given)
            });
            if let Some(why) = broken {
                let Some(before) = before else {
                    return Some((i, why));
                };
                (quantities, results) = before;
                continue;
            }
            computed.push(key);
            results.push(e.value);
            last = Some(e.value);
        }
    }
    let end = steps.len().checked_sub(1)?;
    let Some(last) = last else {
        return Some((
            end,
            "no step computes a result from the problem's quantities.".into(),
        ));
    };
    if let Some(q) = quantities.iter().find(|q| q.required && !q.used) {
        return Some((end, format!("the problem's {} is never used.", q.written)));
    }
    match extract(&steps.join("\n")) {
        Some((a, _)) if a == last => None,
        Some((a, _)) => Some((
            end,
            format!("the answer {a} is not the last computed result, {last}."),
        )),
        None => Some((
            end,
            format!("no answer is stated; the last result is {last}."),
        )),
    }
}

/// The derivation verifier as a critic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Derive;

#[async_trait]
impl Critic for Derive {
    fn name(&self) -> &str {
        "derive"
    }

    async fn locate(&self, _env: &Env, input: &Submission<'_>) -> Result<Verdict, CriticError> {
        Ok(match first_underived(input.problem, input.steps) {
            Some((i, why)) => Verdict {
                step: Some(i),
                parsed: true,
                confidence: 1.0,
                rationale: why,
                usage: Default::default(),
            },
            None => Verdict {
                step: None,
                parsed: true,
                confidence: 1.0,
                rationale: "the answer is derived from every quantity of the problem, each used \
                            once"
                    .into(),
                usage: Default::default(),
            },
        })
    }
}

#[cfg(test)]
#[path = "derive_tests.rs"]
mod tests;
