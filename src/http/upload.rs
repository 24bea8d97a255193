//! Reading uploads out of requests: a raw body (`curl -T`) or a multipart form
//! (the page's form, the script's uploads, `curl -F`). The bytes stream straight
//! into `app::items`, which stores and records them.

use axum::body::Body;
use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::TryStreamExt;

use crate::app::{App, Item, SignedIn, items};
use crate::blobs::UploadError;
use crate::domain::Expiry;
use crate::error::{AppError, Result};

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The raw body is the file, named by `?name=`.
pub async fn raw(
    app: &App,
    user: &SignedIn,
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
    let stream = body
        .into_data_stream()
        .map_err(|e| UploadError::Body(e.to_string()));
    let file = items::receive_file(app, name, announced_length(headers), stream).await?;
    items::record_file(app, user, file, expiry).await
}

/// Where a form's CSRF token must be: the page's own form post carries it as a
/// field before any file; the script's and the API's posts carry it in a header
/// (already checked) or use a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FormCsrf {
    Checked,
    FieldFirst,
}

/// Receive every `file` field of a multipart form and an optional `text` note.
pub async fn multipart(
    app: &App,
    user: &SignedIn,
    mut form: Multipart,
    mut expiry: Expiry,
    csrf: FormCsrf,
) -> Result<Vec<Item>> {
    let mut csrf_seen = matches!(csrf, FormCsrf::Checked);
    let mut files = Vec::new();
    let mut note = None;
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        match field.name().unwrap_or("") {
            "csrf" => {
                let token = field.text().await.map_err(malformed)?;
                user.check_csrf(Some(&token))?;
                csrf_seen = true;
            }
            "expires" => {
                expiry = Expiry::parse(&field.text().await.map_err(malformed)?)
                    .map_err(AppError::BadRequest)?
            }
            "text" => note = Some(field.text().await.map_err(malformed)?),
            "file" => {
                if !csrf_seen {
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
                let limit = app.settings().max_upload_bytes;
                let stream = field.map_err(move |e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => UploadError::TooLarge { limit },
                    _ => UploadError::Body(e.body_text()),
                });
                // A part's length is unknown until it ends.
                files.push(items::receive_file(app, &name, None, stream).await?);
            }
            _ => {}
        }
    }
    // A form with no file must still have carried its token.
    if !csrf_seen {
        user.check_csrf(None)?;
    }
    items::record_post(app, user, files, note, expiry).await
}

fn malformed(e: MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
}
