//! Recording a located mistake: the trace event and the mistakes-store record, shared by the
//! strategies that correct (backtracking, RISE).

use crate::mistakes::{TokenRecord, TokenSource};
use crate::model::{ScoreRequest, ScoredToken};
use crate::run::{Context, Ledger, OptionError, Problem};

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
/// store, a record in it, its outcome judged by the problem's grader; with
/// [`Context::with_token_log`] on a generator that can teacher-force, also the token records
/// of the attempt's first wrongly written result ([`log_slip_tokens`]; a failure there is
/// logged, never the strategy's).
pub(crate) async fn note_mistake(
    cx: &Context,
    problem: &Problem<'_>,
    ledger: &Ledger,
    f: Found<'_>,
) {
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
        if cx.token_log() && cx.model().capabilities().teacher_forcing {
            if let Err(e) = log_slip_tokens(cx, problem, f.attempt, &m.id).await {
                tracing::warn!(error = %e, id = %m.id, "could not record the mistake's tokens");
            }
        }
    }
}

/// Token records of a scored continuation, one per token, under `id` (the mistake or the
/// collected item they belong to), for the logit rectifier. Positions count from 0 at the
/// continuation's first token; `skip` leading tokens are left out (their positions keep
/// counting). A token holding a digit of a computed result (the lone number after
/// `a op b =`, see [`crate::calc::equations`]) is marked `result`.
pub fn token_records(
    id: &str,
    source: TokenSource,
    model: &str,
    tokens: &[ScoredToken],
    skip: usize,
) -> Vec<TokenRecord> {
    let text: String = tokens.iter().map(|t| t.piece.as_str()).collect();
    let results: Vec<std::ops::Range<usize>> = crate::calc::equations(&text)
        .into_iter()
        .filter(crate::calc::Equation::is_result)
        .map(|e| e.right)
        .collect();
    let mut end = 0;
    let spans: Vec<std::ops::Range<usize>> = tokens
        .iter()
        .map(|t| {
            let start = end;
            end += t.piece.len();
            start..end
        })
        .collect();
    tokens
        .iter()
        .zip(spans)
        .enumerate()
        .skip(skip)
        .map(|(j, (t, span))| TokenRecord {
            mistake: id.to_string(),
            position: u32::try_from(j).unwrap_or(u32::MAX),
            source: Some(source),
            model: model.to_string(),
            gold: i32::try_from(t.gold).ok(),
            gold_logit: Some(t.gold_logit),
            token: t
                .top
                .first()
                .and_then(|(id, _)| i32::try_from(*id).ok())
                .unwrap_or(-1),
            log_normaliser: Some(t.log_normaliser),
            top: t
                .top
                .iter()
                .filter_map(|(id, l)| Some((i32::try_from(*id).ok()?, *l)))
                .collect(),
            hidden: t.hidden.clone().unwrap_or_default(),
            logits: Vec::new(),
            result: Some(
                t.piece.bytes().any(|b| b.is_ascii_digit())
                    && results
                        .iter()
                        .any(|r| r.start < span.end && span.start < r.end),
            ),
        })
        .collect()
}

/// Candidates kept per position in the token records written from located mistakes (what
/// `amend rectify collect` keeps by default).
pub const LOG_TOP_K: u32 = 32;

/// The mistake log feeding the rectifier: when `attempt` writes a computed result wrong
/// (`a op b = c` with c not the value, see [`crate::calc::first_slip`]), the exact result is a
/// known right continuation at a known place. Score the attempt up to the result followed by
/// the exact value, after the prompt `solve` sends for `problem`, and record the tokens of
/// the value (source `located`) under `mistake`, the located mistake's id. Returns the
/// records written: 0 when the attempt has no such slip.
///
/// # Errors
/// [`StrategyError::Model`] when the generator cannot teacher-force (check
/// [`crate::model::Capabilities::teacher_forcing`] first) or fails, [`StrategyError::Option`]
/// without a store ([`Context::with_mistakes`]), [`StrategyError::Store`] when it refuses the
/// records.
pub async fn log_slip_tokens(
    cx: &Context,
    problem: &Problem<'_>,
    attempt: &str,
    mistake: &str,
) -> Result<usize, super::StrategyError> {
    let Some(slip) = crate::calc::first_slip(attempt, true) else {
        return Ok(0);
    };
    let sink = cx.sink().ok_or_else(|| {
        OptionError::new(
            "mistakes",
            "token records of located mistakes need a mistakes store (Context::with_mistakes)",
        )
    })?;
    let prefix = attempt.get(..slip.at.start).unwrap_or_default();
    let req = cx.solve_request(problem)?;
    let scored = cx
        .model()
        .score(ScoreRequest {
            input: req.input,
            continuation: format!("{prefix}{}", slip.exact),
            top_k: LOG_TOP_K,
            hidden: true,
            close: false,
        })
        .await?;
    // The value's tokens: those ending past the prefix (a token merged across the boundary
    // is the value's first).
    let mut end = 0;
    let skip = scored
        .tokens
        .iter()
        .take_while(|t| {
            end += t.piece.len();
            end <= prefix.len()
        })
        .count();
    let records = token_records(
        mistake,
        TokenSource::Located,
        &sink.model,
        &scored.tokens,
        skip,
    );
    sink.store.record_tokens(&records)?;
    Ok(records.len())
}
