//! The public side of share links, for people without an account: the link's page
//! (with its password form) and the downloads: the whole item, one of its files,
//! or all of them as a ZIP.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::layout::{FileRow, render};
use crate::app::shares::{self, Attempt};
use crate::app::{App, items};
use crate::domain::ByteSize;
use crate::error::{AppError, Result};
use crate::http::AppState;
use crate::http::content::{self, continues_download};
use crate::http::error::status;
use crate::http::extract::ClientIp;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/s/{token}", get(public_page).post(unlock))
        .route(
            "/s/{token}/content",
            get(public_download).post(public_download_with_password),
        )
        .route(
            "/s/{token}/files/{n}",
            get(public_file).post(public_file_with_password),
        )
        .route(
            "/s/{token}/zip",
            get(public_zip).post(public_zip_with_password),
        )
}

/// Which download of a shared item a request asks for.
#[derive(Clone)]
enum Part {
    Whole,
    File(String),
    Zip,
}

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    version: &'static str,
    token: String,
    error: Option<String>,
    gone: bool,
    locked: bool,
    is_note: bool,
    text: String,
    name: String,
    size_label: String,
    /// Set when the item holds several files.
    files: Vec<FileRow>,
    password: Option<String>,
}

impl SharePage {
    fn new(token: &str) -> Self {
        Self {
            version: crate::VERSION,
            token: token.to_string(),
            error: None,
            gone: false,
            locked: false,
            is_note: false,
            text: String::new(),
            name: String::new(),
            size_label: String::new(),
            files: Vec::new(),
            password: None,
        }
    }
}

/// A failure on a public page: the status is kept, the body is a bare page that
/// reveals nothing of the instance.
fn public_error(token: &str, e: AppError) -> Response {
    let status = status(&e);
    let mut page = SharePage::new(token);
    match e {
        AppError::Gone(_) | AppError::NotFound => page.gone = true,
        other => page.error = Some(other.public_message()),
    }
    if status.is_server_error() {
        tracing::error!("share page failed");
    }
    render(status, &page)
}

async fn public_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    show(&app, &token, None)
        .await
        .unwrap_or_else(|e| public_error(&token, e))
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

/// The password a visitor typed into a share page's form.
async fn attempt(state: &AppState, ip: std::net::IpAddr, req: Request) -> Result<Attempt> {
    Form::<PasswordForm>::from_request(req, state)
        .await
        .map(|Form(f)| Attempt {
            ip,
            password: f.password,
        })
        .map_err(|_| AppError::BadRequest("enter the password".into()))
}

async fn unlock(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let shown = async {
        let attempt = attempt(&state, ip, req).await?;
        show(&state.app, &token, Some(attempt)).await
    };
    shown.await.unwrap_or_else(|e| public_error(&token, e))
}

async fn show(app: &App, token: &str, attempt: Option<Attempt>) -> Result<Response> {
    let (share, item) = shares::resolve(app, token).await?;
    let mut page = SharePage::new(token);
    let tried = attempt.is_some();
    let password = match shares::check_password(app, &share, attempt).await {
        Ok(p) => p,
        Err(AppError::Unauthorized) => {
            page.locked = true;
            return Ok(render(StatusCode::OK, &page));
        }
        Err(AppError::Forbidden(msg)) if tried => {
            page.locked = true;
            page.error = Some(msg.into());
            return Ok(render(StatusCode::FORBIDDEN, &page));
        }
        Err(e) => return Err(e),
    };
    if item.is_note() {
        // Reading a note is its download.
        shares::count_use(app, &share).await?;
        page.is_note = true;
        page.text = item.note.clone().unwrap_or_default();
    } else {
        page.name = items::download_name(&item).as_str().to_string();
        page.size_label = ByteSize(item.size.max(0) as u64).to_string();
        page.files = FileRow::of(&item, |n| format!("/s/{token}/files/{n}"));
        page.text = item.note.clone().unwrap_or_default();
        page.password = password;
    }
    Ok(render(StatusCode::OK, &page))
}

async fn public_download(
    State(app): State<App>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    download(&app, &token, &headers, None, Part::Whole).await
}

async fn public_download_with_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    req: Request,
) -> Response {
    with_password(&state, &token, ip, &headers, req, Part::Whole).await
}

async fn public_file(
    State(app): State<App>,
    Path((token, n)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    download(&app, &token, &headers, None, Part::File(n)).await
}

async fn public_file_with_password(
    State(state): State<AppState>,
    Path((token, n)): Path<(String, String)>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    req: Request,
) -> Response {
    with_password(&state, &token, ip, &headers, req, Part::File(n)).await
}

async fn public_zip(
    State(app): State<App>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    download(&app, &token, &headers, None, Part::Zip).await
}

async fn public_zip_with_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    req: Request,
) -> Response {
    with_password(&state, &token, ip, &headers, req, Part::Zip).await
}

async fn with_password(
    state: &AppState,
    token: &str,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    req: Request,
    part: Part,
) -> Response {
    match attempt(state, ip, req).await {
        Ok(attempt) => download(&state.app, token, headers, Some(attempt), part).await,
        Err(e) => public_error(token, e),
    }
}

async fn download(
    app: &App,
    token: &str,
    headers: &HeaderMap,
    attempt: Option<Attempt>,
    part: Part,
) -> Response {
    let sent = async {
        // A file that is not there is refused before the download is counted.
        let item = shares::resolve(app, token).await?.1;
        if let Part::File(n) = &part {
            items::file_of(&item, n)?;
        }
        let item =
            shares::authorize_download(app, token, attempt, continues_download(headers)).await?;
        match &part {
            Part::Whole => content::serve(app, &item, headers).await,
            Part::File(n) => content::serve_file(app, &items::file_of(&item, n)?, headers).await,
            Part::Zip => content::serve_archive(app, &item, headers).await,
        }
    };
    sent.await.unwrap_or_else(|e| public_error(token, e))
}
