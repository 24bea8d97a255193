//! `/link/{token}`: where a phone lands after scanning the "add a device" QR code.
//!
//! The link is opened with a GET because that is all a camera app can do. A GET
//! changes nothing, though: it shows whose account the link signs in to and a
//! button, and only the POST that button sends uses the link. Link previewers and
//! mail scanners fetch GETs but do not press buttons, so they neither burn the link
//! nor get a session, and a person sees which account they are signing in to.
//!
//! The button's form carries a nonce that must match a cookie the GET set
//! (`SameSite=Strict`, so no other site's page can send it along): another site
//! cannot post someone's browser into an account chosen by the attacker.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;

use super::layout::{Layout, render};
use super::session::with_session;
use crate::app::{App, devices};
use crate::auth::{constant_time_eq, random_token};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{
    ClientIp, HtmlForm, MaybeUser, SESSION_COOKIE, cookie_value, user_agent,
};

const CONFIRM_COOKIE: &str = "ferry_link_confirm";

pub fn router() -> Router<AppState> {
    Router::new().route("/link/{token}", get(confirm_page).post(redeem))
}

#[derive(Template)]
#[template(path = "link.html")]
struct ConfirmPage {
    layout: Layout,
    token: String,
    account: String,
    signed_in_as: Option<String>,
    confirm: String,
}

async fn confirm_page(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    MaybeUser(user): MaybeUser,
    Path(token): Path<String>,
) -> PageResult {
    let account = devices::link_owner(&app, &token, ip).await?;
    let confirm = random_token();
    let page = ConfirmPage {
        layout: Layout::anonymous(),
        token,
        account,
        signed_in_as: user.map(|u| u.name),
        confirm: confirm.clone(),
    };
    let mut response = render(StatusCode::OK, &page);
    let cookie = confirm_cookie(&confirm, 600, app.settings().secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    // The address holds the token: keep it out of search engines and Referer.
    let headers = response.headers_mut();
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

fn confirm_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{CONFIRM_COOKIE}={value}; Path=/link; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

async fn redeem(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<ConfirmForm>,
) -> PageResult {
    let expected = cookie_value(&headers, CONFIRM_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected, &form.confirm) {
        return Err(AppError::Forbidden(
            "open the sign-in link again on this device and press the button there",
        )
        .into());
    }
    let replaced = cookie_value(&headers, SESSION_COOKIE).filter(|t| !t.is_empty());
    let session = devices::redeem_link(&app, &token, ip, user_agent(&headers), replaced).await?;
    let mut response = with_session(&app, &session, "/");
    let spent = confirm_cookie("", 0, app.settings().secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&spent) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response.into_response())
}
