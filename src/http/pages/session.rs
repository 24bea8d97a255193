//! Signing in and out, and the one-time setup page that creates the first admin.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::layout::{Layout, render};
use crate::app::{App, accounts};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{
    CheckedForm, ClientIp, HtmlForm, MaybeUser, NoFields, PENDING_SHARE_COOKIE, SESSION_COOKIE,
    clear_session_cookie, cookie_value, session_cookie, user_agent,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup", get(setup_page).post(setup))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    name: String,
    no_users: bool,
}

async fn login_page(State(app): State<App>, MaybeUser(user): MaybeUser) -> PageResult {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let no_users = !accounts::any_users(&app).await?;
    Ok(render(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::anonymous(),
            error: None,
            name: String::new(),
            no_users,
        },
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    req: Request,
) -> PageResult {
    let app = &state.app;
    let Form(form) = Form::<LoginForm>::from_request(req, &state)
        .await
        .map_err(|_| AppError::BadRequest("enter a user name and a password".into()))?;
    let Some(user) = accounts::sign_in(app, ip, &form.name, form.password).await? else {
        let page = LoginPage {
            layout: Layout::anonymous(),
            error: Some("Wrong user name or password.".into()),
            name: form.name,
            no_users: false,
        };
        return Ok(render(StatusCode::UNAUTHORIZED, &page));
    };
    let replaced = cookie_value(&headers, SESSION_COOKIE);
    // A share sent from the phone while signed out waits to be finished.
    let to = match cookie_value(&headers, PENDING_SHARE_COOKIE) {
        Some(_) => "/share-target/pending",
        None => "/",
    };
    signed_in(app, &user.id, replaced, &headers, to).await
}

/// Start a session for a user and send the browser on with its cookie.
pub async fn signed_in(
    app: &App,
    user_id: &str,
    replaced: Option<&str>,
    headers: &HeaderMap,
    to: &str,
) -> PageResult {
    let token = accounts::start_session(app, user_id, replaced, user_agent(headers)).await?;
    Ok(with_session(app, &token, to))
}

/// Send the browser on to `to` with a new session's cookie.
pub fn with_session(app: &App, token: &str, to: &str) -> Response {
    let settings = app.settings();
    let cookie = session_cookie(token, settings.session_ttl, settings.secure_cookies());
    redirect_with_cookie(to, &cookie)
}

pub fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout(State(app): State<App>, posted: CheckedForm<NoFields>) -> PageResult {
    accounts::end_session(&app, &posted.user).await?;
    Ok(redirect_with_cookie(
        "/login",
        &clear_session_cookie(app.settings().secure_cookies()),
    ))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    name: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct SetupQuery {
    #[serde(default)]
    token: String,
}

async fn setup_page(State(app): State<App>, Query(q): Query<SetupQuery>) -> PageResult {
    if !accounts::setup_token_valid(&app, &q.token).await? {
        return Err(AppError::NotFound.into());
    }
    Ok(render(
        StatusCode::OK,
        &SetupPage {
            layout: Layout::anonymous(),
            token: q.token,
            name: String::new(),
            error: None,
        },
    ))
}

#[derive(Deserialize)]
struct SetupForm {
    token: String,
    name: String,
    password: String,
    password2: String,
}

async fn setup(
    State(app): State<App>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<SetupForm>,
) -> PageResult {
    let SetupForm {
        token,
        name,
        password,
        password2,
    } = form;
    match accounts::complete_setup(&app, &token, &name, password, &password2).await {
        Ok(user) => signed_in(&app, &user.id, None, &headers, "/").await,
        Err(AppError::BadRequest(error)) => {
            let page = SetupPage {
                layout: Layout::anonymous(),
                token,
                name,
                error: Some(error),
            };
            Ok(render(StatusCode::BAD_REQUEST, &page))
        }
        Err(e) => Err(e.into()),
    }
}
