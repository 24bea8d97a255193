//! Items of several files: one post is one item, live on other devices as one;
//! each file downloads on its own; share links and deletion cover every file.
//! "Download all" is tested in `zip_download.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, SseStream, TestApp};

both_backends!(
    three_files_are_one_item_live_in_a_second_session,
    a_share_link_lists_the_files_and_downloads_all,
    deleting_an_item_removes_every_file,
);

/// Deterministic, incompressible-looking bytes.
pub(crate) fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The three files the tests post, in order.
pub(crate) fn album() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("harbour.jpg", bytes(1, 1_500_000)),
        // The same name again: the archive names it "harbour (2).jpg".
        ("harbour.jpg", bytes(2, 70_001)),
        (
            "fährplan – sommer.txt",
            "Abfahrt 9:00\n".repeat(100).into_bytes(),
        ),
    ]
}

pub(crate) async fn post_files(
    app: &TestApp,
    token: &str,
    files: &[(&str, Vec<u8>)],
    text: &str,
) -> Value {
    let mut form = Form::new().text("text", text.to_string());
    for (name, body) in files {
        form = form.part(
            "file",
            Part::bytes(body.clone()).file_name(name.to_string()),
        );
    }
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("multipart");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("json")
}

pub(crate) async fn get(
    app: &TestApp,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(app.url(path)).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("get")
}

pub(crate) fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn three_files_are_one_item_live_in_a_second_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let poster = app.user_with_token("ines", false).await;
    let watcher = app.user_with_token("jon", false).await;
    let mut events = SseStream::open(&app.url("/events"), &watcher, None).await;

    let files = album();
    let item = post_files(&app, &poster, &files, "photos from the pier").await;
    assert_eq!(item["kind"], "file");
    assert_eq!(item["text"], "photos from the pier");
    let listed = item["files"].as_array().expect("files");
    assert_eq!(listed.len(), 3);
    for ((name, body), file) in files.iter().zip(listed) {
        assert_eq!(file["name"], *name);
        assert_eq!(file["size"], body.len());
        assert_eq!(file["sha256"], ferry::blobs::sha256_hex(body));
    }
    assert_eq!(item["content_type"], "application/zip");
    assert_eq!(item["name"], "harbour and 2 more.zip");

    // The second session hears of one item, with its files.
    let event = events
        .next(Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(event.event, "item.created");
    let announced: Value = serde_json::from_str(&event.data).expect("json");
    assert_eq!(announced["id"], item["id"]);
    assert_eq!(announced["files"], item["files"]);
    assert!(
        events.next(Duration::from_millis(500)).await.is_none(),
        "one event only"
    );
    let page: Value = get(&app, &watcher, "/api/items", &[])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["items"].as_array().expect("items").len(), 1);

    // Each file on its own, with the headers, ETag and ranges of a single file.
    for ((name, body), file) in files.iter().zip(listed) {
        let url = file["url"].as_str().expect("url");
        let res = get(&app, &watcher, url, &[]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, "etag"),
            format!("\"{}\"", file["sha256"].as_str().expect("sha"))
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(header(&res, "content-disposition").contains(&urlencode(name)));
        assert_eq!(res.bytes().await.expect("bytes").as_ref(), body.as_slice());
        let api_url = format!("/api{url}");
        let part = get(&app, &watcher, &api_url, &[("range", "bytes=10-19")]).await;
        assert_eq!(part.status(), 206);
        assert_eq!(part.bytes().await.expect("bytes").as_ref(), &body[10..20]);
    }
    let id = item["id"].as_str().expect("id");
    assert_eq!(
        get(&app, &watcher, &format!("/items/{id}/files/3"), &[])
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&app, &watcher, &format!("/items/{id}/files/x"), &[])
            .await
            .status(),
        404
    );

    // A single file stays as it was: itself at content_url, one entry in files.
    let res = app.upload(&poster, "alone.txt", b"just me".to_vec()).await;
    let alone: Value = res.json().await.expect("json");
    assert_eq!(alone["name"], "alone.txt");
    assert_eq!(alone["files"].as_array().expect("files").len(), 1);
    let content = get(
        &app,
        &watcher,
        alone["content_url"].as_str().expect("url"),
        &[],
    )
    .await;
    assert_eq!(content.bytes().await.expect("bytes").as_ref(), b"just me");
    app.stop().await;
}

/// The file name as `filename*` carries it.
fn urlencode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn a_share_link_lists_the_files_and_downloads_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("lea", false).await;
    let files = album();
    let item = post_files(&app, &token, &files, "for the crew").await;
    let id = item["id"].as_str().expect("id");
    let res = reqwest::Client::new()
        .post(app.url(&format!("/api/items/{id}/shares")))
        .bearer_auth(&token)
        .json(&json!({ "max_downloads": 3 }))
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 201);
    let share: Value = res.json().await.expect("json");
    let share_token = share["token"].as_str().expect("token");
    let anyone = reqwest::Client::new();

    let page = anyone
        .get(app.url(&format!("/s/{share_token}")))
        .send()
        .await
        .expect("page");
    let page = page.text().await.expect("html");
    assert!(
        page.contains("Download all") && page.contains("for the crew"),
        "{page}"
    );
    assert!(page.contains(&format!("/s/{share_token}/files/2")));
    assert!(page.contains("fährplan – sommer.txt"));

    let mine = get(&app, &token, &format!("/items/{id}/zip"), &[])
        .await
        .bytes()
        .await
        .expect("zip");
    let shared = anyone
        .get(app.url(&format!("/s/{share_token}/zip")))
        .send()
        .await
        .expect("zip");
    assert_eq!(shared.status(), 200);
    assert_eq!(shared.bytes().await.expect("bytes"), mine);
    let one = anyone
        .get(app.url(&format!("/s/{share_token}/files/1")))
        .send()
        .await
        .expect("file");
    assert_eq!(
        one.bytes().await.expect("bytes").as_ref(),
        files[1].1.as_slice()
    );
    // A file that is not there is refused without using up a download.
    let missing = anyone
        .get(app.url(&format!("/s/{share_token}/files/9")))
        .send()
        .await
        .expect("file");
    assert_eq!(missing.status(), 404);
    let counted = app.state.store.shares_of_item(id).await.expect("shares");
    assert_eq!(counted[0].downloads, 2);
    let last = anyone
        .get(app.url(&format!("/s/{share_token}/content")))
        .send()
        .await
        .expect("zip");
    assert_eq!(
        last.bytes().await.expect("bytes"),
        mine,
        "content is the archive"
    );
    let over = anyone
        .get(app.url(&format!("/s/{share_token}/zip")))
        .send()
        .await
        .expect("zip");
    assert_eq!(over.status(), 410, "the download limit covers every file");
    app.stop().await;
}

async fn deleting_an_item_removes_every_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("max", false).await;
    let item = post_files(&app, &token, &album(), "").await;
    assert_eq!(app.blob_files().len(), 3);
    let res = reqwest::Client::new()
        .delete(app.url(&format!("/api/items/{}", item["id"].as_str().expect("id"))))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    // A failed form (an unknown expiry after the files) keeps none of its files.
    let form = Form::new()
        .part("file", Part::bytes(vec![1; 1000]).file_name("a.bin"))
        .part("file", Part::bytes(vec![2; 1000]).file_name("b.bin"))
        .text("expires", "someday");
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("multipart");
    assert_eq!(res.status(), 400);
    assert!(app.blob_files().is_empty());
    assert_eq!(app.state.store.count_items().await.expect("count"), 0);
    app.stop().await;
}
