//! `amend bench pipeline`: the executor's overhead per node. A chain of `nodes` tool nodes,
//! each a calculator call on `1 + 1` (a tool that does almost nothing), run by the executor,
//! against the same tool calls made directly in a loop, in the same process; medians of
//! `rounds` alternating rounds after a warm-up. The pipeline has no `llm` or `critic` node, so no
//! model is called: the context's model is an API client that is never used.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::model::openai::{ApiModel, Options};
use crate::model::ModelError;
use crate::pipeline::{self, Tool};
use crate::prompt::Prompts;
use crate::run::Context;

/// Result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Tool nodes in the chain.
    pub nodes: usize,
    /// Rounds (medians reported).
    pub rounds: usize,
    /// The tool called directly: µs per call.
    pub direct_us_per_node: f64,
    /// The tool called by the executor: µs per node.
    pub executor_us_per_node: f64,
    /// executor − direct: what the executor adds per node (target < 50 µs).
    pub overhead_us_per_node: f64,
}

fn chain(nodes: usize) -> String {
    let mut t = String::from("name = \"bench\"\n");
    for i in 0..nodes {
        t.push_str(&format!(
            "[[nodes]]\nid = \"n{i}\"\nkind = \"tool\"\ntool = \"calculator\"\nargs = {{ expr = \"1 + 1\" }}\n"
        ));
        if i > 0 {
            t.push_str(&format!("after = [\"n{}\"]\n", i - 1));
        }
    }
    t
}

/// Run the benchmark.
///
/// # Errors
/// When the pipeline cannot be built or run (a bug: it is generated here).
pub async fn run(nodes: usize, rounds: usize) -> Result<PipelineReport, ModelError> {
    let fail =
        |e: &dyn std::fmt::Display| ModelError::InvalidRequest(format!("bench pipeline: {e}"));
    let nodes = nodes.max(1);
    let p = pipeline::parse(&chain(nodes), "bench.toml").map_err(|e| fail(&e))?;
    let model = ApiModel::new(
        "never-called",
        Options {
            base_url: "http://127.0.0.1:9/v1".into(),
            ..Options::default()
        },
    )?;
    let prompts = Prompts::builtin().map_err(|e| fail(&e))?;
    let cx = Context::new(Arc::new(model), Arc::new(prompts));
    let tool = pipeline::Calculator;
    let mut args = serde_json::Map::new();
    args.insert("expr".into(), serde_json::Value::from("1 + 1"));
    let input = serde_json::json!({});
    let (mut direct, mut exec) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let start = Instant::now();
        for _ in 0..nodes {
            tool.call(&args).await.map_err(|e| fail(&e))?;
        }
        let d = start.elapsed().as_secs_f64() * 1e6 / nodes as f64;
        let start = Instant::now();
        let out = pipeline::run(&p, &cx, &input).await.map_err(|e| fail(&e))?;
        let e = start.elapsed().as_secs_f64() * 1e6 / nodes as f64;
        if out.outputs.len() != nodes {
            return Err(fail(&format!("{} of {nodes} nodes ran", out.outputs.len())));
        }
        // Round 0 warms up (allocations, tera's first parse).
        if round > 0 {
            direct.push(d);
            exec.push(e);
        }
    }
    let (d, e) = (
        super::fingerprint::median(direct),
        super::fingerprint::median(exec),
    );
    Ok(PipelineReport {
        nodes,
        rounds,
        direct_us_per_node: d,
        executor_us_per_node: e,
        overhead_us_per_node: e - d,
    })
}
