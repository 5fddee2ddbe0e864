//! Running a pipeline: nodes in run order, errors routed as CRITICTOOL describes them.
//!
//! - An `llm` node renders its template (tera; the context holds `input`, every finished
//!   node's output under its id, and `feedback`: the last error this node was re-asked with)
//!   and calls the generator greedily. A re-asked node gets its previous output and the error
//!   as the next turns of the conversation. Output it cannot parse (no JSON, JSON against its
//!   schema, no tool call) is an internal error of the node itself.
//! - A `tool` node's arguments come from its templates or from the tool call of its
//!   `args_from` node. A call naming another tool is `wrong_tool` (a tool the pipeline has) or
//!   `hallucinated_tool` (one it has not).
//! - **Internal errors and vetoes** re-ask the producing `llm` node (the `args_from` node, else
//!   the nearest `llm` ancestor) with the error, at most `max_reasks` times per node; the
//!   producer and everything downstream of it run again. Past the limit the run finishes with
//!   a partial result.
//! - **External errors** are retried with exponential backoff, at most `max_retries` times;
//!   then the node's `on_external` policy: `skip` (nodes that need its output are skipped too)
//!   or `finish`.
//! - An `after` critic judges the outputs so far (one step per node) and may locate the first
//!   bad node: that node and its descendants are invalidated, its ancestors kept, and it is
//!   re-run with the critic's rationale (a tool node: its producer is). A rollback that would
//!   re-run a completed tool with side effects is refused unless the node is `idempotent`;
//!   at most `max_rollbacks` per run.
//!
//! Every veto, re-ask, retry, skip, finish and rollback is an [`Event`] in the outcome, a
//! `pipeline` trace event, and a record in the mistakes store (task = the pipeline's name,
//! step = the node's place in the run order, critic = the class or critic name).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::graph::{NodeKind, Pipeline};
use crate::critic::CriticError;
use crate::model::{ModelError, Usage};
use crate::prompt::PromptError;
use crate::run::{Budget, Context, Ledger};

/// A run could not go on at all (routed errors never end up here: they are events).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model failed (after the model layer's own retries).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A critic failed.
    #[error(transparent)]
    Critic(#[from] CriticError),
    /// A template could not be rendered with this input.
    #[error("pipeline {pipeline}: node {node}: {message}")]
    Template {
        /// The pipeline.
        pipeline: String,
        /// The node.
        node: String,
        /// What failed.
        message: String,
    },
}

impl From<PromptError> for RunError {
    fn from(e: PromptError) -> Self {
        Self::Template {
            pipeline: String::new(),
            node: String::new(),
            message: e.to_string(),
        }
    }
}

/// What the executor did about a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A `before` critic stopped a node from running.
    Veto,
    /// A producing node was asked again with an error.
    Reask,
    /// A tool call was tried again after an external failure.
    Retry,
    /// A node was skipped (external failure with `on_external = skip`, or a needed output
    /// missing).
    Skip,
    /// The run ended early with a partial result.
    Finish,
    /// An `after` critic's located node was invalidated and re-run.
    Rollback,
    /// A rollback was refused (a side-effect barrier, or the rollback budget).
    RollbackRefused,
}

/// One routed problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What was done.
    pub kind: EventKind,
    /// The node it concerns.
    pub node: String,
    /// The error class (`bad_argument_values`, `timeout`, ...) or the critic's name.
    pub class: String,
    /// Why.
    pub message: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Every node ran or was skipped.
    Complete,
    /// Ended early; the outputs so far are the partial result.
    Finished {
        /// The node where it ended.
        node: String,
        /// Why.
        reason: String,
    },
}

/// The result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Each finished node's output, by id (critics: their verdict).
    pub outputs: BTreeMap<String, Value>,
    /// The result: the output of the last non-critic node in run order that has one.
    pub result: Option<Value>,
    /// Skipped nodes, in order.
    pub skipped: Vec<String>,
    /// Every routed problem, in order.
    pub events: Vec<Event>,
    /// Model calls (the generator's and the critics').
    pub usage: Usage,
    /// Tool calls made (retries included).
    pub tool_calls: u32,
}

impl Outcome {
    /// The result as text (a JSON string's content, else the JSON).
    pub fn result_text(&self) -> Option<String> {
        self.result.as_ref().map(value_text)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Base delay of the external-error backoff (doubled per retry).
pub const BACKOFF: Duration = Duration::from_millis(50);

struct State<'p> {
    p: &'p Pipeline,
    input: Value,
    outputs: Vec<Option<Value>>,
    skipped: Vec<bool>,
    /// Per node: (its output then, the error) for each re-ask, oldest first.
    feedback: Vec<Vec<(String, String)>>,
    /// Per `llm` node: the text of its latest call.
    last_raw: Vec<Option<String>>,
    /// Per `tool` node: the arguments of its latest call, as text.
    used_args: Vec<Option<String>>,
    reasks: Vec<u32>,
    side_effect_done: Vec<bool>,
    rollbacks: u32,
    events: Vec<Event>,
    tool_calls: u32,
    /// A fault to answer in place of the model, once (see [`Injection`]).
    inject: Option<(usize, String)>,
}

/// A fault put in place of one `llm` node's first output, for measuring how the pipeline
/// routes it and whether the model corrects it when re-asked (`amend pipeline faults`). The
/// node's first call is not made: `text` is taken as its whole text (prefill and suffix
/// included) and goes through the same parsing, vetoes and routing as a model's; every later
/// call of the node goes to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The `llm` node's id.
    pub node: String,
    /// The text it answers with the first time.
    pub text: String,
}

enum Step {
    /// Go on with the next node in order.
    Next,
    /// Go back to this node (it and its descendants were invalidated).
    Back(usize),
    /// End the run.
    End(String),
}

/// Run `p` on `input` (a JSON object; templates see it as `input`) with the generator and
/// critics of `cx`. Budgets: `p.limits` and the context's budget (the stricter cap wins).
///
/// # Errors
/// [`RunError`] when the model or a critic fails or a template cannot be rendered; every
/// routed error (vetoes, internal and external tool errors, rollbacks) is an [`Event`] instead.
pub async fn run(p: &Pipeline, cx: &Context, input: &Value) -> Result<Outcome, RunError> {
    run_injected(p, cx, input, None).await
}

/// [`run`], with `injection` answering in place of the model once.
///
/// # Errors
/// As [`run`]; an injection naming no `llm` node is [`RunError::Template`].
pub async fn run_injected(
    p: &Pipeline,
    cx: &Context,
    input: &Value,
    injection: Option<&Injection>,
) -> Result<Outcome, RunError> {
    let inject = match injection {
        None => None,
        Some(inj) => match p.index(&inj.node) {
            Some(i) if matches!(p.nodes.get(i).map(|n| &n.kind), Some(NodeKind::Llm(_))) => {
                Some((i, inj.text.clone()))
            }
            _ => {
                return Err(RunError::Template {
                    pipeline: p.name.clone(),
                    node: inj.node.clone(),
                    message: "a fault can be injected only into an `llm` node of the pipeline"
                        .into(),
                })
            }
        },
    };
    let cx = cx.clone().with_task(&p.name);
    let mut budget: Budget = cx.budget();
    let cap = u64::from(p.limits.max_calls);
    budget.max_calls = Some(budget.max_calls.map_or(cap, |c| c.min(cap)));
    let mut ledger = Ledger::new(budget);
    let n = p.nodes.len();
    let mut st = State {
        p,
        input: input.clone(),
        outputs: vec![None; n],
        skipped: vec![false; n],
        feedback: vec![Vec::new(); n],
        last_raw: vec![None; n],
        used_args: vec![None; n],
        reasks: vec![0; n],
        side_effect_done: vec![false; n],
        rollbacks: 0,
        events: Vec::new(),
        tool_calls: 0,
        inject,
    };
    let mut pos = 0;
    let mut status = Status::Complete;
    // Every move back re-runs at least one node; the budgets bound how often.
    while let Some(&i) = p.order.get(pos) {
        if st.outputs.get(i).is_some_and(Option::is_some) || st.skipped.get(i) == Some(&true) {
            pos += 1;
            continue;
        }
        let step = match st.needs_skipped(i) {
            Some(dep) => {
                st.skip(
                    &cx,
                    &ledger,
                    i,
                    "missing_input",
                    &format!("needs the output of skipped node {dep}"),
                );
                Step::Next
            }
            None => st.node(&cx, &mut ledger, i).await?,
        };
        match step {
            Step::Next => pos += 1,
            Step::Back(j) => pos = p.order.iter().position(|&k| k == j).unwrap_or(pos),
            Step::End(reason) => {
                let node = st.id(i).to_string();
                st.event(&cx, &ledger, EventKind::Finish, i, "finish", &reason);
                status = Status::Finished { node, reason };
                break;
            }
        }
    }
    let outputs: BTreeMap<String, Value> = p
        .nodes
        .iter()
        .zip(&st.outputs)
        .filter_map(|(node, o)| o.clone().map(|o| (node.id.clone(), o)))
        .collect();
    let result = p
        .order
        .iter()
        .rev()
        .filter(|&&i| !matches!(p.nodes.get(i).map(|n| &n.kind), Some(NodeKind::Critic(_))))
        .find_map(|&i| st.outputs.get(i).cloned().flatten());
    let skipped = p
        .order
        .iter()
        .filter(|&&i| st.skipped.get(i) == Some(&true))
        .map(|&i| st.id(i).to_string())
        .collect();
    Ok(Outcome {
        status,
        outputs,
        result,
        skipped,
        events: st.events,
        usage: ledger.usage,
        tool_calls: st.tool_calls,
    })
}

impl State<'_> {
    fn id(&self, i: usize) -> &str {
        self.p.nodes.get(i).map_or("?", |n| n.id.as_str())
    }

    /// A direct upstream node (not a `before` critic) that was skipped.
    fn needs_skipped(&self, i: usize) -> Option<String> {
        let idx = petgraph::graph::NodeIndex::new(i);
        self.p
            .graph
            .neighbors_directed(idx, petgraph::Direction::Incoming)
            .map(|m| m.index())
            .find(|&j| self.skipped.get(j) == Some(&true))
            .map(|j| self.id(j).to_string())
    }

    fn event(
        &mut self,
        cx: &Context,
        ledger: &Ledger,
        kind: EventKind,
        i: usize,
        class: &str,
        message: &str,
    ) {
        let ev = Event {
            kind,
            node: self.id(i).to_string(),
            class: class.to_string(),
            message: message.to_string(),
        };
        let step = self.p.order.iter().position(|&k| k == i);
        let trace = cx.record(
            "pipeline",
            json!({"pipeline": self.p.name, "event": ev, "step": step}),
        );
        if let Some(sink) = cx.sink() {
            let mut m = sink.blank(&value_text(&self.input), None);
            m.steps = self
                .p
                .order
                .iter()
                .map(|&k| {
                    let out = self.outputs.get(k).cloned().flatten();
                    format!(
                        "{}: {}",
                        self.id(k),
                        out.as_ref().map(value_text).unwrap_or_default()
                    )
                })
                .collect();
            m.step = step;
            m.critic = format!("{kind:?}:{class}").to_lowercase();
            m.rationale = message.to_string();
            m.tokens = ledger.tokens();
            m.trace = trace;
            sink.write(&m);
        }
        self.events.push(ev);
    }

    fn skip(&mut self, cx: &Context, ledger: &Ledger, i: usize, class: &str, why: &str) {
        if let Some(s) = self.skipped.get_mut(i) {
            *s = true;
        }
        self.event(cx, ledger, EventKind::Skip, i, class, why);
    }

    /// Invalidate node `j` and everything downstream of it.
    fn invalidate(&mut self, j: usize) {
        for k in std::iter::once(j).chain(self.p.descendants(j)) {
            if let Some(o) = self.outputs.get_mut(k) {
                *o = None;
            }
            if let Some(s) = self.skipped.get_mut(k) {
                *s = false;
            }
        }
    }

    /// The `llm` node that produced what node `i` runs on: its `args_from`, else the nearest
    /// `llm` ancestor (or `i` itself when it is one).
    fn producer(&self, i: usize) -> Option<usize> {
        let node = self.p.nodes.get(i)?;
        match &node.kind {
            NodeKind::Llm(_) => Some(i),
            NodeKind::Tool(t) => match &t.args_from {
                Some(a) => self.p.index(a),
                None => self.nearest_llm(i),
            },
            NodeKind::Critic(c) => self.p.index(&c.target).and_then(|t| self.producer(t)),
        }
    }

    fn nearest_llm(&self, i: usize) -> Option<usize> {
        self.p
            .ancestors(i)
            .into_iter()
            .rev()
            .find(|&j| matches!(self.p.nodes.get(j).map(|n| &n.kind), Some(NodeKind::Llm(_))))
    }

    /// Re-ask node `j` with `error`: back to it, or the end when its re-asks are used up.
    fn reask(
        &mut self,
        cx: &Context,
        ledger: &Ledger,
        j: Option<usize>,
        at: usize,
        class: &str,
        error: &str,
    ) -> Step {
        let Some(j) = j else {
            return Step::End(format!("{class}: {error} (no llm node upstream to re-ask)"));
        };
        let done = self.reasks.get(j).copied().unwrap_or(0);
        if done >= self.p.limits.max_reasks {
            return Step::End(format!(
                "{class} at {}: {error} (still wrong after {done} re-asks of {})",
                self.id(at),
                self.id(j)
            ));
        }
        if let Some(r) = self.reasks.get_mut(j) {
            *r += 1;
        }
        self.event(cx, ledger, EventKind::Reask, j, class, error);
        self.rerun_with(j, error)
    }

    /// Node `j` runs again with `error` as its next feedback turn (after its previous
    /// output); it and everything downstream of it are invalidated.
    fn rerun_with(&mut self, j: usize, error: &str) -> Step {
        let previous = self.last_raw.get(j).cloned().flatten().unwrap_or_default();
        if let Some(f) = self.feedback.get_mut(j) {
            f.push((previous, error.to_string()));
        }
        self.invalidate(j);
        Step::Back(j)
    }
}

#[path = "exec_node.rs"]
mod node;
