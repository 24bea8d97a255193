//! Long because it covers the whole tus protocol on both databases, with its helper.
//!
//! Resumable uploads (tus 1.0.0) over the real router, on both databases: the
//! protocol's statuses and headers, the limits, owner-only access, expiry by the
//! sweeper, completion into exactly one item, and a second replica continuing.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferry::config::Secret;
use reqwest::{Method, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{Backend, SseStream, TestApp, execute, files_under};

const TUS: &str = "1.0.0";
const OCTETS: &str = "application/offset+octet-stream";

both_backends!(
    an_upload_in_pieces_becomes_one_item,
    offsets_types_lengths_and_checksums_are_checked,
    only_the_creator_sees_an_upload,
    termination_and_expiry_remove_the_bytes,
    limits_hold_at_creation,
    creation_with_upload_and_empty_files,
    the_page_session_needs_its_csrf_header,
    an_id_that_does_not_decode_is_a_json_error,
    a_method_without_a_route_is_405_whatever_the_headers,
    a_cut_off_request_keeps_its_bytes_and_holds_the_lock_meanwhile,
    other_origins_may_use_tus_when_allowed
);

fn metadata(name: &str) -> String {
    format!(
        "filename {},expires {}",
        STANDARD.encode(name),
        STANDARD.encode("never")
    )
}

pub struct Tus<'a> {
    pub app: &'a TestApp,
    pub token: &'a str,
    client: reqwest::Client,
}

impl<'a> Tus<'a> {
    pub fn new(app: &'a TestApp, token: &'a str) -> Self {
        Self {
            app,
            token,
            client: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.app.url(path))
            .bearer_auth(self.token)
            .header("tus-resumable", TUS)
    }

    /// Create an upload of `length` bytes; returns its path.
    pub async fn create(&self, name: &str, length: usize) -> String {
        let res = self
            .request(Method::POST, "/api/uploads")
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata(name))
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        assert_eq!(res.headers()["tus-resumable"], TUS);
        res.headers()["location"]
            .to_str()
            .expect("location")
            .to_string()
    }

    pub async fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().await.expect("head")
    }

    pub async fn offset(&self, path: &str) -> u64 {
        let res = self.head(path).await;
        assert_eq!(res.status(), 200);
        number(&res, "upload-offset")
    }

    pub async fn patch(&self, path: &str, offset: usize, data: &[u8]) -> Response {
        self.request(Method::PATCH, path)
            .header("content-type", OCTETS)
            .header("upload-offset", offset.to_string())
            .body(data.to_vec())
            .send()
            .await
            .expect("patch")
    }
}

fn header(res: &Response, name: &str) -> bool {
    res.headers().get(name).is_some()
}

fn number(res: &Response, name: &str) -> u64 {
    res.headers()[name]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number")
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn items(app: &TestApp, token: &str) -> Vec<Value> {
    let page: Value = reqwest::Client::new()
        .get(app.url("/api/items"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn an_upload_in_pieces_becomes_one_item(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ada", false).await;
    let tus = Tus::new(&app, &token);
    let mut events = SseStream::open(&app.url("/events"), &token, None).await;

    let options = reqwest::Client::new()
        .request(Method::OPTIONS, app.url("/api/uploads"))
        .send()
        .await
        .expect("options");
    assert_eq!(options.status(), 204);
    let h = options.headers();
    assert_eq!(h["tus-version"], TUS);
    assert_eq!(
        h["tus-extension"],
        "creation,creation-with-upload,termination,expiration,checksum"
    );
    assert_eq!(
        h["tus-max-size"],
        app.state.settings.max_upload_bytes.to_string().as_str()
    );
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256");

    let body = data(3 * 1024 * 1024 + 17);
    let path = tus.create("report.pdf", body.len()).await;
    assert!(path.starts_with("/api/uploads/"), "{path}");
    let head = tus.head(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(number(&head, "upload-offset"), 0);
    assert_eq!(number(&head, "upload-length"), body.len() as u64);
    assert_eq!(
        head.headers()["upload-metadata"],
        metadata("report.pdf").as_str()
    );
    assert_eq!(head.headers()["cache-control"], "no-store");
    assert!(
        head.headers()["upload-expires"]
            .to_str()
            .expect("date")
            .ends_with(" GMT")
    );

    let mut at = 0;
    for piece in body.chunks(1024 * 1024 + 3) {
        let res = tus.patch(&path, at, piece).await;
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        at += piece.len();
        assert_eq!(number(&res, "upload-offset"), at as u64);
        if at < body.len() {
            assert!(header(&res, "upload-expires"));
            assert!(
                items(&app, &token).await.is_empty(),
                "no item before the last byte"
            );
        }
    }
    let listed = items(&app, &token).await;
    assert_eq!(listed.len(), 1, "exactly one item: {listed:?}");
    let item = &listed[0];
    assert_eq!(item["name"], "report.pdf");
    assert_eq!(item["size"], body.len() as u64);
    assert_eq!(item["sha256"], sha256_hex(&body).as_str());
    let id = item["id"].as_str().expect("id");
    assert!(path.ends_with(id), "the item has the upload's id");
    let download = reqwest::Client::new()
        .get(app.url(&format!("/items/{id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    assert_eq!(download.bytes().await.expect("bytes").to_vec(), body);

    let event = events
        .next(Duration::from_secs(10))
        .await
        .expect("item.created");
    assert_eq!(event.event, "item.created");
    assert!(event.data.contains(id));
    assert!(
        events.next(Duration::from_millis(500)).await.is_none(),
        "one event only"
    );

    // The upload reports itself complete; more bytes are refused, no second item.
    assert_eq!(tus.offset(&path).await, body.len() as u64);
    assert_eq!(tus.patch(&path, body.len(), b"x").await.status(), 409);
    assert_eq!(items(&app, &token).await.len(), 1);
    assert!(
        files_under(&app.data_dir.join("uploads")).is_empty(),
        "the bytes moved"
    );
    app.stop().await;
}

async fn offsets_types_lengths_and_checksums_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("bo", false).await;
    let tus = Tus::new(&app, &token);
    let body = data(1000);
    let path = tus.create("a.bin", body.len()).await;

    let no_version = reqwest::Client::new()
        .head(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("head");
    assert_eq!(no_version.status(), 412);
    assert_eq!(no_version.headers()["tus-version"], TUS);

    assert_eq!(tus.patch(&path, 0, &body[..100]).await.status(), 204);
    assert_eq!(tus.patch(&path, 0, &body[..100]).await.status(), 409);
    assert_eq!(tus.patch(&path, 500, &body[..100]).await.status(), 409);
    let wrong_type = tus
        .request(Method::PATCH, &path)
        .header("content-type", "application/octet-stream")
        .header("upload-offset", "100")
        .body(body[100..200].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(tus.patch(&path, 100, &data(1000)).await.status(), 413);
    assert_eq!(tus.offset(&path).await, 100);

    let checked = |piece: &[u8], digest: Vec<u8>, algorithm: &str| {
        tus.request(Method::PATCH, &path)
            .header("content-type", OCTETS)
            .header("upload-offset", "100")
            .header(
                "upload-checksum",
                format!("{algorithm} {}", STANDARD.encode(digest)),
            )
            .body(piece.to_vec())
    };
    // A body without a length that runs past the end is refused whole.
    let endless =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![7u8; 500])));
    // Its own connection: the server answers before the body ends and closes it.
    let overflow = Tus::new(&app, &token)
        .request(Method::PATCH, &path)
        .header("content-type", OCTETS)
        .header("upload-offset", "100")
        .body(reqwest::Body::wrap_stream(endless))
        .send()
        .await
        .expect("patch");
    assert_eq!(overflow.status(), 413);
    assert_eq!(tus.offset(&path).await, 100);

    let piece = &body[100..400];
    let wrong = checked(piece, Sha256::digest(b"other").to_vec(), "sha256")
        .send()
        .await
        .expect("patch");
    assert_eq!(wrong.status().as_u16(), 460);
    assert_eq!(
        tus.offset(&path).await,
        100,
        "a mismatching chunk is discarded"
    );
    let unknown = checked(piece, vec![0; 16], "md5")
        .send()
        .await
        .expect("patch");
    assert_eq!(unknown.status(), 400);
    let sha1 = <sha1::Sha1 as Digest>::digest(piece).to_vec();
    let right = checked(piece, sha1, "sha1").send().await.expect("patch");
    assert_eq!(right.status(), 204);
    assert_eq!(number(&right, "upload-offset"), 400);
    // X-HTTP-Method-Override: a POST that stands for the PATCH.
    let rest = tus
        .request(Method::POST, &path)
        .header("x-http-method-override", "PATCH")
        .header("content-type", OCTETS)
        .header("upload-offset", "400")
        .body(body[400..].to_vec())
        .send()
        .await
        .expect("overridden patch");
    assert_eq!(rest.status(), 204);
    let listed = items(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["sha256"], sha256_hex(&body).as_str());
    app.stop().await;
}

async fn only_the_creator_sees_an_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user_with_token("cy", false).await;
    let other = app.user_with_token("dee", true).await;
    let path = Tus::new(&app, &owner).create("mine.txt", 10).await;
    let stranger = Tus::new(&app, &other);
    assert_eq!(stranger.head(&path).await.status(), 404);
    assert_eq!(stranger.patch(&path, 0, b"0123456789").await.status(), 404);
    let delete = stranger
        .request(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 404);
    assert_eq!(Tus::new(&app, &owner).offset(&path).await, 0);
    let anonymous = reqwest::Client::new()
        .head(app.url(&path))
        .header("tus-resumable", TUS)
        .send()
        .await
        .expect("head");
    assert_eq!(anonymous.status(), 401);
    assert!(items(&app, &other).await.is_empty());
    app.stop().await;
}

async fn termination_and_expiry_remove_the_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("eve", false).await;
    let tus = Tus::new(&app, &token);
    let uploads_dir = app.data_dir.join("uploads");

    let path = tus.create("gone.bin", 100).await;
    assert_eq!(tus.patch(&path, 0, &data(40)).await.status(), 204);
    assert_eq!(files_under(&uploads_dir).len(), 1);
    let res = tus
        .request(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    assert_eq!(tus.head(&path).await.status(), 404);
    assert!(files_under(&uploads_dir).is_empty());

    let path = tus.create("stale.bin", 100).await;
    assert_eq!(tus.patch(&path, 0, &data(40)).await.status(), 204);
    let id = path.rsplit('/').next().expect("id");
    execute(
        app.state.app.store(),
        "update uploads set expires_at = 0 where id = $1",
        id,
    )
    .await;
    assert_eq!(tus.head(&path).await.status(), 410);
    assert_eq!(tus.patch(&path, 40, &data(10)).await.status(), 410);
    ferry::app::sweeper::sweep_once(&app.state.app)
        .await
        .expect("sweep");
    assert_eq!(tus.head(&path).await.status(), 404);
    assert!(
        files_under(&uploads_dir).is_empty(),
        "the sweeper removed the bytes"
    );
    assert!(items(&app, &token).await.is_empty());
    app.stop().await;
}

async fn limits_hold_at_creation(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.max_upload_bytes = 1000;
        s.max_unfinished_uploads = 2;
    })
    .await;
    let token = app.user_with_token("fay", false).await;
    let tus = Tus::new(&app, &token);
    let create = |length: &str, metadata: String| {
        tus.request(Method::POST, "/api/uploads")
            .header("upload-length", length.to_string())
            .header("upload-metadata", metadata)
    };
    let too_big = create("1001", metadata("big")).send().await.expect("post");
    assert_eq!(too_big.status(), 413);
    let unnamed = create("10", String::new()).send().await.expect("post");
    assert_eq!(unnamed.status(), 400);
    let no_length = tus
        .request(Method::POST, "/api/uploads")
        .send()
        .await
        .expect("post");
    assert_eq!(no_length.status(), 400);
    let bad = create("10", "filename !!".into())
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let long = format!(
        "{},note {}",
        metadata("x"),
        STANDARD.encode("n".repeat(4000))
    );
    let bloated = create("10", long).send().await.expect("post");
    assert_eq!(bloated.status(), 400);
    tus.create("one", 10).await;
    tus.create("two", 10).await;
    let third = create("10", metadata("three")).send().await.expect("post");
    assert_eq!(third.status(), 403, "the per-user cap");
    // Another user has a cap of their own.
    let other = app.user_with_token("gus", false).await;
    Tus::new(&app, &other).create("one", 10).await;

    // The reserve: an upload that would eat into it is refused.
    let full = TestApp::spawn_with(backend, |s| s.min_free_bytes = u64::MAX).await;
    let token = full.user_with_token("hal", false).await;
    let res = Tus::new(&full, &token)
        .request(Method::POST, "/api/uploads")
        .header("upload-length", "10")
        .header("upload-metadata", metadata("x"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 507);
    full.stop().await;
    app.stop().await;
}

async fn creation_with_upload_and_empty_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ida", false).await;
    let tus = Tus::new(&app, &token);
    let body = data(5000);
    let res = tus
        .request(Method::POST, "/api/uploads")
        .header("upload-length", "5000")
        .header("upload-metadata", metadata("first.bin"))
        .header("content-type", OCTETS)
        .body(body[..2000].to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    assert_eq!(number(&res, "upload-offset"), 2000);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert_eq!(tus.patch(&path, 2000, &body[2000..]).await.status(), 204);

    let empty = tus.create("empty.txt", 0).await;
    assert_eq!(tus.offset(&empty).await, 0);
    let listed = items(&app, &token).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "empty.txt");
    assert_eq!(listed[0]["size"], 0);
    assert_eq!(listed[1]["sha256"], sha256_hex(&body).as_str());
    app.stop().await;
}

async fn the_page_session_needs_its_csrf_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("jo", "password123", false).await;
    let (browser, csrf) = app.login("jo", "password123").await;
    let post = |csrf: Option<&str>| {
        let mut req = browser
            .post(app.url("/api/uploads"))
            .header("tus-resumable", TUS)
            .header("upload-length", "3")
            .header("upload-metadata", metadata("page.txt"));
        if let Some(token) = csrf {
            req = req.header("x-csrf-token", token);
        }
        req.send()
    };
    assert_eq!(post(None).await.expect("post").status(), 403);
    let res = post(Some(&csrf)).await.expect("post");
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let res = browser
        .patch(app.url(&path))
        .header("tus-resumable", TUS)
        .header("x-csrf-token", &csrf)
        .header("content-type", OCTETS)
        .header("upload-offset", "0")
        .body("abc")
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 204);
    app.stop().await;
}

/// An upload URL whose id is not UTF-8 gets the API's JSON 400, as /api/items does,
/// not the router's plain-text rejection.
async fn an_id_that_does_not_decode_is_a_json_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("kit", false).await;
    let tus = Tus::new(&app, &token);
    for method in [Method::HEAD, Method::PATCH, Method::DELETE, Method::POST] {
        let res = tus
            .request(method.clone(), "/api/uploads/%FF")
            .header("content-type", OCTETS)
            .header("upload-offset", "0")
            .header("x-http-method-override", "PATCH")
            .body("abc")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 400, "{method}");
        assert_eq!(
            res.headers()["content-type"],
            "application/json",
            "{method}"
        );
        assert_eq!(res.headers()["tus-resumable"], TUS, "{method}");
        if method != Method::HEAD {
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["error"], "bad_request", "{method}");
        }
    }
    app.stop().await;
}

/// A method no tus route has is 405 with Allow, with or without Tus-Resumable: the
/// version check (412) is for requests the protocol defines.
async fn a_method_without_a_route_is_405_whatever_the_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("lee", false).await;
    let path = Tus::new(&app, &token).create("x.txt", 3).await;
    let client = reqwest::Client::new();
    for (method, url) in [
        (Method::TRACE, "/api/uploads/".to_string()),
        (Method::GET, "/api/uploads".to_string()),
        (Method::PUT, path.clone()),
        (Method::GET, path),
    ] {
        for version in [None, Some(TUS)] {
            let mut req = client
                .request(method.clone(), app.url(&url))
                .bearer_auth(&token);
            if let Some(v) = version {
                req = req.header("tus-resumable", v);
            }
            let res = req.send().await.expect("request");
            assert_eq!(res.status(), 405, "{method} {url} {version:?}");
            assert!(header(&res, "allow"), "{method} {url}: no Allow");
            assert_eq!(res.headers()["tus-resumable"], TUS, "{method} {url}");
        }
    }
    app.stop().await;
}

/// Two replicas on one PostgreSQL database and one data directory: an upload
/// begun on one is continued and finished on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_continues_an_upload() {
    if crate::helpers::skip_postgres() {
        return;
    }
    let first = TestApp::spawn(Backend::Postgres).await;
    let database_url = first.database_url.clone();
    let data_dir = first.data_dir.clone();
    let second = TestApp::spawn_with(Backend::Postgres, move |s| {
        s.database_url = Secret::new(database_url);
        s.data_dir = data_dir;
    })
    .await;
    let token = first.user_with_token("kai", false).await;
    let body = data(200_000);
    let on_first = Tus::new(&first, &token);
    let path = on_first.create("across.bin", body.len()).await;
    assert_eq!(
        on_first.patch(&path, 0, &body[..70_000]).await.status(),
        204
    );
    let on_second = Tus::new(&second, &token);
    assert_eq!(on_second.offset(&path).await, 70_000);
    assert_eq!(
        on_second
            .patch(&path, 70_000, &body[70_000..150_000])
            .await
            .status(),
        204
    );
    assert_eq!(on_first.offset(&path).await, 150_000);
    assert_eq!(
        on_first
            .patch(&path, 150_000, &body[150_000..])
            .await
            .status(),
        204
    );
    let listed = items(&second, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["sha256"], sha256_hex(&body).as_str());
    second.stop().await;
    first.stop().await;
}

async fn a_cut_off_request_keeps_its_bytes_and_holds_the_lock_meanwhile(backend: Backend) {
    use std::io::Write;
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("lu", false).await;
    let tus = Tus::new(&app, &token);
    let body = data(100_000);
    let path = tus.create("cut.bin", body.len()).await;
    let mut stream = std::net::TcpStream::connect(app.addr).expect("connect");
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: {OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("head");
    stream.write_all(&body[..30_000]).expect("part of the body");
    stream.flush().expect("flush");
    // Wait until the server holds the upload's lock (flock on its directory).
    let dir = app
        .data_dir
        .join("uploads")
        .join(path.rsplit('/').next().expect("id"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let probe = std::fs::File::open(&dir).expect("upload dir");
        if matches!(probe.try_lock(), Err(std::fs::TryLockError::WouldBlock)) {
            break;
        }
        drop(probe);
        assert!(
            std::time::Instant::now() < deadline,
            "the PATCH never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = tus.patch(&path, 0, &body[..10]).await;
    assert_eq!(second.status(), 423);
    assert_eq!(second.headers()["retry-after"], "2");
    let delete = tus
        .request(Method::DELETE, &path)
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 423);

    // The connection drops: what arrived is kept and acknowledged.
    stream.shutdown(std::net::Shutdown::Both).expect("shutdown");
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tus.offset(&path).await != 30_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the received bytes were not kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tus.patch(&path, 30_000, &body[30_000..]).await.status(),
        204
    );
    let listed = items(&app, &token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["sha256"], sha256_hex(&body).as_str());
    app.stop().await;
}

async fn other_origins_may_use_tus_when_allowed(backend: Backend) {
    const ORIGIN: &str = "https://uppy.example.org";
    let app = TestApp::spawn_with(backend, |s| s.cors_origins = vec![ORIGIN.to_string()]).await;
    let token = app.user_with_token("max", false).await;
    let path = Tus::new(&app, &token).create("cors.bin", 10).await;
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, app.url(&path))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization,tus-resumable,upload-offset,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    let allowed = |name: &str| {
        preflight.headers()[name]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase()
    };
    assert!(allowed("access-control-allow-methods").contains("patch"));
    assert!(allowed("access-control-allow-headers").contains("upload-offset"));
    let head = Tus::new(&app, &token)
        .request(Method::HEAD, &path)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["access-control-allow-origin"], ORIGIN);
    let exposed = head.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("upload-offset") && exposed.contains("location"),
        "{exposed}"
    );
    app.stop().await;
}
