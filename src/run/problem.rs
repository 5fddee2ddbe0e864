//! What a strategy is asked to solve, and what a critic located in an attempt at it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{Message, Role};

/// The question: a plain text, or a chat whose messages are used as they are.
#[derive(Debug, Clone, Copy)]
pub enum Question<'a> {
    /// A question, put into the `solve` prompt (with the context's worked examples and
    /// principles).
    Text(&'a str),
    /// A client's conversation, sent as it is (no `solve` template, worked examples or
    /// principles are added); the model answers its last turn.
    Chat(&'a [Message]),
}

/// A question, and what a verifier may check answers against.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The question.
    pub question: Question<'a>,
    /// The gold answer, when known (evaluation): oracle strategies may stop on it.
    pub gold: Option<&'a str>,
    /// A given first attempt, as steps (BIG-Bench Mistake traces): strategies that correct
    /// an attempt start from it instead of generating one.
    pub draft: Option<&'a [String]>,
    /// The label of the draft's first wrong step, when known (`Some(None)` = no mistake);
    /// only the `gold` critic reads it.
    pub gold_step: Option<Option<usize>>,
    /// The task's own grader of an attempt's text, when the answer is not a number (BIG-Bench
    /// Mistake); without it an attempt is right when its number equals `gold`.
    pub check: Option<Check<'a>>,
}

/// A grader: is this attempt's text right?
#[derive(Clone, Copy)]
pub struct Check<'a>(pub &'a (dyn Fn(&str) -> bool + Send + Sync));

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check(..)")
    }
}

impl<'a> Problem<'a> {
    /// A plain question with no known answer.
    pub fn new(question: &'a str) -> Self {
        Self {
            question: Question::Text(question),
            gold: None,
            draft: None,
            gold_step: None,
            check: None,
        }
    }

    /// A chat (a client's messages, used as they are) with no known answer.
    pub fn chat(messages: &'a [Message]) -> Self {
        Self {
            question: Question::Chat(messages),
            ..Self::new("")
        }
    }

    /// The same problem with a known gold answer.
    pub fn with_gold(mut self, gold: &'a str) -> Self {
        self.gold = Some(gold);
        self
    }

    /// The problem as a critic and the mistakes store read it: the question text, or, for a
    /// chat, every message that is not the assistant's (system and user turns), in order,
    /// separated by blank lines. Earlier assistant turns are the model's own words, not part
    /// of what it was asked.
    pub fn text(&self) -> Cow<'a, str> {
        match self.question {
            Question::Text(q) => Cow::Borrowed(q),
            Question::Chat(msgs) => Cow::Owned(
                msgs.iter()
                    .filter(|m| m.role != Role::Assistant)
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
        }
    }

    /// Is `text` a right attempt? `None` when there is nothing to judge it by.
    pub fn right(&self, text: &str) -> Option<bool> {
        if let Some(c) = self.check {
            return Some((c.0)(text));
        }
        let gold = self.gold?;
        Some(crate::answer::extract_str(text).is_some_and(|a| crate::answer::same_number(&a, gold)))
    }
}

/// A mistake a critic located in an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Located {
    /// Index of the first wrong step.
    pub step: usize,
    /// The step as written.
    pub text: String,
    /// Which critic found it.
    pub critic: String,
    /// Its rationale (at most 300 characters).
    pub rationale: String,
}

impl Located {
    /// A located mistake, its rationale cut to 300 characters.
    pub fn new(step: usize, text: &str, critic: &str, rationale: &str) -> Self {
        Self {
            step,
            text: text.to_string(),
            critic: critic.to_string(),
            rationale: rationale.chars().take(300).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_reads_as_its_non_assistant_turns() {
        let msgs = vec![
            Message::system("Be brief."),
            Message::user("A box holds 6 eggs."),
            Message::assistant("ok"),
            Message::user("How many eggs are in 5 boxes?"),
        ];
        let p = Problem::chat(&msgs);
        assert_eq!(
            p.text(),
            "Be brief.\n\nA box holds 6 eggs.\n\nHow many eggs are in 5 boxes?"
        );
        assert_eq!(Problem::new("2 + 2?").text(), "2 + 2?");
        let p = Problem::new("q").with_gold("30");
        assert_eq!(p.right("so 5 * 6 = 30. The answer is 30."), Some(true));
        assert_eq!(Problem::new("q").right("30"), None);
    }
}
