//! Reading uploads out of requests: a raw body (`curl -T`) or a multipart form
//! (the page's form, the script's uploads, `curl -F`, a phone's share sheet). The bytes stream straight
//! into `app::items`, which stores and records them.

use axum::body::Body;
use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::TryStreamExt;

use crate::app::{App, Item, SignedIn, received, share_target};
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
    let file = received::receive_file(app, name, announced_length(headers), stream).await?;
    received::record_file(app, user, file, expiry).await
}

/// Where a form's CSRF token must be: the page's own form post carries it as a
/// field before any file; the script's and the API's posts carry it in a header
/// (already checked) or use a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FormCsrf {
    Checked,
    FieldFirst,
}

/// One part of a multipart form as `read_form` meets it.
enum Part<'a> {
    /// A text field this form reads, and its value.
    Text(&'a str, String),
    /// A file is about to be stored.
    FileStarting,
}

/// Read a multipart form: every `file_field` part streams into the blob store;
/// the parts named in `text_fields` are read as text and handed to `on_part`,
/// which may refuse the form (and then no file is kept). Other parts are ignored.
async fn read_form(
    app: &App,
    mut form: Multipart,
    file_field: &str,
    text_fields: &[&str],
    mut on_part: impl FnMut(Part<'_>) -> Result<()>,
) -> Result<Vec<received::ReceivedFile>> {
    let mut files = Vec::new();
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == file_field {
            on_part(Part::FileStarting)?;
            let Some(file_name) = field.file_name().map(str::to_string) else {
                return Err(AppError::BadRequest(format!(
                    "the {file_field} field has no filename"
                )));
            };
            // An empty file input in a browser form sends a nameless empty part.
            if file_name.is_empty() {
                continue;
            }
            let limit = app.settings().max_upload_bytes;
            let stream = field.map_err(move |e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => UploadError::TooLarge { limit },
                _ => UploadError::Body(e.body_text()),
            });
            // A part's length is unknown until it ends.
            files.push(received::receive_file(app, &file_name, None, stream).await?);
        } else if text_fields.contains(&name.as_str()) {
            let value = field.text().await.map_err(malformed)?;
            on_part(Part::Text(&name, value))?;
        }
    }
    Ok(files)
}

/// Receive every `file` field of a multipart form and an optional `text` note,
/// as one item.
pub async fn multipart(
    app: &App,
    user: &SignedIn,
    form: Multipart,
    mut expiry: Expiry,
    csrf: FormCsrf,
) -> Result<Item> {
    let mut csrf_seen = matches!(csrf, FormCsrf::Checked);
    let mut note = None;
    let files = read_form(app, form, "file", &["csrf", "expires", "text"], |part| {
        match part {
            Part::Text("csrf", token) => {
                user.check_csrf(Some(&token))?;
                csrf_seen = true;
            }
            Part::Text("expires", raw) => {
                expiry = Expiry::parse(&raw).map_err(AppError::BadRequest)?
            }
            Part::Text(_, text) => note = Some(text),
            Part::FileStarting if !csrf_seen => user.check_csrf(None)?,
            Part::FileStarting => {}
        }
        Ok(())
    })
    .await?;
    // A form with no file must still have carried its token.
    if !csrf_seen {
        user.check_csrf(None)?;
    }
    received::record_post(app, user, files, note, expiry).await
}

/// Read a share sheet's post (the web app manifest's `share_target`: `title`,
/// `text`, `url` and `files`). It needs the proof that its sender was checked.
pub async fn shared_post(
    app: &App,
    _checked: &share_target::SameOrigin,
    form: Multipart,
) -> Result<share_target::SharedPost> {
    let (mut title, mut text, mut url) = (String::new(), String::new(), String::new());
    let files = read_form(app, form, "files", &["title", "text", "url"], |part| {
        match part {
            Part::Text("title", v) => title = v,
            Part::Text("url", v) => url = v,
            Part::Text(_, v) => text = v,
            Part::FileStarting => {}
        }
        Ok(())
    })
    .await?;
    Ok(share_target::SharedPost {
        files,
        note: share_target::note_of(&title, &text, &url),
    })
}

fn malformed(e: MultipartError) -> AppError {
    AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
}
