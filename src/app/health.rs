//! Whether this process can serve, and what it reports to monitoring.

use super::App;

/// Ready for traffic: the database answers, the schema is current, and the data
/// directory takes writes. The error names the failing part.
pub async fn readiness(app: &App) -> Result<(), String> {
    let store = app.store();
    store
        .ping()
        .await
        .map_err(|e| format!("database unreachable: {}", short_db_error(&e)))?;
    match store.migrations_applied().await {
        Ok(true) => {}
        Ok(false) => return Err("database schema is not up to date; run `ferry migrate`".into()),
        Err(e) => {
            return Err(format!(
                "cannot read the schema version: {}",
                short_db_error(&e)
            ));
        }
    }
    let this = app.clone();
    tokio::task::spawn_blocking(move || this.blobs().check_writable())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("data directory is not writable: {e}"))?;
    Ok(())
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
