//! docs/configuration.md and the code agree: every setting in `SETTINGS`
//! (src/config.rs) is documented with its default and help text, the doc lists no
//! setting the code does not have, and every `FERRY_*` name the code mentions is
//! explained somewhere in the doc.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry::config::SETTINGS;

struct DocRow {
    ty: String,
    default: String,
    meaning: String,
}

/// The doc, or None in the Nix sandbox, whose filtered source has no docs/.
fn read_doc() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    if !path.is_file() && std::env::var("FERRY_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1") {
        eprintln!("FERRY_TEST_SQLITE_ONLY=1 and no docs/configuration.md in this source: skipping");
        return None;
    }
    Some(std::fs::read_to_string(&path).expect("read docs/configuration.md"))
}

fn unquote(cell: &str) -> String {
    cell.trim().trim_matches('`').to_string()
}

/// The rows of the table under "## Settings", by variable name.
fn documented_settings(doc: &str) -> BTreeMap<String, DocRow> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Settings\n"))
        .expect("docs/configuration.md has a `## Settings` section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `FERRY_")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "a settings row has 4 cells: {line}");
        let name = unquote(cells[0]);
        let row = DocRow {
            ty: cells[1].trim().to_string(),
            default: unquote(cells[2]),
            meaning: cells[3].trim().to_string(),
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} is listed twice"
        );
    }
    rows
}

#[test]
fn configuration_doc_matches_the_settings_table() {
    let Some(doc) = read_doc() else { return };
    let rows = documented_settings(&doc);
    let mut problems = Vec::new();
    for setting in SETTINGS {
        let name = format!("FERRY_{}", setting.key.to_ascii_uppercase());
        let Some(row) = rows.get(&name) else {
            problems.push(format!("{name} is not documented"));
            continue;
        };
        if row.default != setting.default {
            problems.push(format!(
                "{name}: the doc says default `{}`, the code `{}`",
                row.default, setting.default
            ));
        }
        if !row.meaning.contains(setting.help) {
            problems.push(format!(
                "{name}: the meaning does not contain the help text {:?}",
                setting.help
            ));
        }
        if row.ty.is_empty() {
            problems.push(format!("{name}: no type"));
        }
        if row.ty.contains("(secret)") != setting.secret {
            problems.push(format!(
                "{name}: marked {}secret in the doc but {}secret in the code",
                if row.ty.contains("(secret)") {
                    ""
                } else {
                    "not "
                },
                if setting.secret { "" } else { "not " }
            ));
        }
    }
    let known: BTreeSet<String> = SETTINGS
        .iter()
        .map(|s| format!("FERRY_{}", s.key.to_ascii_uppercase()))
        .collect();
    for name in rows.keys() {
        if !known.contains(name) {
            problems.push(format!(
                "{name} is documented but the code has no such setting"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md disagrees with SETTINGS in src/config.rs:\n  {}",
        problems.join("\n  ")
    );
}

/// Every `FERRY_*` name in the server's source is explained in the doc, so a
/// variable read outside `SETTINGS` cannot go undocumented.
#[test]
fn every_variable_the_code_names_is_documented() {
    let Some(doc) = read_doc() else { return };
    let mut names = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let mut rest = text.as_str();
            while let Some(i) = rest.find("FERRY_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                let name = tail[..end].trim_end_matches('_');
                // `FERRY_<NAME>_FILE` and the bare prefix are patterns, not names.
                if name.len() > "FERRY_".len() && !tail[end..].starts_with('<') {
                    names.insert(name.to_string());
                }
                rest = &tail[end.max(1)..];
            }
        }
    }
    assert!(names.contains("FERRY_DATABASE_URL"), "the scan finds names");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "named in src/ but not explained in docs/configuration.md: {missing:?}"
    );
    assert!(doc.contains("`FERRY_<NAME>_FILE`"));
}
