//! The account page: API tokens and the password.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use super::layout::{Layout, render};
use super::session::signed_in;
use crate::app::{App, SignedIn, accounts};
use crate::domain::rfc3339;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{CheckedForm, CurrentUser, NoFields};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
        .route("/account/password", post(change_password))
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
}

struct TokenRow {
    id: String,
    name: String,
    created_at: String,
    last_used: Option<String>,
}

/// The page, with a token just created or a problem with the password form.
async fn account(
    app: &App,
    user: &SignedIn,
    new_token: Option<String>,
    error: Option<String>,
) -> PageResult {
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
    };
    Ok(render(status, &page))
}

async fn account_page(State(app): State<App>, CurrentUser(user): CurrentUser) -> PageResult {
    account(&app, &user, None, None).await
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
}

async fn create_token(State(app): State<App>, posted: CheckedForm<TokenForm>) -> PageResult {
    let CheckedForm { user, form } = posted;
    let secret = accounts::create_token(&app, &user.id, &form.name).await?;
    account(&app, &user, Some(secret), None).await
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
async fn change_password(State(app): State<App>, posted: CheckedForm<PasswordForm>) -> PageResult {
    let CheckedForm { user, form } = posted;
    match accounts::change_password(&app, &user, form.current, form.password, &form.password2).await
    {
        Ok(()) => signed_in(&app, &user.id, None, "/account").await,
        Err(AppError::BadRequest(problem)) => account(&app, &user, None, Some(problem)).await,
        Err(e) => Err(e.into()),
    }
}
