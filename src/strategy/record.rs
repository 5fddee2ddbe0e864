//! Recording a located mistake: the trace event and the mistakes-store record, shared by the
//! strategies that correct (backtracking, RISE).

use crate::run::{Context, Ledger, Problem};

/// A mistake a critic located, and what the strategy did about it.
pub(crate) struct Found<'a> {
    /// The attempt's text.
    pub attempt: &'a str,
    /// Its steps.
    pub steps: Vec<String>,
    /// The first wrong step.
    pub step: usize,
    /// Which critic located it, and why.
    pub critic: &'a str,
    pub rationale: &'a str,
    /// The revised attempt's text, if one was made.
    pub revised: Option<&'a str>,
    /// What to record as the correction when it was kept.
    pub correction: Option<String>,
    /// Did the revision replace the attempt?
    pub kept: bool,
    /// Strategy-specific trace detail.
    pub detail: serde_json::Value,
}

/// Record a located mistake: a `mistake` trace event and, when the context has a mistakes
/// store, a record in it, its outcome judged by the problem's grader.
pub(crate) fn note_mistake(cx: &Context, problem: &Problem<'_>, ledger: &Ledger, f: Found<'_>) {
    let after_text = f.revised.filter(|_| f.kept).unwrap_or(f.attempt);
    let (before, after) = (
        crate::answer::extract_str(f.attempt),
        crate::answer::extract_str(after_text),
    );
    let outcome = crate::mistakes::Outcome::judge(
        f.kept,
        problem.right(f.attempt),
        problem.right(after_text),
    );
    let trace = cx.record(
        "mistake",
        serde_json::json!({"step": f.step, "critic": f.critic, "rationale": f.rationale, "revised": f.revised, "kept": f.kept, "outcome": outcome, "answer_before": before, "answer_after": after, "detail": f.detail}),
    );
    if let Some(sink) = cx.sink() {
        let mut m = sink.blank(&problem.text(), problem.gold);
        m.steps = f.steps;
        m.step = Some(f.step);
        m.critic = f.critic.into();
        m.rationale = f.rationale.into();
        m.correction = f.correction.filter(|_| f.kept);
        m.answer_before = before;
        m.answer_after = after;
        m.outcome = outcome;
        m.tokens = ledger.tokens();
        m.trace = trace;
        sink.write(&m);
    }
}
