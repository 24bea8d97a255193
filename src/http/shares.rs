//! Share links: public, revocable links to one item for people without an account.
//! The token is shown once and stored hashed; it may carry an expiry, a download
//! limit and a password.

use askama::Template;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{
    ClientIp, CurrentUser, hash_password, random_token, token_hash, verify_password,
};
use crate::domain::{DisplayName, Expiry};
use crate::error::{AppError, Result};
use crate::http::extract::ApiJson;
use crate::http::items::{find_item, serve_content};
use crate::state::AppState;
use crate::store::{Item, Share, now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/items/{id}/shares", get(list_api).post(create_api))
        .route("/api/shares/{id}", delete(revoke_api))
        .route("/s/{token}", get(public_page).post(unlock))
        .route(
            "/s/{token}/content",
            get(public_download).post(public_download_with_password),
        )
}

#[derive(Deserialize, Default)]
pub struct NewShare {
    pub expires: Option<String>,
    pub max_downloads: Option<String>,
    pub password: Option<String>,
}

/// Create a share link; returns the share and its secret token.
pub async fn create_share(
    state: &AppState,
    user: &CurrentUser,
    item_id: &str,
    req: NewShare,
) -> Result<(Share, String)> {
    let item = find_item(state, item_id).await?;
    let expiry =
        Expiry::parse(req.expires.as_deref().unwrap_or("never")).map_err(AppError::BadRequest)?;
    let max_downloads = match req
        .max_downloads
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    AppError::BadRequest("max_downloads must be a number from 1 to 1000000".into())
                })?,
        ),
    };
    let password_hash = match req.password.filter(|p| !p.is_empty()) {
        Some(p) if p.len() > 1024 => {
            return Err(AppError::BadRequest("the password is too long".into()));
        }
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let now = now_ms();
    let share = Share {
        id: uuid::Uuid::now_v7().to_string(),
        item_id: item.id,
        created_by: Some(user.user.id.clone()),
        created_at: now,
        expires_at: expiry.expires_at(now),
        max_downloads,
        downloads: 0,
        password_hash,
        revoked_at: None,
    };
    let token = random_token();
    state
        .store
        .create_share(&share, &token_hash(&token))
        .await?;
    Ok((share, token))
}

pub fn share_url(state: &AppState, token: &str) -> String {
    match &state.settings.public_url {
        Some(base) => format!("{}/s/{token}", base.as_str().trim_end_matches('/')),
        None => format!("/s/{token}"),
    }
}

pub fn share_json(share: &Share) -> serde_json::Value {
    json!({
        "id": share.id,
        "item_id": share.item_id,
        "created_at": rfc3339(share.created_at),
        "expires_at": share.expires_at.map(rfc3339),
        "max_downloads": share.max_downloads,
        "downloads": share.downloads,
        "has_password": share.password_hash.is_some(),
        "revoked": share.revoked_at.is_some(),
    })
}

async fn create_api(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<serde_json::Value>,
) -> Result<Response> {
    let field = |k: &str| match req.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let new = NewShare {
        expires: field("expires"),
        max_downloads: field("max_downloads"),
        password: field("password"),
    };
    let (share, token) = create_share(&state, &user, &id, new).await?;
    let mut body = share_json(&share);
    body["token"] = json!(token);
    body["url"] = json!(share_url(&state, &token));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_api(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let item = find_item(&state, &id).await?;
    let shares = state.store.shares_of_item(&item.id).await?;
    Ok(Json(
        json!({ "shares": shares.iter().map(share_json).collect::<Vec<_>>() }),
    ))
}

async fn revoke_api(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    revoke(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a share; returns the item id. Any member may revoke: shares are
/// instance-wide like the items themselves.
pub async fn revoke(state: &AppState, _user: &CurrentUser, share_id: &str) -> Result<String> {
    uuid::Uuid::parse_str(share_id).map_err(|_| AppError::NotFound)?;
    state
        .store
        .revoke_share(share_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Why a share cannot be used, or the share and its item.
async fn resolve(state: &AppState, token: &str) -> Result<(Share, Item)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let share = state
        .store
        .share_by_token(&token_hash(token))
        .await?
        .ok_or(AppError::NotFound)?;
    if share.revoked_at.is_some() {
        return Err(AppError::Gone("this link was revoked"));
    }
    if share.expires_at.is_some_and(|t| t <= now_ms()) {
        return Err(AppError::Gone("this link has expired"));
    }
    if share
        .max_downloads
        .is_some_and(|max| share.downloads >= max)
    {
        return Err(AppError::Gone("this link reached its download limit"));
    }
    let item = state
        .store
        .item(&share.item_id)
        .await?
        .ok_or(AppError::Gone("the shared item no longer exists"))?;
    Ok((share, item))
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
            password: None,
        }
    }

    fn respond(self, status: StatusCode) -> Response {
        match self.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => AppError::Internal(e.into()).into_response(),
        }
    }
}

/// A failure on a public page: the status is kept, the body is a bare page that
/// reveals nothing of the instance.
fn public_error(token: &str, e: AppError) -> Response {
    let status = e.status();
    let mut page = SharePage::new(token);
    match e {
        AppError::Gone(_) => page.gone = true,
        AppError::NotFound => {
            page.gone = true;
        }
        other => page.error = Some(other.public_message()),
    }
    if status.is_server_error() {
        tracing::error!("share page failed");
    }
    page.respond(status)
}

async fn public_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match show(&state, &token, None).await {
        Ok(r) => r,
        Err(e) => public_error(&token, e),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

/// The password a visitor typed into a share page's form.
async fn password_form(state: &AppState, req: Request) -> Result<String> {
    Form::<PasswordForm>::from_request(req, state)
        .await
        .map(|Form(f)| f.password)
        .map_err(|_| AppError::BadRequest("enter the password".into()))
}

async fn unlock(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let shown = async {
        let password = password_form(&state, req).await?;
        show(&state, &token, Some((ip, password))).await
    };
    shown.await.unwrap_or_else(|e| public_error(&token, e))
}

/// Check a share's password, rate limited per client and per share.
async fn check_password(
    state: &AppState,
    share: &Share,
    attempt: Option<(std::net::IpAddr, String)>,
) -> Result<Option<String>> {
    let Some(hash) = &share.password_hash else {
        return Ok(None);
    };
    let Some((ip, password)) = attempt else {
        return Err(AppError::Unauthorized);
    };
    let key = format!("share:{}", share.id);
    state
        .limiter
        .check(ip, &key)
        .map_err(|retry_after| AppError::TooManyRequests { retry_after })?;
    if verify_password(Some(hash.clone()), password.clone()).await {
        Ok(Some(password))
    } else {
        state.limiter.failed(ip, &key);
        Err(AppError::Forbidden("wrong password"))
    }
}

async fn show(
    state: &AppState,
    token: &str,
    attempt: Option<(std::net::IpAddr, String)>,
) -> Result<Response> {
    let (share, item) = resolve(state, token).await?;
    let mut page = SharePage::new(token);
    let tried = attempt.is_some();
    let password = match check_password(state, &share, attempt).await {
        Ok(p) => p,
        Err(AppError::Unauthorized) => {
            page.locked = true;
            return Ok(page.respond(StatusCode::OK));
        }
        Err(AppError::Forbidden(msg)) if tried => {
            page.locked = true;
            page.error = Some(msg.into());
            return Ok(page.respond(StatusCode::FORBIDDEN));
        }
        Err(e) => return Err(e),
    };
    if item.is_note() {
        // Reading a note is its download.
        if !state.store.count_share_download(&share.id).await? {
            return Err(AppError::Gone("this link reached its download limit"));
        }
        page.is_note = true;
        page.text = item.note.clone().unwrap_or_default();
    } else {
        page.name = DisplayName::clean(item.name.as_deref().unwrap_or("file"))
            .as_str()
            .to_string();
        page.size_label = crate::domain::ByteSize(item.size.max(0) as u64).to_string();
        page.password = password;
    }
    Ok(page.respond(StatusCode::OK))
}

async fn public_download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    match download(&state, &token, &headers, None).await {
        Ok(r) => r,
        Err(e) => public_error(&token, e),
    }
}

async fn public_download_with_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let sent = async {
        let password = password_form(&state, req).await?;
        download(&state, &token, &headers, Some((ip, password))).await
    };
    sent.await.unwrap_or_else(|e| public_error(&token, e))
}

async fn download(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
    attempt: Option<(std::net::IpAddr, String)>,
) -> Result<Response> {
    let (share, item) = resolve(state, token).await?;
    check_password(state, &share, attempt)
        .await
        .map_err(|e| match e {
            AppError::Unauthorized => AppError::Forbidden("this link needs its password"),
            other => other,
        })?;
    // A resumed or seeking request continues a download already counted.
    let continuing = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| !r.trim().starts_with("bytes=0-"));
    if !continuing && !state.store.count_share_download(&share.id).await? {
        return Err(AppError::Gone("this link reached its download limit"));
    }
    serve_content(state, &item, headers).await
}
