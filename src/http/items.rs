//! Items: the JSON API under /api/items and the download route, plus the upload and
//! download machinery the pages and share links reuse.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::auth::CurrentUser;
use crate::blobs::{UploadError, sha256_hex};
use crate::domain::{
    ByteRange, DisplayName, Expiry, RangeError, content_type_for, is_inline_safe, parse_cursor,
    parse_item_id,
};
use crate::error::{AppError, Result};
use crate::http::extract::ApiQuery;
use crate::state::AppState;
use crate::store::{Item, ItemView, now_ms};

pub const PAGE_SIZE: i64 = 50;
/// Bytes read from a file per step of a download.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
const MAX_PAGE_SIZE: i64 = 200;

/// Downloads may be shown by the browser but never run scripts or load anything.
pub const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/items",
            get(list)
                .post(create)
                .put(upload_raw_route)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/items/{id}", get(get_one).delete(delete))
        .route("/items/{id}/content", get(download))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response> {
    let limit = q.limit.unwrap_or(PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(parse_cursor)
        .transpose()
        .map_err(AppError::BadRequest)?;
    let cursor = cursor.map(|c| c.to_string());
    let items = state.store.list_items(cursor.as_deref(), limit + 1).await?;
    let more = items.len() as i64 > limit;
    let items = &items[..items.len().min(limit as usize)];
    let next = if more {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Json(ItemPage {
        items: items.iter().map(Item::view).collect(),
        next_cursor: next,
    })
    .into_response())
}

/// A page of items; serialised directly, without an intermediate JSON value.
#[derive(Serialize)]
struct ItemPage<'a> {
    items: Vec<ItemView<'a>>,
    next_cursor: Option<String>,
}

async fn get_one(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let item = find_item(&state, &id).await?;
    Ok(Json(item.view()).into_response())
}

async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    delete_item(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn find_item(state: &AppState, id: &str) -> Result<Item> {
    let id = parse_item_id(id).ok_or(AppError::NotFound)?;
    state
        .store
        .item(&id.to_string())
        .await?
        .ok_or(AppError::NotFound)
}

/// Authors delete their own items; admins delete any.
pub async fn delete_item(state: &AppState, user: &CurrentUser, id: &str) -> Result<()> {
    let item = find_item(state, id).await?;
    if item.author_id.as_deref() != Some(user.user.id.as_str()) && !user.user.is_admin {
        return Err(AppError::Forbidden(
            "only the author or an admin can delete this item",
        ));
    }
    if let Some((item, event)) = state.store.delete_item(&item.id).await? {
        if let Some(uuid) = parse_item_id(&item.id) {
            state
                .blobs
                .remove(&uuid)
                .await
                .map_err(anyhow::Error::from)?;
        }
        state.events.published(event);
    }
    Ok(())
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
    user: CurrentUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Result<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let limit = state.settings.max_note_bytes + 4096;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                AppError::BadRequest(format!(
                    "the note is larger than {} bytes",
                    state.settings.max_note_bytes
                ))
            })?;
        let note: NoteBody = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))?;
        let expiry = parse_expiry(&state, note.expires.as_deref())?;
        let item = create_note(&state, &user, &note.text, expiry).await?;
        return Ok(created(&[item]));
    }
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let expiry = parse_expiry(&state, q.expires.as_deref())?;
        let items = receive_multipart(&state, &user, multipart, expiry, None).await?;
        return Ok(created(&items));
    }
    upload_raw_route(State(state), user, ApiQuery(q), req).await
}

/// PUT /api/items?name=…: the raw body is the file (`curl -T`).
async fn upload_raw_route(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> Result<Response> {
    let expiry = parse_expiry(&state, q.expires.as_deref())?;
    let (parts, body) = req.into_parts();
    let item = receive_raw(
        &state,
        &user,
        q.name.as_deref(),
        &parts.headers,
        body,
        expiry,
    )
    .await?;
    Ok(created(&[item]))
}

fn created(items: &[Item]) -> Response {
    let body = match items {
        [one] => one.to_json(),
        many => json!({ "items": many.iter().map(Item::to_json).collect::<Vec<_>>() }),
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

pub fn parse_expiry(state: &AppState, raw: Option<&str>) -> Result<Expiry> {
    match raw {
        None => Ok(state.settings.default_expiry),
        Some(s) => Expiry::parse(s).map_err(AppError::BadRequest),
    }
}

pub async fn create_note(
    state: &AppState,
    user: &CurrentUser,
    text: &str,
    expiry: Expiry,
) -> Result<Item> {
    let text = text.replace("\r\n", "\n");
    if text.trim().is_empty() {
        return Err(AppError::BadRequest("the note is empty".into()));
    }
    if text.len() > state.settings.max_note_bytes {
        return Err(AppError::BadRequest(format!(
            "the note is larger than {} bytes",
            state.settings.max_note_bytes
        )));
    }
    let now = now_ms();
    let item = Item {
        id: uuid::Uuid::now_v7().to_string(),
        author_id: Some(user.user.id.clone()),
        author_name: Some(user.user.name.clone()),
        kind: "note".into(),
        name: None,
        content_type: "text/plain; charset=utf-8".into(),
        size: text.len() as i64,
        sha256: sha256_hex(text.as_bytes()),
        note: Some(text),
        created_at: now,
        expires_at: expiry.expires_at(now),
    };
    let event = state.store.insert_item(&item).await?;
    state.events.published(event);
    Ok(item)
}

/// Refuse early when the announced size cannot fit.
fn precheck(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced {
        if len > state.settings.max_upload_bytes + 64 * 1024 {
            return Err(AppError::PayloadTooLarge {
                limit: state.settings.max_upload_bytes,
            });
        }
        if !state.blobs.has_room_for(len).map_err(anyhow::Error::from)? {
            return Err(AppError::InsufficientStorage);
        }
    } else if !state.blobs.has_room_for(0).map_err(anyhow::Error::from)? {
        return Err(AppError::InsufficientStorage);
    }
    Ok(())
}

pub async fn receive_raw(
    state: &AppState,
    user: &CurrentUser,
    name: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    expiry: Expiry,
) -> Result<Item> {
    let name = name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        AppError::BadRequest(
            "name the file: ?name=FILENAME (or send JSON for a note, multipart for a form upload)"
                .into(),
        )
    })?;
    precheck(state, headers)?;
    let stream = body
        .into_data_stream()
        .map_err(|e| UploadError::Body(e.to_string()));
    let file = receive_file(state, name, stream).await?;
    record_file(state, user, file, expiry).await
}

/// Receive every `file` field of a multipart form. Files are recorded only once
/// the whole form is read, so an `expires` field applies wherever it stands.
/// `form_csrf` is set for the page's form post: then the `csrf` field must come
/// before any file.
pub async fn receive_multipart(
    state: &AppState,
    user: &CurrentUser,
    mut multipart: Multipart,
    mut expiry: Expiry,
    mut form_csrf: Option<&mut Option<String>>,
) -> Result<Vec<Item>> {
    let mut files = Vec::new();
    let mut note = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or("") {
            "csrf" => {
                let token = field.text().await.map_err(multipart_error)?;
                user.check_csrf(Some(&token))?;
                if let Some(slot) = form_csrf.as_deref_mut() {
                    *slot = Some(token);
                }
            }
            "expires" => {
                expiry = Expiry::parse(&field.text().await.map_err(multipart_error)?)
                    .map_err(AppError::BadRequest)?
            }
            "text" => note = Some(field.text().await.map_err(multipart_error)?),
            "file" => {
                if form_csrf.as_deref().is_some_and(|c| c.is_none()) {
                    user.check_csrf(None)?;
                }
                let Some(name) = field.file_name().map(str::to_string) else {
                    return Err(AppError::BadRequest(
                        "the file field has no filename".into(),
                    ));
                };
                // An empty file input in a browser form sends a nameless empty part.
                if name.is_empty() {
                    continue;
                }
                let stream = field.map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => UploadError::TooLarge {
                        limit: state.settings.max_upload_bytes,
                    },
                    _ => UploadError::Body(e.body_text()),
                });
                files.push(receive_file(state, &name, stream).await?);
            }
            _ => {}
        }
    }
    let note = note.filter(|t| !t.trim().is_empty());
    if files.is_empty() && note.is_none() {
        return Err(AppError::BadRequest("the form contained no file".into()));
    }
    let mut items = Vec::with_capacity(files.len() + 1);
    for file in files {
        items.push(record_file(state, user, file, expiry).await?);
    }
    if let Some(text) = note {
        items.push(create_note(state, user, &text, expiry).await?);
    }
    Ok(items)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
}

/// A file moved into blobs/ but not yet recorded. Dropped unrecorded (an error
/// later in the same request), its blob is removed.
struct ReceivedFile<'a> {
    blobs: &'a crate::blobs::Blobs,
    id: Option<uuid::Uuid>,
    name: DisplayName,
    size: u64,
    sha256: String,
}

impl Drop for ReceivedFile<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = std::fs::remove_file(self.blobs.path(&id));
        }
    }
}

/// Stream a body to a temp file and move it into blobs/. On any error the temp
/// file is removed.
async fn receive_file<'a, S, B>(
    state: &'a AppState,
    raw_name: &str,
    mut stream: S,
) -> Result<ReceivedFile<'a>>
where
    S: futures_util::Stream<Item = std::result::Result<B, UploadError>> + Unpin,
    B: AsRef<[u8]>,
{
    precheck(state, &HeaderMap::new())?;
    let mut upload = state
        .blobs
        .start_upload(state.settings.max_upload_bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let outcome = async {
        while let Some(chunk) = stream.try_next().await? {
            upload.write(chunk.as_ref()).await?;
        }
        Ok::<_, UploadError>(())
    }
    .await;
    state
        .metrics
        .upload_bytes
        .fetch_add(upload.size(), std::sync::atomic::Ordering::Relaxed);
    outcome.map_err(upload_error)?;
    let id = uuid::Uuid::now_v7();
    let stored = upload.commit(&id).await.map_err(upload_error)?;
    Ok(ReceivedFile {
        blobs: &state.blobs,
        id: Some(id),
        name: DisplayName::clean(raw_name),
        size: stored.size,
        sha256: stored.sha256,
    })
}

/// Record a received file as an item and announce it.
async fn record_file(
    state: &AppState,
    user: &CurrentUser,
    mut file: ReceivedFile<'_>,
    expiry: Expiry,
) -> Result<Item> {
    let Some(id) = file.id else {
        return Err(AppError::Internal(anyhow::anyhow!("file recorded twice")));
    };
    let now = now_ms();
    let item = Item {
        id: id.to_string(),
        author_id: Some(user.user.id.clone()),
        author_name: Some(user.user.name.clone()),
        kind: "file".into(),
        content_type: content_type_for(file.name.as_str()).to_string(),
        name: Some(file.name.as_str().to_string()),
        size: file.size as i64,
        sha256: std::mem::take(&mut file.sha256),
        note: None,
        created_at: now,
        expires_at: expiry.expires_at(now),
    };
    // On failure `file` drops with its id and removes the blob.
    let event = state.store.insert_item(&item).await?;
    file.id = None;
    state.events.published(event);
    tracing::info!(item = %item.id, size = item.size, "file stored");
    Ok(item)
}

fn upload_error(e: UploadError) -> AppError {
    match e {
        UploadError::TooLarge { limit } => AppError::PayloadTooLarge { limit },
        UploadError::NoSpace => AppError::InsufficientStorage,
        UploadError::Body(msg) => {
            AppError::BadRequest(format!("the upload was interrupted or malformed: {msg}"))
        }
        UploadError::Io(e) => AppError::Internal(e.into()),
    }
}

async fn download(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = find_item(&state, &id).await?;
    serve_content(&state, &item, &headers).await
}

/// Send an item's bytes with safe headers: attachment unless an allow-listed inline
/// type, nosniff, a sandboxing CSP, ETag, and single byte ranges.
pub async fn serve_content(state: &AppState, item: &Item, headers: &HeaderMap) -> Result<Response> {
    let etag = format!("\"{}\"", item.sha256);
    let name = match (&item.name, item.is_note()) {
        (Some(n), _) => DisplayName::clean(n),
        (None, true) => DisplayName::clean("note.txt"),
        (None, false) => DisplayName::clean("file"),
    };
    let inline = is_inline_safe(&item.content_type);
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, item.content_type.as_str())
        .header(
            header::CONTENT_DISPOSITION,
            name.content_disposition(inline),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, DOWNLOAD_CSP)
        .header(header::ETAG, etag.as_str())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache");

    let matches_etag = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches_etag {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| AppError::Internal(e.into()));
    }

    if let Some(note) = &item.note {
        return response
            .body(Body::from(note.clone()))
            .map_err(|e| AppError::Internal(e.into()));
    }
    let uuid = parse_item_id(&item.id).ok_or(AppError::NotFound)?;
    if let Some(prefix) = &state.settings.accel_redirect {
        // nginx sends the bytes (and handles Range) from its internal location.
        response = response.header("x-accel-redirect", format!("{prefix}{uuid}"));
        return response
            .body(Body::empty())
            .map_err(|e| AppError::Internal(e.into()));
    }

    let len = item.size as u64;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok(headers, &etag));
    let range = match range.map(|r| ByteRange::parse(r, len)) {
        Some(Ok(r)) => Some(r),
        Some(Err(RangeError::Unsatisfiable)) => return Err(AppError::RangeNotSatisfiable { len }),
        Some(Err(RangeError::Ignore)) | None => None,
    };
    let mut file = tokio::fs::File::open(state.blobs.path(&uuid))
        .await
        .map_err(|e| {
            tracing::error!(item = %item.id, error = ?e, "blob missing for a recorded item");
            AppError::NotFound
        })?;
    let (status, start, count) = match range {
        Some(r) => {
            response = response.header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{len}", r.start, r.end),
            );
            (StatusCode::PARTIAL_CONTENT, r.start, r.len())
        }
        None => (StatusCode::OK, 0, len),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(anyhow::Error::from)?;
    }
    // Each read is a trip to tokio's blocking pool: large reads keep those trips
    // (and the wakeups around them) rare, at a cost of about twice this much memory
    // per download in flight.
    let body = Body::from_stream(ReaderStream::with_capacity(
        file.take(count),
        DOWNLOAD_CHUNK,
    ));
    response
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(count))
        .body(body)
        .map_err(|e| AppError::Internal(e.into()))
}

/// `If-Range` with a different validator means "send the whole new file".
fn if_range_ok(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => v.trim() == etag,
        None => true,
    }
}
