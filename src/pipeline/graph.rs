//! A loaded pipeline: its nodes, their edges (a petgraph DAG) and its limits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::tool::Tool;
use crate::critic::Spec;

/// What an `llm` node's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Free text.
    Text,
    /// One JSON value (checked against the node's `schema` when it has one).
    Json,
    /// One tool call, `{"tool": NAME, "arguments": {...}}`.
    ToolCall,
}

/// When a critic node checks its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Before the target runs: a veto on its (rendered) arguments or prompt.
    Before,
    /// After the target ran: on the outputs so far; a located node is rolled back.
    After,
}

/// What a tool node does when its tool fails for an external reason (connection, timeout,
/// permission, rate limit) after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExternal {
    /// Go on without this node's output (and without the nodes that need it).
    Skip,
    /// End the run with a partial result and the reason.
    Finish,
}

/// An `llm` node.
#[derive(Debug, Clone, Serialize)]
pub struct Llm {
    /// The template's name (`[templates]` of the file).
    pub template: String,
    /// The template's text (tera).
    pub text: String,
    /// What the output is.
    pub output: Output,
    /// A JSON schema the output must satisfy (`output = "json"`).
    pub schema: Option<serde_json::Value>,
    /// Decode under `schema` (grammar-constrained; backends with
    /// [`crate::model::Capabilities::json_schema`], others refuse the call): the output is
    /// schema-valid by construction unless it runs out of `max_tokens`. Without it, invalid
    /// output is re-asked (the path API models without structured outputs get).
    pub constrain: bool,
    /// Most tokens per call.
    pub max_tokens: u32,
    /// A template the assistant turn starts with (the model continues it; on backends
    /// without assistant prefill, through the prefill paths of `model::prefill`). With
    /// `stop` and `suffix` it pins a format a small model would not keep by itself: the
    /// node's text is `prefill` + the model's text up to the first `stop` + `suffix`.
    pub prefill: Option<String>,
    /// Strings that end the model's text (not included).
    pub stop: Vec<String>,
    /// Text appended after the model's (with `prefill`: what closes the format).
    pub suffix: String,
}

/// A `tool` node.
#[derive(Clone, Serialize)]
pub struct ToolNode {
    /// The tool's name in the file.
    pub tool: String,
    /// The tool.
    #[serde(skip)]
    pub imp: Arc<dyn Tool>,
    /// Argument templates (tera), rendered with the input and upstream outputs.
    pub args: BTreeMap<String, String>,
    /// Take the arguments from this upstream `llm` node's tool call instead.
    pub args_from: Option<String>,
    /// What happens after the retries of an external failure.
    pub on_external: OnExternal,
    /// Running it again has no further effect (a rollback may re-run it even when the tool
    /// has side effects).
    pub idempotent: bool,
}

impl std::fmt::Debug for ToolNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolNode")
            .field("tool", &self.tool)
            .field("side_effects", &self.imp.side_effects())
            .field("args", &self.args)
            .field("args_from", &self.args_from)
            .field("on_external", &self.on_external)
            .field("idempotent", &self.idempotent)
            .finish()
    }
}

/// A `critic` node.
#[derive(Debug, Clone, Serialize)]
pub struct Critic {
    /// The critic (`arith`, `ground`, `chain:arith,ground`, ...).
    pub critic: Spec,
    /// The node it checks.
    pub target: String,
    /// Before or after the target runs.
    pub when: When,
}

/// What a node is.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    /// A model call.
    Llm(Llm),
    /// A tool call.
    Tool(ToolNode),
    /// A check.
    Critic(Critic),
}

/// One node.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Its id (unique in the pipeline).
    pub id: String,
    /// Its kind and settings.
    #[serde(flatten)]
    pub kind: NodeKind,
    /// The nodes it runs after (its `after` list; critics' edges are added by the loader).
    pub after: Vec<String>,
    /// Its line in the file.
    pub line: usize,
}

/// A pipeline's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Most model calls in one run.
    pub max_calls: u32,
    /// Most re-asks of one `llm` node (internal errors and vetoes), counted on the correction
    /// budget.
    pub max_reasks: u32,
    /// Most retries of one tool call after external failures.
    pub max_retries: u32,
    /// Most rollbacks in one run.
    pub max_rollbacks: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls: 32,
            max_reasks: 2,
            max_retries: 3,
            max_rollbacks: 2,
        }
    }
}

/// A loaded, checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name (the mistake log's task).
    pub name: String,
    /// What it does.
    pub description: String,
    /// The file it was loaded from.
    pub file: String,
    /// Its budgets.
    pub limits: Limits,
    /// The DAG: node weights are indices into `nodes`; an edge a -> b means b runs after a.
    pub graph: DiGraph<usize, ()>,
    /// The nodes, in file order.
    pub nodes: Vec<Node>,
    /// The nodes in the order they run (a topological order, ties in file order).
    pub order: Vec<usize>,
    /// The tools it has: those declared in `[tools]` and the built-in ones (a tool call naming
    /// one of these for the wrong node is a `wrong_tool`, any other name a
    /// `hallucinated_tool`).
    pub tools: Vec<String>,
}

impl Pipeline {
    /// This pipeline with every `llm` node that has a `schema` decoding under it (as if each
    /// had `constrain = true`; nodes with a `prefill` are left as they are, since a grammar
    /// describes the whole assistant text).
    pub fn constrained(mut self) -> Self {
        for n in &mut self.nodes {
            if let NodeKind::Llm(l) = &mut n.kind {
                l.constrain |= l.schema.is_some() && l.prefill.is_none();
            }
        }
        self
    }

    /// This pipeline with `max_reasks` replaced (0: one pass, no re-asks).
    pub fn with_max_reasks(mut self, max_reasks: u32) -> Self {
        self.limits.max_reasks = max_reasks;
        self
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The index of the node with this id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Every node downstream of node `i` (its descendants, `i` excluded), in run order.
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        self.reach(i, petgraph::Direction::Outgoing)
    }

    /// Every node upstream of node `i` (its ancestors, `i` excluded), in run order.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        self.reach(i, petgraph::Direction::Incoming)
    }

    fn reach(&self, i: usize, dir: petgraph::Direction) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![NodeIndex::new(i)];
        while let Some(n) = stack.pop() {
            for m in self.graph.neighbors_directed(n, dir) {
                if let Some(s) = seen.get_mut(m.index()) {
                    if !*s {
                        *s = true;
                        stack.push(m);
                    }
                }
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|&j| seen.get(j).copied().unwrap_or(false))
            .collect()
    }
}

/// A topological order, ties broken by file order; `Err(cycle)` (first node repeated at the
/// end) when there is a cycle.
pub(super) fn order(g: &DiGraph<usize, ()>) -> Result<Vec<usize>, Vec<usize>> {
    let n = g.node_count();
    let mut indeg: Vec<usize> = (0..n)
        .map(|i| {
            g.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|i| indeg.get(*i) == Some(&0))
        .map(Reverse)
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for m in g.neighbors(NodeIndex::new(i)) {
            if let Some(d) = indeg.get_mut(m.index()) {
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(m.index()));
                }
            }
        }
    }
    if out.len() == n {
        return Ok(out);
    }
    // Name one cycle: walk inside a strongly connected component until a node repeats.
    let scc = petgraph::algo::tarjan_scc(g)
        .into_iter()
        .find(|c| c.len() > 1)
        .unwrap_or_default();
    let Some(&start) = scc.iter().min_by_key(|x| x.index()) else {
        return Err(Vec::new());
    };
    let mut path = vec![start];
    let mut cur = start;
    while let Some(next) = g
        .neighbors(cur)
        .filter(|m| scc.contains(m))
        .min_by_key(|m| m.index())
    {
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cyc: Vec<usize> = path
                .get(pos..)
                .unwrap_or_default()
                .iter()
                .map(|x| x.index())
                .collect();
            cyc.push(next.index());
            return Err(cyc);
        }
        path.push(next);
        cur = next;
    }
    Err(path.iter().map(|x| x.index()).collect())
}
