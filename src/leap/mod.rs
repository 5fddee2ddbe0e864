//! LEAP (Zhang et al. 2024): learn principles from mistakes.
//!
//! [`learn`]: induce mistakes on a few examples (zero-shot chain of thought sampled at T>0,
//! the wrong answers kept and written to the mistake log), add mistakes already in the log,
//! ask a teacher model (the student itself unless another is given) for one low-level
//! principle per mistake, then for at most eight high-level principles condensing them.
//! [`promote`]: the gate: evaluate without and with the principles on a validation slice and
//! accept the file only if accuracy does not drop and negative flips stay under a cap.

mod promote;

use std::sync::Arc;

pub use crate::prompt::{Level, Principle, PrincipleSet, Promotion, FILE_VERSION};
pub use promote::{decide, promote};

use crate::answer;
use crate::mistakes::{Discard, Mistake, Sink, StoreError};
use crate::model::{Message, ModelError, Request};
use crate::prompt::{LeapHighContext, LeapLowContext, PromptError};
use crate::run::{Context, Problem, RunError};

/// LEAP failed.
#[derive(Debug, thiserror::Error)]
pub enum LeapError {
    /// A model call failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A prompt failed to render, or a principles file is unreadable or unwritable.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// Building a request failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The mistakes store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An evaluation run of the gate failed.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// Nothing to learn from.
    #[error("{0}")]
    Nothing(String),
    /// Another I/O failure.
    #[error("{0}")]
    Io(String),
}

/// A worked example mistakes are induced on.
#[derive(Debug, Clone)]
pub struct Example {
    /// The question.
    pub question: String,
    /// A correct solution.
    pub solution: String,
    /// Its final answer.
    pub answer: String,
}

/// Settings of [`learn`].
#[derive(Debug, Clone)]
pub struct LearnConfig {
    /// Task tag (in the file and on recorded mistakes).
    pub task: String,
    /// Data the examples come from (for the file).
    pub data: String,
    /// Samples per example.
    pub samples: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Seed of the first sample.
    pub seed: u64,
    /// Most mistakes turned into low-level principles.
    pub max_mistakes: usize,
    /// Most high-level principles.
    pub max_high: usize,
}

/// A line that introduces content rather than being it ("The principle is:").
fn is_heading(line: &str) -> bool {
    line.ends_with(':')
}

fn clean(line: &str) -> &str {
    line.trim().trim_matches(['*', '"', '\'', ' ']).trim()
}

/// The principle in a teacher's answer: the text after the last `Principle:` (on that line,
/// or else the first following line that is not empty and not itself a heading), or `None`.
pub fn parse_principle(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let at = lower.rfind("principle:")?;
    let rest = &text[at + "principle:".len()..];
    let line = rest
        .lines()
        .map(clean)
        .find(|l| !l.is_empty() && !is_heading(l))?;
    Some(line.chars().take(400).collect())
}

/// The bullet lines of a teacher's answer (`- `, `* `, `• `, `1.`, `1)`), at most `max`,
/// without duplicates. A bullet that is only a heading ("1. The principle is:") takes the
/// next content line as its text.
pub fn parse_bullets(text: &str, max: usize) -> Vec<String> {
    fn bullet(l: &str) -> Option<&str> {
        if let Some(b) = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .or_else(|| l.strip_prefix("• "))
        {
            return Some(b);
        }
        let digits = l.chars().take_while(char::is_ascii_digit).count();
        match l[digits..].chars().next() {
            Some('.' | ')') if digits > 0 => Some(&l[digits + 1..]),
            _ => None,
        }
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = bullet(l) else { continue };
        let mut body = clean(body);
        if is_heading(body) {
            match lines
                .iter()
                .skip(i + 1)
                .take_while(|n| bullet(n).is_none())
                .map(|n| clean(n))
                .find(|n| !n.is_empty() && !is_heading(n))
            {
                Some(next) => body = next,
                None => continue,
            }
        }
        if body.len() > 3 && !out.iter().any(|o| o.eq_ignore_ascii_case(body)) {
            out.push(body.chars().take(400).collect());
        }
        if out.len() == max {
            break;
        }
    }
    out
}

/// Induce mistakes: `cfg.samples` zero-shot answers per example at `cfg.temperature`; the
/// wrong ones come back as mistake records (tagged through `sink`, not yet written).
///
/// # Errors
/// [`LeapError`] when a model call fails.
pub async fn induce(
    student: &Context,
    examples: &[Example],
    cfg: &LearnConfig,
    sink: &Sink,
) -> Result<Vec<Mistake>, LeapError> {
    let mut out = Vec::new();
    let per_call = student.model().capabilities().samples_per_call(cfg.samples);
    for (i, ex) in examples.iter().enumerate() {
        let mut drawn = 0;
        while drawn < cfg.samples {
            let want = per_call.min(cfg.samples - drawn);
            let req = student
                .solve_request(&Problem::new(&ex.question))?
                .with_sampling(cfg.temperature, 1.0)
                .with_seed(cfg.seed + 1000 * i as u64 + u64::from(drawn))
                .with_n(want);
            let r = student.model().generate(req).await?;
            drawn += want;
            let tokens = r.usage.decoded_prompt_tokens() + r.usage.generated_tokens;
            for s in &r.samples {
                let got = answer::extract_str(&s.text);
                if got
                    .as_deref()
                    .is_some_and(|a| answer::same_number(a, &ex.answer))
                {
                    continue;
                }
                let mut m = sink.blank(&ex.question, Some(&ex.answer));
                m.steps = crate::steps::split(&s.text);
                m.critic = "answer".into();
                m.rationale = format!(
                    "final answer {} differs from the reference {}",
                    got.as_deref().unwrap_or("(none)"),
                    ex.answer
                );
                m.correction = Some(ex.solution.clone());
                m.answer_before = got.clone();
                m.answer_after = got;
                m.tokens = tokens / u64::from(want.max(1));
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Turn mistakes into principles with `teacher`: one low-level principle per mistake, then
/// the high-level list. Returns (high, low, low answers without a `Principle:` line).
///
/// # Errors
/// [`LeapError::Nothing`] when no principle could be read; model and prompt errors.
pub async fn principles(
    teacher: &Context,
    mistakes: &[Mistake],
    max_high: usize,
) -> Result<(Vec<Principle>, Vec<Principle>, usize), LeapError> {
    let mut low: Vec<Principle> = Vec::new();
    let mut unmarked = 0;
    for m in mistakes {
        let wrong = crate::steps::join(&m.steps);
        let reference = m.reference.clone().unwrap_or_default();
        let prompt = teacher.prompts().render(
            "leap_low",
            &LeapLowContext {
                question: &m.input,
                wrong: &wrong,
                wrong_answer: m.answer_before.as_deref().unwrap_or("none"),
                correct: m.correction.as_deref(),
                answer: &reference,
            },
        )?;
        let r = teacher
            .model()
            .generate(Request::chat(vec![Message::user(prompt)]).with_max_tokens(200))
            .await?;
        let Some(text) = parse_principle(r.text()) else {
            unmarked += 1;
            continue;
        };
        match low.iter_mut().find(|p| p.text.eq_ignore_ascii_case(&text)) {
            Some(p) => p.mistakes.push(m.id.clone()),
            None => low.push(Principle {
                text,
                mistakes: vec![m.id.clone()],
            }),
        }
    }
    if low.is_empty() {
        return Err(LeapError::Nothing(format!(
            "the teacher wrote no \"Principle:\" line for any of the {} mistakes; try a stronger `teacher`",
            mistakes.len()
        )));
    }
    let texts: Vec<String> = low.iter().map(|p| p.text.clone()).collect();
    let prompt = teacher.prompts().render(
        "leap_high",
        &LeapHighContext {
            principles: &texts,
            max: max_high,
        },
    )?;
    let r = teacher
        .model()
        .generate(Request::chat(vec![Message::user(prompt)]).with_max_tokens(400))
        .await?;
    let all: Vec<String> = low.iter().flat_map(|p| p.mistakes.clone()).collect();
    let high = parse_bullets(r.text(), max_high)
        .into_iter()
        .map(|text| Principle {
            text,
            mistakes: all.clone(),
        })
        .collect();
    Ok((high, low, unmarked))
}

/// The whole of `leap learn`: induce mistakes on `examples` (writing them to the student
/// context's mistakes store, when it has one), add `from_log`, learn principles with
/// `teacher`. The file names both models by identity.
///
/// # Errors
/// [`LeapError`]; [`LeapError::Nothing`] when there are no mistakes to learn from.
pub async fn learn(
    student: &Context,
    teacher: &Context,
    examples: &[Example],
    from_log: Vec<Mistake>,
    cfg: &LearnConfig,
) -> Result<PrincipleSet, LeapError> {
    let sink = student.sink().unwrap_or_else(|| Sink {
        store: Arc::new(Discard),
        task: cfg.task.clone(),
        model: student.model().id().key.clone(),
        run: student.run_id().map(str::to_string),
    });
    let sink = Sink {
        task: cfg.task.clone(),
        ..sink
    };
    let induced = induce(student, examples, cfg, &sink).await?;
    sink.store.record_batch(&induced)?;
    tracing::info!(
        induced = induced.len(),
        from_log = from_log.len(),
        "mistakes to learn from"
    );
    let n_log = from_log.len();
    let n_induced = induced.len();
    let mut all = induced;
    all.extend(from_log);
    all.truncate(cfg.max_mistakes);
    if all.is_empty() {
        return Err(LeapError::Nothing(
            "no mistakes to learn from: the student answered every sample right and the mistakes store has none for this task and model; raise `samples` or `examples`".into(),
        ));
    }
    let (high, low, unmarked) = principles(teacher, &all, cfg.max_high).await?;
    Ok(PrincipleSet {
        version: FILE_VERSION,
        task: cfg.task.clone(),
        student: student.model().id().key.clone(),
        teacher: teacher.model().id().key.clone(),
        created: crate::mistakes::now(),
        data: cfg.data.clone(),
        examples: examples.len(),
        samples: cfg.samples,
        temperature: cfg.temperature,
        from_log: n_log,
        induced: n_induced,
        low_unmarked: unmarked,
        promotion: None,
        high,
        low,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principles_and_bullets_are_read() {
        assert_eq!(
            parse_principle("The student added.\nPrinciple: **Multiply before adding.**"),
            Some("Multiply before adding.".into())
        );
        assert_eq!(
            parse_principle("principle:\n\n  Check units  "),
            Some("Check units".into())
        );
        assert_eq!(parse_principle("no marker"), None);
        let b = parse_bullets(
            "Here:\n- Read twice.\n* Check units.\n3. Read twice.\n4) Keep totals.\nplain\n- ok",
            8,
        );
        assert_eq!(b, vec!["Read twice.", "Check units.", "Keep totals."]);
        assert_eq!(parse_bullets("- aaaa\n- bbbb\n- cccc", 2).len(), 2);
        // Heading lines are not content: the text that follows them is.
        assert_eq!(
            parse_principle("The student's principle:\nThe principle is:\n\nCheck each step."),
            Some("Check each step.".into())
        );
        assert_eq!(
            parse_bullets(
                "1. The principle is:\n\nRead twice.\n\n2. Heading only:\n3. Keep totals.",
                8
            ),
            vec!["Read twice.", "Keep totals."]
        );
    }
}
