//! How solve prompts are laid out: chat or plain completion, worked examples, principles.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Chat or plain-completion prompting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Chat messages through the model's chat template.
    #[default]
    Chat,
    /// One plain-text prompt (base models).
    Completion,
}

/// A worked example shown before the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// The example's question.
    pub question: String,
    /// Its worked solution, ending in "The answer is N."
    pub solution: String,
}

/// How solve prompts are built: the format, the worked examples (zero-shot when empty) and the
/// principles put before them (LEAP; none when empty).
#[derive(Debug, Clone, Default)]
pub struct PromptStyle {
    /// Chat or completion.
    pub format: Format,
    /// Worked examples (zero-shot when empty).
    pub shots: Arc<Vec<Shot>>,
    /// Principles put before the worked examples (LEAP), none when empty.
    pub principles: Arc<Vec<String>>,
}

impl PromptStyle {
    /// Chat prompting, zero-shot, no principles.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
    /// Set the worked examples.
    pub fn with_shots(mut self, shots: Vec<Shot>) -> Self {
        self.shots = Arc::new(shots);
        self
    }
    /// Set the principles.
    pub fn with_principles(mut self, principles: Vec<String>) -> Self {
        self.principles = Arc::new(principles);
        self
    }
}
