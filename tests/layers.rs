//! The library's layers import downward only: a module may name (in code, not in comments)
//! only modules of an earlier layer than its own. The order is written down in the README's
//! layout section and in the crate docs (`src/lib.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module: lower layers are imported by higher ones, never the
/// reverse; modules of one layer do not import each other.
const LAYERS: &[(&str, u32)] = &[
    ("answer", 0),
    ("steps", 0),
    ("rng", 0),
    ("stats", 0),
    ("calc", 1),
    ("home", 0),
    ("model", 1),
    ("mistakes", 1),
    ("trace", 2),
    ("prompt", 3),
    ("run", 4),
    ("critic", 5),
    ("strategy", 6),
    ("data", 7),
    ("pipeline", 7),
    ("rectify", 8),
    ("eval", 8),
    ("leap", 9),
    ("serve", 9),
    ("bench", 10),
    ("cli", 11),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a source file belongs to (`src/critic/llm.rs` → `critic`;
/// `src/main.rs` → `cli`; `src/lib.rs` → none).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    match first.as_str() {
        "lib.rs" => None,
        "main.rs" => Some("cli".into()),
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Where names re-exported at the crate root come from (`pub use model::{Model, ...}` in
/// `lib.rs`): `crate::Model` is an import of `model`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let flat = lib.replace('\n', " ");
    for stmt in flat.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names
            .trim_matches(|c| c == '{' || c == '}' || c == ' ')
            .split(',')
        {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// Every top-level module `code` names through `crate::` (the library) or `amend::` (the
/// binary), including `use crate::{a, b::c}` groups; comments are skipped.
fn imports(code: &str, reexports: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        for prefix in ["crate::", "amend::"] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let head: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.push(head);
                    }
                } else {
                    let head: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(head);
                }
            }
        }
    }
    out.into_iter()
        .filter(|h| !h.is_empty() && h != "self")
        .map(|h| reexports.get(&h).cloned().unwrap_or(h))
        .collect()
}

/// Every upward or sideways import in `files` (path relative to `src/`, contents), as
/// `FILE: MODULE (layer a) imports OTHER (layer b)`.
fn violations(files: &[(PathBuf, String)], reexports: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, code) in files {
        let Some(module) = module_of(rel) else {
            continue;
        };
        let Some(own) = layer(&module) else {
            out.push(format!(
                "{}: module {module} has no layer in LAYERS",
                rel.display()
            ));
            continue;
        };
        for other in imports(code, reexports) {
            if other == module {
                continue;
            }
            match layer(&other) {
                Some(l) if l < own => {}
                Some(l) => out.push(format!(
                    "{}: {module} (layer {own}) imports {other} (layer {l})",
                    rel.display()
                )),
                // Not a module of this crate (e.g. `amend::` in a string).
                None => {}
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let code = std::fs::read_to_string(&path).expect("read");
            out.push((
                path.strip_prefix(root).expect("under src").to_path_buf(),
                code,
            ));
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 40, "found only {} source files", files.len());
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = root_reexports(&lib);
    assert_eq!(reexports.get("Model").map(String::as_str), Some("model"));
    let bad = violations(&files, &reexports);
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
    // Every top-level module has a layer.
    for m in lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
    {
        let m = m.trim_end_matches(';');
        assert!(layer(m).is_some(), "module {m} has no layer");
    }
}

#[test]
fn the_check_catches_upward_imports_in_every_form() {
    let reexports =
        root_reexports("pub use strategy::{Solution, Strategy};\npub use model::Model;");
    let files = vec![
        (
            PathBuf::from("critic/x.rs"),
            "use crate::strategy::Context;".to_string(),
        ),
        (
            PathBuf::from("model/y.rs"),
            "use crate::{answer, eval::Item};".to_string(),
        ),
        (
            PathBuf::from("prompt/z.rs"),
            "fn f(s: crate::Strategy) {}".to_string(),
        ),
        (
            PathBuf::from("run/mod.rs"),
            "// crate::eval is only named in a comment".to_string(),
        ),
        (
            PathBuf::from("eval/ok.rs"),
            "use crate::{critic::Critic, model::Model};".to_string(),
        ),
        (
            PathBuf::from("mistakes/m.rs"),
            "use crate::model::ModelId;".to_string(),
        ),
    ];
    let bad = violations(&files, &reexports);
    assert_eq!(
        bad,
        vec![
            "critic/x.rs: critic (layer 5) imports strategy (layer 6)",
            "model/y.rs: model (layer 1) imports eval (layer 8)",
            "prompt/z.rs: prompt (layer 3) imports strategy (layer 6)",
            "mistakes/m.rs: mistakes (layer 1) imports model (layer 1)",
        ]
    );
}
