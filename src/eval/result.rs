//! What one evaluated item records: one line of `results.jsonl`.

use serde::{Deserialize, Serialize};

use crate::model::Usage;

/// The outcome of one item, one line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// Item id.
    pub id: String,
    /// The gold answer (or label, for ProcessBench).
    pub gold: String,
    /// Answer of each attempt/turn in order (the first is the uncorrected attempt).
    pub answers: Vec<Option<String>>,
    /// Correctness of each attempt/turn.
    pub correct_by_turn: Vec<bool>,
    /// Final answer.
    pub final_answer: Option<String>,
    /// The first attempt was right.
    pub correct_before: bool,
    /// The final answer is right.
    pub correct_after: bool,
    /// ProcessBench: the critic's predicted earliest wrong step (-1 = none); `None` = unparsed.
    #[serde(default)]
    pub predicted_step: Option<i64>,
    /// ProcessBench: the label.
    #[serde(default)]
    pub label: Option<i64>,
    /// BIG-Bench Mistake: the trace's own answer was right.
    #[serde(default)]
    pub prior_right: Option<bool>,
    /// Tokens and calls spent on this item.
    pub usage: Usage,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// `TRACE_FILE#seq` of the item's first trace event.
    #[serde(default)]
    pub trace: Option<String>,
    /// An error that stopped this item (counted as wrong).
    #[serde(default)]
    pub error: Option<String>,
    /// A budget cut the strategy short on this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_stop: Option<String>,
    /// The question (runs before this field existed lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The text of every attempt, in order (ProcessBench: the given solution).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<String>,
    /// The mistakes a critic located, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub located: Vec<crate::run::Located>,
    /// The greedy one-pass answer, when the evaluation made that pass itself because the
    /// strategy's first attempt is not it (self-consistency samples at T > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_before: Option<String>,
    /// What that extra pass cost (not counted in `usage`, which is the strategy's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_before: Option<Usage>,
    /// How the strategy's prefills were continued on this item, if it made any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<crate::model::Prefill>,
    /// Verified selection: samples the verifier accepted on this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivors: Option<u32>,
}
