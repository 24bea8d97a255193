//! Serving an item's bytes (a note, one file, or all files as a ZIP): safe
//! headers, ETag, single byte ranges, and X-Accel-Redirect so nginx can send
//! files itself. The range parser is Ferry's
//! own (`domain::ByteRange`) because it is fuzzed and small.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use super::AppState;
use super::extract::CurrentUser;
use crate::app::archive::{self, Archive};
use crate::app::items::{self, Content};
use crate::app::{App, Item, ItemFile};
use crate::domain::{ByteRange, DisplayName, RangeError, is_inline_safe};
use crate::error::{AppError, Result};

/// Downloads may be shown by the browser but never run scripts or load anything.
pub const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items/{id}/content", get(download))
        .route("/items/{id}/files/{n}", get(download_file))
        .route("/items/{id}/zip", get(download_zip))
}

async fn download(
    State(app): State<App>,
    CurrentUser(_user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    serve(&app, &item, &headers).await
}

async fn download_file(
    State(app): State<App>,
    CurrentUser(_user): CurrentUser,
    Path((id, n)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    serve_file(&app, &items::file_of(&item, &n)?, &headers).await
}

async fn download_zip(
    State(app): State<App>,
    CurrentUser(_user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let item = items::find(&app, &id).await?;
    serve_archive(&app, &item, &headers).await
}

/// Whether a request continues a download (a resumed or seeking request) rather
/// than starting one.
pub fn continues_download(headers: &HeaderMap) -> bool {
    headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| !r.trim().starts_with("bytes=0-"))
}

fn built(response: axum::http::response::Builder, body: Body) -> Result<Response> {
    response
        .body(body)
        .map_err(|e| AppError::Internal(e.into()))
}

/// Where a download's bytes come from.
enum Source<'a> {
    Note(&'a str),
    File(&'a ItemFile),
    Archive(&'a Archive),
}

/// An item's own download: a note's text, its one file, or all its files as a ZIP.
pub async fn serve(app: &App, item: &Item, headers: &HeaderMap) -> Result<Response> {
    match items::content_of(item) {
        Content::Note(text) => {
            let name = items::download_name(item);
            let meta = Meta::new(&item.content_type, name, &item.sha256, text.len() as u64);
            send(app, meta, Source::Note(text), headers).await
        }
        Content::File(file) => serve_file(app, &file, headers).await,
        Content::Archive => serve_archive(app, item, headers).await,
    }
}

/// One file of an item.
pub async fn serve_file(app: &App, file: &ItemFile, headers: &HeaderMap) -> Result<Response> {
    let name = DisplayName::clean(&file.name);
    let meta = Meta::new(
        &file.content_type,
        name,
        &file.sha256,
        file.size.max(0) as u64,
    );
    send(app, meta, Source::File(file), headers).await
}

/// Every file of an item as one stored ZIP, with its length known and ranges.
pub async fn serve_archive(app: &App, item: &Item, headers: &HeaderMap) -> Result<Response> {
    let zip = archive::open(app, item).await?;
    let meta = Meta::new(
        archive::ZIP_CONTENT_TYPE,
        zip.name.clone(),
        &zip.etag,
        zip.layout.len(),
    );
    send(app, meta, Source::Archive(&zip), headers).await
}

/// The headers of a download.
struct Meta<'a> {
    content_type: &'a str,
    name: DisplayName,
    etag: String,
    len: u64,
}

impl<'a> Meta<'a> {
    fn new(content_type: &'a str, name: DisplayName, tag: &str, len: u64) -> Self {
        Self {
            content_type,
            name,
            etag: format!("\"{tag}\""),
            len,
        }
    }
}

/// Send bytes with safe headers: attachment unless an allow-listed inline type,
/// nosniff, a sandboxing CSP, ETag, and single byte ranges.
async fn send(
    app: &App,
    meta: Meta<'_>,
    source: Source<'_>,
    headers: &HeaderMap,
) -> Result<Response> {
    let Meta {
        content_type,
        name,
        etag,
        len,
    } = meta;
    let inline = is_inline_safe(content_type);
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
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
        return built(response.status(StatusCode::NOT_MODIFIED), Body::empty());
    }

    if let (Source::File(file), Some(prefix)) = (&source, &app.settings().accel_redirect) {
        // nginx sends the bytes (and handles Range) from its internal location.
        let target = items::accel_target(app, file).await?;
        response = response.header("x-accel-redirect", format!("{prefix}{target}"));
        return built(response, Body::empty());
    }

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok(headers, &etag));
    let range = match range.map(|r| ByteRange::parse(r, len)) {
        Some(Ok(r)) => Some(r),
        Some(Err(RangeError::Unsatisfiable)) => return Err(AppError::RangeNotSatisfiable { len }),
        Some(Err(RangeError::Ignore)) | None => None,
    };
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
    let response = response
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(count));
    let body = match source {
        // Notes advertise ranges like files, so they honour them too.
        Source::Note(note) => {
            let part = usize::try_from(start)
                .ok()
                .zip(usize::try_from(start + count).ok())
                .and_then(|(from, to)| note.as_bytes().get(from..to))
                .ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("a note is shorter than its size"))
                })?;
            Body::from(part.to_vec())
        }
        Source::File(file) => Body::from_stream(items::read_file(app, file, start, count).await?),
        Source::Archive(zip) => Body::from_stream(archive::read(app, zip, start, count)),
    };
    built(response, body)
}

/// `If-Range` with a different validator means "send the whole new file".
fn if_range_ok(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => v.trim() == etag,
        None => true,
    }
}
