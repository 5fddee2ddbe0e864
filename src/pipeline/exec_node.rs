//! Running one node (see the [executor's docs](super)).

use serde_json::{Map, Value};

use super::{value_text, EventKind, RunError, State, Step, BACKOFF};
use crate::critic::{self, Submission};
use crate::model::{Grammar, Message, Request};
use crate::pipeline::graph::{
    Critic as CriticNode, Llm, NodeKind, OnExternal, Output, ToolNode, When,
};
use crate::pipeline::tool::{first_json_value, InternalClass, ToolCall, ToolError};
use crate::pipeline::tools::JsonSchema;
use crate::run::{Context, Ledger};

/// Render a tera template with `ctx`.
pub(crate) fn render(text: &str, ctx: &tera::Context) -> Result<String, String> {
    tera::Tera::one_off(text, ctx, false).map_err(|e| crate::pipeline::error_chain(&e))
}

fn class_name(c: InternalClass) -> String {
    ToolError::internal(c, "").class_name()
}

impl State<'_> {
    /// Run node `i`.
    pub(super) async fn node(
        &mut self,
        cx: &Context,
        ledger: &mut Ledger,
        i: usize,
    ) -> Result<Step, RunError> {
        let Some(node) = self.p.nodes.get(i) else {
            return Ok(Step::Next);
        };
        match &node.kind {
            NodeKind::Llm(l) => self.llm(cx, ledger, i, l).await,
            NodeKind::Tool(t) => self.tool(cx, ledger, i, t).await,
            NodeKind::Critic(c) => self.critic(cx, ledger, i, c).await,
        }
    }

    /// The template context: `input`, every finished node's output by id, `feedback`.
    fn context(&self, i: usize) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("input", &self.input);
        for (node, out) in self.p.nodes.iter().zip(&self.outputs) {
            if let Some(o) = out {
                ctx.insert(node.id.as_str(), o);
            }
        }
        let fb = self
            .feedback
            .get(i)
            .and_then(|f| f.last())
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        ctx.insert("feedback", &fb);
        ctx
    }

    fn template_error(&self, i: usize, message: String) -> RunError {
        RunError::Template {
            pipeline: self.p.name.clone(),
            node: self.id(i).to_string(),
            message,
        }
    }

    async fn llm(
        &mut self,
        cx: &Context,
        ledger: &mut Ledger,
        i: usize,
        l: &Llm,
    ) -> Result<Step, RunError> {
        let prompt = render(&l.text, &self.context(i)).map_err(|m| self.template_error(i, m))?;
        let mut messages = vec![Message::user(prompt)];
        for (previous, error) in self.feedback.get(i).into_iter().flatten() {
            messages.push(Message::assistant(previous.clone()));
            messages.push(Message::user(format!(
                "That is not right: {error}\nWrite it again, corrected, in the same format."
            )));
        }
        let prefill = match &l.prefill {
            Some(p) => render(p, &self.context(i)).map_err(|m| self.template_error(i, m))?,
            None => String::new(),
        };
        let mut req = Request::chat(messages)
            .with_max_tokens(l.max_tokens)
            .with_stop(l.stop.iter().cloned());
        if !prefill.is_empty() {
            req = req.with_prefill(prefill.clone());
        }
        if let (true, Some(schema)) = (l.constrain, &l.schema) {
            req = req.with_grammar(Grammar::JsonSchema(schema.clone()));
        }
        let injected = match &self.inject {
            Some((n, _)) if *n == i => self.inject.take().map(|(_, t)| t),
            _ => None,
        };
        let text = match injected {
            Some(t) => t,
            None => {
                let Some(r) = cx.call(ledger, req).await? else {
                    return Ok(Step::End(format!(
                        "budget: {}",
                        ledger
                            .stop(format!("node {}", self.id(i)))
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "a cap was reached".into())
                    )));
                };
                let mut own = r.text().to_string();
                if let Some(cut) = l.stop.iter().filter_map(|s| own.find(s.as_str())).min() {
                    own.truncate(cut);
                }
                let text = match prefill.is_empty() && l.suffix.is_empty() {
                    true => own.trim().to_string(),
                    false => format!("{prefill}{own}{}", l.suffix),
                };
                text
            }
        };
        if let Some(raw) = self.last_raw.get_mut(i) {
            *raw = Some(text.clone());
        }
        let value = match l.output {
            Output::Text => Value::String(text),
            Output::Json => {
                let Some(v) = first_json_value(&text) else {
                    let class = class_name(InternalClass::BadArgumentValues);
                    return Ok(self.reask(
                        cx,
                        ledger,
                        Some(i),
                        i,
                        &class,
                        "no JSON value found: answer with one JSON value",
                    ));
                };
                if let Some(schema) = &l.schema {
                    let violations = JsonSchema::new(schema.clone())
                        .map(|s| s.violations(&v))
                        .unwrap_or_default();
                    if !violations.is_empty() {
                        let class = class_name(InternalClass::BadArgumentValues);
                        let msg = format!(
                            "the JSON does not match the schema: {}",
                            violations.join("; ")
                        );
                        return Ok(self.reask(cx, ledger, Some(i), i, &class, &msg));
                    }
                }
                v
            }
            Output::ToolCall => match ToolCall::parse(&text) {
                Ok(call) => serde_json::to_value(call).unwrap_or(Value::Null),
                Err(msg) => {
                    let class = class_name(InternalClass::BadArgumentKeys);
                    return Ok(self.reask(cx, ledger, Some(i), i, &class, &msg));
                }
            },
        };
        if let Some(o) = self.outputs.get_mut(i) {
            *o = Some(value);
        }
        Ok(Step::Next)
    }

    /// The arguments node `i` would call its tool with, or the internal error that stops it.
    fn tool_args(
        &self,
        i: usize,
        t: &ToolNode,
    ) -> Result<Map<String, Value>, (InternalClass, String)> {
        match &t.args_from {
            Some(a) => {
                let call = self
                    .p
                    .index(a)
                    .and_then(|j| self.outputs.get(j).cloned().flatten())
                    .and_then(|v| serde_json::from_value::<ToolCall>(v).ok())
                    .ok_or((
                        InternalClass::BadArgumentKeys,
                        format!("node {a} made no tool call"),
                    ))?;
                if call.tool != t.tool {
                    let class = match self.p.tools.contains(&call.tool) {
                        true => InternalClass::WrongTool,
                        false => InternalClass::HallucinatedTool,
                    };
                    let msg = match class {
                        InternalClass::WrongTool => format!(
                            "this step calls for the tool {:?}, not {:?}",
                            t.tool, call.tool
                        ),
                        _ => format!(
                            "there is no tool {:?}; the tool here is {:?}",
                            call.tool, t.tool
                        ),
                    };
                    return Err((class, msg));
                }
                Ok(call.arguments)
            }
            None => {
                let ctx = self.context(i);
                t.args
                    .iter()
                    .map(|(k, tmpl)| {
                        render(tmpl, &ctx)
                            .map(|v| (k.clone(), Value::String(v)))
                            .map_err(|e| {
                                (InternalClass::BadArgumentValues, format!("args.{k}: {e}"))
                            })
                    })
                    .collect()
            }
        }
    }

    async fn tool(
        &mut self,
        cx: &Context,
        ledger: &mut Ledger,
        i: usize,
        t: &ToolNode,
    ) -> Result<Step, RunError> {
        let args = match self.tool_args(i, t) {
            Ok(a) => a,
            Err((class, msg)) => {
                let producer = self.producer(i);
                return Ok(self.reask(cx, ledger, producer, i, &class_name(class), &msg));
            }
        };
        if let Some(u) = self.used_args.get_mut(i) {
            *u = Some(args_text(&args));
        }
        let mut attempt = 0u32;
        loop {
            self.tool_calls += 1;
            match t.imp.call(&args).await {
                Ok(v) => {
                    if let Some(o) = self.outputs.get_mut(i) {
                        *o = Some(v);
                    }
                    if t.imp.side_effects() {
                        if let Some(d) = self.side_effect_done.get_mut(i) {
                            *d = true;
                        }
                    }
                    return Ok(Step::Next);
                }
                Err(e @ ToolError::Internal { .. }) => {
                    let (class, msg) = (e.class_name(), e.to_string());
                    let producer = self.producer(i);
                    return Ok(self.reask(cx, ledger, producer, i, &class, &msg));
                }
                Err(e @ ToolError::External { .. }) => {
                    let class = e.class_name();
                    if attempt < self.p.limits.max_retries {
                        attempt += 1;
                        self.event(cx, ledger, EventKind::Retry, i, &class, &e.to_string());
                        tokio::time::sleep(BACKOFF * 2u32.saturating_pow(attempt - 1)).await;
                        continue;
                    }
                    let why = format!("{e} (after {attempt} retries)");
                    return Ok(match t.on_external {
                        OnExternal::Skip => {
                            self.skip(cx, ledger, i, &class, &why);
                            Step::Next
                        }
                        OnExternal::Finish => Step::End(format!("{class}: {why}")),
                    });
                }
            }
        }
    }

    /// A node's output as a step of the solution a critic judges (`None`: not a step, e.g. a
    /// tool call that is only a proposal).
    fn step_text(&self, k: usize) -> Option<String> {
        let node = self.p.nodes.get(k)?;
        let out = self.outputs.get(k).cloned().flatten()?;
        match &node.kind {
            NodeKind::Llm(l) if l.output == Output::ToolCall => None,
            NodeKind::Llm(_) => Some(value_text(&out)),
            NodeKind::Tool(_) => Some(match self.used_args.get(k).cloned().flatten() {
                Some(a) => format!("{a} = {}", value_text(&out)),
                None => value_text(&out),
            }),
            NodeKind::Critic(_) => None,
        }
    }

    /// The input as the problem text critics read: its string values, one per line.
    fn problem_text(&self) -> String {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                Value::Object(o) => o.values().for_each(|x| walk(x, out)),
                Value::Number(n) => out.push(n.to_string()),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.input, &mut out);
        out.join("\n")
    }

    async fn critic(
        &mut self,
        cx: &Context,
        ledger: &mut Ledger,
        i: usize,
        c: &CriticNode,
    ) -> Result<Step, RunError> {
        let Some(t) = self.p.index(&c.target) else {
            return Ok(Step::Next);
        };
        let upto: Vec<usize> = match c.when {
            When::Before => self.p.ancestors(t),
            When::After => {
                let mut a = self.p.ancestors(t);
                a.push(t);
                a
            }
        };
        let mut nodes = Vec::new();
        let mut steps = Vec::new();
        for k in upto {
            if let Some(s) = self.step_text(k) {
                nodes.push(k);
                steps.push(s);
            }
        }
        if c.when == When::Before {
            // The candidate: what the target would run on.
            let pending = match self.p.nodes.get(t).map(|n| &n.kind) {
                Some(NodeKind::Tool(tn)) => match self.tool_args(t, tn) {
                    Ok(a) => args_text(&a),
                    // The tool node itself reports that (as an internal error).
                    Err(_) => {
                        self.accept(i);
                        return Ok(Step::Next);
                    }
                },
                Some(NodeKind::Llm(l)) => {
                    render(&l.text, &self.context(t)).map_err(|m| self.template_error(t, m))?
                }
                _ => String::new(),
            };
            nodes.push(t);
            steps.push(pending);
        }
        let critic = critic::build(&c.critic, 1);
        let problem = self.problem_text();
        let input = Submission {
            problem: &problem,
            steps: &steps,
            gold: None,
        };
        let v = match critic
            .locate(&cx.critic_env(ledger.deadline()), &input)
            .await
        {
            Ok(v) => v,
            Err(crate::critic::CriticError::Deadline) => {
                return Ok(Step::End(
                    "budget: the deadline passed during a critic".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        ledger.add(v.usage);
        let Some(k) = v.located() else {
            self.accept(i);
            return Ok(Step::Next);
        };
        let bad = nodes.get(k).copied().unwrap_or(t);
        let name = critic.name().to_string();
        if c.when == When::Before && bad == t {
            self.event(cx, ledger, EventKind::Veto, t, &name, &v.rationale);
            let producer = self.producer(t);
            return Ok(self.reask(cx, ledger, producer, t, &name, &v.rationale));
        }
        Ok(self.rollback(cx, ledger, i, bad, &name, &v.rationale))
    }

    fn accept(&mut self, i: usize) {
        if let Some(o) = self.outputs.get_mut(i) {
            *o = Some(serde_json::json!({"accepted": true}));
        }
    }

    /// Roll back to the located node `bad` (a tool node: to its producer).
    fn rollback(
        &mut self,
        cx: &Context,
        ledger: &Ledger,
        critic_node: usize,
        bad: usize,
        critic: &str,
        rationale: &str,
    ) -> Step {
        let Some(r) = self.producer(bad) else {
            self.refuse(
                cx,
                ledger,
                critic_node,
                bad,
                critic,
                &format!("{rationale} (no llm node to re-run)"),
            );
            return Step::Next;
        };
        if self.rollbacks >= self.p.limits.max_rollbacks {
            let msg = format!(
                "{rationale} (rollback budget of {} used)",
                self.p.limits.max_rollbacks
            );
            self.refuse(cx, ledger, critic_node, bad, critic, &msg);
            return Step::Next;
        }
        let barrier = std::iter::once(r).chain(self.p.descendants(r)).find(|&k| {
            self.side_effect_done.get(k) == Some(&true)
                && matches!(self.p.nodes.get(k).map(|n| &n.kind), Some(NodeKind::Tool(t)) if !t.idempotent)
        });
        if let Some(b) = barrier {
            let msg = format!(
                "{rationale} (rolling back to {} would re-run {}, which has side effects and is not idempotent)",
                self.id(r),
                self.id(b)
            );
            self.refuse(cx, ledger, critic_node, bad, critic, &msg);
            return Step::Next;
        }
        self.rollbacks += 1;
        self.event(cx, ledger, EventKind::Rollback, bad, critic, rationale);
        self.rerun_with(r, rationale)
    }

    fn refuse(
        &mut self,
        cx: &Context,
        ledger: &Ledger,
        critic_node: usize,
        bad: usize,
        critic: &str,
        why: &str,
    ) {
        self.event(cx, ledger, EventKind::RollbackRefused, bad, critic, why);
        let verdict =
            serde_json::json!({"accepted": false, "located": self.id(bad), "rationale": why});
        if let Some(o) = self.outputs.get_mut(critic_node) {
            *o = Some(verdict);
        }
    }
}

/// Arguments as one line of text: the values, `, `-separated (a single argument: its value).
fn args_text(args: &Map<String, Value>) -> String {
    args.values().map(value_text).collect::<Vec<_>>().join(", ")
}
