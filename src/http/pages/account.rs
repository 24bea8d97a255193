//! The account page: signed-in devices and "add a device", API tokens, the
//! password.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use super::layout::{Layout, render};
use super::qr::QrSvg;
use super::session::{redirect_with_cookie, signed_in};
use crate::app::{App, SignedIn, accounts, devices};
use crate::domain::rfc3339;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{
    CheckedForm, ClientIp, CurrentUser, NoFields, clear_session_cookie, origin,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
        .route("/account/password", post(change_password))
        .route("/account/devices/link", post(add_device))
        .route("/account/devices/{id}/sign-out", post(sign_out_device))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    base_url: String,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    error: Option<String>,
    devices: Vec<DeviceRow>,
    new_link: Option<DeviceLinkView>,
}

struct DeviceRow {
    id: String,
    name: String,
    signed_in_at: String,
    last_seen: String,
    current: bool,
}

/// A sign-in link just made, to scan or to copy.
struct DeviceLinkView {
    /// Absolute when Ferry knows where it is reached; else a path the page's script
    /// completes, and no QR code.
    link: String,
    qr: Option<QrSvg>,
    expires_at: String,
    minutes: u64,
}

struct TokenRow {
    id: String,
    name: String,
    created_at: String,
    last_used: Option<String>,
}

/// What the page shows once, after a form: a new token, a new sign-in link or a
/// problem with the password form.
#[derive(Default)]
struct Shown {
    new_token: Option<String>,
    new_link: Option<DeviceLinkView>,
    error: Option<String>,
}

async fn account(app: &App, user: &SignedIn, shown: Shown) -> PageResult {
    let Shown {
        new_token,
        new_link,
        error,
    } = shown;
    let tokens = accounts::list_tokens(app, &user.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            created_at: rfc3339(t.created_at),
            last_used: t.last_used_at.map(rfc3339),
        })
        .collect();
    let devices = devices::list(app, user)
        .await?
        .into_iter()
        .map(|d| DeviceRow {
            id: d.id,
            name: d.name,
            signed_in_at: rfc3339(d.created_at),
            last_seen: rfc3339(d.last_seen_at),
            current: d.current,
        })
        .collect();
    let base_url = app
        .settings()
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{}", app.settings().listen));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AccountPage {
        layout: Layout::for_user(user),
        name: user.name.clone(),
        base_url,
        tokens,
        new_token,
        error,
        devices,
        new_link,
    };
    Ok(render(status, &page))
}

async fn account_page(State(app): State<App>, CurrentUser(user): CurrentUser) -> PageResult {
    account(&app, &user, Shown::default()).await
}

/// "Add a device": a one-time sign-in link, as a QR code for a phone's camera and
/// as text to copy.
async fn add_device(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    let user = posted.user;
    let made = devices::create_link(&app, &user, ip).await?;
    let path = devices::link_path(&made.token);
    let link = app
        .absolute_base(origin(&headers))
        .map(|base| format!("{base}{path}"));
    let view = DeviceLinkView {
        qr: link.as_deref().and_then(QrSvg::of),
        link: link.unwrap_or(path),
        expires_at: rfc3339(made.expires_at),
        minutes: devices::LINK_TTL.as_secs() / 60,
    };
    let shown = Shown {
        new_link: Some(view),
        ..Shown::default()
    };
    account(&app, &user, shown).await
}

/// Sign one of the user's devices out; signing out this one is signing out.
async fn sign_out_device(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    if devices::sign_out(&app, &posted.user, &id).await? {
        let cleared = clear_session_cookie(app.settings().secure_cookies());
        return Ok(redirect_with_cookie("/login", &cleared));
    }
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
}

async fn create_token(State(app): State<App>, posted: CheckedForm<TokenForm>) -> PageResult {
    let CheckedForm { user, form } = posted;
    let secret = accounts::create_token(&app, &user.id, &form.name).await?;
    let shown = Shown {
        new_token: Some(secret),
        ..Shown::default()
    };
    account(&app, &user, shown).await
}

async fn revoke_token(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    accounts::revoke_token(&app, &posted.user.id, &id).await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    password: String,
    password2: String,
}

/// A new password ends every session of the user, then signs this browser in again.
async fn change_password(
    State(app): State<App>,
    headers: HeaderMap,
    posted: CheckedForm<PasswordForm>,
) -> PageResult {
    let CheckedForm { user, form } = posted;
    match accounts::change_password(&app, &user, form.current, form.password, &form.password2).await
    {
        Ok(()) => signed_in(&app, &user.id, None, &headers, "/account").await,
        Err(AppError::BadRequest(problem)) => {
            let shown = Shown {
                error: Some(problem),
                ..Shown::default()
            };
            account(&app, &user, shown).await
        }
        Err(e) => Err(e.into()),
    }
}
