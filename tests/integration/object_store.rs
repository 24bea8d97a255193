//! Long because it is every scenario that must hold on both file stores in one
//! place: the local directory and a real Garage.
//!
//! Files on either store: uploads (one PUT and multipart), downloads with Range,
//! deleting, expiry, share links, resumable uploads, the sweeper's leftovers and a
//! backup restored into the other store. Then the object store's failures: not
//! there at start, wrong key or bucket, an outage while serving, and errors in
//! the middle of an upload.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::app::sweeper;
use ferry::blobs::{Blobs, sha256_hex};
use ferry::config::{Redacted, Secret, Settings};
use ferry::ops::{Progress, backup, restore};
use ferry::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::every_store;
use crate::garage::garage;
use crate::helpers::{Backend, BlobStore, TestApp, execute, settings_for, use_store};

every_store!(
    files_round_trip_with_ranges,
    expiry_and_deletion_remove_files,
    share_links_read_from_the_store,
    resumable_uploads_finish_into_the_store,
    leftovers_are_swept,
    backups_restore_into_the_other_store,
);

/// Bytes that differ at every offset, so a misplaced range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

async fn upload(app: &TestApp, token: &str, name: &str, body: Vec<u8>) -> Value {
    let res = app.upload(token, name, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "upload {name}");
    res.json().await.expect("json")
}

fn id_of(item: &Value) -> String {
    item["id"].as_str().expect("id").to_string()
}

async fn download(app: &TestApp, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(app.url(&format!("/items/{id}/content")))
        .bearer_auth(token);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.expect("download")
}

async fn files_round_trip_with_ranges(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let ready: Value = reqwest::get(app.url("/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    let named = if store == BlobStore::Garage {
        "s3"
    } else {
        "local"
    };
    assert_eq!(
        ready["files"], named,
        "/readyz names the file store: {ready}"
    );
    let token = app.user_with_token("ann", false).await;
    // One PUT, exactly one part, and a multipart upload with a short last part.
    let sizes = [0, 1000, 6 * 1024 * 1024, 20 * 1024 * 1024 + 17];
    let mut ids = BTreeSet::new();
    for (n, size) in sizes.into_iter().enumerate() {
        let body = pattern(size);
        let item = upload(&app, &token, &format!("f{n}.bin"), body.clone()).await;
        assert_eq!(item["sha256"], sha256_hex(&body));
        let id = id_of(&item);
        ids.insert(id.clone());

        let whole = download(&app, &token, &id, None).await;
        assert_eq!(whole.status(), 200);
        let etag = whole.headers()["etag"].to_str().expect("etag").to_string();
        assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)));
        assert_eq!(whole.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            whole.bytes().await.expect("bytes").as_ref(),
            body.as_slice()
        );
        if size > 1000 {
            let from = size / 2 - 3;
            let res = download(
                &app,
                &token,
                &id,
                Some(&format!("bytes={from}-{}", from + 99)),
            )
            .await;
            assert_eq!(res.status(), 206);
            assert_eq!(
                res.headers()["content-range"],
                format!("bytes {from}-{}/{size}", from + 99).as_str()
            );
            assert_eq!(
                res.bytes().await.expect("bytes").as_ref(),
                &body[from..from + 100]
            );
            let tail = download(&app, &token, &id, Some("bytes=-10")).await;
            assert_eq!(
                tail.bytes().await.expect("bytes").as_ref(),
                &body[size - 10..]
            );
        }
        let cached = reqwest::Client::new()
            .get(app.url(&format!("/items/{id}/content")))
            .bearer_auth(&token)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("conditional");
        assert_eq!(cached.status(), 304);
    }
    assert_eq!(
        app.stored_blob_ids().await,
        ids,
        "one blob per file, nothing else"
    );
    assert!(app.temp_files().is_empty(), "no temp file left");
}

async fn expiry_and_deletion_remove_files(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = app.user_with_token("ann", false).await;
    let kept = id_of(&upload(&app, &token, "kept.bin", pattern(3000)).await);
    let deleted = id_of(&upload(&app, &token, "deleted.bin", pattern(3000)).await);
    let expiring = reqwest::Client::new()
        .put(app.url("/api/items"))
        .query(&[("name", "soon.bin"), ("expires", "1h")])
        .bearer_auth(&token)
        .body(pattern(9 * 1024 * 1024))
        .send()
        .await
        .expect("upload");
    assert_eq!(expiring.status(), StatusCode::CREATED);
    let expiring = id_of(&expiring.json().await.expect("json"));
    assert_eq!(app.stored_blob_ids().await.len(), 3);

    let res = reqwest::Client::new()
        .delete(app.url(&format!("/api/items/{deleted}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    execute(
        &app.state.store,
        "update items set expires_at = 1 where id = $1",
        &expiring,
    )
    .await;
    let removed = sweeper::sweep_once(&app.state.app).await.expect("sweep");
    assert_eq!(removed, 1, "the expired item");
    assert_eq!(app.stored_blob_ids().await, BTreeSet::from([kept.clone()]));
    let res = download(&app, &token, &expiring, None).await;
    assert_eq!(res.status(), 404);
    let res = download(&app, &token, &kept, None).await;
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        pattern(3000).as_slice()
    );
}

async fn share_links_read_from_the_store(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = app.user_with_token("gil", false).await;
    let body = pattern(10 * 1024 * 1024);
    let item = upload(&app, &token, "movie.bin", body.clone()).await;
    let res = reqwest::Client::new()
        .post(app.url(&format!("/api/items/{}/shares", id_of(&item))))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), StatusCode::CREATED);
    let link: Value = res.json().await.expect("json");
    let secret = link["token"].as_str().expect("token");
    let public = reqwest::Client::new();
    let whole = public
        .get(app.url(&format!("/s/{secret}/content")))
        .send()
        .await
        .expect("download");
    assert_eq!(whole.status(), 200);
    assert_eq!(
        sha256_hex(&whole.bytes().await.expect("bytes")),
        sha256_hex(&body)
    );
    let part = public
        .get(app.url(&format!("/s/{secret}/content")))
        .header("range", "bytes=9000000-9000009")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.expect("bytes").as_ref(),
        &body[9_000_000..9_000_010]
    );
}

async fn resumable_uploads_finish_into_the_store(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = app.user_with_token("ann", false).await;
    let body = pattern(12 * 1024 * 1024 + 5);
    let client = reqwest::Client::new();
    let res = client
        .post(app.url("/api/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", body.len().to_string())
        .header("upload-metadata", "filename YmlnLmJpbg==")
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let id = path.rsplit('/').next().expect("id").to_string();
    for (at, piece) in [(0, &body[..5_000_000]), (5_000_000, &body[5_000_000..])] {
        let res = client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", at.to_string())
            .body(piece.to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(res.status(), 204);
    }
    let res = download(&app, &token, &id, None).await;
    assert_eq!(res.status(), 200, "the upload's id is its item's");
    assert_eq!(
        sha256_hex(&res.bytes().await.expect("bytes")),
        sha256_hex(&body)
    );
    assert_eq!(app.stored_blob_ids().await, BTreeSet::from([id.clone()]));
    let partial = app.data_dir.join("uploads").join(&id).join("data");
    assert!(
        !partial.exists(),
        "the finished upload's bytes left uploads/"
    );
}

async fn leftovers_are_swept(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = app.user_with_token("ann", false).await;
    let item = id_of(&upload(&app, &token, "kept.bin", pattern(5000)).await);
    let blobs = Blobs::open(&app.state.settings).await.expect("store");
    // A blob whose item was never recorded (a crash between the two).
    let orphan = uuid::Uuid::now_v7();
    let stream: ferry::blobs::ByteStream = Box::pin(futures_util::stream::iter([Ok(
        bytes::Bytes::from_static(b"left behind"),
    )]));
    blobs.put_stream(&orphan, stream).await.expect("orphan");
    // An upload that crashed half-way: 9 MiB, so the object store has started a
    // multipart upload; forgotten, so nothing aborts it.
    let mut crashed = blobs.start_upload(u64::MAX, None).await.expect("start");
    crashed
        .write(&pattern(9 * 1024 * 1024))
        .await
        .expect("write");
    std::mem::forget(crashed);
    // A dead replica's tmp directory (no lock holder) in a shared data directory:
    // its lock says it is abandoned, so it goes at once, whatever its age.
    let dead = app.data_dir.join("tmp").join("dead-replica");
    std::fs::create_dir_all(&dead).expect("mkdir");
    std::fs::write(dead.join("x.part"), b"half").expect("write");

    let young = Duration::from_secs(3600);
    let swept = sweeper::sweep_leftovers(&app.state.app, young, young)
        .await
        .expect("sweep");
    assert_eq!(
        swept.orphans, 0,
        "a young blob may be an upload being recorded"
    );
    let stored = app.stored_blob_ids().await;
    assert!(stored.contains(&orphan.to_string()) && stored.contains(&item));
    if store == BlobStore::Local {
        assert_eq!(swept.incomplete, 1, "the dead replica's upload");
        assert!(!dead.exists(), "a dead replica's tmp directory goes");
    } else {
        assert_eq!(
            swept.incomplete, 0,
            "a young multipart upload may be in progress"
        );
    }

    let swept = sweeper::sweep_leftovers(&app.state.app, Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(swept.orphans, 1);
    if store == BlobStore::Garage {
        assert_eq!(
            swept.incomplete, 1,
            "the crashed multipart upload was aborted"
        );
    }
    assert_eq!(app.stored_blob_ids().await, BTreeSet::from([item.clone()]));
    let again = sweeper::sweep_leftovers(&app.state.app, Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(
        (again.orphans, again.incomplete),
        (0, 0),
        "nothing else was left"
    );
    let res = download(&app, &token, &item, None).await;
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        pattern(5000).as_slice()
    );
}

async fn backups_restore_into_the_other_store(backend: Backend, store: BlobStore) {
    let source = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = source.user_with_token("ann", false).await;
    let mut files = Vec::new();
    for (n, size) in [10, 9 * 1024 * 1024].into_iter().enumerate() {
        let body = pattern(size + n);
        files.push((
            id_of(&upload(&source, &token, &format!("{n}.bin"), body.clone()).await),
            body,
        ));
    }
    let archive = source.data_dir.join("backup.tar");
    backup(&source.state.settings, &archive, &Progress::quiet())
        .await
        .expect("backup");

    // Into the other store: local when the source is on Garage, Garage when it is
    // local (when there is a Garage), else another data directory.
    let other = match (store, garage().is_some()) {
        (BlobStore::Local, true) => BlobStore::Garage,
        _ => BlobStore::Local,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut target = settings_for(backend, dir.path()).await;
    use_store(&mut target, other);
    let manifest = restore(&target, &archive, &Progress::quiet())
        .await
        .expect("restore");
    assert_eq!(manifest.blobs.len(), files.len());
    let restored = TestApp::spawn_with(backend, |s| *s = target.clone()).await;
    let ids: BTreeSet<String> = files.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(restored.stored_blob_ids().await, ids);
    for (id, body) in &files {
        let res = download(&restored, &token, id, None).await;
        assert_eq!(res.status(), 200, "the token came along");
        assert_eq!(res.bytes().await.expect("bytes").as_ref(), body.as_slice());
    }
    // A second restore into the now full store is refused, and changes nothing.
    let err = restore(&target, &archive, &Progress::quiet())
        .await
        .expect_err("not empty");
    assert!(err.to_string().contains("already holds data"), "{err}");
}

// ---- the object store failing ---------------------------------------------------

/// Settings for Garage bucket `bucket` through `endpoint`.
async fn garage_settings(dir: &std::path::Path, bucket: &str, endpoint: &str) -> Settings {
    let mut settings = settings_for(Backend::Sqlite, dir).await;
    garage()
        .expect("garage")
        .configure_at(&mut settings, bucket, endpoint);
    settings
}

async fn start_error(settings: Settings) -> String {
    let started = Instant::now();
    let err = match Application::build(settings).await {
        Ok(_) => panic!("the start should fail"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("start failed after {:?}: {err}", started.elapsed());
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_store_stops_the_start_with_one_message() {
    let Some(garage) = garage() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = garage.bucket();

    let nobody = format!("http://127.0.0.1:{}", crate::helpers::free_port());
    let err = start_error(garage_settings(dir.path(), &bucket, &nobody).await).await;
    assert!(
        err.contains("cannot use the object store at http://127.0.0.1"),
        "{err}"
    );

    let err =
        start_error(garage_settings(dir.path(), "no-such-bucket", &garage.endpoint).await).await;
    assert!(err.contains("has no bucket no-such-bucket"), "{err}");

    let mut settings = garage_settings(dir.path(), &bucket, &garage.endpoint).await;
    settings.s3_secret_access_key = Some(Redacted(Secret::new("0".repeat(64))));
    let err = start_error(settings).await;
    assert!(
        err.contains("refused key") && !err.contains(&garage.secret),
        "{err}"
    );

    // A key that may read but not write is refused too: uploads would fail.
    let read_only = garage.bucket();
    garage.deny(&read_only, &["--write"]);
    let err = start_error(garage_settings(dir.path(), &read_only, &garage.endpoint).await).await;
    assert!(err.contains("refused key"), "{err}");

    // The configuration names what an s3 store lacks, one line each.
    let vars = [("FERRY_BLOB_STORE", "s3"), ("FERRY_S3_BUCKET", "files")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let errors = Settings::from_env(vars).expect_err("incomplete").0;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("FERRY_S3_ENDPOINT")));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("FERRY_S3_SECRET_ACCESS_KEY"))
    );
}

/// A TCP relay to Garage that the test can cut: connections then fail at once.
struct Relay {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<RelayState>>,
}

#[derive(Default)]
struct RelayState {
    cut: bool,
    open: Vec<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(RelayState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = shared.lock().expect("relay state");
                if state.cut {
                    continue; // dropped: the client sees its connection reset
                }
                state.open.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { addr, state }
    }

    fn set_cut(&self, cut: bool) {
        let mut state = self.state.lock().expect("relay state");
        state.cut = cut;
        if cut {
            for conn in state.open.drain(..) {
                conn.abort();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_503_and_loses_nothing() {
    let Some(garage) = garage() else { return };
    let upstream = garage
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let relay = Relay::start(upstream).await;
    let bucket = garage.bucket();
    let endpoint = format!("http://{}", relay.addr);
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        garage.configure_at(s, &bucket, &endpoint)
    })
    .await;
    let token = app.user_with_token("ann", false).await;
    let body = pattern(100_000);
    let kept = id_of(&upload(&app, &token, "kept.bin", body.clone()).await);

    relay.set_cut(true);
    let started = Instant::now();
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client")
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("/readyz answers while the store is down");
    let waited = started.elapsed();
    assert_eq!(res.status(), 503);
    let reason: Value = res.json().await.expect("json");
    let reason = reason["reason"].as_str().expect("reason");
    assert!(reason.contains("object store"), "{reason}");
    eprintln!("/readyz answered 503 after {waited:?}: {reason}");
    let res = app.upload(&token, "lost.bin", pattern(20_000)).await;
    assert_eq!(res.status(), 503, "an upload the store cannot take");
    let res = app
        .upload(&token, "big.bin", pattern(9 * 1024 * 1024))
        .await;
    assert_eq!(
        res.status(),
        503,
        "a multipart upload the store cannot take"
    );

    relay.set_cut(false);
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(app.url("/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready again once the store is back");
    let res = download(&app, &token, &kept, None).await;
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), body.as_slice());
    let items: Value = reqwest::Client::new()
        .get(app.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(items["items"].as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(app.stored_blob_ids().await, BTreeSet::from([kept]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failing_mid_upload_leaves_nothing() {
    let Some(garage) = garage() else { return };
    let bucket = garage.bucket();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| garage.configure(s, &bucket)).await;
    let token = app.user_with_token("ann", false).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let request = reqwest::Client::new()
        .put(app.url("/api/items"))
        .query(&[("name", "half.bin")])
        .bearer_auth(&token)
        .body(body)
        .send();
    let response = tokio::spawn(request);
    // Two parts' worth reach the store; then it refuses writes.
    for _ in 0..17 {
        tx.send(Ok(pattern(1024 * 1024))).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    garage.deny(&bucket, &["--write"]);
    for _ in 0..17 {
        if tx.send(Ok(pattern(1024 * 1024))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let res = response.await.expect("join");
    if let Ok(res) = res {
        assert_eq!(res.status(), 503, "the store refused the rest");
    }
    garage.allow(&bucket, &["--write"]);
    let items = app.state.store.count_items().await.expect("count");
    assert_eq!(items, 0, "no item for a file the store did not take");
    assert!(app.stored_blob_ids().await.is_empty(), "no object");
    // Its multipart upload was aborted, or (the abort being refused too) the
    // sweeper takes it; either way nothing is left after a sweep.
    sweeper::sweep_leftovers(&app.state.app, Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    let again = sweeper::sweep_leftovers(&app.state.app, Duration::ZERO, Duration::ZERO)
        .await
        .expect("sweep");
    assert_eq!(again, sweeper::Leftovers::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_move_between_stores_and_back() {
    let Some(garage) = garage() else { return };
    let bucket = garage.bucket();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.user_with_token("ann", false).await;
    let mut files = Vec::new();
    for (n, size) in [0, 4000, 9 * 1024 * 1024].into_iter().enumerate() {
        let body = pattern(size);
        files.push((
            id_of(&upload(&app, &token, &format!("{n}.bin"), body.clone()).await),
            body,
        ));
    }
    // The first app stays up (its temp directory holds the data directory).
    let mut settings = (*app.state.settings).clone();
    // The S3 settings beside FERRY_BLOB_STORE=local: the copy's target.
    garage.configure(&mut settings, &bucket);
    settings.blob_store = ferry::config::BlobStoreKind::Local;
    let quiet = Progress::quiet();
    let to_s3 = ferry::config::BlobStoreKind::S3;
    let report = ferry::ops::copy_blobs(&settings, to_s3, &quiet)
        .await
        .expect("copy");
    assert_eq!((report.copied, report.already_there), (3, 0));
    let again = ferry::ops::copy_blobs(&settings, to_s3, &quiet)
        .await
        .expect("again");
    assert_eq!(
        (again.copied, again.already_there),
        (0, 3),
        "a second run copies nothing"
    );

    // Switched to the bucket, the same instance serves every file from there.
    let blobs_dir = settings.data_dir.join("blobs");
    std::fs::remove_dir_all(&blobs_dir).expect("drop the local files");
    std::fs::create_dir(&blobs_dir).expect("empty blobs/");
    settings.blob_store = ferry::config::BlobStoreKind::S3;
    let on_s3 = TestApp::spawn_with(Backend::Sqlite, |s| *s = settings.clone()).await;
    for (id, body) in &files {
        let res = download(&on_s3, &token, id, None).await;
        assert_eq!(res.bytes().await.expect("bytes").as_ref(), body.as_slice());
    }
    on_s3.stop().await;

    // And back into the (now empty) data directory.
    let report = ferry::ops::copy_blobs(&settings, ferry::config::BlobStoreKind::Local, &quiet)
        .await
        .expect("copy back");
    assert_eq!(report.copied, 3);
    for (id, body) in &files {
        assert_eq!(
            &std::fs::read(blobs_dir.join(id)).expect("copied back"),
            body
        );
    }
    // A file damaged in the target is copied again rather than trusted.
    let damaged: Vec<u8> = files[1].1.iter().map(|b| b ^ 1).collect();
    std::fs::write(blobs_dir.join(&files[1].0), damaged).expect("damage");
    let report = ferry::ops::copy_blobs(&settings, ferry::config::BlobStoreKind::Local, &quiet)
        .await
        .expect("repair");
    assert_eq!((report.copied, report.already_there), (1, 2));
    assert_eq!(
        std::fs::read(blobs_dir.join(&files[1].0)).expect("repaired"),
        files[1].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_survives_an_outage_at_its_last_piece() {
    let Some(garage) = garage() else { return };
    let upstream = garage
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let relay = Relay::start(upstream).await;
    let bucket = garage.bucket();
    let endpoint = format!("http://{}", relay.addr);
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        garage.configure_at(s, &bucket, &endpoint)
    })
    .await;
    let token = app.user_with_token("ann", false).await;
    let body = pattern(3_000_000);
    let client = reqwest::Client::new();
    let res = client
        .post(app.url("/api/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", body.len().to_string())
        .header("upload-metadata", "filename YS5iaW4=")
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let patch = |at: usize| {
        client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", at.to_string())
            .body(body[at..].to_vec())
            .send()
    };
    let first = client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(body[..1_000_000].to_vec())
        .send()
        .await
        .expect("first piece");
    assert_eq!(first.status(), 204);

    relay.set_cut(true);
    let last = patch(1_000_000).await.expect("last piece");
    assert_eq!(
        last.status(),
        503,
        "the store cannot take the finished file"
    );
    relay.set_cut(false);

    let head = client
        .head(app.url(&path))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.headers()["upload-offset"],
        "1000000",
        "the first piece is kept"
    );
    let last = patch(1_000_000).await.expect("last piece again");
    assert_eq!(last.status(), 204);
    let id = path.rsplit('/').next().expect("id");
    let res = download(&app, &token, id, None).await;
    assert_eq!(
        sha256_hex(&res.bytes().await.expect("bytes")),
        sha256_hex(&body)
    );
}
