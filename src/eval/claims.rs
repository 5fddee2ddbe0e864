//! `amend eval claims`: how many of the results a run's final answers compute are true — the
//! computed results `expr = n` (`expr` with an operator, `n` a lone number; the reader of
//! [`crate::calc`]) in each item's last attempt. A dense measure beside task accuracy: a method
//! that makes the model's arithmetic truer shows here before it moves the answers.

use std::path::Path;

use serde::Serialize;

use super::metrics::ratio;
use super::runner::read_results;
use super::EvalError;
use crate::stats::{self, Interval};

/// The claims of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// The run's directory.
    pub dir: String,
    /// Items with a final attempt.
    pub items: u64,
    /// Items whose final attempt computes anything.
    pub items_with_claims: u64,
    /// Computed results in the final attempts.
    pub claims: u64,
    /// Of them, true.
    pub true_claims: u64,
    /// `true_claims / claims`.
    pub true_share: f64,
    /// Its 95% interval (Wilson; claims are not independent within an item, so it is
    /// narrower than an item-level interval would be).
    pub true_share_ci: Interval,
    /// False claims per item.
    pub false_per_item: f64,
}

/// Count the computed results, true and false, in the final attempts of the run in `dir`.
///
/// # Errors
/// [`EvalError`] when its results cannot be read.
pub fn claims(dir: &Path) -> Result<Claims, EvalError> {
    let results = read_results(&dir.join("results.jsonl"))?;
    let (mut items, mut with, mut all, mut right) = (0u64, 0u64, 0u64, 0u64);
    for r in &results {
        let Some(text) = r.attempts.last() else {
            continue;
        };
        items += 1;
        let (n, t) = count(text);
        with += u64::from(n > 0);
        all += n;
        right += t;
    }
    Ok(Claims {
        dir: dir.display().to_string(),
        items,
        items_with_claims: with,
        claims: all,
        true_claims: right,
        true_share: ratio(right, all),
        true_share_ci: stats::wilson(right, all),
        false_per_item: ratio(all - right, items),
    })
}

/// Computed results in `text` (`expr = n`, `expr` with an operator, `n` a lone number), and
/// how many of them are true.
pub fn count(text: &str) -> (u64, u64) {
    let results: Vec<bool> = crate::calc::equations(text)
        .into_iter()
        .filter(crate::calc::Equation::is_result)
        .map(|e| e.holds)
        .collect();
    (
        results.len() as u64,
        results.iter().filter(|h| **h).count() as u64,
    )
}

/// The runs as a markdown table.
pub fn to_markdown(runs: &[Claims]) -> String {
    let mut out = String::from(
        "| run | items | items computing anything | computed results | true (95% CI) | false per item |\n|---|---|---|---|---|---|\n",
    );
    for c in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1}% [{:.1}, {:.1}] | {:.2} |\n",
            c.dir,
            c.items,
            c.items_with_claims,
            c.claims,
            100.0 * c.true_share,
            100.0 * c.true_share_ci.lo,
            100.0 * c.true_share_ci.hi,
            c.false_per_item
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_computed_results_only() {
        let text =
            "Tom has 3 + 4 = 7 apples.\nThen 7 * 2 = 15.\nLet x = 5.\n12 = 12.\nThe answer is 15.";
        assert_eq!(count(text), (2, 1));
        assert_eq!(count("No arithmetic here."), (0, 0));
    }
}
