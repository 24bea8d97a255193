//! docs/api.md works as written: every ```sh block runs with bash, in order,
//! against a real server, with `ferry` on PATH. Blocks marked ```sh no-run are
//! illustrations and are skipped. Variables set in one block are seen by the next,
//! as in a reader's terminal.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

const INSTALL: &str = "apt-get install -y bash curl jq";
/// The address the examples use; the test's server replaces it.
const DOC_URL: &str = "http://127.0.0.1:8080";
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

both_backends!(curl_examples_work_as_written);

struct Block {
    /// Line of the opening fence, for messages.
    line: usize,
    code: String,
    run: bool,
}

struct Ran {
    code: String,
    stdout: String,
}

async fn curl_examples_work_as_written(backend: Backend) {
    let Some(doc) = docs_or_skip() else {
        return;
    };
    if !tools_or_skip() {
        return;
    }
    let blocks = sh_blocks(&doc);
    let skipped = blocks.iter().filter(|b| !b.run).count();
    assert!(
        blocks.len() >= 10,
        "docs/api.md has only {} sh blocks",
        blocks.len()
    );
    assert!(
        skipped <= 2,
        "keep `sh no-run` examples few; docs/api.md has {skipped}"
    );

    let app = TestApp::spawn(backend).await;
    let test_token = app.user_with_token("alice", false).await;
    let work = tempfile::tempdir().expect("temp dir");
    let bin = work.path().join("bin");
    let cwd = work.path().join("examples");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::fs::create_dir_all(&cwd).expect("examples dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ferry"), bin.join("ferry")).expect("symlink");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let state_file = work.path().join("state.sh");
    std::fs::write(&state_file, "").expect("state file");
    let names = assigned_names(&blocks);

    let mut ran = Vec::new();
    let started = Instant::now();
    for block in blocks.iter().filter(|b| b.run) {
        let code = block.code.replace(DOC_URL, &app.base);
        // Run the block, then keep the variables it set for the next one.
        let script = format!(
            "set -euo pipefail\n. {state}\n{code}\n{{ for v in {names}; do [ -n \"${{!v+x}}\" ] && declare -p \"$v\"; done; true; }} > {state}\n",
            state = shell_quote(&state_file),
            names = names.join(" "),
        );
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(&script)
            .current_dir(&cwd)
            .env("PATH", &path)
            .env("URL", &app.base)
            .env("TOKEN", &test_token)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("FERRY_DATA_DIR", &app.data_dir)
            .env("FERRY_DATABASE_URL", &app.database_url)
            .env("FERRY_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            let keep = ["FERRY_DATA_DIR", "FERRY_DATABASE_URL", "FERRY_LOG"];
            if (key.starts_with("FERRY_") && !keep.contains(&key.as_str()))
                || key.eq_ignore_ascii_case("http_proxy")
                || key.eq_ignore_ascii_case("all_proxy")
            {
                cmd.env_remove(&key);
            }
        }
        let out = tokio::time::timeout(BLOCK_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the sh block at docs/api.md line {} ran for over {BLOCK_TIMEOUT:?}",
                    block.line
                )
            })
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the sh block at docs/api.md line {} failed ({}):\n{}\n--- stdout:\n{stdout}--- stderr:\n{}",
            block.line,
            out.status,
            block.code,
            String::from_utf8_lossy(&out.stderr)
        );
        ran.push(Ran {
            code: block.code.clone(),
            stdout,
        });
    }
    eprintln!(
        "docs/api.md: {} examples ran in {:.1?} ({skipped} marked no-run)",
        ran.len(),
        started.elapsed()
    );

    // A few outputs a reader would check.
    let output = |needle: &str| -> &str {
        &ran.iter()
            .find(|r| r.code.contains(needle))
            .unwrap_or_else(|| panic!("no example contains {needle:?}"))
            .stdout
    };
    let state = std::fs::read_to_string(&state_file).expect("state");
    assert!(
        !state.contains(&test_token) && state.contains(" TOKEN=\""),
        "the first example should set TOKEN with `ferry token create`: {state}"
    );
    assert!(
        output("/api/openapi.json").contains("/api/items/{id}/shares"),
        "the OpenAPI example lists the paths"
    );
    assert_eq!(
        output(".items | length").trim(),
        "0",
        "the feed starts empty"
    );
    let note_id = output("hello from curl").trim();
    assert_eq!(
        note_id.len(),
        36,
        "the note example prints an id: {note_id:?}"
    );
    assert!(output("--data-binary @-").contains("today.txt"));
    let multipart = output("-F expires=1h");
    assert!(
        multipart.contains("packing-list.txt 15 /items/")
            && multipart.contains("checklist.txt 17 /items/")
            && multipart.contains("/files/1"),
        "multipart example: {multipart}"
    );
    // "Download all", read by Python's zipfile, then one file on its own.
    let zip = output("-o trip.zip");
    assert!(
        zip.contains("['packing-list.txt', 'checklist.txt']") && zip.contains("passport\ntickets"),
        "zip example: {zip}"
    );
    let feed = output("next_cursor // empty");
    for expected in [
        "note  hello from curl",
        "file  packing-list.txt",
        "file  today.txt",
        "file  packing-list and 1 more.zip",
    ] {
        assert!(
            feed.contains(expected),
            "the paged listing lacks {expected:?}:\n{feed}"
        );
    }
    assert!(output("cmp copy.txt").contains("same"));
    assert_eq!(output("head -c 1000000 big.bin").trim(), "204");
    assert!(
        output("Upload-Checksum: sha256").contains("offset was 1000000; the item is the same file"),
        "the tus example: {}",
        output("Upload-Checksum: sha256")
    );
    assert_eq!(output("\"$URL$LATER\"").trim(), "204");
    let ranges = output("-r 0-3");
    assert!(
        ranges.starts_with("tent\n") && ranges.trim_end().ends_with("304"),
        "range and ETag examples: {ranges:?}"
    );
    assert!(output("has_password}").contains("\"has_password\": true"));
    assert_eq!(
        output("password=open sesame' \"$URL/s/$SHARE_TOKEN/content\""),
        "tent\nstove\nmap\n"
    );
    assert_eq!(output("/api/shares/$SHARE_ID").trim(), "410");
    let events = output("Last-Event-ID: 0");
    assert!(
        events.contains("event: item.created")
            && events.contains("event: item.deleted")
            && events.contains("hello from curl"),
        "the events example: {events}"
    );
    let error = output("'\\n%{http_code}\\n'");
    assert!(
        error.contains(r#"{"error":"not_found","message":"not found"}"#)
            && error.trim_end().ends_with("404"),
        "the error example: {error}"
    );
    // The note was deleted; the token the doc created was the one used.
    assert!(app.state.store.item(note_id).await.expect("item").is_none());
    app.stop().await;
}

/// Every error code the server can send is listed in the doc.
#[test]
fn error_codes_are_documented() {
    let Some(doc) = docs_or_skip() else {
        return;
    };
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/error.rs"))
            .expect("src/error.rs");
    let codes = source
        .split("pub fn code(")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .expect("AppError::code in src/error.rs");
    let mut found = 0;
    for code in codes.split("=> \"").skip(1) {
        let code = code.split('"').next().unwrap_or_default();
        found += 1;
        assert!(
            doc.contains(&format!("`{code}`")),
            "error code {code} is not in docs/api.md"
        );
    }
    assert!(
        found >= 10,
        "found only {found} error codes in src/error.rs"
    );
}

fn sqlite_only() -> bool {
    std::env::var("FERRY_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1")
}

/// docs/api.md, or None (with a message) in the Nix sandbox, whose source has no
/// docs/. Anywhere else a missing file fails the test.
fn docs_or_skip() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    if sqlite_only() && !path.is_file() {
        eprintln!("FERRY_TEST_SQLITE_ONLY=1 and no docs/api.md in this source: skipping");
        return None;
    }
    Some(std::fs::read_to_string(&path).expect("read docs/api.md"))
}

/// Whether bash, curl and jq are there; the Nix sandbox has no curl, and skips.
fn tools_or_skip() -> bool {
    let missing: Vec<&str> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|tool| on_path(tool).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if sqlite_only() {
        eprintln!(
            "FERRY_TEST_SQLITE_ONLY=1 and no {}: skipping the docs/api.md examples",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "the docs/api.md examples need {}: run `{INSTALL}` as root",
        missing.join(", ")
    );
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The fenced blocks whose info string starts with `sh`.
fn sh_blocks(doc: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // Inside a fence: Some(Some(block)) in an sh block, Some(None) in another.
    let mut open: Option<Option<Block>> = None;
    for (n, line) in doc.lines().enumerate() {
        match line.trim_start().strip_prefix("```") {
            Some(info) if open.is_none() => {
                let mut words = info.split_whitespace();
                open = Some((words.next() == Some("sh")).then(|| Block {
                    line: n + 1,
                    code: String::new(),
                    run: !words.any(|w| w == "no-run"),
                }));
            }
            Some(_) => blocks.extend(open.take().flatten()),
            None => {
                if let Some(Some(block)) = open.as_mut() {
                    block.code.push_str(line);
                    block.code.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "docs/api.md has an unclosed code block");
    blocks
}

/// Shell variables the examples set (`NAME=` at the start of a line).
fn assigned_names(blocks: &[Block]) -> Vec<String> {
    let mut names: Vec<String> = blocks
        .iter()
        .flat_map(|b| b.code.lines())
        .filter_map(|line| {
            let (name, _) = line.trim_start().split_once('=')?;
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            ok.then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn fences_are_read() {
    let doc = "text\n```sh\na=1\nB=2\n```\n```json\n{}\n```\n```sh no-run\nforever\n```\n```\nplain\n```\n";
    let blocks = sh_blocks(doc);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].code, "a=1\nB=2\n");
    assert!(blocks[0].run && !blocks[1].run);
    assert_eq!(assigned_names(&blocks), ["B"]);
}
