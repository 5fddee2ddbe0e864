//! Prompts as tera templates.
//!
//! The defaults under `prompts/` are embedded in the binary; `--prompts DIR` overrides any of
//! them by file name (`DIR/solve.tera` replaces `solve`). Templates are rendered from typed
//! context structs, never from ad-hoc maps.

mod principles;
mod style;

use std::path::Path;

use serde::Serialize;
use tera::Tera;

pub use principles::{Level, Principle, PrincipleSet, Promotion, FILE_VERSION};
pub use style::{Format, PromptStyle, Shot};

/// Embedded default templates: (name, source).
const DEFAULTS: &[(&str, &str)] = &[
    ("solve", include_str!("../../prompts/solve.tera")),
    ("completion", include_str!("../../prompts/completion.tera")),
    (
        "critic_processbench",
        include_str!("../../prompts/critic_processbench.tera"),
    ),
    (
        "rise_feedback",
        include_str!("../../prompts/rise_feedback.tera"),
    ),
    (
        "critic_step",
        include_str!("../../prompts/critic_step.tera"),
    ),
    ("principles", include_str!("../../prompts/principles.tera")),
    ("leap_low", include_str!("../../prompts/leap_low.tera")),
    ("leap_high", include_str!("../../prompts/leap_high.tera")),
];

/// A template failed to load or render.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A template file could not be read.
    #[error("cannot read prompt template {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A template does not parse.
    #[error("prompt template {name:?} ({origin}) is invalid: {reason}\n  fix the template or remove it to use the built-in default")]
    Parse {
        /// Template name.
        name: String,
        /// Where it came from (a path or "built-in").
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// Rendering failed (e.g. the template uses a variable that does not exist).
    #[error("prompt template {name:?} failed to render: {reason}")]
    Render {
        /// Template name.
        name: String,
        /// The renderer's message.
        reason: String,
    },
    /// No template by that name.
    #[error("no prompt template named {0:?}")]
    Missing(String),
    /// A principles file is unreadable, unwritable or malformed.
    #[error("principles file {path}: {reason}")]
    Principles {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

fn chain(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The context of the `principles` template (a block put before the worked examples).
#[derive(Debug, Clone, Serialize)]
pub struct PrinciplesContext<'a> {
    /// The principles, one sentence each.
    pub principles: &'a [String],
}

/// The context of the `leap_low` template: one mistake to turn into a principle.
#[derive(Debug, Clone, Serialize)]
pub struct LeapLowContext<'a> {
    /// The problem.
    pub question: &'a str,
    /// The wrong reasoning.
    pub wrong: &'a str,
    /// Its final answer (or "none").
    pub wrong_answer: &'a str,
    /// A correct reasoning, when one is known.
    pub correct: Option<&'a str>,
    /// The correct final answer.
    pub answer: &'a str,
}

/// The context of the `leap_high` template: principles to condense.
#[derive(Debug, Clone, Serialize)]
pub struct LeapHighContext<'a> {
    /// The low-level principles.
    pub principles: &'a [String],
    /// Most principles to write.
    pub max: usize,
}

/// The context of the `solve` template.
#[derive(Debug, Clone, Serialize)]
pub struct SolveContext<'a> {
    /// The question to answer.
    pub question: &'a str,
}

/// The context of the `completion` template (plain-completion prompts for base models).
#[derive(Debug, Clone, Serialize)]
pub struct CompletionContext<'a> {
    /// Worked examples.
    pub shots: &'a [Shot],
    /// The question to answer.
    pub question: &'a str,
}

/// A loaded set of templates.
#[derive(Debug, Clone)]
pub struct Prompts {
    tera: Tera,
}

impl Prompts {
    /// The built-in templates.
    ///
    /// # Errors
    /// [`PromptError::Parse`] if a built-in template is broken (a bug).
    pub fn builtin() -> Result<Self, PromptError> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        for (name, src) in DEFAULTS {
            tera.add_raw_template(name, src)
                .map_err(|e| PromptError::Parse {
                    name: (*name).to_string(),
                    origin: "built-in".into(),
                    reason: chain(&e),
                })?;
        }
        Ok(Self { tera })
    }

    /// The built-in templates, overridden by `DIR/NAME.tera` files.
    ///
    /// # Errors
    /// [`PromptError::Read`] / [`PromptError::Parse`] naming the file.
    pub fn from_dir(dir: &Path) -> Result<Self, PromptError> {
        let mut p = Self::builtin()?;
        let entries = std::fs::read_dir(dir).map_err(|e| PromptError::Read {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "tera") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let src = std::fs::read_to_string(&path).map_err(|e| PromptError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            p.tera
                .add_raw_template(name, &src)
                .map_err(|e| PromptError::Parse {
                    name: name.to_string(),
                    origin: path.display().to_string(),
                    reason: chain(&e),
                })?;
        }
        Ok(p)
    }

    /// Built-ins, or overridden from `dir` when given.
    ///
    /// # Errors
    /// As [`Prompts::from_dir`].
    pub fn load(dir: Option<&Path>) -> Result<Self, PromptError> {
        match dir {
            Some(d) => Self::from_dir(d),
            None => Self::builtin(),
        }
    }

    /// Render template `name` with a typed context.
    ///
    /// # Errors
    /// [`PromptError::Missing`] / [`PromptError::Render`].
    pub fn render<C: Serialize>(&self, name: &str, ctx: &C) -> Result<String, PromptError> {
        if !self.tera.get_template_names().any(|n| n == name) {
            return Err(PromptError::Missing(name.to_string()));
        }
        let ctx = tera::Context::from_serialize(ctx).map_err(|e| PromptError::Render {
            name: name.into(),
            reason: chain(&e),
        })?;
        self.tera
            .render(name, &ctx)
            .map(|s| s.trim_end().to_string())
            .map_err(|e| PromptError::Render {
                name: name.into(),
                reason: chain(&e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_prompt_snapshot() {
        let p = Prompts::builtin().ok();
        let out = p.and_then(|p| {
            p.render(
                "solve",
                &SolveContext {
                    question: "What is 2 + 3?",
                },
            )
            .ok()
        });
        insta::assert_snapshot!(out.unwrap_or_default());
    }

    #[test]
    fn critic_and_completion_snapshots() {
        let p = Prompts::builtin().ok();
        let steps = vec![
            "3 + 4 = 7.".to_string(),
            "So the answer is \\boxed{7}.".to_string(),
        ];
        #[derive(Serialize)]
        struct Pb<'a> {
            problem: &'a str,
            steps: &'a [String],
        }
        let critic = p.as_ref().and_then(|p| {
            p.render(
                "critic_processbench",
                &Pb {
                    problem: "3 + 4?",
                    steps: &steps,
                },
            )
            .ok()
        });
        insta::assert_snapshot!("critic_processbench", critic.unwrap_or_default());
        let shots = vec![Shot {
            question: "1 + 1?".into(),
            solution: "1 + 1 = 2.\nThe answer is 2.".into(),
        }];
        let completion = p.and_then(|p| {
            p.render(
                "completion",
                &CompletionContext {
                    shots: &shots,
                    question: "2 + 2?",
                },
            )
            .ok()
        });
        insta::assert_snapshot!("completion", completion.unwrap_or_default());
    }

    #[test]
    fn step_and_feedback_snapshots() {
        let p = Prompts::builtin().ok();
        #[derive(Serialize)]
        struct Step<'a> {
            problem: &'a str,
            previous: &'a [String],
            step: &'a str,
        }
        let prev = vec!["Each box has 6 eggs.".to_string()];
        let step = p.as_ref().and_then(|p| {
            p.render(
                "critic_step",
                &Step {
                    problem: "6 eggs a box; 5 boxes?",
                    previous: &prev,
                    step: "5 * 6 = 35.",
                },
            )
            .ok()
        });
        insta::assert_snapshot!("critic_step", step.unwrap_or_default());
        #[derive(Serialize)]
        struct Fb<'a> {
            question: &'a str,
            step: Option<usize>,
            rationale: Option<&'a str>,
        }
        let generic = p.as_ref().and_then(|p| {
            p.render(
                "rise_feedback",
                &Fb {
                    question: "2 + 2?",
                    step: None,
                    rationale: None,
                },
            )
            .ok()
        });
        insta::assert_snapshot!("rise_feedback_generic", generic.unwrap_or_default());
        let critic = p.and_then(|p| {
            p.render(
                "rise_feedback",
                &Fb {
                    question: "2 + 2?",
                    step: Some(0),
                    rationale: Some("2 + 2 = 5 is false."),
                },
            )
            .ok()
        });
        insta::assert_snapshot!("rise_feedback_critic", critic.unwrap_or_default());
    }

    #[test]
    fn leap_and_principles_snapshots() {
        let Ok(p) = Prompts::builtin() else {
            panic!("built-in prompts must load");
        };
        let principles = vec!["Check each product.".to_string(), "Keep units.".to_string()];
        let block = p.render(
            "principles",
            &PrinciplesContext {
                principles: &principles,
            },
        );
        insta::assert_snapshot!("principles", block.unwrap_or_default());
        let with_reasoning = p.render(
            "leap_low",
            &LeapLowContext {
                question: "A box holds 6 eggs. How many eggs are in 5 boxes?",
                wrong: "5 + 6 = 11\nThe answer is 11.",
                wrong_answer: "11",
                correct: Some("5 * 6 = 30"),
                answer: "30",
            },
        );
        insta::assert_snapshot!("leap_low", with_reasoning.unwrap_or_default());
        let answer_only = p.render(
            "leap_low",
            &LeapLowContext {
                question: "Q?",
                wrong: "w",
                wrong_answer: "1",
                correct: None,
                answer: "2",
            },
        );
        assert!(answer_only.is_ok_and(|t| t.contains("Correct final answer: 2")));
        let high = p.render(
            "leap_high",
            &LeapHighContext {
                principles: &principles,
                max: 8,
            },
        );
        insta::assert_snapshot!("leap_high", high.unwrap_or_default());
    }

    #[test]
    fn override_and_bad_template() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        std::fs::write(dir.path().join("solve.tera"), "Q: {{ question }}").ok();
        let p = Prompts::from_dir(dir.path()).ok();
        let out = p.and_then(|p| p.render("solve", &SolveContext { question: "1+1" }).ok());
        assert_eq!(out.as_deref(), Some("Q: 1+1"));

        std::fs::write(dir.path().join("solve.tera"), "Q: {{ question ").ok();
        let err = Prompts::from_dir(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("solve.tera") && err.contains("invalid"),
            "{err}"
        );

        std::fs::write(dir.path().join("solve.tera"), "Q: {{ nope }}").ok();
        let err = Prompts::from_dir(dir.path())
            .ok()
            .and_then(|p| p.render("solve", &SolveContext { question: "x" }).err())
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("failed to render"), "{err}");
    }
}
