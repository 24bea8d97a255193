//! docs/openapi.json stays true to the router: every `.route("/api/…", …)` in src/
//! and its methods are described, and nothing else is; the server answers every
//! described operation and refuses the others with 405; the objects it sends have
//! exactly the described fields. (`nox -s contract` checks the values with
//! schemathesis.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    the_server_answers_what_is_described,
    answers_have_the_described_fields
);

/// (path, METHOD), e.g. ("/api/items/{id}", "DELETE").
type Operations = BTreeSet<(String, String)>;

const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];
/// Calls allowed in a method router besides the methods themselves.
const MODIFIERS: [&str; 3] = ["layer", "route_layer", "with_state"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn description() -> Value {
    let text =
        std::fs::read_to_string(root().join("docs/openapi.json")).expect("read docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

fn described(doc: &Value) -> Operations {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|m| (path.clone(), m.to_ascii_uppercase()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `.route("/api/…", …)` call in the Rust files under `src/`, with the methods
/// of its method router. Anything it cannot read is an error, never skipped.
fn routed() -> Operations {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut ops = Operations::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read source");
        let name = file.strip_prefix(root()).unwrap_or(&file).display();
        for (path, methods) in api_routes(&source).unwrap_or_else(|e| panic!("{name}: {e}")) {
            for m in methods {
                assert!(
                    ops.insert((path.clone(), m.clone())),
                    "{name}: {m} {path} is routed twice"
                );
            }
        }
        for call in [".nest(", ".nest_service(", ".route_service("] {
            if source.split(call).skip(1).any(|rest| rest.contains("/api")) {
                panic!("{name} has {call}…/api…: describe its routes here too");
            }
        }
    }
    ops
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The routes under /api/ in one source file: path and methods.
fn api_routes(source: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut routes = Vec::new();
    for (at, _) in code.match_indices(".route(") {
        let args = balanced(&code[at + ".route".len()..])
            .ok_or_else(|| format!("unbalanced .route( at byte {at}"))?;
        let (path, router) = args
            .trim()
            .strip_prefix('"')
            .and_then(|rest| rest.split_once('"'))
            .ok_or_else(|| format!("a .route( whose path is not a literal: {args}"))?;
        if !path.starts_with("/api") {
            continue;
        }
        let router = router
            .trim()
            .trim_start_matches(',')
            .trim_end_matches(',')
            .trim();
        routes.push((
            path.to_string(),
            methods(router).map_err(|e| format!("{path}: {e}"))?,
        ));
    }
    Ok(routes)
}

/// The text inside the parenthesis `s` starts with.
fn balanced(s: &str) -> Option<&str> {
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[1..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The methods of a method router such as `get(list).post(create).layer(…)`: the
/// calls at its top level, each a method or an allowed modifier.
fn methods(router: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut rest = router.trim();
    while !rest.is_empty() {
        let open = rest
            .find('(')
            .ok_or_else(|| format!("cannot read the method router {router:?}"))?;
        let callee = rest[..open].trim().trim_start_matches('.');
        let name = callee.rsplit("::").next().unwrap_or(callee);
        let args = balanced(&rest[open..]).ok_or("unbalanced method router")?;
        if METHODS.contains(&name) {
            found.push(name.to_ascii_uppercase());
        } else if !MODIFIERS.contains(&name) {
            return Err(format!(
                "`{callee}(…)` in {router:?} is not a method this test knows"
            ));
        }
        rest = rest[open + args.len() + 2..].trim();
    }
    if found.is_empty() {
        return Err(format!("no method in {router:?}"));
    }
    Ok(found)
}

#[test]
fn the_route_parser_reads_method_routers() {
    let source = r#"
        Router::new()
            // .route("/api/commented", get(x))
            .route("/api/items", get(list).post(create).layer(DefaultBodyLimit::disable()))
            .route("/api/items/{id}", axum::routing::get(one).delete(delete))
            .route("/login", get(page))
    "#;
    let routes = api_routes(source).expect("parse");
    assert_eq!(
        routes,
        [
            ("/api/items".to_string(), vec!["GET".into(), "POST".into()]),
            (
                "/api/items/{id}".to_string(),
                vec!["GET".into(), "DELETE".into()]
            ),
        ]
    );
    for unreadable in [
        r#".route("/api/x", any(handler))"#,
        r#".route("/api/x", on(MethodFilter::GET, h))"#,
        r#".route("/api/x", some_router)"#,
        r#".route(API_PATH, get(h))"#,
    ] {
        assert!(api_routes(unreadable).is_err(), "{unreadable} was read");
    }
}

#[test]
fn the_description_lists_every_api_route_and_method() {
    let doc = description();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "docs/openapi.json info.version should be Ferry's version (Cargo.toml)"
    );
    let routed = routed();
    let described = described(&doc);
    assert!(routed.len() >= 9, "found only {routed:?} in src/");
    let missing: Vec<_> = routed.difference(&described).collect();
    let stale: Vec<_> = described.difference(&routed).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/openapi.json and the router disagree.\nrouted, not described: {missing:?}\ndescribed, not routed: {stale:?}"
    );
}

/// Every error code the server sends (AppError::code in src/error.rs) is in the
/// description's Error schema, and no other.
#[test]
fn the_error_codes_are_described() {
    let source = std::fs::read_to_string(root().join("src/error.rs")).expect("src/error.rs");
    let body = source
        .split("pub fn code(")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .expect("AppError::code in src/error.rs");
    let sent: BTreeSet<&str> = body
        .split("=> \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    let doc = description();
    let described: BTreeSet<&str> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
            .as_array()
            .expect("Error.error enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
    assert!(sent.len() >= 10, "found only {sent:?} in src/error.rs");
    assert_eq!(sent, described);
}

/// A concrete URL for a described path.
fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::now_v7().to_string())
}

async fn the_server_answers_what_is_described(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let doc = description();

    // Served as written, to anyone.
    let res = client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("get description");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served = res.text().await.expect("body");
    let file = std::fs::read_to_string(root().join("docs/openapi.json")).expect("file");
    assert!(served == file, "/api/openapi.json is not docs/openapi.json");

    // Every described operation is routed: without a token it is 401 (or open),
    // never 404 or 405; every other method on a described path is 405. Each request
    // names the tus version, which /api/uploads checks before anything else (412).
    let ops = described(&doc);
    let paths: BTreeSet<&String> = ops.iter().map(|(p, _)| p).collect();
    for path in paths {
        let url = app.url(&concrete(path));
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let res = client
                .request(Method::from_bytes(method.as_bytes()).expect("method"), &url)
                .header("tus-resumable", "1.0.0")
                .send()
                .await
                .expect("request");
            let status = res.status();
            let operation = &doc["paths"][path.as_str()][method.to_ascii_lowercase()];
            if operation.is_null() {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            } else if operation["security"] == json!([]) {
                assert!(status.is_success(), "{method} {path}: {status}");
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                let body: Value = res.json().await.expect("JSON error");
                assert_eq!(body["error"], "unauthorized", "{method} {path}");
            }
        }
    }
    app.stop().await;
}

/// The properties of a schema, following `$ref` and merging `allOf`; with the
/// required ones.
fn fields(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return fields(doc, &doc["components"]["schemas"][name]);
    }
    let mut props: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let mut required: BTreeSet<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = fields(doc, part);
        props.extend(p);
        required.extend(r);
    }
    (props, required)
}

/// `value` has exactly the fields of `schema`, all of them required.
fn assert_shape(doc: &Value, schema: &str, value: &Value) {
    let (props, required) = fields(
        doc,
        &json!({ "$ref": format!("#/components/schemas/{schema}") }),
    );
    let keys: BTreeSet<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema}: not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys, props,
        "{schema} in docs/openapi.json vs the answer {value}"
    );
    assert_eq!(
        required, props,
        "{schema}: every field the server always sends is required"
    );
}

async fn answers_have_the_described_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("olga", false).await;
    let client = reqwest::Client::new();
    let doc = description();

    let note = app.post_note(&token, "described").await;
    assert_shape(&doc, "Item", &note);
    let file: Value = app
        .upload(&token, "a.txt", b"abc".to_vec())
        .await
        .json()
        .await
        .expect("json");
    assert_shape(&doc, "Item", &file);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"1".to_vec()).file_name("1.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"2".to_vec()).file_name("2.txt"),
        );
    let several: Value = client
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("multipart")
        .json()
        .await
        .expect("json");
    assert_shape(&doc, "Item", &several);
    for file in several["files"].as_array().expect("files") {
        assert_shape(&doc, "ItemFile", file);
    }

    let get = |path: String| {
        let req = client.get(app.url(&path)).bearer_auth(&token);
        async move {
            req.send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let page = get("/api/items?limit=1".into()).await;
    assert_shape(&doc, "ItemPage", &page);
    assert!(page["next_cursor"].is_string(), "{page}");
    let id = file["id"].as_str().expect("id");
    assert_shape(&doc, "Item", &get(format!("/api/items/{id}")).await);

    let created: Value = client
        .post(app.url(&format!("/api/items/{id}/shares")))
        .bearer_auth(&token)
        .json(&json!({ "max_downloads": 3, "password": "pw" }))
        .send()
        .await
        .expect("share")
        .json()
        .await
        .expect("json");
    assert_shape(&doc, "CreatedShare", &created);
    let shares = get(format!("/api/items/{id}/shares")).await;
    assert_shape(&doc, "ShareList", &shares);
    assert_shape(&doc, "Share", &shares["shares"][0]);

    // Errors, including a path that does not decode, are the Error object.
    for path in [
        "/api/items/not-an-id",
        "/api/items/%FF",
        "/api/items/%FF/shares",
    ] {
        let res = client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        let status = res.status();
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        assert_shape(&doc, "Error", &res.json::<Value>().await.expect("json"));
    }
    let res = client
        .delete(app.url("/api/shares/%FF"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 400);
    assert_shape(&doc, "Error", &res.json::<Value>().await.expect("json"));

    app.stop().await;
}
