//! Liveness, readiness and metrics.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;

use super::AppState;
use super::extract::client_ip;
use crate::app::health;
use crate::error::AppError;

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

/// Ready for traffic: the database answers, the schema is current, and the file
/// store (named in the answer) takes writes.
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = if state.shutdown.is_cancelled() {
        Err("shutting down".to_string())
    } else {
        health::readiness(&state.app).await
    };
    match ready {
        Ok(()) => Json(json!({ "status": "ready", "files": health::file_store(&state.app) }))
            .into_response(),
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

/// /metrics on the main listener answers only allow-listed networks.
async fn allow_listed_metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let settings = state.app.settings();
    let ip = client_ip(peer.ip(), &headers, &settings.trusted_proxies);
    if !settings.metrics_allow.iter().any(|n| n.contains(&ip)) {
        return Err(AppError::NotFound);
    }
    Ok(metrics(State(state)).await)
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = health::metrics_text(&state.app).await;
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
