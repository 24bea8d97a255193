use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    newer_schema_is_refused,
    health_and_readiness,
    readiness_needs_migrations,
    metrics_are_not_public,
    request_ids_are_echoed
);

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let res = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
    let res = client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "answers are never cached"
    );
    assert_eq!(
        res.json::<serde_json::Value>().await.expect("json")["status"],
        "ready"
    );

    // The data directory stops taking writes: not ready, with a reason.
    let tmp = app.data_dir.join("tmp");
    std::fs::rename(&tmp, app.data_dir.join("tmp-moved")).expect("move tmp away");
    let res = client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("data directory"),
        "{body}"
    );
    std::fs::rename(app.data_dir.join("tmp-moved"), &tmp).expect("move tmp back");
    assert_eq!(
        client
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    app.stop().await;
}

async fn readiness_needs_migrations(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.migrate_on_start = false).await;
    let res = reqwest::get(app.url("/readyz")).await.expect("readyz");
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("ferry migrate"),
        "{body}"
    );
    app.state.store.migrate().await.expect("migrate");
    assert_eq!(
        reqwest::get(app.url("/readyz"))
            .await
            .expect("readyz")
            .status(),
        200
    );
    app.stop().await;
}

async fn metrics_are_not_public(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = reqwest::get(app.url("/healthz")).await.expect("healthz");
    assert_eq!(
        reqwest::get(app.url("/metrics"))
            .await
            .expect("metrics")
            .status(),
        404
    );
    app.stop().await;

    let app = TestApp::spawn_with(backend, |s| {
        s.metrics_allow = vec!["127.0.0.0/8".parse().expect("net")];
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let _ = reqwest::get(app.url("/healthz")).await.expect("healthz");
    let res = reqwest::get(app.url("/metrics")).await.expect("metrics");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("text");
    assert!(
        text.contains(
            "ferry_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("ferry_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("ferry_http_requests_in_flight"), "{text}");
    assert!(
        text.contains(&format!("ferry_build_info{{version=\"{}\"", ferry::VERSION)),
        "{text}"
    );
    app.stop().await;
}

async fn request_ids_are_echoed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let res = client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let generated = res.headers()["x-request-id"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    app.stop().await;
}

#[tokio::test]
async fn separate_metrics_listener_serves_only_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::helpers::settings_for(Backend::Sqlite, dir.path()).await;
    settings.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let app = ferry::startup::Application::build(settings)
        .await
        .expect("build");
    let metrics = app.metrics_addr().expect("metrics listener");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let res = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("text").contains("ferry_build_info"));
    assert_eq!(
        reqwest::get(format!("http://{metrics}/healthz"))
            .await
            .expect("healthz")
            .status(),
        404
    );
    let _ = tx.send(());
    task.await.expect("join").expect("run");
}

async fn newer_schema_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = crate::helpers::settings_for(backend, dir.path()).await;
    std::fs::create_dir_all(&settings.data_dir).expect("data dir");
    let store = ferry::store::Store::connect(&settings)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    // As if a newer release had migrated this database.
    crate::helpers::execute(
        &store,
        "update _sqlx_migrations set version = 99999, description = $1 where version = 1",
        "future",
    )
    .await;
    store.close().await;
    for migrate_on_start in [true, false] {
        let mut settings = settings.clone();
        settings.migrate_on_start = migrate_on_start;
        let err = match ferry::startup::Application::build(settings).await {
            Ok(_) => panic!("started on a newer schema (migrate_on_start={migrate_on_start})"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("newer than this Ferry knows"), "{err}");
    }
}
