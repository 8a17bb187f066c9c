//! The structure rules of docs/architecture.md, checked on the source tree: the broker
//! knows nothing of the sessions, and no function in `src/` is longer than 80 lines
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

#[test]
fn the_broker_imports_nothing_of_the_sessions() {
    for file in src("src/broker") {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            !text.contains("crate::session"),
            "{} depends on the sessions",
            file.display()
        );
    }
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
