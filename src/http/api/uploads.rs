//! /api/uploads: resumable uploads over tus 1.0.0 (https://tus.io/protocols/resumable-upload),
//! with the creation, creation-with-upload, termination, expiration and checksum
//! extensions. This file is the protocol: headers in, headers and statuses out;
//! `app::uploads` decides everything else.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{options, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::TryStreamExt;

use crate::app::uploads::{self, Appended, NewUpload};
use crate::app::{App, ResumableUpload};
use crate::blobs::UploadError;
use crate::domain::{Checksum, ChecksumAlgorithm};
use crate::error::{AppError, Result};
use crate::http::AppState;
use crate::http::extract::{ApiPath, CurrentUser};

pub const TUS_VERSION: &str = "1.0.0";
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// What a browser on another allowed origin may send and read (see `cors_layer`).
pub const TUS_REQUEST_HEADERS: [&str; 6] = [
    "tus-resumable",
    "upload-length",
    "upload-metadata",
    "upload-offset",
    "upload-checksum",
    "x-http-method-override",
];
pub const TUS_RESPONSE_HEADERS: [&str; 10] = [
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "retry-after",
];

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");

pub fn router() -> Router<AppState> {
    Router::new()
        // The version check is a route layer of each method router, so a method that
        // no route has stays a 405 (with Allow), whatever the headers.
        .route(
            "/api/uploads",
            post(create)
                .options(capabilities)
                .route_layer(middleware::from_fn(require_version)),
        )
        // tus clients are usually given the endpoint with a trailing slash.
        .route(
            "/api/uploads/",
            post(create)
                .options(capabilities)
                .route_layer(middleware::from_fn(require_version)),
        )
        .route(
            "/api/uploads/{id}",
            options(capabilities)
                .head(offset)
                .patch(append)
                .delete(terminate)
                .post(overridden)
                .route_layer(middleware::from_fn(require_version)),
        )
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(add_version))
}

/// Every request but OPTIONS names the protocol version (412 otherwise).
async fn require_version(req: Request, next: Next) -> Response {
    let version = req
        .headers()
        .get(&TUS_RESUMABLE)
        .and_then(|v| v.to_str().ok());
    if req.method() != Method::OPTIONS && version != Some(TUS_VERSION) {
        let mut r = (
            StatusCode::PRECONDITION_FAILED,
            format!("this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}\n"),
        )
            .into_response();
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
        return r;
    }
    next.run(req).await
}

/// Every answer carries the protocol version.
async fn add_version(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

/// OPTIONS: what this server supports. Needs no sign-in, like any discovery.
async fn capabilities(State(app): State<App>) -> Response {
    let algorithms = ChecksumAlgorithm::ALL
        .map(ChecksumAlgorithm::name)
        .join(",");
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    h.insert(
        "tus-max-size",
        HeaderValue::from(app.settings().max_upload_bytes),
    );
    if let Ok(v) = HeaderValue::from_str(&algorithms) {
        h.insert("tus-checksum-algorithm", v);
    }
    r
}

/// POST: create an upload; with a body (creation-with-upload) its first bytes too.
async fn create(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if headers.contains_key(&UPLOAD_DEFER_LENGTH) {
        return Err(AppError::BadRequest(
            "Upload-Defer-Length is not supported: send Upload-Length".into(),
        ));
    }
    let length = number(headers, &UPLOAD_LENGTH)?.ok_or_else(|| {
        AppError::BadRequest("send Upload-Length: the file's size in bytes".into())
    })?;
    let metadata = text(headers, &UPLOAD_METADATA)?.unwrap_or_default();
    let pairs = parse_metadata(&metadata)?;
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let new = NewUpload {
        length,
        filename: value("filename").or_else(|| value("name")),
        expires: value("expires"),
        metadata: metadata.clone(),
    };
    let with_body = is_offset_stream(headers) && content_length(headers) != Some(0);
    let checksum = checksum(headers)?;
    let upload = uploads::create(&app, &user, new).await?;
    let location = format!("/api/uploads/{}", upload.id);
    let appended = if length == 0 {
        uploads::finish_empty(&app, &user, &upload).await?;
        Some(Appended {
            offset: 0,
            expires_at: None,
            item: None,
        })
    } else if with_body {
        Some(send_body(&app, &user, &upload.id, 0, checksum, headers, body).await?)
    } else {
        None
    };
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, header_value(&location)?);
    match appended {
        Some(a) => add_progress(h, &a)?,
        None => add_expiry(h, Some(upload.expires_at))?,
    }
    Ok(r)
}

/// HEAD: how much of the upload the server has.
async fn offset(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Response> {
    let upload: ResumableUpload = uploads::find(&app, &user, &id).await?;
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(upload.received));
    h.insert(UPLOAD_LENGTH, HeaderValue::from(upload.length));
    if !upload.metadata.is_empty() {
        h.insert(UPLOAD_METADATA, header_value(&upload.metadata)?);
    }
    if upload.completed_at.is_none() {
        add_expiry(h, Some(upload.expires_at))?;
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// PATCH: append the body at Upload-Offset.
async fn append(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if !is_offset_stream(headers) {
        return Ok((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the data as Content-Type: {OFFSET_OCTET_STREAM}\n"),
        )
            .into_response());
    }
    let at = number(headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| AppError::BadRequest("send Upload-Offset".into()))?;
    let checksum = checksum(headers)?;
    let appended = send_body(&app, &user, &id, at, checksum, headers, body).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    add_progress(r.headers_mut(), &appended)?;
    Ok(r)
}

/// DELETE: stop an upload and free its bytes.
async fn terminate(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    uploads::terminate(&app, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST standing for another method (X-HTTP-Method-Override), for clients behind
/// proxies that pass only GET and POST. A session still needs its CSRF token: the
/// request is a POST to the extractor.
async fn overridden(
    state: State<App>,
    user: CurrentUser,
    id: ApiPath<String>,
    req: Request,
) -> Result<Response> {
    let method = req
        .headers()
        .get("x-http-method-override")
        .map(|v| v.as_bytes().to_ascii_uppercase());
    match method.as_deref() {
        Some(b"PATCH") => append(state, user, id, req).await,
        Some(b"DELETE") => Ok(terminate(state, user, id).await?.into_response()),
        _ => Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            "POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE\n",
        )
            .into_response()),
    }
}

async fn send_body(
    app: &App,
    user: &crate::app::SignedIn,
    id: &str,
    at: u64,
    checksum: Option<Checksum>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Appended> {
    let stream = body
        .into_data_stream()
        .map_err(|e| UploadError::Body(e.to_string()));
    uploads::append(app, user, id, at, content_length(headers), checksum, stream).await
}

fn add_progress(h: &mut HeaderMap, appended: &Appended) -> Result<()> {
    h.insert(UPLOAD_OFFSET, HeaderValue::from(appended.offset));
    add_expiry(h, appended.expires_at)
}

fn add_expiry(h: &mut HeaderMap, expires_at: Option<i64>) -> Result<()> {
    if let Some(at) = expires_at {
        h.insert(UPLOAD_EXPIRES, header_value(&http_date(at))?);
    }
    Ok(())
}

/// An instant in unix milliseconds as an HTTP date (RFC 9110: IMF-fixdate).
fn http_date(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|e| AppError::Internal(e.into()))
}

fn text(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_string())
                .map_err(|_| AppError::BadRequest(format!("{name} is not ASCII text")))
        })
        .transpose()
}

fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>> {
    text(headers, name)?
        .map(|s| {
            s.parse::<u64>()
                .ok()
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| AppError::BadRequest(format!("{name} must be a number of bytes")))
        })
        .transpose()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

/// `Upload-Checksum: ALGORITHM BASE64-DIGEST`.
fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>> {
    let Some(raw) = text(headers, &UPLOAD_CHECKSUM)? else {
        return Ok(None);
    };
    let (name, digest) = raw
        .split_once(' ')
        .ok_or_else(|| AppError::BadRequest("Upload-Checksum is ALGORITHM BASE64-DIGEST".into()))?;
    let algorithm = ChecksumAlgorithm::ALL
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "checksum algorithm {name:?} is not supported: use sha1 or sha256"
            ))
        })?;
    let digest = STANDARD
        .decode(digest.trim())
        .map_err(|_| AppError::BadRequest("the Upload-Checksum digest is not base64".into()))?;
    Ok(Some(Checksum { algorithm, digest }))
}

/// `Upload-Metadata: key base64value,key2,...`: keys unique, values base64 of UTF-8
/// text (a key may come without a value).
fn parse_metadata(raw: &str) -> Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(' ').unwrap_or((part, ""));
        let bad = |why: &str| AppError::BadRequest(format!("Upload-Metadata {key:?}: {why}"));
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad("the key appears twice"));
        }
        let bytes = STANDARD
            .decode(value.trim())
            .map_err(|_| bad("the value is not base64"))?;
        let value = String::from_utf8(bytes).map_err(|_| bad("the value is not UTF-8"))?;
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parses_and_bad_metadata_is_refused() {
        let pairs = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .expect("parse");
        assert_eq!(
            pairs,
            vec![
                ("filename".into(), "world_domination_plan.pdf".into()),
                ("is_confidential".into(), String::new())
            ]
        );
        assert!(parse_metadata("a YQ==,a YQ==").is_err());
        assert!(parse_metadata("a !!!").is_err());
        assert!(parse_metadata("").expect("empty").is_empty());
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(
            http_date(1_403_712_000_000),
            "Wed, 25 Jun 2014 16:00:00 GMT"
        );
    }
}
