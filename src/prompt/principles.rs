//! The principles file (`principles/NAME.toml`, written by LEAP): the learned principles at two
//! levels, each with its provenance (the mistake ids it came from), the student and teacher
//! models, the date, and, once gated, the promotion decision. It lives with the prompts because
//! what it is for is the principles block of a solve prompt ([`PrincipleSet::texts`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PromptError;

/// The file format version this binary writes.
pub const FILE_VERSION: u32 = 1;

/// Which principles go into the prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One principle per mistake.
    Low,
    /// The condensed list (at most 8).
    #[default]
    High,
}

/// One principle and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principle {
    /// The principle.
    pub text: String,
    /// Ids of the mistakes (in the mistake log) it was learned from.
    pub mistakes: Vec<String>,
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// `accepted` or `rejected`.
    pub status: String,
    /// Why.
    pub reason: String,
    /// When it was decided.
    pub date: String,
    /// Validation items.
    pub n: usize,
    /// Accuracy without principles.
    pub baseline_accuracy: f64,
    /// Accuracy with them.
    pub principled_accuracy: f64,
    /// Items right without principles and wrong with them.
    pub negative_flips: usize,
    /// Items wrong without principles and right with them.
    pub positive_flips: usize,
    /// The cap on negative flips, as a share of the items.
    pub max_negative_flips: f64,
    /// Where the two evaluation runs are.
    pub eval_dir: String,
    /// Exact McNemar p-value of the flips (with vs without the principles on the same items);
    /// absent in files gated before amend recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// 95% Wilson interval of `baseline_accuracy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_ci: Option<crate::stats::Interval>,
    /// 95% Wilson interval of `principled_accuracy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principled_ci: Option<crate::stats::Interval>,
    /// What the decision rests on: an accepted file on `significant gain` or on
    /// `no significant harm` (the usual case: the difference is noise); a rejected one on
    /// what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

/// A principles file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipleSet {
    /// File format version.
    pub version: u32,
    /// Task the principles are for.
    pub task: String,
    /// The model whose mistakes they come from.
    pub student: String,
    /// The model that wrote them.
    pub teacher: String,
    /// When they were learned (RFC 3339).
    pub created: String,
    /// The data the mistakes were induced on (empty for log-only runs).
    pub data: String,
    /// Few-shot examples mistakes were induced on.
    pub examples: usize,
    /// Samples per example.
    pub samples: u32,
    /// Sampling temperature of the induction.
    pub temperature: f32,
    /// Mistakes taken from the log (`--from-log`).
    pub from_log: usize,
    /// Mistakes induced now.
    pub induced: usize,
    /// Low-level answers of the teacher that had no `Principle:` line (not used).
    #[serde(default)]
    pub low_unmarked: usize,
    /// The gate's decision, once `leap promote` ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// The condensed principles.
    pub high: Vec<Principle>,
    /// One principle per mistake.
    pub low: Vec<Principle>,
}

impl PrincipleSet {
    /// Read a principles file.
    ///
    /// # Errors
    /// [`PromptError::Principles`] naming the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, PromptError> {
        let err = |reason: String| PromptError::Principles {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let set: Self = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if set.version > FILE_VERSION {
            return Err(err(format!(
                "format version {} is newer than this amend reads ({FILE_VERSION}); upgrade amend",
                set.version
            )));
        }
        Ok(set)
    }

    /// Write the file (creating its directory).
    ///
    /// # Errors
    /// [`PromptError::Principles`].
    pub fn save(&self, path: &Path) -> Result<(), PromptError> {
        let err = |reason: String| PromptError::Principles {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| err(e.to_string()))
    }

    /// The principle texts of one level.
    pub fn texts(&self, level: Level) -> Vec<String> {
        let ps = match level {
            Level::Low => &self.low,
            Level::High => &self.high,
        };
        ps.iter().map(|p| p.text.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principles_file_round_trips_and_bad_ones_are_named() -> Result<(), PromptError> {
        let dir = tempfile::tempdir().map_err(|e| PromptError::Read {
            path: String::new(),
            reason: e.to_string(),
        })?;
        let path = dir.path().join("p/x.toml");
        let set = PrincipleSet {
            version: FILE_VERSION,
            task: "gsm8k".into(),
            student: "default".into(),
            teacher: "default".into(),
            created: "2026-11-28T00:00:00Z".into(),
            data: "train.jsonl".into(),
            examples: 3,
            samples: 15,
            temperature: 0.7,
            from_log: 0,
            induced: 2,
            low_unmarked: 0,
            promotion: None,
            high: vec![Principle {
                text: "Check units.".into(),
                mistakes: vec!["a".into(), "b".into()],
            }],
            low: vec![Principle {
                text: "Multiply \"first\".".into(),
                mistakes: vec!["a".into()],
            }],
        };
        set.save(&path)?;
        assert_eq!(PrincipleSet::load(&path)?, set);
        assert_eq!(set.texts(Level::High), vec!["Check units.".to_string()]);
        std::fs::write(&path, "version = 1\ntask = 3\n").map_err(|e| PromptError::Read {
            path: String::new(),
            reason: e.to_string(),
        })?;
        let e = PrincipleSet::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("x.toml"), "{e}");
        Ok(())
    }
}
