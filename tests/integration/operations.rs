//! Long because each operation is a scenario with real archives and databases;
//! they share one setup.
//!
//! Operations: backup while writes continue and restore into a fresh instance (the
//! restore drill), archives that must be refused, upgrades from the first schema,
//! and moving a database from SQLite to PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry::blobs::sha256_hex;
use ferry::config::{Secret, Settings};
use ferry::ops::{Progress, backup, read_manifest, restore};
use ferry::store::Store;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, BlobStore, TestApp, fresh_pg_database, settings_for, skip_postgres, use_store,
};

both_backends!(
    restore_drill_while_writes_continue,
    first_schema_fixture_upgrades_and_is_served,
);

fn settings_of(app: &TestApp) -> Settings {
    (*app.state.settings).clone()
}

fn quiet() -> Progress {
    Progress::quiet()
}

/// What a client knows it committed: the id and the SHA-256 of the content.
#[derive(Clone, Debug)]
struct Written {
    id: String,
    sha256: String,
}

async fn upload_file(app: &TestApp, token: &str, name: &str, body: Vec<u8>) -> Written {
    let sha256 = sha256_hex(&body);
    let res = app.upload(token, name, body).await;
    assert_eq!(res.status(), 201, "upload {name}");
    let item: Value = res.json().await.expect("json");
    assert_eq!(item["sha256"], sha256.as_str());
    Written {
        id: item["id"].as_str().expect("id").to_string(),
        sha256,
    }
}

async fn note(app: &TestApp, token: &str, text: &str) -> Written {
    let item = app.post_note(token, text).await;
    Written {
        id: item["id"].as_str().expect("id").to_string(),
        sha256: sha256_hex(text.as_bytes()),
    }
}

/// Deterministic, incompressible-looking bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
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

/// Every item the API lists, by id.
async fn all_items(app: &TestApp, token: &str) -> BTreeMap<String, Value> {
    let client = reqwest::Client::new();
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(app.url("/api/items"))
            .bearer_auth(token)
            .query(&[("limit", "100")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let page: Value = req.send().await.expect("list").json().await.expect("json");
        for item in page["items"].as_array().expect("items") {
            out.insert(item["id"].as_str().expect("id").to_string(), item.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// The SHA-256 of an item's content as the server sends it.
async fn content_sha(app: &TestApp, token: &str, id: &str) -> String {
    let res = reqwest::Client::new()
        .get(app.url(&format!("/items/{id}/content")))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200, "content of {id}");
    sha256_hex(&res.bytes().await.expect("bytes"))
}

/// Fill an instance: users, a login session, tokens, notes, files and a share.
struct Filled {
    ann_token: String,
    bob_token: String,
    ann_browser: reqwest::Client,
    share_token: String,
    shared: Written,
    items: Vec<Written>,
}

async fn fill(app: &TestApp, files: usize) -> Filled {
    let ann_token = app.user_with_token("ann", true).await;
    app.add_user("bob", "bob-password-1", false).await;
    let bob_token = {
        let id = app
            .state
            .store
            .user_by_name("bob")
            .await
            .expect("bob")
            .expect("bob")
            .id;
        let token = ferry::auth::random_token();
        app.state
            .store
            .create_api_token(&id, "phone", &ferry::auth::token_hash(&token))
            .await
            .expect("token");
        token
    };
    let (ann_browser, _) = app.login("ann", "password123").await;
    let mut items = Vec::new();
    for i in 0..5 {
        items.push(note(app, &ann_token, &format!("note {i}: ünïcödé \"quotes\"")).await);
    }
    items.push(note(app, &bob_token, "bob's note").await);
    for i in 0..files {
        let len = 64 * 1024 + i * 97 * 1024;
        items.push(
            upload_file(
                app,
                &bob_token,
                &format!("file-{i}.bin"),
                bytes(i as u64, len),
            )
            .await,
        );
    }
    let shared = upload_file(app, &ann_token, "shared.txt", b"shared bytes".to_vec()).await;
    items.push(shared.clone());
    let res = reqwest::Client::new()
        .post(app.url(&format!("/api/items/{}/shares", shared.id)))
        .bearer_auth(&ann_token)
        .json(&json!({ "max_downloads": 5 }))
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 201);
    let share: Value = res.json().await.expect("json");
    Filled {
        ann_token,
        bob_token,
        ann_browser,
        share_token: share["token"].as_str().expect("token").to_string(),
        shared,
        items,
    }
}

/// A second instance on a fresh database and data directory, not started yet.
async fn fresh_target(backend: Backend) -> (tempfile::TempDir, Settings) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_for(backend, dir.path()).await;
    (dir, settings)
}

async fn spawn_on(backend: Backend, target: &Settings) -> TestApp {
    let data_dir = target.data_dir.clone();
    let url = target.database_url.clone();
    let target = target.clone();
    TestApp::spawn_with(backend, move |s| {
        s.data_dir = data_dir;
        s.database_url = url;
        s.blob_store = target.blob_store;
        s.s3_endpoint = target.s3_endpoint;
        s.s3_bucket = target.s3_bucket;
        s.s3_prefix = target.s3_prefix;
        s.s3_access_key_id = target.s3_access_key_id;
        s.s3_secret_access_key = target.s3_secret_access_key;
    })
    .await
}

// ---- the restore drill -----------------------------------------------------------

async fn restore_drill_while_writes_continue(backend: Backend) {
    restore_drill(backend, BlobStore::Local).await;
}

/// The drill with the files in Garage, on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_on_an_object_store() {
    if crate::garage::garage().is_none() {
        return;
    }
    restore_drill(Backend::Sqlite, BlobStore::Garage).await;
}

async fn restore_drill(backend: Backend, store: BlobStore) {
    let source = TestApp::spawn_on(backend, store, |_| {}).await;
    let filled = fill(&source, 24).await;

    // Files that get deleted while the backup runs.
    let mut doomed = Vec::new();
    for i in 0..6 {
        doomed.push(
            upload_file(
                &source,
                &filled.ann_token,
                &format!("doomed-{i}.bin"),
                bytes(1000 + i, 300 * 1024),
            )
            .await,
        );
    }

    // A writer that posts notes and files one after the other until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(Instant, Written)>>> = Arc::default();
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        let base = source.base.clone();
        let token = filled.bob_token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let written = if i % 3 == 2 {
                    let body = bytes(5000 + i, 20 * 1024 + i as usize);
                    let sha256 = sha256_hex(&body);
                    let res = client
                        .put(format!("{base}/api/items"))
                        .query(&[("name", format!("w{i}.bin"))])
                        .bearer_auth(&token)
                        .body(body)
                        .send()
                        .await
                        .expect("upload");
                    assert_eq!(res.status(), 201);
                    let item: Value = res.json().await.expect("json");
                    Written {
                        id: item["id"].as_str().expect("id").into(),
                        sha256,
                    }
                } else {
                    let text = format!("written during the backup #{i}");
                    let res = client
                        .post(format!("{base}/api/items"))
                        .bearer_auth(&token)
                        .json(&json!({ "text": text }))
                        .send()
                        .await
                        .expect("note");
                    assert_eq!(res.status(), 201);
                    let item: Value = res.json().await.expect("json");
                    Written {
                        id: item["id"].as_str().expect("id").into(),
                        sha256: sha256_hex(text.as_bytes()),
                    }
                };
                log.lock().expect("log").push((Instant::now(), written));
                i += 1;
            }
        })
    };
    while log.lock().expect("log").len() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deleter = {
        let base = source.base.clone();
        let token = filled.ann_token.clone();
        let ids: Vec<String> = doomed.iter().map(|d| d.id.clone()).collect();
        tokio::spawn(async move {
            for id in ids {
                let res = reqwest::Client::new()
                    .delete(format!("{base}/api/items/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("delete");
                assert_eq!(res.status(), 204);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    let archive_dir = tempfile::tempdir().expect("tempdir");
    let archive = archive_dir.path().join("ferry.tar");
    let backup_started = Instant::now();
    let manifest = backup(&settings_of(&source), &archive, &quiet())
        .await
        .expect("backup");
    let backup_ended = Instant::now();
    deleter.await.expect("deleter");
    // A few more writes after the backup: they must not be in it.
    let after = log.lock().expect("log").len() + 3;
    while log.lock().expect("log").len() < after {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    let log = log.lock().expect("log").clone();
    let during = log
        .iter()
        .filter(|(t, _)| *t > backup_started && *t < backup_ended)
        .count();
    eprintln!(
        "backup took {:?}; {during} writes completed while it ran; {} skipped items",
        backup_ended - backup_started,
        manifest.skipped_items.len()
    );
    assert!(during > 0, "writes went on while the backup ran");
    assert!(
        !archive.with_extension("tar.partial").exists(),
        "no partial file left"
    );
    assert_eq!(
        manifest.schema_version,
        source.state.store.latest_schema_version()
    );

    // Restore into a fresh instance.
    let (_target_dir, mut target) = fresh_target(backend).await;
    use_store(&mut target, store);
    let restored_manifest = restore(&target, &archive, &quiet()).await.expect("restore");
    assert_eq!(restored_manifest.tables, manifest.tables);
    let restored = spawn_on(backend, &target).await;
    let items = all_items(&restored, &filled.ann_token).await;

    // Everything committed before the backup began is there, byte for byte.
    for w in &filled.items {
        assert!(
            items.contains_key(&w.id),
            "item {} committed before the backup",
            w.id
        );
    }
    let before: Vec<&Written> = log
        .iter()
        .filter(|(t, _)| *t < backup_started)
        .map(|(_, w)| w)
        .collect();
    for w in &before {
        assert!(
            items.contains_key(&w.id),
            "writer item {} committed before the backup",
            w.id
        );
    }
    // The writer's items form a prefix of what it wrote: one point in time.
    let present: Vec<bool> = log.iter().map(|(_, w)| items.contains_key(&w.id)).collect();
    let cut = present.iter().take_while(|p| **p).count();
    assert!(
        present[cut..].iter().all(|p| !p),
        "restored writes are not a prefix: {present:?}"
    );
    assert!(cut < log.len(), "writes after the backup are not in it");
    // Nothing restored that nobody wrote, and every byte of every item is right.
    let known: BTreeMap<&str, &str> = filled
        .items
        .iter()
        .chain(doomed.iter())
        .chain(log.iter().map(|(_, w)| w))
        .map(|w| (w.id.as_str(), w.sha256.as_str()))
        .collect();
    for (id, item) in &items {
        let expected = known
            .get(id.as_str())
            .unwrap_or_else(|| panic!("unknown item {id}"));
        assert_eq!(item["sha256"], *expected);
        assert_eq!(
            &content_sha(&restored, &filled.ann_token, id).await,
            expected,
            "bytes of {id}"
        );
    }
    // Exactly the restored files are in the file store.
    let files: BTreeSet<String> = items
        .values()
        .filter(|i| i["kind"] == "file")
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    let on_disk: BTreeSet<String> = restored.stored_blob_ids().await;
    assert_eq!(files, on_disk);

    // Accounts, sessions, tokens and share links came along.
    let page = filled
        .ann_browser
        .get(restored.url("/"))
        .send()
        .await
        .expect("feed");
    assert_eq!(
        page.status(),
        200,
        "ann's session cookie works on the restored instance"
    );
    let (_, _) = restored.login("bob", "bob-password-1").await;
    let shared = reqwest::Client::new()
        .get(restored.url(&format!("/s/{}/content", filled.share_token)))
        .send()
        .await
        .expect("share");
    assert_eq!(shared.status(), 200);
    assert_eq!(
        sha256_hex(&shared.bytes().await.expect("bytes")),
        filled.shared.sha256
    );

    // New events continue after every id the old instance handed out.
    let last = restored
        .state
        .store
        .latest_event_id()
        .await
        .expect("events");
    let recorded = manifest.sequences.get("events").copied().unwrap_or(0);
    assert!(last <= recorded);
    let fresh = restored
        .post_note(&filled.bob_token, "after the restore")
        .await;
    let events = restored
        .state
        .store
        .events_after(recorded, 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].item_id, fresh["id"].as_str().expect("id"));
    assert!(events[0].id > recorded);

    restored.stop().await;
    source.stop().await;
}

// ---- archives that must be refused --------------------------------------------------

/// Rewrite an archive entry by entry: `edit` returns the new bytes, or None to drop
/// the entry.
fn rewrite(src: &Path, dst: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut input = tar::Archive::new(std::fs::File::open(src).expect("open"));
    let mut out = tar::Builder::new(std::fs::File::create(dst).expect("create"));
    for entry in input.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        if let Some(data) = edit(&path, data) {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            out.append_data(&mut header, &path, &data[..])
                .expect("append");
        }
    }
    out.finish().expect("finish");
}

fn edit_json(data: Vec<u8>, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&data).expect("json");
    f(&mut v);
    serde_json::to_vec(&v).expect("json")
}

async fn restore_err(target: &Settings, archive: &Path) -> String {
    let err = restore(target, archive, &quiet())
        .await
        .expect_err("restore must fail");
    format!("{err:#}")
}

async fn assert_still_empty(target: &Settings) {
    let store = Store::connect(target).await.expect("connect");
    assert!(
        store.holds_no_data().await.expect("empty"),
        "target stays empty"
    );
    store.close().await;
    let leftovers: Vec<PathBuf> = crate::helpers::files_under(&target.data_dir)
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(&target.data_dir).expect("under");
            rel.starts_with("blobs") || rel.starts_with("tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "nothing left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_it_cannot_trust() {
    let source = TestApp::spawn(Backend::Sqlite).await;
    let filled = fill(&source, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.tar");
    let manifest = backup(&settings_of(&source), &good, &quiet())
        .await
        .expect("backup");
    let blob = manifest.blobs.keys().next().expect("a blob").clone();

    // Into a database that holds data.
    let err = restore_err(&settings_of(&source), &good).await;
    assert!(err.contains("already holds data"), "{err}");

    let (_target_dir, target) = fresh_target(Backend::Sqlite).await;
    // One flipped byte in one file.
    let bad = dir.path().join("flipped.tar");
    rewrite(&good, &bad, |path, mut data| {
        if path == format!("blobs/{blob}") {
            data[100] ^= 1;
        }
        Some(data)
    });
    let err = restore_err(&target, &bad).await;
    assert!(
        err.contains(&format!("the file of item {blob} fails its SHA-256 check")),
        "{err}"
    );
    assert!(err.contains("nothing was restored"), "{err}");
    assert_still_empty(&target).await;

    // An edited row.
    rewrite(&good, &bad, |path, data| {
        Some(if path == "tables/users.jsonl" {
            String::from_utf8(data)
                .expect("utf8")
                .replace("\"bob\"", "\"eve\"")
                .into_bytes()
        } else {
            data
        })
    });
    let err = restore_err(&target, &bad).await;
    assert!(err.contains("table users"), "{err}");
    assert_still_empty(&target).await;

    // A newer schema than this binary knows.
    rewrite(&good, &bad, |path, data| {
        Some(if path == "ferry-backup.json" {
            edit_json(data, |v| {
                v["schema_version"] = json!(99_999);
                v["ferry_version"] = json!("99.0.0");
            })
        } else {
            data
        })
    });
    let err = restore_err(&target, &bad).await;
    assert!(
        err.contains("newer Ferry (99.0.0, schema version 99999)"),
        "{err}"
    );
    assert_still_empty(&target).await;

    // Truncated: the manifest never got written.
    rewrite(&good, &bad, |path, data| {
        (path != "manifest.json").then_some(data)
    });
    let err = restore_err(&target, &bad).await;
    assert!(err.contains("truncated"), "{err}");
    // Not a backup at all.
    std::fs::write(&bad, b"hello").expect("write");
    let err = restore_err(&target, &bad).await;
    assert!(err.contains("not a") || err.contains("damaged"), "{err}");
    assert_still_empty(&target).await;

    // After all that, the good archive restores into the same target.
    restore(&target, &good, &quiet())
        .await
        .expect("good restore");
    let restored = spawn_on(Backend::Sqlite, &target).await;
    assert_eq!(
        all_items(&restored, &filled.ann_token).await.len(),
        filled.items.len()
    );
    restored.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_deleted_during_a_backup_are_left_out_consistently() {
    let source = TestApp::spawn(Backend::Sqlite).await;
    let filled = fill(&source, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.tar");
    let manifest = backup(&settings_of(&source), &good, &quiet())
        .await
        .expect("backup");
    assert!(manifest.skipped_items.is_empty());

    // What backup writes when an item and its file vanish between the snapshot and
    // the copy: the row is in the tables, the file is not, the manifest says so.
    let gone = filled
        .items
        .iter()
        .find(|w| manifest.blobs.contains_key(&w.id))
        .expect("file");
    let skipped = dir.path().join("skipped.tar");
    rewrite(&good, &skipped, |path, data| match path {
        p if p == format!("blobs/{}", gone.id) => None,
        "manifest.json" => Some(edit_json(data, |v| {
            v["blobs"].as_object_mut().expect("blobs").remove(&gone.id);
            v["skipped_items"] = json!([gone.id]);
        })),
        _ => Some(data),
    });
    let (_target_dir, target) = fresh_target(Backend::Sqlite).await;
    restore(&target, &skipped, &quiet()).await.expect("restore");
    let restored = spawn_on(Backend::Sqlite, &target).await;
    let items = all_items(&restored, &filled.ann_token).await;
    assert!(!items.contains_key(&gone.id));
    assert_eq!(items.len(), filled.items.len() - 1);
    restored.stop().await;

    // A file missing while its item still exists is damage, not a race: backup fails
    // and leaves no archive behind.
    std::fs::remove_file(source.data_dir.join("blobs").join(&gone.id)).expect("remove blob");
    let broken = dir.path().join("broken.tar");
    let err = backup(&settings_of(&source), &broken, &quiet())
        .await
        .expect_err("backup must fail");
    assert!(format!("{err:#}").contains("missing"), "{err:#}");
    assert!(!broken.exists());
    assert!(!dir.path().join("broken.tar.partial").exists());
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_needs_a_database() {
    // Backing up a data directory that has no database is an error, not an empty
    // archive (and it must not create the database).
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings::for_data_dir(dir.path().join("data"));
    let err = backup(&settings, &dir.path().join("x.tar"), &quiet())
        .await
        .expect_err("no database");
    assert!(format!("{err:#}").contains("no SQLite database"), "{err:#}");
    assert!(!dir.path().join("data").join("ferry.db").exists());
}

// ---- upgrades --------------------------------------------------------------------

const FIXTURE: &str = include_str!("../fixtures/schema-0001.sql");
const FIXTURE_FILE_ID: &str = "0190a000-0000-7000-8000-000000000022";

/// Migrations only go forward: numbered up-migrations, the same versions on both
/// backends, and no down files.
#[test]
fn migrations_only_go_forward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let versions = |backend: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            assert!(
                name.ends_with(".sql") && !name.contains(".down.") && !name.contains(".up."),
                "{backend}/{name}: only forward migrations (NNNN_name.sql)"
            );
            assert!(
                name[..4].bytes().all(|b| b.is_ascii_digit()),
                "{backend}/{name}"
            );
        }
        names.iter().map(|n| n[..4].to_string()).collect()
    };
    let sqlite = versions("sqlite");
    assert_eq!(
        sqlite,
        versions("postgres"),
        "same versions on both backends"
    );
    assert_eq!(sqlite.first().map(String::as_str), Some("0001"));
}

async fn first_schema_fixture_upgrades_and_is_served(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_for(backend, dir.path()).await;
    std::fs::create_dir_all(settings.data_dir.join("blobs")).expect("data dir");
    let store = Store::connect(&settings).await.expect("connect");
    store.migrate_until(Some(1)).await.expect("first migration");
    assert_eq!(store.schema_version().await.expect("version"), 1);
    match &store {
        Store::Sqlite { pool, .. } => sqlx::raw_sql(FIXTURE).execute(pool).await.map(|_| ()),
        Store::Postgres { pool, .. } => sqlx::raw_sql(FIXTURE).execute(pool).await.map(|_| ()),
    }
    .expect("load the fixture");
    store.close().await;
    std::fs::write(
        settings.data_dir.join("blobs").join(FIXTURE_FILE_ID),
        b"hello, ferry\n",
    )
    .expect("blob");

    // The app migrates to the newest schema on start and serves the old data.
    let app = spawn_on(backend, &settings).await;
    assert_eq!(
        app.state.store.schema_version().await.expect("version"),
        app.state.store.latest_schema_version()
    );
    let items = all_items(&app, "fixture-token-olive").await;
    assert_eq!(items.len(), 2);
    let note = &items["0190a000-0000-7000-8000-000000000021"];
    assert_eq!(note["text"], "A note written with the first schema.");
    assert_eq!(note["author"], "olive");
    let file = &items[FIXTURE_FILE_ID];
    assert_eq!(file["author"], "pete");
    assert_eq!(file["name"], "hello.txt");
    let res = reqwest::Client::new()
        .get(app.url(&format!("/items/{FIXTURE_FILE_ID}/content")))
        .bearer_auth("fixture-token-pete")
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        b"hello, ferry\n"
    );
    let shared = reqwest::Client::new()
        .get(app.url(&format!("/s/{}/content", "0123456789abcdef".repeat(4))))
        .send()
        .await
        .expect("share");
    assert_eq!(shared.status(), 200);
    assert_eq!(
        shared.bytes().await.expect("bytes").as_ref(),
        b"hello, ferry\n"
    );
    let (_, _) = app.login("olive", "fixture-password").await;
    // New rows go in after the old ones.
    let fresh = app
        .post_note("fixture-token-pete", "written after the upgrade")
        .await;
    assert_eq!(all_items(&app, "fixture-token-olive").await.len(), 3);
    assert!(fresh["id"].as_str().expect("id") > FIXTURE_FILE_ID);
    app.stop().await;
}

// ---- SQLite to PostgreSQL ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_db_moves_sqlite_to_postgres_and_back() {
    if skip_postgres() {
        return;
    }
    let source = TestApp::spawn(Backend::Sqlite).await;
    let filled = fill(&source, 4).await;
    // The old instance is idle (writes stopped), as the guide asks.
    let settings = settings_of(&source);
    let pg = fresh_pg_database().await;
    let copied = ferry::ops::migrate_db(&settings, &source.database_url, Some(&pg), &quiet())
        .await
        .expect("sqlite -> postgres");
    let names: BTreeSet<&str> = copied.iter().map(|t| t.name.as_str()).collect();
    for table in [
        "users",
        "sessions",
        "api_tokens",
        "items",
        "events",
        "shares",
        "setup_tokens",
        "leases",
    ] {
        assert!(names.contains(table), "{table} copied");
    }
    let rows = |name: &str| copied.iter().find(|t| t.name == name).expect("table").rows;
    assert_eq!(rows("users"), 2);
    assert_eq!(rows("items"), filled.items.len() as u64);
    assert_eq!(rows("shares"), 1);
    assert!(rows("sessions") >= 1 && rows("api_tokens") == 2 && rows("events") >= rows("items"));

    // A second run refuses: the target is no longer empty.
    let err = ferry::ops::migrate_db(&settings, &source.database_url, Some(&pg), &quiet())
        .await
        .expect_err("target not empty");
    assert!(format!("{err:#}").contains("already holds data"), "{err:#}");

    // And back into a new SQLite file: the same rows, the same checksums.
    let back_dir = tempfile::tempdir().expect("tempdir");
    let back = format!("sqlite://{}", back_dir.path().join("back.db").display());
    let again = ferry::ops::migrate_db(&settings, &pg, Some(&back), &quiet())
        .await
        .expect("postgres -> sqlite");
    let sums = |t: &[ferry::ops::CopiedTable]| {
        t.iter()
            .map(|t| (t.name.clone(), (t.rows, t.sha256.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(sums(&copied), sums(&again));

    // Ferry on PostgreSQL with the same data directory serves everything.
    let moved = {
        let data_dir = source.data_dir.clone();
        let pg = pg.clone();
        TestApp::spawn_with(Backend::Postgres, move |s| {
            s.data_dir = data_dir;
            s.database_url = Secret::new(pg);
        })
        .await
    };
    let items = all_items(&moved, &filled.bob_token).await;
    assert_eq!(items.len(), filled.items.len());
    for w in &filled.items {
        assert_eq!(
            content_sha(&moved, &filled.bob_token, &w.id).await,
            w.sha256
        );
    }
    let page = filled
        .ann_browser
        .get(moved.url("/"))
        .send()
        .await
        .expect("feed");
    assert_eq!(page.status(), 200, "sessions moved too");
    let before = moved.state.store.latest_event_id().await.expect("events");
    moved.post_note(&filled.ann_token, "on postgres now").await;
    assert_eq!(
        moved.state.store.latest_event_id().await.expect("events"),
        before + 1,
        "the events sequence continues after the copied ids"
    );
    moved.stop().await;
    source.stop().await;
}

/// The manifest can be read on its own, and names the version and counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_describes_the_archive() {
    let source = TestApp::spawn(Backend::Sqlite).await;
    let filled = fill(&source, 1).await;
    // An unfinished resumable upload: its row stays out of the archive.
    let started = reqwest::Client::new()
        .post(source.url("/api/uploads"))
        .bearer_auth(&filled.ann_token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "100")
        .header("upload-metadata", "filename YS5iaW4=")
        .send()
        .await
        .expect("create upload");
    assert_eq!(started.status(), 201);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("b.tar");
    backup(&settings_of(&source), &archive, &quiet())
        .await
        .expect("backup");
    let manifest = read_manifest(&archive).expect("manifest");
    assert_eq!(manifest.ferry_version, ferry::VERSION);
    assert_eq!(manifest.backend, "sqlite");
    assert_eq!(manifest.counts["users"], 2);
    assert_eq!(manifest.counts["items"], filled.items.len() as u64);
    assert_eq!(manifest.counts["files"], 2);
    assert_eq!(manifest.blobs.len(), 2);
    assert_eq!(manifest.tables["uploads"].rows, 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&archive)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "archives are private to their owner");
    source.stop().await;
}

/// The real binary: `ferry backup --output -` to stdout while the server runs,
/// `ferry restore -` from stdin, progress and errors on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_backs_up_to_stdout_and_restores_from_stdin() {
    const BIN: &str = env!("CARGO_BIN_EXE_ferry");
    let source = TestApp::spawn(Backend::Sqlite).await;
    let filled = fill(&source, 2).await;
    let ferry = |data_dir: &Path, url: &str| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env("FERRY_DATA_DIR", data_dir)
            .env("FERRY_DATABASE_URL", url)
            .env("FERRY_LOG", "warn")
            .env_remove("FERRY_CONFIG");
        cmd
    };
    let out = ferry(&source.data_dir, &source.database_url)
        .args(["backup", "--output", "-"])
        .output()
        .await
        .expect("run ferry backup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("backup: done"), "{stderr}");
    assert!(!stderr.contains("written to"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("from-stdout.tar");
    std::fs::write(&archive, &out.stdout).expect("write archive");
    assert_eq!(
        read_manifest(&archive).expect("manifest").counts["items"],
        filled.items.len() as u64
    );

    let target = dir.path().join("restored");
    let url = format!("sqlite://{}", target.join("ferry.db").display());
    let restore_once = || async {
        let mut child = ferry(&target, &url)
            .args(["restore", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ferry restore");
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = out.stdout.clone();
        let feed = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // The second run stops reading early; a broken pipe is fine then.
            let _ = stdin.write_all(&bytes).await;
        });
        let result = child.wait_with_output().await.expect("wait");
        feed.await.expect("feed");
        result
    };
    let first = restore_once().await;
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("restore: done"), "{stderr}");
    let second = restore_once().await;
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already holds data"), "{stderr}");

    let settings = Settings {
        database_url: Secret::new(url.clone()),
        ..Settings::for_data_dir(&target)
    };
    let restored = spawn_on(Backend::Sqlite, &settings).await;
    assert_eq!(
        all_items(&restored, &filled.ann_token).await.len(),
        filled.items.len()
    );
    restored.stop().await;
    source.stop().await;
}
