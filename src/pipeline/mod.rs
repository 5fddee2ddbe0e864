//! Tool pipelines with critic steps: a TOML file ([`load`]) becomes a [`Pipeline`], a DAG
//! (petgraph) of nodes of three kinds:
//!
//! - `llm`: a prompt template (tera) rendered with the pipeline's input and its upstream
//!   nodes' outputs; its output is text, JSON, or a tool call in the documented format
//!   (`{"tool": NAME, "arguments": {...}}`, see [`ToolCall`]);
//! - `tool`: a [`Tool`] called with arguments templated from upstream outputs (or taken from
//!   an upstream `llm` node's tool call);
//! - `critic`: checks a target node **before** it runs (a veto on its arguments) or **after**
//!   (and may locate the first bad node).
//!
//! Edges come from each node's `after` list and from the critics (a `before` critic runs after
//! its target's upstream nodes and before the target; an `after` critic after the target).
//! Cycles are rejected, naming the cycle: loops are runtime control bounded by budgets, never
//! edges. Names that point nowhere (a node, a tool, a critic, a template) are errors with the
//! file and line.
//!
//! The file format, field by field, is in `pipelines/README.md`.

pub mod exec;
pub mod faults;
mod file;
mod graph;
mod raw;
pub mod score;
mod strategy;
mod template;
pub mod tool;
mod tools;

pub use exec::{run, run_injected, Event, EventKind, Injection, Outcome, RunError, Status};
pub use file::{load, parse};
pub use graph::{
    Critic as CriticNode, Limits, Llm, Node, NodeKind, OnExternal, Output, Pipeline, ToolNode, When,
};
pub use strategy::PipelineStrategy;
pub use tool::{ExternalClass, InternalClass, Tool, ToolCall, ToolError};
pub use tools::{build as build_tool, Calculator, JsonSchema, ToolSpec};

/// An error and its sources, `: `-separated (tera puts the useful part in the sources).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        msg.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    msg
}

/// A pipeline file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something at a line of the file is wrong (bad TOML, an unknown name, a bad value).
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// The nodes' edges form a cycle.
    #[error("{file}: the nodes form a cycle: {cycle}. A pipeline is a DAG; repeat work with the node's budgets (max_reasks, max_retries), not with edges")]
    Cycle {
        /// The file.
        file: String,
        /// The cycle, `a -> b -> a`.
        cycle: String,
    },
}

#[cfg(test)]
mod file_tests;
