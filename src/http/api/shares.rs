//! Share links through the API: list an item's links, create one, revoke one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::App;
use crate::app::shares::{self, NewShare};
use crate::app::views::ShareJson;
use crate::error::{AppError, Result};
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, CurrentUser};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/items/{id}/shares", get(list).post(create))
        .route("/api/shares/{id}", delete(revoke))
}

/// The body is an object whose options may come as strings or numbers
/// (`"max_downloads": 3`); null or absent means the default.
async fn create(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Map<String, Value>>,
) -> Result<Response> {
    let new = NewShare {
        expires: option(&req, "expires")?,
        max_downloads: option(&req, "max_downloads")?,
        password: option(&req, "password")?,
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
    ApiPath(id): ApiPath<String>,
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
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    shares::revoke(&app, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One option as text for `app::shares`, which checks its value. Any other JSON
/// type is refused rather than silently dropped.
fn option(req: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // JSON has one number type: 3.0 is the integer 3.
        Some(Value::Number(n)) => Ok(Some(match n.as_f64() {
            Some(f) if n.as_i64().is_none() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{f:.0}")
            }
            _ => n.to_string(),
        })),
        Some(_) => Err(AppError::BadRequest(format!(
            "{key} must be a string or a number"
        ))),
    }
}
