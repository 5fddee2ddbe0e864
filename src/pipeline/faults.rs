//! Fault injection with a real model (`amend pipeline faults`): each of CRITICTOOL's internal
//! error classes is put in place of a tool-call node's first output, on every input, and the
//! run goes on as usual — the fault is routed (re-asked with its class and message) and the
//! model, re-asked, may correct it. What is measured: how often the routing is the one the
//! class calls for, how often the re-asked model then completes the run, how often with the
//! right result (when the input has a `gold` value), against the same inputs run without a
//! fault, and whether any run went over the pipeline's `max_calls`.
//!
//! An input may also carry its own fault, a `fault` text (removed before the run, like
//! `gold`): a planted call (e.g. the problem's first calculation with one operand replaced by
//! a number the problem does not have) goes in place of the first output, as row `planted`,
//! routed when the run's first event is a critic's veto.
//!
//! The external classes are the tools' (connection, timeout, permission, rate limit): the
//! model is not asked about them, so they are tested with a failing loopback server
//! (`tests/pipeline.rs`), not here.
//!
//! The faults, for a node whose call goes to tool `T` with parameters `P` (its consumer's
//! `args_from`): `hallucinated_tool` calls `abacus`; `wrong_tool` calls another tool the
//! pipeline has (left out when it has only one); `bad_argument_keys` passes `x` instead of
//! `P`; `bad_argument_values` passes `P[0] = "??"`, which the calculator rejects (another tool
//! may accept it: the routing column then says so).

use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use super::exec::{run_injected, EventKind, Injection, Outcome, RunError, Status};
use super::graph::{NodeKind, Pipeline};
use super::score::same;
use super::tool::{InternalClass, ToolError};
use crate::run::Context;
use crate::stats::{wilson, Interval};

/// One class's results (or the clean runs', `class = "none"`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultRow {
    /// The injected class (`none`: no fault).
    pub class: String,
    /// Runs.
    pub runs: u64,
    /// Runs whose first re-ask carried the injected class (clean runs: 0).
    pub routed: u64,
    /// Runs that completed with a result.
    pub completed: u64,
    /// `completed / runs`, its 95% Wilson interval.
    pub completed_ci: Option<Interval>,
    /// Runs whose result equals the input's `gold`.
    pub right: u64,
    /// Runs whose input had a `gold` value.
    pub with_gold: u64,
    /// Runs with more model calls than `max_calls`.
    pub over_budget: u64,
    /// Model calls per run.
    pub calls_per_run: f64,
}

/// The report of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// The pipeline.
    pub pipeline: String,
    /// The node the faults went into.
    pub node: String,
    /// The runs without a fault first, then one row per class.
    pub rows: Vec<FaultRow>,
}

/// The internal faults for the tool-call node `node` of `p`, as (class, text): all four, or
/// three when the pipeline has a single tool (no wrong tool to call).
///
/// # Errors
/// [`RunError::Template`] when `node` is not an `llm` node whose tool call some tool node
/// takes (`args_from`).
pub fn faults_for(p: &Pipeline, node: &str) -> Result<Vec<(String, String)>, RunError> {
    let bad = |m: &str| RunError::Template {
        pipeline: p.name.clone(),
        node: node.to_string(),
        message: m.to_string(),
    };
    if !matches!(p.node(node).map(|n| &n.kind), Some(NodeKind::Llm(_))) {
        return Err(bad("faults go into an `llm` node"));
    }
    let consumer = p
        .nodes
        .iter()
        .find_map(|n| match &n.kind {
            NodeKind::Tool(t) if t.args_from.as_deref() == Some(node) => Some(t),
            _ => None,
        })
        .ok_or_else(|| bad("no tool node takes this node's call (`args_from`)"))?;
    let tool = consumer.tool.clone();
    let param = consumer.imp.params().first().copied().unwrap_or("value");
    let call = |t: &str, args: Value| json!({"tool": t, "arguments": args}).to_string();
    let name = |c: InternalClass| ToolError::internal(c, "").class_name();
    let mut faults = vec![(
        name(InternalClass::HallucinatedTool),
        call("abacus", json!({ param: "1 + 1" })),
    )];
    // A wrong tool needs a second tool; a pipeline with one has no such fault.
    if let Some(other) = p.tools.iter().find(|t| **t != tool) {
        faults.push((
            name(InternalClass::WrongTool),
            call(other, json!({ param: "1 + 1" })),
        ));
    }
    faults.extend([
        (
            name(InternalClass::BadArgumentKeys),
            call(&tool, json!({"x": "1 + 1"})),
        ),
        (
            name(InternalClass::BadArgumentValues),
            call(&tool, json!({ param: "??" })),
        ),
    ]);
    Ok(faults)
}

/// The row of input-carried faults.
pub const PLANTED: &str = "planted";

fn tally(row: &mut FaultRow, out: &Outcome, gold: Option<&Value>, max_calls: u32) -> u64 {
    row.runs += 1;
    let routed = match row.class.as_str() {
        PLANTED => out
            .events
            .first()
            .is_some_and(|e| e.kind == EventKind::Veto),
        class => out
            .events
            .iter()
            .find(|e| e.kind == EventKind::Reask)
            .is_some_and(|e| e.class == class),
    };
    row.routed += u64::from(routed);
    let result = match (&out.status, &out.result) {
        (Status::Complete, Some(r)) => Some(r),
        _ => None,
    };
    row.completed += u64::from(result.is_some());
    if let Some(g) = gold {
        row.with_gold += 1;
        row.right += u64::from(result.is_some_and(|r| same(r, g)));
    }
    row.over_budget += u64::from(out.usage.calls > u64::from(max_calls));
    out.usage.calls
}

/// Run `p` on every input once without a fault and once per internal class with the fault in
/// `node`, `jobs` runs at a time. An input's `gold` value (removed before the run) is compared
/// with the result.
///
/// # Errors
/// [`faults_for`]'s, and a run's [`RunError`] (a model or critic failure).
pub async fn run(
    p: &Pipeline,
    cx: &Context,
    inputs: &[Value],
    node: &str,
    jobs: usize,
) -> Result<FaultReport, RunError> {
    let faults = faults_for(p, node)?;
    let planted = inputs.iter().any(|i| i.get("fault").is_some());
    let mut rows: Vec<FaultRow> = std::iter::once("none".to_string())
        .chain(faults.iter().map(|(c, _)| c.clone()))
        .chain(planted.then(|| PLANTED.to_string()))
        .map(|class| FaultRow {
            class,
            ..FaultRow::default()
        })
        .collect();
    let mut calls = vec![0u64; rows.len()];
    // Every (input, fault) run, `jobs` at a time; tallied in input order.
    let mut runs = Vec::new();
    for input in inputs {
        let mut input = input.clone();
        let gold = input.as_object_mut().and_then(|o| o.remove("gold"));
        let own = input.as_object_mut().and_then(|o| o.remove("fault"));
        for k in 0..rows.len() {
            let text = match k.checked_sub(1) {
                None => None,
                Some(f) if f < faults.len() => faults.get(f).map(|(_, t)| t.clone()),
                // The planted row: only inputs that carry a fault run in it.
                Some(_) => match &own {
                    Some(Value::String(t)) => Some(t.clone()),
                    Some(other) => Some(other.to_string()),
                    None => continue,
                },
            };
            let inj = text.map(|text| Injection {
                node: node.to_string(),
                text,
            });
            runs.push((k, input.clone(), gold.clone(), inj));
        }
    }
    let done = futures::stream::iter(runs.into_iter().map(|(k, input, gold, inj)| async move {
        let out = run_injected(p, cx, &input, inj.as_ref()).await;
        (k, out, gold)
    }))
    .buffered(jobs.max(1));
    futures::pin_mut!(done);
    while let Some((k, out, gold)) = done.next().await {
        let out = out?;
        if let (Some(row), Some(c)) = (rows.get_mut(k), calls.get_mut(k)) {
            *c += tally(row, &out, gold.as_ref(), p.limits.max_calls);
        }
    }
    for (row, c) in rows.iter_mut().zip(calls) {
        row.completed_ci = Some(wilson(row.completed, row.runs));
        row.calls_per_run = c as f64 / row.runs.max(1) as f64;
    }
    Ok(FaultReport {
        pipeline: p.name.clone(),
        node: node.to_string(),
        rows,
    })
}
