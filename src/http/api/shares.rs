//! Share links through the API: list an item's links, create one, revoke one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use crate::app::App;
use crate::app::shares::{self, NewShare};
use crate::app::views::ShareJson;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{ApiJson, CurrentUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/items/{id}/shares", get(list).post(create))
        .route("/api/shares/{id}", delete(revoke))
}

/// Options may come as strings or numbers (`"max_downloads": 3`).
async fn create(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<serde_json::Value>,
) -> Result<Response> {
    let field = |k: &str| match req.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let new = NewShare {
        expires: field("expires"),
        max_downloads: field("max_downloads"),
        password: field("password"),
    };
    let (share, token) = shares::create(&app, &user, &id, new).await?;
    let body = ShareJson {
        token: Some(&token),
        url: Some(shares::url(&app, &token)),
        ..ShareJson::new(&share)
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Serialize)]
struct ShareList<'a> {
    shares: Vec<ShareJson<'a>>,
}

async fn list(
    State(app): State<App>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let (_, shares) = shares::of_item(&app, &id).await?;
    Ok(Json(ShareList {
        shares: shares.iter().map(ShareJson::new).collect(),
    })
    .into_response())
}

async fn revoke(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    shares::revoke(&app, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
