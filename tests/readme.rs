//! The README's config table against `config/default.toml` (what `simcast print-config`
//! prints: the binary embeds that file): every key of one is a key of the other, with the
//! same default. Reads two files; starts nothing.

use std::collections::BTreeMap;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Dotted key → default as TOML writes it, for every leaf of `table`.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&dotted, inner, out),
            other => {
                out.insert(dotted, other.to_string());
            }
        }
    }
}

fn default_toml_keys(text: &str) -> BTreeMap<String, String> {
    let table: toml::Table = text.parse().expect("config/default.toml is TOML");
    let mut keys = BTreeMap::new();
    flatten("", &table, &mut keys);
    keys
}

/// The backticked text of `cell`'s first code span, if it has one.
fn first_code_span(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// Key → default of the README's config table (the table whose header is
/// `| key | default | meaning |`). `[[auth.tokens]]` is an array of tables with no
/// default entry (default.toml shows it commented out), so it is left out.
fn readme_table_keys(text: &str) -> BTreeMap<String, String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("| key | default |"));
    assert!(
        lines.next().is_some(),
        "README has no `| key | default |` table"
    );
    let mut keys = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(key), Some(default)) = (
            cells.get(1).and_then(|c| first_code_span(c)),
            cells.get(2).and_then(|c| first_code_span(c)),
        ) else {
            assert!(
                cells.get(1).is_some_and(|c| c.starts_with("`[[")),
                "a README config row without a `key` and a `default`: {line}"
            );
            continue;
        };
        if key.starts_with("[[") {
            continue;
        }
        let previous = keys.insert(key.to_owned(), default.to_owned());
        assert!(previous.is_none(), "README lists {key} twice");
    }
    keys
}

#[test]
fn readme_config_table_matches_default_toml() {
    let readme = readme_table_keys(&read("README.md"));
    let defaults = default_toml_keys(&read("config/default.toml"));
    let missing: Vec<&String> = defaults
        .keys()
        .filter(|k| !readme.contains_key(*k))
        .collect();
    let extra: Vec<&String> = readme
        .keys()
        .filter(|k| !defaults.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README config table: missing {missing:?}; not in config/default.toml {extra:?}"
    );
    let differ: Vec<String> = defaults
        .iter()
        .filter(|(k, v)| readme[*k] != **v)
        .map(|(k, v)| format!("{k}: README `{}`, default.toml `{v}`", readme[k]))
        .collect();
    assert!(differ.is_empty(), "defaults differ: {differ:#?}");
}

#[test]
fn the_parsers_see_keys_and_defaults() {
    let readme = "x\n| key | default | meaning |\n|---|---|---|\n| `a.b` | `\"s\"` | m |\n| `[[a.t]]` `x` | none | m |\n| `a.c` | `1.0` | m |\n\n| `z` | `0` | after the table |\n";
    let keys = readme_table_keys(readme);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys["a.b"], "\"s\"");
    assert_eq!(keys["a.c"], "1.0");
    let toml = "[a]\nb = \"s\"\nc = 1.0\n[a.d]\ne = []\n# [[a.t]]\n";
    let keys = default_toml_keys(toml);
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        vec![
            ("a.b".to_owned(), "\"s\"".to_owned()),
            ("a.c".to_owned(), "1.0".to_owned()),
            ("a.d.e".to_owned(), "[]".to_owned()),
        ]
    );
}
