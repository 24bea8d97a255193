//! The store seam itself: migrations under concurrency, leases, the sweeper.

use std::time::Duration;

use ferry::store::{Store, now_ms};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, execute, settings_for};

both_backends!(
    concurrent_migrations_do_not_race,
    leases_are_exclusive,
    sweeper_removes_expired_items
);

async fn concurrent_migrations_do_not_race(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_for(backend, dir.path()).await;
    std::fs::create_dir_all(&settings.data_dir).expect("data dir");
    let a = Store::connect(&settings).await.expect("connect a");
    let b = Store::connect(&settings).await.expect("connect b");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first migration run");
    rb.expect("second migration run");
    assert!(a.migrations_applied().await.expect("version"));
    assert_eq!(
        a.schema_version().await.expect("version"),
        a.latest_schema_version()
    );
}

async fn leases_are_exclusive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = &app.state.store;
    let ttl = Duration::from_secs(60);
    assert!(store.try_lease("job", "a", ttl).await.expect("lease"));
    assert!(!store.try_lease("job", "b", ttl).await.expect("lease"));
    assert!(store.try_lease("job", "a", ttl).await.expect("renew"));
    // An expired lease can be taken over.
    assert!(
        store
            .try_lease("short", "a", Duration::ZERO)
            .await
            .expect("lease")
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(store.try_lease("short", "b", ttl).await.expect("takeover"));
    app.stop().await;
}

async fn sweeper_removes_expired_items(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("sam", false).await;
    let kept = app.post_note(&token, "stays").await;
    let res = app.upload(&token, "old.bin", vec![7; 1000]).await;
    assert_eq!(res.status(), 201);
    let file: serde_json::Value = res.json().await.expect("json");
    assert_eq!(app.blob_files().len(), 1);

    // Age the file item past its expiry.
    let mut events = crate::helpers::SseStream::open(&app.url("/events"), &token, None).await;
    let id = file["id"].as_str().expect("id");
    let past = now_ms() - 1;
    execute(
        &app.state.store,
        &format!("update items set expires_at = {past} where id = $1"),
        id,
    )
    .await;
    let removed = ferry::sweeper::sweep_once(&app.state).await.expect("sweep");
    assert_eq!(removed, 1);
    assert!(app.blob_files().is_empty(), "blob removed with its item");
    assert!(app.state.store.item(id).await.expect("get").is_none());
    assert!(
        app.state
            .store
            .item(kept["id"].as_str().expect("id"))
            .await
            .expect("get")
            .is_some()
    );
    // On PostgreSQL the notifications of the two creations may still be on their
    // way when the stream opens; clients tolerate such repeats, so skip them.
    let mut event = events.next(Duration::from_secs(5)).await.expect("an event");
    while event.event == "item.created" {
        event = events
            .next(Duration::from_secs(5))
            .await
            .expect("deletion event");
    }
    assert_eq!(event.event, "item.deleted");
    assert!(event.data.contains(id));
    app.stop().await;
}
