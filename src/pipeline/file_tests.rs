//! The loader: good files, cycles, bad names with their lines.

use super::*;

const GOOD: &str = r#"
name = "calc"
description = "propose a calculation, veto invented numbers, compute"

[limits]
max_reasks = 1

[templates]
propose = "Question: {{ input.question }}\nWrite the calculation as a tool call."

[tools.check]
kind = "json_schema"
schema = { type = "object", required = ["qty"] }

[[nodes]]
id = "propose"
kind = "llm"
template = "propose"
output = "tool_call"

[[nodes]]
id = "veto"
kind = "critic"
critic = "ground"
target = "calc"
when = "before"

[[nodes]]
id = "calc"
kind = "tool"
tool = "calculator"
args_from = "propose"

[[nodes]]
id = "whole"
kind = "critic"
critic = "chain:arith,ground"
target = "calc"
"#;

fn invalid(text: &str) -> (usize, String) {
    match parse(text, "p.toml") {
        Err(PipelineError::Invalid {
            line,
            message,
            file,
        }) => {
            assert_eq!(file, "p.toml");
            (line, message)
        }
        other => panic!("expected an error with a line, got {other:?}"),
    }
}

#[test]
fn a_good_file_loads_into_a_dag_in_run_order() {
    let p = parse(GOOD, "p.toml").expect("loads");
    assert_eq!(p.name, "calc");
    assert_eq!(p.limits.max_reasks, 1);
    assert_eq!(p.limits.max_calls, Limits::default().max_calls);
    let ids: Vec<&str> = p.order.iter().map(|&i| p.nodes[i].id.as_str()).collect();
    // The veto runs after what the tool waits for and before the tool; the after-critic last.
    assert_eq!(ids, ["propose", "veto", "calc", "whole"]);
    let calc = p.index("calc").expect("calc");
    assert_eq!(p.ancestors(calc).len(), 2);
    assert_eq!(p.descendants(p.index("propose").expect("p")).len(), 3);
    assert_eq!(p.nodes[p.index("veto").expect("veto")].line, 21);
    match &p.node("calc").expect("calc").kind {
        NodeKind::Tool(t) => {
            assert!(!t.imp.side_effects() && t.args_from.as_deref() == Some("propose"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cycle_is_named() {
    let text = r#"
name = "loop"
[templates]
t = "x"
[[nodes]]
id = "a"
kind = "llm"
template = "t"
after = ["c"]
[[nodes]]
id = "b"
kind = "llm"
template = "t"
after = ["a"]
[[nodes]]
id = "c"
kind = "llm"
template = "t"
after = ["b"]
"#;
    match parse(text, "loop.toml") {
        Err(e @ PipelineError::Cycle { .. }) => {
            let s = e.to_string();
            assert!(s.contains("a -> b -> c -> a"), "{s}");
            assert!(s.starts_with("loop.toml"), "{s}");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn unknown_names_give_the_line() {
    let (line, m) = invalid(&GOOD.replace("target = \"calc\"\nwhen", "target = \"calk\"\nwhen"));
    assert_eq!(line, 25);
    assert!(
        m.contains("\"calk\" is not a node") && m.contains("propose"),
        "{m}"
    );
    let (line, m) = invalid(&GOOD.replace("tool = \"calculator\"", "tool = \"abacus\""));
    assert_eq!(line, 31);
    assert!(
        m.contains("tool \"abacus\"") && m.contains("calculator"),
        "{m}"
    );
    let (line, m) = invalid(&GOOD.replace("critic = \"ground\"", "critic = \"grund\""));
    assert_eq!(line, 24);
    assert!(m.contains("grund"), "{m}");
    let (line, m) = invalid(&GOOD.replace("template = \"propose\"", "template = \"propse\""));
    assert_eq!(line, 18);
    assert!(m.contains("propse") && m.contains("[templates]"), "{m}");
}

#[test]
fn bad_values_and_bad_toml_give_the_line() {
    let (line, m) = invalid(&GOOD.replace("when = \"before\"", "when = \"later\""));
    assert_eq!(line, 26);
    assert!(m.contains("before, after"), "{m}");
    let (line, m) = invalid(&GOOD.replace("kind = \"tool\"", "kind = \"tol\""));
    assert_eq!(line, 30);
    assert!(m.contains("llm, tool, critic"), "{m}");
    let (line, _) = invalid(&GOOD.replace("output = \"tool_call\"", "output = tool_call"));
    assert_eq!(line, 19);
    let (line, m) = invalid(&GOOD.replace(
        "Question: {{ input.question }}",
        "Question: {{ input.question",
    ));
    assert_eq!(line, 9);
    assert!(m.contains("invalid template"), "{m}");
    let (_, m) = invalid(&GOOD.replace("id = \"whole\"", "id = \"calc\""));
    assert!(m.contains("used twice"), "{m}");
    let (_, m) = invalid(&GOOD.replace("max_reasks = 1", "max_reask = 1"));
    assert!(m.contains("max_reask"), "{m}");
    let (line, m) = invalid(&GOOD.replace("args_from = \"propose\"", "args_from = \"whole\""));
    assert_eq!(line, 32);
    assert!(m.contains("tool_call"), "{m}");
    // Constrained decoding needs the schema it decodes under.
    let (line, m) = invalid(&GOOD.replace(
        "output = \"tool_call\"",
        "output = \"json\"\nconstrain = true",
    ));
    assert_eq!(line, 20);
    assert!(m.contains("needs `schema`"), "{m}");
}

#[test]
fn constrained_runs_turn_on_where_a_schema_is() {
    let with_schema = GOOD
        .replace(
            "output = \"tool_call\"",
            "output = \"json\"\nschema = { type = \"object\" }",
        )
        .replace("args_from = \"propose\"\n", "");
    let p = parse(&with_schema, "p.toml").expect("loads").constrained();
    let llm = |p: &Pipeline| match p.node("propose").map(|n| &n.kind) {
        Some(NodeKind::Llm(l)) => l.constrain,
        other => panic!("{other:?}"),
    };
    assert!(llm(&p));
    assert!(!llm(&parse(&with_schema, "p.toml").expect("loads")));
    assert_eq!(p.with_max_reasks(0).limits.max_reasks, 0);
}

#[test]
fn unreadable_files_say_which() {
    let e = load(std::path::Path::new("/nonexistent/p.toml")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/p.toml"), "{e}");
}

#[test]
fn templates_that_read_a_node_run_after_it() {
    let text = r#"
name = "t"
[templates]
a = "first"
b = "{{ input.x }} and {{ first_node | upper }} {% if input.y %}{{ 'second' }}{% endif %}"
[[nodes]]
id = "second"
kind = "llm"
template = "b"
[[nodes]]
id = "first_node"
kind = "llm"
template = "a"
"#;
    let p = parse(text, "t.toml").expect("loads");
    let ids: Vec<&str> = p.order.iter().map(|&i| p.nodes[i].id.as_str()).collect();
    assert_eq!(ids, ["first_node", "second"]);
    assert_eq!(
        super::template::references("{{ a.b | c(d=e) }} {% for x in y %}{{ \"z\" }}{% endfor %}"),
        ["a", "c", "d", "e", "for", "x", "in", "y", "endfor"]
    );
}
