//! Liveness, readiness and metrics.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;

use crate::auth::client_ip;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(allow_listed_metrics))
}

/// The process is alive and serving HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready for traffic: the database answers, the schema is current, and the data
/// directory takes writes.
async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": reason })),
            )
                .into_response()
        }
    }
}

async fn readiness(state: &AppState) -> Result<(), String> {
    if state.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    state
        .store
        .ping()
        .await
        .map_err(|e| format!("database unreachable: {}", short_db_error(&e)))?;
    match state.store.migrations_applied().await {
        Ok(true) => {}
        Ok(false) => return Err("database schema is not up to date; run `ferry migrate`".into()),
        Err(e) => {
            return Err(format!(
                "cannot read the schema version: {}",
                short_db_error(&e)
            ));
        }
    }
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.check_writable())
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

/// /metrics on the main listener answers only allow-listed networks.
async fn allow_listed_metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let ip = client_ip(peer.ip(), &headers, &state.settings.trusted_proxies);
    if !state.settings.metrics_allow.iter().any(|n| n.contains(&ip)) {
        return Err(AppError::NotFound);
    }
    Ok(metrics(State(state)).await)
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let items = state.store.count_items().await.ok();
    let body = state.metrics.render(state.store.backend(), items);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
