//! Whether this process can serve, and what it reports to monitoring.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::App;

/// How long readiness waits on any one part. Probes give up soon (Kubernetes after
/// 1 s by default, `ferry healthcheck` after 3 s, compose after 5 s), and a probe
/// that times out says nothing about why. Every part is checked at the same time
/// under this deadline, so `/readyz` answers within about this long whatever is
/// stuck, and names the part. The database pool's own acquire timeout (10 s) is
/// left alone: requests should wait out a busy pool; only the probe gives up early.
pub const READINESS_DEADLINE: Duration = Duration::from_millis(750);

/// Ready for traffic: the database answers, the schema is current, and the file
/// store (the data directory, or the object store) takes writes. The error names every failing part.
pub async fn readiness(app: &App) -> Result<(), String> {
    let deadline = Instant::now() + READINESS_DEADLINE;
    let (database, files) = tokio::join!(database(app, deadline), data_directory(app, deadline));
    match (database, files) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(db), Err(dir)) => Err(format!("{db}; {dir}")),
    }
}

/// Which file store this process uses (`local` or `s3`), for `/readyz`.
pub fn file_store(app: &App) -> &'static str {
    app.blobs().kind()
}

fn waited() -> String {
    format!("{} ms", READINESS_DEADLINE.as_millis())
}

async fn database(app: &App, deadline: Instant) -> Result<(), String> {
    let store = app.store();
    // Dropping sqlx's acquire or query when the deadline passes is safe: the pool
    // gets its slot back, and a connection left mid-query is settled by the pool
    // before anyone reuses it.
    match timeout_at(deadline, store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("database unreachable: {}", short_db_error(&e))),
        Err(_) if store.pool_exhausted() => {
            return Err(format!(
                "database busy: every connection stayed in use for {}",
                waited()
            ));
        }
        Err(_) => {
            return Err(format!(
                "database unreachable: no connection within {}",
                waited()
            ));
        }
    }
    match timeout_at(deadline, store.migrations_applied()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("database schema is not up to date; run `ferry migrate`".into()),
        Ok(Err(e)) => Err(format!(
            "cannot read the schema version: {}",
            short_db_error(&e)
        )),
        Err(_) => Err(format!(
            "database too slow: the schema version took over {} to read",
            waited()
        )),
    }
}

/// A write probe in the file store: the data directory, or the object store's
/// bucket.
async fn data_directory(app: &App, deadline: Instant) -> Result<(), String> {
    app.blobs().check_ready(deadline, &waited()).await
}

fn short_db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => "connection pool timed out".into(),
        sqlx::Error::Io(_) => "connection failed".into(),
        sqlx::Error::Database(d) => d
            .code()
            .map(|c| format!("database error {c}"))
            .unwrap_or_else(|| "database error".into()),
        _ => "database error".into(),
    }
}

/// The Prometheus text: request figures, live streams, and the item count.
pub async fn metrics_text(app: &App) -> String {
    let items = app.store().count_items().await.ok();
    app.metrics().render(app.store().backend(), items)
}
