//! Long because it is the item API's case table: notes, uploads of every shape,
//! limits, downloads and deletion, each on both databases.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    notes_round_trip_with_pagination,
    files_upload_raw_and_multipart,
    oversize_upload_is_refused_and_leaves_nothing,
    a_refused_upload_still_gets_its_answer,
    truncated_multipart_leaves_nothing,
    filenames_are_never_paths,
    bad_ids_and_cursors,
    ranges_and_validators,
    notes_honour_ranges,
    accel_redirect_hands_bytes_to_nginx,
    free_space_reserve,
    only_author_or_admin_deletes,
    bad_note_input,
);

async fn notes_round_trip_with_pagination(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ann", false).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.post_note(&token, &format!("note {i} <script>")).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let page: Value = client
        .get(app.url("/api/items?limit=2"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["text"], "note 4 <script>",
        "newest first, text untouched in JSON"
    );
    let mut seen: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    let mut cursor = page["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page: Value = client
            .get(app.url("/api/items"))
            .query(&[("limit", "2"), ("cursor", c.as_str())])
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_string()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    ids.reverse();
    assert_eq!(seen, ids, "pages cover every item once, newest first");

    let one: Value = client
        .get(app.url(&format!("/api/items/{}", ids[0])))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(one["kind"], "note");
    assert_eq!(one["author"], "ann");
    let res = client
        .get(app.url(&format!("/items/{}/content", ids[0])))
        .bearer_auth(&token)
        .send()
        .await
        .expect("content");
    assert_eq!(res.text().await.expect("text"), "note 4 <script>");

    let res = client
        .delete(app.url(&format!("/api/items/{}", ids[0])))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = client
        .get(app.url(&format!("/api/items/{}", ids[0])))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "not_found"
    );
    app.stop().await;
}

async fn files_upload_raw_and_multipart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("bo", false).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let res = app.upload(&token, "photo.jpg", data.clone()).await;
    assert_eq!(res.status(), 201);
    let raw: Value = res.json().await.expect("json");
    assert_eq!(raw["size"], data.len());
    assert_eq!(raw["content_type"], "image/jpeg");
    assert_eq!(raw["sha256"], ferry::blobs::sha256_hex(&data));

    // The expiry field may come after the files (as `curl -F file=@x -F expires=1d` sends it).
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("table.csv"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"second".to_vec()).file_name("two.bin"),
        )
        .text("expires", "1d");
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("multipart");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let files = body["files"].as_array().expect("one item with its files");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["name"], "table.csv");
    assert!(body["expires_at"].is_string(), "expiry applied to the item");

    let client = reqwest::Client::new();
    let res = client
        .get(app.url(raw["content_url"].as_str().expect("url")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "inline; filename=\"photo.jpg\"; filename*=UTF-8''photo.jpg"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .starts_with("sandbox")
    );
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), data.as_slice());

    let bin = &files[1];
    let res = client
        .get(app.url(bin["url"].as_str().expect("url")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment;"),
        "unknown types download"
    );
    assert_eq!(app.blob_files().len(), 3);
    assert!(app.temp_files().is_empty());
    app.stop().await;
}

async fn oversize_upload_is_refused_and_leaves_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.max_upload_bytes = 100_000).await;
    let token = app.user_with_token("cy", false).await;
    // Announced too large: refused before reading.
    let res = app.upload(&token, "big.bin", vec![1; 200_000]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "payload_too_large"
    );
    // Streamed without a length: refused while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![2u8; 10_000])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = reqwest::Client::new()
        .put(app.url("/api/items?name=stream.bin"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Multipart, too.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![3; 150_000]).file_name("m.bin"),
    );
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        app.temp_files().is_empty(),
        "partial files removed: {:?}",
        app.temp_files()
    );
    assert!(app.blob_files().is_empty());
    assert_eq!(app.state.store.count_items().await.expect("count"), 0);
    app.stop().await;
}

/// A client that sends its whole upload before reading the answer still gets the
/// 413 when the upload is refused before its end, announced too large or found too
/// large while streaming: the server reads and drops the rest before closing,
/// where closing at once would reset the connection and lose the answer.
async fn a_refused_upload_still_gets_its_answer(backend: Backend) {
    use std::io::{Read, Write};

    let app = TestApp::spawn_with(backend, |s| s.max_upload_bytes = 100_000).await;
    let token = app.user_with_token("rex", false).await;
    let body = vec![7u8; 4 * 1024 * 1024];
    for chunked in [false, true] {
        let (addr, token, body) = (app.addr, token.clone(), body.clone());
        let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_string()
            } else {
                format!("Content-Length: {}", body.len())
            };
            write!(
                stream,
                "PUT /api/items?name=big.bin HTTP/1.1\r\nHost: ferry\r\n\
                 Authorization: Bearer {token}\r\n{framing}\r\n\r\n"
            )?;
            if chunked {
                for piece in body.chunks(64 * 1024) {
                    write!(stream, "{:x}\r\n", piece.len())?;
                    stream.write_all(piece)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            } else {
                stream.write_all(&body)?;
            }
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .await
        .expect("client thread");
        let answer = answer.unwrap_or_else(|e| panic!("chunked={chunked}: {e}"));
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {answer}"
        );
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
    assert!(app.blob_files().is_empty());
    app.stop().await;
}

async fn truncated_multipart_leaves_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("di", false).await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\r\nonly half of the fi";
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "bad_request"
    );
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data")
        .body("garbage")
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(app.temp_files().is_empty());
    assert!(app.blob_files().is_empty());
    assert_eq!(app.state.store.count_items().await.expect("count"), 0);
    app.stop().await;
}

async fn filenames_are_never_paths(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ed", false).await;
    for (raw, cleaned) in [
        ("../../../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/x.txt", "x.txt"),
        ("..", "file"),
    ] {
        let res = app.upload(&token, raw, b"x".to_vec()).await;
        assert_eq!(res.status(), 201, "{raw}");
        let item: Value = res.json().await.expect("json");
        assert_eq!(item["name"], cleaned, "{raw}");
    }
    // Every blob is inside blobs/, named by item id.
    for blob in app.blob_files() {
        assert_eq!(blob.parent(), Some(app.data_dir.join("blobs").as_path()));
        assert!(uuid::Uuid::parse_str(&blob.file_name().expect("name").to_string_lossy()).is_ok());
    }
    let res = app.upload(&token, "", b"x".to_vec()).await;
    assert_eq!(res.status(), 400, "a raw upload needs a name");
    app.stop().await;
}

async fn bad_ids_and_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("fa", false).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/items/not-a-uuid",
        "/api/items/../../etc",
        "/items/123/content",
        "/api/items/00000000-0000-0000-0000-000000000000",
    ] {
        let res = client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 404, "{path}");
    }
    for query in [
        "cursor=abc",
        "cursor=' or 1=1 --",
        "limit=0",
        "limit=100000",
        "limit=x",
    ] {
        let res = client
            .get(app.url(&format!("/api/items?{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list");
        assert_eq!(res.status(), 400, "{query}");
    }
    let res = client
        .get(app.url("/api/items"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "unauthorized"
    );
    app.stop().await;
}

/// Notes advertise `Accept-Ranges: bytes` like files (found by the soak test: they
/// answered a Range request with the whole note).
async fn notes_honour_ranges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("nr", false).await;
    let note = app.post_note(&token, "0123456789abcdef").await;
    let url = app.url(note["content_url"].as_str().expect("url"));
    let client = reqwest::Client::new();
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=10-")
        .send()
        .await
        .expect("range");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.headers()["content-range"], "bytes 10-15/16");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"abcdef");
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=99-")
        .send()
        .await
        .expect("unsatisfiable");
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("whole");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.expect("text"), "0123456789abcdef");
    app.stop().await;
}

async fn ranges_and_validators(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("gu", false).await;
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let item: Value = app
        .upload(&token, "v.mp4", data.clone())
        .await
        .json()
        .await
        .expect("json");
    let url = app.url(item["content_url"].as_str().expect("url"));
    let client = reqwest::Client::new();
    let get = |range: &'static str| {
        client
            .get(&url)
            .bearer_auth(&token)
            .header("range", range)
            .send()
    };

    let res = get("bytes=100-199").await.expect("range");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &data[100..200]);
    let res = get("bytes=-10").await.expect("suffix");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &data[990..]);
    let res = get("bytes=5000-").await.expect("unsatisfiable");
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()["content-range"], "bytes */1000");
    let res = get("bytes=0-1,5-6").await.expect("multi");
    assert_eq!(res.status(), 200, "multiple ranges: the whole file");

    let etag = item["sha256"]
        .as_str()
        .map(|s| format!("\"{s}\""))
        .expect("etag");
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = client
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=0-9")
        .header("if-range", "\"other\"")
        .send()
        .await
        .expect("if-range");
    assert_eq!(res.status(), 200, "a stale If-Range gets the whole file");
    app.stop().await;
}

async fn accel_redirect_hands_bytes_to_nginx(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |s| s.accel_redirect = Some("/_protected/".into())).await;
    let token = app.user_with_token("ha", false).await;
    let item: Value = app
        .upload(&token, "a.pdf", b"%PDF-1.4".to_vec())
        .await
        .json()
        .await
        .expect("json");
    let res = reqwest::Client::new()
        .get(app.url(item["content_url"].as_str().expect("url")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-accel-redirect"],
        format!("/_protected/{}", item["id"].as_str().expect("id"))
    );
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(res.headers().contains_key("content-disposition"));
    assert!(res.bytes().await.expect("bytes").is_empty());
    app.stop().await;
}

async fn free_space_reserve(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.min_free_bytes = u64::MAX / 2).await;
    let token = app.user_with_token("io", false).await;
    let res = app.upload(&token, "a.bin", vec![0; 10]).await;
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "insufficient_storage"
    );
    assert!(app.temp_files().is_empty());
    // Notes still work: they live in the database.
    app.post_note(&token, "still here").await;
    app.stop().await;
}

async fn only_author_or_admin_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let author = app.user_with_token("jo", false).await;
    let other = app.user_with_token("ka", false).await;
    let admin = app.user_with_token("root", true).await;
    let client = reqwest::Client::new();
    let a = app.post_note(&author, "mine").await;
    let b = app.post_note(&author, "mine too").await;
    let del = |token: &str, item: &Value| {
        client
            .delete(app.url(&format!("/api/items/{}", item["id"].as_str().expect("id"))))
            .bearer_auth(token.to_string())
            .send()
    };
    assert_eq!(
        del(&other, &a).await.expect("delete").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        del(&author, &a).await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        del(&admin, &b).await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        del(&admin, &b).await.expect("delete").status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn bad_note_input(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.max_note_bytes = 100).await;
    let token = app.user_with_token("li", false).await;
    let client = reqwest::Client::new();
    let cases = [
        (json!({ "text": "   " }).to_string(), "empty"),
        (json!({ "text": "x".repeat(101) }).to_string(), "larger"),
        (
            json!({ "text": "ok", "expires": "2h" }).to_string(),
            "expiry",
        ),
        ("{not json".to_string(), "invalid JSON"),
        (json!({ "txt": "typo" }).to_string(), "invalid JSON"),
    ];
    for (body, expect) in cases {
        let res = client
            .post(app.url("/api/items"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.expect("json");
        assert!(
            err["message"].as_str().unwrap_or("").contains(expect),
            "{body}: {err}"
        );
    }
    let res = client
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .json(&json!({"text": "ok", "expires": "1h"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let item: Value = res.json().await.expect("json");
    let created = time::OffsetDateTime::parse(
        item["created_at"].as_str().expect("ts"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let expires = time::OffsetDateTime::parse(
        item["expires_at"].as_str().expect("ts"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    assert_eq!(
        (expires - created).whole_seconds(),
        Duration::from_secs(3600).as_secs() as i64
    );
    app.stop().await;
}
