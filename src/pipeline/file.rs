//! Reading a pipeline file: TOML into checked nodes, edges and an order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use toml::Spanned;

use super::graph::{
    Critic, Limits, Llm, Node, NodeKind, OnExternal, Output, Pipeline, ToolNode, When,
};
use super::raw::{RawFile, CRITIC_FIELDS, LLM_FIELDS, TOOL_FIELDS};
use super::tool::Tool;
use super::tools;
use super::PipelineError;

/// Load and check the pipeline file at `path`.
///
/// # Errors
/// [`PipelineError`]: the file cannot be read; bad TOML, an unknown name or a bad value (with
/// the file and line); a cycle (named).
pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

struct At<'a> {
    file: &'a str,
    text: &'a str,
}

impl At<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset.min(self.text.len()))
            .map_or(1, |t| t.matches('\n').count() + 1)
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> PipelineError {
        PipelineError::Invalid {
            file: self.file.to_string(),
            line: self.line(offset),
            message: message.into(),
        }
    }

    fn bad<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> PipelineError {
        self.err(s.span().start, message)
    }
}

fn pick<T: Copy>(
    at: &At<'_>,
    s: &Spanned<String>,
    what: &str,
    choices: &[(&str, T)],
) -> Result<T, PipelineError> {
    choices
        .iter()
        .find(|(n, _)| *n == s.get_ref().as_str())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            at.bad(
                s,
                format!(
                    "{what} {:?} is not one of {}",
                    s.get_ref(),
                    names.join(", ")
                ),
            )
        })
}

/// Check a tera template's syntax.
fn compile(at: &At<'_>, s: &Spanned<String>, what: &str) -> Result<(), PipelineError> {
    let mut t = tera::Tera::default();
    t.add_raw_template(what, s.get_ref()).map_err(|e| {
        at.bad(
            s,
            format!("{what}: invalid template: {}", super::error_chain(&e)),
        )
    })
}

/// Parse and check pipeline TOML `text`; `file` names it in errors.
///
/// # Errors
/// As [`load`].
pub fn parse(text: &str, file: &str) -> Result<Pipeline, PipelineError> {
    let at = At { file, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| at.line(s.start));
        PipelineError::Invalid {
            file: file.to_string(),
            line,
            message: e.message().to_string(),
        }
    })?;
    let limits = {
        let d = Limits::default();
        let l = &raw.limits;
        Limits {
            max_calls: l.max_calls.unwrap_or(d.max_calls),
            max_reasks: l.max_reasks.unwrap_or(d.max_reasks),
            max_retries: l.max_retries.unwrap_or(d.max_retries),
            max_rollbacks: l.max_rollbacks.unwrap_or(d.max_rollbacks),
        }
    };
    for (name, t) in &raw.templates {
        compile(&at, t, &format!("template {name}"))?;
    }
    let mut declared: BTreeMap<&str, Arc<dyn Tool>> = BTreeMap::new();
    for (name, spec) in &raw.tools {
        let tool =
            tools::build(spec.get_ref()).map_err(|m| at.bad(spec, format!("tool {name}: {m}")))?;
        declared.insert(name, tool);
    }
    // Ids first, so names can point forward.
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in raw.nodes.iter().enumerate() {
        let id = n.get_ref().id.get_ref().as_str();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(at.bad(&n.get_ref().id, format!("node id {id:?}: use letters, digits and _ (it names the node's output in templates)")));
        }
        if ids.insert(id, i).is_some() {
            return Err(at.bad(&n.get_ref().id, format!("node id {id:?} is used twice")));
        }
    }
    let lookup = |s: &Spanned<String>, what: &str| -> Result<usize, PipelineError> {
        ids.get(s.get_ref().as_str()).copied().ok_or_else(|| {
            let known: Vec<&str> = ids.keys().copied().collect();
            at.bad(
                s,
                format!(
                    "{what} {:?} is not a node of this pipeline (nodes: {})",
                    s.get_ref(),
                    known.join(", ")
                ),
            )
        })
    };
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut before_critics: Vec<(usize, usize)> = Vec::new();
    for (i, sn) in raw.nodes.iter().enumerate() {
        let n = sn.get_ref();
        let id = n.id.get_ref().clone();
        let mut after = Vec::new();
        for a in &n.after {
            let j = lookup(a, "after: node")?;
            if j == i {
                return Err(at.bad(a, format!("node {id} cannot run after itself")));
            }
            edges.push((j, i));
            after.push(a.get_ref().clone());
        }
        let kind_name = n.kind.get_ref().as_str();
        let misplaced = |field: bool, name: &str| -> Result<(), PipelineError> {
            match field {
                true => Err(at.bad(
                    sn,
                    format!("node {id}: `{name}` does not apply to a {kind_name} node"),
                )),
                false => Ok(()),
            }
        };
        let kind = match kind_name {
            "llm" => {
                misplaced(n.tool_fields(), TOOL_FIELDS)?;
                misplaced(n.critic_fields(), CRITIC_FIELDS)?;
                let t = n.template.as_ref().ok_or_else(|| {
                    at.bad(sn, format!("node {id}: an llm node needs `template`"))
                })?;
                let text = raw.templates.get(t.get_ref()).ok_or_else(|| {
                    let known: Vec<&str> = raw.templates.keys().map(String::as_str).collect();
                    at.bad(
                        t,
                        format!(
                            "template {:?} is not in [templates] (templates: {})",
                            t.get_ref(),
                            known.join(", ")
                        ),
                    )
                })?;
                let output = match &n.output {
                    None => Output::Text,
                    Some(o) => pick(
                        &at,
                        o,
                        "output",
                        &[
                            ("text", Output::Text),
                            ("json", Output::Json),
                            ("tool_call", Output::ToolCall),
                        ],
                    )?,
                };
                let schema = match &n.schema {
                    None => None,
                    Some(s) => {
                        let json = serde_json::to_value(s)
                            .map_err(|e| at.bad(sn, format!("node {id}: schema: {e}")))?;
                        jsonschema::validator_for(&json).map_err(|e| {
                            at.bad(sn, format!("node {id}: schema does not compile: {e}"))
                        })?;
                        Some(json)
                    }
                };
                let constrain = n.constrain.as_ref().is_some_and(|c| *c.get_ref());
                if let (true, Some(c)) = (
                    constrain && (schema.is_none() || n.prefill.is_some()),
                    &n.constrain,
                ) {
                    return Err(at.bad(
                        c,
                        format!(
                            "node {id}: `constrain = true` decodes under the node's `schema`: \
                             it needs `schema` and no `prefill`"
                        ),
                    ));
                }
                NodeKind::Llm(Llm {
                    template: t.get_ref().clone(),
                    text: text.get_ref().clone(),
                    output,
                    schema,
                    constrain,
                    max_tokens: n.max_tokens.unwrap_or(256),
                    prefill: match &n.prefill {
                        Some(p) => {
                            compile(&at, p, &format!("node {id}: prefill"))?;
                            Some(p.get_ref().clone())
                        }
                        None => None,
                    },
                    stop: n.stop.clone(),
                    suffix: n.suffix.clone().unwrap_or_default(),
                })
            }
            "tool" => {
                misplaced(n.llm_fields(), LLM_FIELDS)?;
                misplaced(n.critic_fields(), CRITIC_FIELDS)?;
                let t = n
                    .tool
                    .as_ref()
                    .ok_or_else(|| at.bad(sn, format!("node {id}: a tool node needs `tool`")))?;
                let imp = match declared.get(t.get_ref().as_str()) {
                    Some(imp) => imp.clone(),
                    None => tools::builtin(t.get_ref()).ok_or_else(|| {
                        let mut known: Vec<&str> = declared.keys().copied().collect();
                        known.push("calculator");
                        at.bad(t, format!("tool {:?} is not declared in [tools] and is not built in (tools: {})", t.get_ref(), known.join(", ")))
                    })?,
                };
                for (k, v) in &n.args {
                    compile(&at, v, &format!("node {id}: args.{k}"))?;
                    if !imp.params().contains(&k.as_str()) {
                        return Err(at.bad(
                            v,
                            format!(
                                "node {id}: tool {} takes no argument {k:?} (it takes: {})",
                                t.get_ref(),
                                imp.params().join(", ")
                            ),
                        ));
                    }
                }
                let args_from = match &n.args_from {
                    None => None,
                    Some(a) => {
                        let j = lookup(a, "args_from: node")?;
                        let is_call = matches!(
                            raw.nodes.get(j).map(|r| (
                                r.get_ref().kind.get_ref().as_str(),
                                r.get_ref().output.as_ref().map(|o| o.get_ref().as_str())
                            )),
                            Some(("llm", Some("tool_call")))
                        );
                        if !is_call {
                            return Err(at.bad(a, format!("args_from: node {:?} is not an llm node with output = \"tool_call\"", a.get_ref())));
                        }
                        edges.push((j, i));
                        Some(a.get_ref().clone())
                    }
                };
                if args_from.is_some() && !n.args.is_empty() {
                    return Err(at.bad(
                        sn,
                        format!("node {id}: give `args` or `args_from`, not both"),
                    ));
                }
                NodeKind::Tool(ToolNode {
                    tool: t.get_ref().clone(),
                    imp,
                    args: n
                        .args
                        .iter()
                        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                        .collect(),
                    args_from,
                    on_external: match &n.on_external {
                        None => OnExternal::Skip,
                        Some(o) => pick(
                            &at,
                            o,
                            "on_external",
                            &[("skip", OnExternal::Skip), ("finish", OnExternal::Finish)],
                        )?,
                    },
                    idempotent: n.idempotent,
                })
            }
            "critic" => {
                misplaced(n.llm_fields(), LLM_FIELDS)?;
                misplaced(n.tool_fields(), TOOL_FIELDS)?;
                let c = n.critic.as_ref().ok_or_else(|| {
                    at.bad(sn, format!("node {id}: a critic node needs `critic`"))
                })?;
                let critic = c
                    .get_ref()
                    .parse::<crate::critic::Spec>()
                    .map_err(|e| at.bad(c, format!("critic {:?}: {e}", c.get_ref())))?;
                let t = n.target.as_ref().ok_or_else(|| {
                    at.bad(sn, format!("node {id}: a critic node needs `target`"))
                })?;
                let j = lookup(t, "target: node")?;
                if j == i {
                    return Err(at.bad(t, format!("critic {id} cannot check itself")));
                }
                let when = match &n.when {
                    None => When::After,
                    Some(w) => pick(
                        &at,
                        w,
                        "when",
                        &[("before", When::Before), ("after", When::After)],
                    )?,
                };
                match when {
                    When::After => edges.push((j, i)),
                    When::Before => {
                        edges.push((i, j));
                        before_critics.push((i, j));
                    }
                }
                NodeKind::Critic(Critic {
                    critic,
                    target: t.get_ref().clone(),
                    when,
                })
            }
            other => {
                return Err(at.bad(
                    &n.kind,
                    format!("node kind {other:?} is not one of llm, tool, critic"),
                ))
            }
        };
        // A template that reads another node's output runs after it.
        let texts: Vec<&str> = match &kind {
            NodeKind::Llm(l) => std::iter::once(l.text.as_str())
                .chain(l.prefill.as_deref())
                .collect(),
            NodeKind::Tool(t) => t.args.values().map(String::as_str).collect(),
            NodeKind::Critic(_) => Vec::new(),
        };
        for t in texts {
            for r in super::template::references(t) {
                if let Some(&j) = ids.get(r.as_str()) {
                    if j != i {
                        edges.push((j, i));
                    }
                }
            }
        }
        nodes.push(Node {
            id,
            kind,
            after,
            line: at.line(sn.span().start),
        });
    }
    // A `before` critic runs after everything its target waits for.
    let mut extra = Vec::new();
    for (c, t) in &before_critics {
        for (a, b) in &edges {
            if b == t && a != c {
                extra.push((*a, *c));
            }
        }
    }
    edges.extend(extra);
    edges.sort_unstable();
    edges.dedup();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    for i in 0..nodes.len() {
        graph.add_node(i);
    }
    for (a, b) in &edges {
        graph.add_edge(NodeIndex::new(*a), NodeIndex::new(*b), ());
    }
    let order = super::graph::order(&graph).map_err(|cycle| PipelineError::Cycle {
        file: file.to_string(),
        cycle: cycle
            .iter()
            .filter_map(|i| nodes.get(*i).map(|n| n.id.clone()))
            .collect::<Vec<_>>()
            .join(" -> "),
    })?;
    Ok(Pipeline {
        name: raw.name.get_ref().clone(),
        description: raw.description,
        file: file.to_string(),
        limits,
        graph,
        nodes,
        order,
        tools: declared
            .keys()
            .map(|k| k.to_string())
            .chain(tools::BUILTIN.iter().map(|b| b.to_string()))
            .collect(),
    })
}
