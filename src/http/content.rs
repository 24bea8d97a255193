//! Serving an item's bytes: safe headers, ETag, single byte ranges, and
//! X-Accel-Redirect so nginx can send files itself. The range parser is Ferry's
//! own (`domain::ByteRange`) because it is fuzzed and small.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use super::AppState;
use super::extract::CurrentUser;
use crate::app::{App, Item, items};
use crate::domain::{ByteRange, RangeError, is_inline_safe};
use crate::error::{AppError, Result};

/// Downloads may be shown by the browser but never run scripts or load anything.
pub const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";

pub fn router() -> Router<AppState> {
    Router::new().route("/items/{id}/content", get(download))
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

/// Send an item's bytes with safe headers: attachment unless an allow-listed inline
/// type, nosniff, a sandboxing CSP, ETag, and single byte ranges.
pub async fn serve(app: &App, item: &Item, headers: &HeaderMap) -> Result<Response> {
    let etag = format!("\"{}\"", item.sha256);
    let inline = is_inline_safe(&item.content_type);
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, item.content_type.as_str())
        .header(
            header::CONTENT_DISPOSITION,
            items::download_name(item).content_disposition(inline),
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

    if let (None, Some(prefix)) = (&item.note, &app.settings().accel_redirect) {
        // nginx sends the bytes (and handles Range) from its internal location.
        let target = items::accel_target(app, item).await?;
        response = response.header("x-accel-redirect", format!("{prefix}{target}"));
        return built(response, Body::empty());
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
    if let Some(note) = &item.note {
        // Notes advertise ranges like files, so they honour them too.
        let part = usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + count).ok())
            .and_then(|(from, to)| note.as_bytes().get(from..to))
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("note {} shorter than its size", item.id))
            })?;
        return built(response, Body::from(part.to_vec()));
    }
    let body = Body::from_stream(items::read_file(app, item, start, count).await?);
    built(response, body)
}

/// `If-Range` with a different validator means "send the whole new file".
fn if_range_ok(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => v.trim() == etag,
        None => true,
    }
}
