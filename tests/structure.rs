//! The structure rules of docs/architecture.md, checked on the source tree: dependencies
//! between the top-level modules point one way (the rule at the top of
//! docs/architecture.md, and no cycle), and no function in `src/` is longer than 80 lines
//! (so each can be read whole). Reads files only; starts nothing.

use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 80;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src(sub: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(sub), &mut files);
    assert!(!files.is_empty(), "no sources under {sub}");
    files
}

/// A line with string/char literals and `//` comments blanked, for brace counting.
fn code_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_str = false,
            (true, _) => {}
            (false, '"') => in_str = true,
            (false, '\'') if chars.peek().is_some_and(|n| *n == '{' || *n == '}') => {
                chars.next();
            }
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, c) => out.push(c),
        }
    }
    out
}

fn is_fn_start(line: &str) -> bool {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub(crate) ")
        .or_else(|| t.strip_prefix("pub(super) "))
        .or_else(|| t.strip_prefix("pub "))
        .unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    t.starts_with("fn ")
}

/// `(first line, length)` of every function body in `text`.
fn function_lengths(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        if !is_fn_start(line) {
            continue;
        }
        let (mut depth, mut opened) = (0i32, false);
        for (offset, l) in lines[start..].iter().enumerate() {
            let code = code_of(l);
            if !opened && code.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            for c in code.chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                found.push((start + 1, offset + 1));
                break;
            }
        }
    }
    found
}

/// The layers of docs/architecture.md ("Dependencies"), every top-level module of
/// `src/` in exactly one. A module may import its own layer and the layers its entry
/// allows; `lib.rs`, `main.rs` and `src/bin/` are the composition root and not listed.
const LAYERS: &[(&str, &[&str], &[&str])] = &[
    // (layer, its modules, the layers it may import besides its own)
    (
        "foundation",
        &[
            "protocol",
            "ports",
            "topics",
            "config",
            "clock",
            "conn",
            "metrics",
            "frame_guard",
            "persistence",
            "audit",
        ],
        &[],
    ),
    ("engine", &["sim", "experiment", "models"], &["foundation"]),
    (
        "delivery",
        &["broker", "presence", "session", "http"],
        &["foundation"],
    ),
    (
        "composition",
        &["cluster", "tls", "cli", "node"],
        &["foundation", "engine", "delivery"],
    ),
];

fn layer_of(module: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .find(|(_, modules, _)| modules.contains(&module))
        .map(|(layer, _, _)| *layer)
}

/// The top-level modules of `src/` (files and directories), without the root.
fn top_modules() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("read src")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (!["lib", "main", "bin"].contains(&module.as_str())).then_some(module)
        })
        .collect();
    names.sort();
    names
}

/// `text` without its `#[cfg(test)]` items (test code may use anything) and without
/// comments: the code the module is built from.
fn built_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // Skip the item that follows: up to its closing brace, or its `;`.
            let mut depth = 0i32;
            for l in lines.by_ref() {
                let code = code_of(l);
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                if depth <= 0 && (code.contains('}') || code.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(&code_of(line));
        out.push('\n');
    }
    out
}

/// The other top-level modules `module`'s built code names through `crate::`.
fn imports_of(module: &str) -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let dir = root.join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    } else {
        files.push(root.join(format!("{module}.rs")));
    }
    let mut found = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let code = built_code(&text);
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = top_modules()
        .into_iter()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "put these in a layer of docs/architecture.md and of LAYERS: {unplaced:?}"
    );
}

#[test]
fn dependencies_point_one_way() {
    let mut wrong = Vec::new();
    for module in top_modules() {
        let Some(layer) = layer_of(&module) else {
            continue;
        };
        let allowed = LAYERS
            .iter()
            .find(|(l, _, _)| *l == layer)
            .map(|(_, _, allowed)| *allowed)
            .unwrap_or_default();
        for import in imports_of(&module) {
            let Some(to) = layer_of(&import) else {
                wrong.push(format!(
                    "{module} ({layer}) imports {import}, which has no layer"
                ));
                continue;
            };
            if to != layer && !allowed.contains(&to) {
                wrong.push(format!("{module} ({layer}) imports {import} ({to})"));
            }
        }
    }
    assert!(wrong.is_empty(), "against the rule: {wrong:#?}");
}

#[test]
fn no_cycle_between_top_level_modules() {
    let modules = top_modules();
    let graph: std::collections::BTreeMap<String, Vec<String>> = modules
        .iter()
        .map(|m| (m.clone(), imports_of(m).into_iter().collect()))
        .collect();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        m: &str,
        graph: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if !done.insert(m.to_owned()) {
            return None;
        }
        path.push(m.to_owned());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for m in &modules {
        let cycle = visit(m, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "a cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
}

#[test]
fn the_checker_sees_imports_and_skips_tests_and_comments() {
    let text = "use crate::a::B;\n// crate::c\n#[cfg(test)]\nmod tests {\n    use crate::d;\n}\nfn f() { crate::e::g(); }\n";
    let code = built_code(text);
    assert!(code.contains("crate::a") && code.contains("crate::e"));
    assert!(!code.contains("crate::c") && !code.contains("crate::d"));
}

#[test]
fn no_function_in_src_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for file in src("src") {
        let text = std::fs::read_to_string(&file).expect("read");
        for (line, len) in function_lengths(&text) {
            if len > MAX_FN_LINES {
                long.push(format!("{}:{line} ({len} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these into named steps: {long:#?}");
}

#[test]
fn the_length_counter_counts_bodies_not_strings() {
    let text = "fn a() {\n    let s = \"}{\";\n    // }\n}\nfn b();\npub fn c() { }\n";
    assert_eq!(function_lengths(text), vec![(1, 4), (6, 1)]);
}
