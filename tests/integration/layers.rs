//! Architecture check: Ferry's source files keep to their layers and import no circle.
//!
//! A text scan of src/ (std only), not a Rust parser. An import is any `crate::` path
//! outside `//` comments: `use`/`pub use crate::…` lines, grouped `{…}` lists across
//! lines, and paths inline in code such as `crate::store::now_ms()`; test modules count
//! too. Not imports: `use super::…`, `mod x;` (a parent declaring its children) and
//! `$crate::`. A `crate::` in a string literal would be miscounted; Ferry has none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// File name (relative to src/, `/`-separated) to its source text.
type Sources = BTreeMap<String, String>;
/// File name to the files it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Beyond this many import cycles the report stops listing them.
const MAX_CYCLES: usize = 50;

/// What one layer may not reach: files whose name starts with `scope`, the top-level
/// `crate::` modules they may not name, and words they may not contain.
struct Layer {
    scope: &'static str,
    forbidden_modules: &'static [&'static str],
    forbidden_words: &'static [&'static str],
    why: &'static str,
}

const LAYERS: [Layer; 3] = [
    Layer {
        scope: "app/",
        forbidden_modules: &["http"],
        forbidden_words: &["axum"],
        why: "the application layer knows nothing of the web (no axum, no crate::http)",
    },
    Layer {
        scope: "http/",
        forbidden_modules: &["store"],
        forbidden_words: &[".store()"],
        why: "the web adapter reaches the store only through crate::app",
    },
    Layer {
        scope: "auth.rs",
        forbidden_modules: &["http", "state"],
        forbidden_words: &["axum"],
        why: "auth stays pure (no axum, crate::http or crate::state)",
    },
];

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The source with every `//` comment cut off its line.
fn code(source: &str) -> String {
    let cut = |line: &str| line.find("//").map_or(line, |at| &line[..at]).to_string();
    source.lines().map(cut).collect::<Vec<_>>().join("\n")
}

/// Every `crate::` path in `source` with the line it starts on, groups expanded:
/// `crate::{a::b, c::{self, d}}` gives `a::b`, `c` and `c::d`.
fn crate_paths(source: &str) -> Vec<(usize, Vec<String>)> {
    let code = code(source);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b'$') {
            continue;
        }
        let line = 1 + code[..at].matches('\n').count();
        let mut paths = Vec::new();
        parse_tree(bytes, &mut (at + "crate::".len()), Vec::new(), &mut paths);
        found.extend(paths.into_iter().map(|path| (line, path)));
    }
    found
}

/// Parses one use-tree after a `::` (a name, a `{…}` group or `*`), adding each full
/// path under `prefix` to `out`.
fn parse_tree(code: &[u8], pos: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_while = |pos: &mut usize, keep: &dyn Fn(u8) -> bool| {
        while code.get(*pos).is_some_and(|b| keep(*b)) {
            *pos += 1;
        }
    };
    skip_while(pos, &|b| b.is_ascii_whitespace());
    if code.get(*pos) == Some(&b'{') {
        *pos += 1;
        loop {
            skip_while(pos, &|b| b.is_ascii_whitespace());
            match code.get(*pos) {
                None => return,
                Some(b'}') => return *pos += 1,
                Some(b',') => *pos += 1,
                Some(_) => {
                    parse_tree(code, pos, prefix.clone(), out);
                    // Step over a rename (`as name`) to the next item or the group's end.
                    skip_while(pos, &|b| b != b',' && b != b'}');
                }
            }
        }
    }
    let start = *pos;
    skip_while(pos, &is_ident);
    let name = String::from_utf8_lossy(&code[start..*pos]).into_owned();
    let mut path = prefix;
    if !name.is_empty() && name != "self" {
        path.push(name.clone());
    }
    if !name.is_empty() && code[*pos..].starts_with(b"::") {
        *pos += 2;
        parse_tree(code, pos, path, out);
    } else {
        out.push(path);
    }
}

/// The deepest existing file a `crate::` path names: for `a::b::C` the first of
/// a/b/C.rs, a/b/C/mod.rs, a/b.rs, a/b/mod.rs, a.rs, a/mod.rs, else lib.rs.
fn resolve(path: &[String], files: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|len| path[..len].join("/"))
        .flat_map(|dir| [format!("{dir}.rs"), format!("{dir}/mod.rs")])
        .chain(["lib.rs".to_string()])
        .find(|file| files.contains(file))
}

/// File-level import graph; a file importing itself is no edge.
fn import_graph(sources: &Sources) -> Graph {
    let files: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = Graph::new();
    for (file, source) in sources {
        let imports = graph.entry(file.clone()).or_default();
        for (_, path) in crate_paths(source) {
            if let Some(target) = resolve(&path, &files).filter(|target| target != file) {
                imports.insert(target);
            }
        }
    }
    graph
}

/// Every elementary import cycle, each once, starting and ending at its smallest file:
/// `a.rs -> b.rs -> a.rs`.
fn cycles(graph: &Graph) -> Vec<String> {
    fn walk(graph: &Graph, path: &mut Vec<String>, found: &mut Vec<String>) {
        let (start, last) = (path[0].clone(), path[path.len() - 1].clone());
        for next in graph.get(&last).into_iter().flatten() {
            if found.len() >= MAX_CYCLES {
                return;
            }
            if *next == start {
                found.push(format!("{} -> {start}", path.join(" -> ")));
            } else if *next > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, &mut vec![start.clone()], &mut found);
    }
    found
}

/// Whether `line` holds `word`, not as part of a longer name.
fn contains_word(line: &str, word: &str) -> bool {
    let (bytes, word) = (line.as_bytes(), word.as_bytes());
    let clear =
        |next: Option<&u8>, edge: u8| !is_ident(edge) || !next.copied().is_some_and(is_ident);
    bytes.windows(word.len()).enumerate().any(|(at, window)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i));
        window == word
            && clear(before, word[0])
            && clear(bytes.get(at + word.len()), word[word.len() - 1])
    })
}

/// One line per source line that reaches past its layer: `file:line: what — why`.
fn layer_violations(sources: &Sources) -> Vec<String> {
    let mut found = BTreeMap::<(String, usize, &str), Vec<String>>::new();
    for (file, source) in sources {
        for layer in LAYERS.iter().filter(|layer| file.starts_with(layer.scope)) {
            let mut report = |line: usize, what: String| {
                let key = (file.clone(), line, layer.why);
                found.entry(key).or_default().push(what);
            };
            for (line, path) in crate_paths(source) {
                if path
                    .first()
                    .is_some_and(|m| layer.forbidden_modules.contains(&m.as_str()))
                {
                    report(line, format!("crate::{}", path.join("::")));
                }
            }
            for (index, text) in code(source).lines().enumerate() {
                for word in layer.forbidden_words {
                    if contains_word(text, word) {
                        report(index + 1, word.to_string());
                    }
                }
            }
        }
    }
    found
        .into_iter()
        .map(|((file, line, why), what)| format!("src/{file}:{line}: {} — {why}", what.join(", ")))
        .collect()
}

/// Every .rs file under `dir`, keyed relative to `root` with `/` separators.
fn read_sources(root: &Path, dir: &Path, sources: &mut Sources) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}"));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            read_sources(root, &path, sources);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path
                .strip_prefix(root)
                .expect("under src/")
                .to_string_lossy();
            let text = std::fs::read_to_string(&path).expect("read a source file");
            sources.insert(name.replace('\\', "/"), text);
        }
    }
}

#[test]
fn source_tree_respects_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Sources::new();
    read_sources(&src, &src, &mut sources);
    // main.rs is the binary's own crate root: its `crate::` is not the library.
    sources.remove("main.rs");
    assert!(sources.contains_key("lib.rs"), "read the library's sources");

    let mut problems: Vec<String> = cycles(&import_graph(&sources))
        .into_iter()
        .map(|cycle| format!("import cycle: src/{}", cycle.replace(" -> ", " -> src/")))
        .collect();
    problems.extend(layer_violations(&sources));
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

fn sources(files: &[(&str, &str)]) -> Sources {
    let owned = |(name, text): &(&str, &str)| (name.to_string(), text.to_string());
    files.iter().map(owned).collect()
}

#[test]
fn two_files_importing_each_other_are_a_cycle() {
    let tree = sources(&[("a.rs", "use crate::b::B;"), ("b.rs", "pub use crate::a;")]);
    assert_eq!(cycles(&import_graph(&tree)), ["a.rs -> b.rs -> a.rs"]);
}

#[test]
fn a_three_file_loop_is_a_cycle_inline_paths_included() {
    let tree = sources(&[
        ("a.rs", "use crate::b::{self, B};"),
        ("b/mod.rs", "fn f() -> u64 { crate::c::now() }"),
        ("c.rs", "use crate::a::A;\nuse crate::c::Own;"),
    ]);
    let found = cycles(&import_graph(&tree));
    assert_eq!(found, ["a.rs -> b/mod.rs -> c.rs -> a.rs"]);
}

#[test]
fn a_layered_tree_has_no_cycle_and_no_violation() {
    let tree = sources(&[
        ("lib.rs", "pub mod app;\npub mod store;"),
        ("store/mod.rs", "mod items;\nuse crate::VERSION;"),
        ("store/items.rs", "use super::*;\nuse crate::store::S;"),
        ("app/mod.rs", "use crate::{auth::hash, store::S};"),
        ("http/mod.rs", "use axum::Router; // crate::store"),
        ("auth.rs", "fn hash() {} // no axum here"),
    ]);
    let graph = import_graph(&tree);
    assert!(graph["store/items.rs"].contains("store/mod.rs"));
    assert!(graph["store/mod.rs"].contains("lib.rs"));
    assert!(graph["lib.rs"].is_empty(), "mod lines are not imports");
    assert_eq!(cycles(&graph), Vec::<String>::new());
    assert_eq!(layer_violations(&tree), Vec::<String>::new());
}

#[test]
fn a_grouped_multi_line_use_expands_to_each_path() {
    let source = "use crate::{\n    a::b::C,\n    d::{self, e as f},\n    g,\n};\nmycrate::h();";
    let paths: Vec<_> = crate_paths(source).into_iter().map(|(_, p)| p).collect();
    let names: Vec<_> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(names, ["a::b::C", "d", "d::e", "g"]);

    let files = ["a/b.rs", "a/mod.rs", "d/mod.rs", "g.rs"].map(String::from);
    let files = files.into();
    let resolved: Vec<_> = paths.iter().filter_map(|p| resolve(p, &files)).collect();
    assert_eq!(resolved, ["a/b.rs", "d/mod.rs", "d/mod.rs", "g.rs"]);
}

#[test]
fn each_layer_rule_names_the_offending_line() {
    let tree = sources(&[
        (
            "app/x.rs",
            "use axum::Json;\nuse crate::{\n  http::Api,\n};",
        ),
        ("http/x.rs", "use crate::store::{Item, now};\napp.store();"),
        ("auth.rs", "use crate::state::AppState;\naxum::Json(1);"),
    ]);
    let found = layer_violations(&tree);
    let lines: Vec<_> = found.iter().filter_map(|l| l.split(" — ").next()).collect();
    assert_eq!(
        lines,
        [
            "src/app/x.rs:1: axum",
            "src/app/x.rs:2: crate::http::Api",
            "src/auth.rs:1: crate::state::AppState",
            "src/auth.rs:2: axum",
            "src/http/x.rs:1: crate::store::Item, crate::store::now",
            "src/http/x.rs:2: .store()",
        ]
    );
    assert!(found[0].ends_with(LAYERS[0].why) && found[4].ends_with(LAYERS[1].why));
}
