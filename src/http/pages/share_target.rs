//! The installed web app's share target: a phone's share sheet posts here, and
//! the shared files and words become items without any script. Shared while
//! signed out, the post waits (see `app::share_target`) for the sender to sign in
//! and confirm it here.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;

use super::layout::{Layout, render};
use super::session::redirect_with_cookie;
use crate::app::App;
use crate::app::share_target::{self, PENDING_TTL, Sender};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{
    CheckedForm, MaybeUser, NoFields, PENDING_SHARE_COOKIE, cookie_value, origin,
    pending_share_cookie,
};
use crate::http::upload;

/// Where a share kept for sign-in is finished (routed below by this literal).
const PENDING_PATH: &str = "/share-target/pending";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/share-target",
            post(receive_share).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/share-target/pending",
            axum::routing::get(pending_page).post(finish),
        )
        .route("/share-target/pending/discard", post(discard))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive_share(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    req: Request,
) -> PageResult {
    let app = &state.app;
    let headers = req.headers();
    let checked = share_target::check_sender(
        app,
        &Sender {
            fetch_site: header_str(headers, "sec-fetch-site"),
            origin: origin(headers),
            host: header_str(headers, header::HOST.as_str()),
        },
    )?;
    let form = Multipart::from_request(req, &state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let post = upload::shared_post(app, &checked, form).await?;
    match user {
        Some(user) => {
            share_target::record(app, &user, checked, post).await?;
            Ok(Redirect::to("/").into_response())
        }
        None => {
            let id = share_target::keep(app, checked, post).await?;
            let secure = app.settings().secure_cookies();
            let cookie = pending_share_cookie(&id, PENDING_TTL, secure);
            Ok(redirect_with_cookie(PENDING_PATH, &cookie))
        }
    }
}

#[derive(Template)]
#[template(path = "share_pending.html")]
struct PendingPage {
    layout: Layout,
    signed_in: bool,
    found: bool,
    note: String,
    file_names: Vec<String>,
    minutes_left: i64,
}

async fn pending_page(
    State(app): State<App>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
) -> PageResult {
    let pending = match cookie_value(&headers, PENDING_SHARE_COOKIE) {
        Some(id) => share_target::pending(&app, id).await,
        None => None,
    };
    let layout = match &user {
        Some(user) => Layout::for_user(user),
        None => Layout::anonymous(),
    };
    let page = PendingPage {
        layout,
        signed_in: user.is_some(),
        found: pending.is_some(),
        minutes_left: pending.as_ref().map_or(0, |p| p.minutes_left),
        note: pending
            .as_ref()
            .and_then(|p| p.note.clone())
            .unwrap_or_default(),
        file_names: pending.map(|p| p.file_names).unwrap_or_default(),
    };
    let status = if page.found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok(render(status, &page))
}

fn without_pending_cookie(app: &App, to: &str) -> axum::response::Response {
    let cookie = pending_share_cookie(
        "",
        std::time::Duration::ZERO,
        app.settings().secure_cookies(),
    );
    redirect_with_cookie(to, &cookie)
}

fn pending_id(headers: &HeaderMap) -> Result<String, AppError> {
    cookie_value(headers, PENDING_SHARE_COOKIE)
        .map(str::to_string)
        .ok_or(AppError::NotFound)
}

async fn finish(
    State(app): State<App>,
    headers: HeaderMap,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    let id = pending_id(&headers)?;
    match share_target::finish(&app, &posted.user, &id).await? {
        Some(_) => Ok(without_pending_cookie(&app, "/")),
        // Expired or already finished: the page says so.
        None => Ok(without_pending_cookie(&app, PENDING_PATH)),
    }
}

async fn discard(
    State(app): State<App>,
    headers: HeaderMap,
    // Only a signed-in user's own form (its CSRF token checked) throws it away.
    _posted: CheckedForm<NoFields>,
) -> PageResult {
    let id = pending_id(&headers)?;
    share_target::discard(&app, &id).await?;
    Ok(without_pending_cookie(&app, "/"))
}
