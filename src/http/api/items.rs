//! /api/items: list, read, post (a JSON note, a multipart form or a raw body), put
//! (a raw body, `curl -T`) and delete; an item's files one by one or as a ZIP.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::views::ItemJson;
use crate::app::{App, Item, items};
use crate::error::{AppError, Result};
use crate::http::AppState;
use crate::http::content;
use crate::http::extract::{ApiPath, ApiQuery, CurrentUser};
use crate::http::upload::{self, FormCsrf};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/items",
            get(list)
                .post(create)
                .put(put_raw)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/items/{id}", get(get_one).delete(delete))
        .route("/api/items/{id}/files/{n}", get(get_file))
        .route("/api/items/{id}/zip", get(get_zip))
}

/// One file of an item, as `/items/{id}/files/{n}` sends it.
async fn get_file(
    State(app): State<App>,
    _user: CurrentUser,
    ApiPath((id, n)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    content::serve_file(&app, &items::file_of(&item, &n)?, &headers).await
}

/// Every file of an item as one ZIP, as `/items/{id}/zip` sends it.
async fn get_zip(
    State(app): State<App>,
    _user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    content::serve_archive(&app, &item, &headers).await
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A page of items; serialised directly, without an intermediate JSON value.
#[derive(Serialize)]
struct ItemPage<'a> {
    items: Vec<ItemJson<'a>>,
    next_cursor: Option<String>,
}

async fn list(
    State(app): State<App>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response> {
    let page = items::list(&app, q.cursor.as_deref(), q.limit).await?;
    Ok(Json(ItemPage {
        items: page.items().iter().map(ItemJson::new).collect(),
        next_cursor: page.next_cursor.clone(),
    })
    .into_response())
}

async fn get_one(
    State(app): State<App>,
    _user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    Ok(Json(ItemJson::new(&item)).into_response())
}

async fn delete(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    items::delete(&app, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
    expires: Option<String>,
}

#[derive(Deserialize)]
struct NoteBody {
    text: String,
    expires: Option<String>,
}

/// POST /api/items: a JSON note, a multipart upload, or a raw body.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Result<Response> {
    let app = &state.app;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let max = app.settings().max_note_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), max + 4096)
            .await
            .map_err(|_| AppError::BadRequest(format!("the note is larger than {max} bytes")))?;
        let note: NoteBody = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))?;
        let expiry = items::expiry(app, note.expires.as_deref())?;
        let item = items::create_note(app, &user, &note.text, expiry).await?;
        return Ok(created(&[item]));
    }
    if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let expiry = items::expiry(app, q.expires.as_deref())?;
        let items = upload::multipart(app, &user, form, expiry, FormCsrf::Checked).await?;
        return Ok(created(&[items]));
    }
    raw(app, &user, q, req).await
}

/// PUT /api/items?name=…: the raw body is the file (`curl -T`).
async fn put_raw(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Result<Response> {
    raw(&app, &user, q, req).await
}

async fn raw(
    app: &App,
    user: &crate::app::SignedIn,
    q: UploadQuery,
    req: Request,
) -> Result<Response> {
    let expiry = items::expiry(app, q.expires.as_deref())?;
    let (parts, body) = req.into_parts();
    let item = upload::raw(app, user, q.name.as_deref(), &parts.headers, body, expiry).await?;
    Ok(created(&[item]))
}

#[derive(Serialize)]
struct Created<'a> {
    items: Vec<ItemJson<'a>>,
}

/// One item answers as itself, several as `{"items": [...]}`.
fn created(items: &[Item]) -> Response {
    match items {
        [one] => (StatusCode::CREATED, Json(ItemJson::new(one))).into_response(),
        many => (
            StatusCode::CREATED,
            Json(Created {
                items: many.iter().map(ItemJson::new).collect(),
            }),
        )
            .into_response(),
    }
}
