//! Server-rendered pages. Everything here works without JavaScript; app.js adds
//! live updates, drag-and-drop and upload progress on top.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::{
    ClientIp, CurrentUser, MaybeUser, check_password_rules, check_user_name, clear_session_cookie,
    hash_password, issue_api_token, random_token, session_cookie, token_hash, verify_password,
};
use crate::domain::Expiry;
use crate::error::AppError;
use crate::http::extract::HtmlForm;
use crate::http::items::{self, PAGE_SIZE};
use crate::http::shares::{self, NewShare};
use crate::state::AppState;
use crate::store::{Item, ItemsPage, now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(feed))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/setup", get(setup_page).post(setup))
        .route("/notes", post(post_note))
        .route(
            "/items",
            post(upload_form).layer(DefaultBodyLimit::disable()),
        )
        .route("/items/{id}", get(item_page))
        .route("/items/{id}/delete", post(delete_item))
        .route("/items/{id}/shares", post(create_share))
        .route("/shares/{id}/revoke", post(revoke_share))
        .route("/account", get(account_page))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
        .route("/account/password", post(change_password))
}

/// Errors on pages render as HTML; a missing sign-in sends the browser to /login.
pub struct PageError(AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

type PageResult<T = Response> = Result<T, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    title: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if matches!(self.0, AppError::Unauthorized) {
            return Redirect::to("/login").into_response();
        }
        let status = self.0.status();
        if status.is_server_error() {
            // Logged with details by the JSON conversion.
            let _ = AppError::into_response(self.0);
            return (status, Html("<!doctype html><title>Error</title><h1>Something went wrong</h1><p>The error was logged.</p>"))
                .into_response();
        }
        let page = ErrorPage {
            layout: Layout::anonymous(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            message: self.0.public_message(),
        };
        let mut response = render(status, &page);
        if let AppError::TooManyRequests { retry_after } = self.0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => AppError::Internal(e.into()).into_response(),
    }
}

/// What every page's frame needs.
struct Layout {
    user: Option<String>,
    is_admin: bool,
    csrf: String,
    flash: Option<String>,
    version: &'static str,
}

impl Layout {
    fn anonymous() -> Self {
        Self {
            user: None,
            is_admin: false,
            csrf: String::new(),
            flash: None,
            version: crate::VERSION,
        }
    }

    fn for_user(user: &CurrentUser) -> Self {
        Self {
            user: Some(user.user.name.clone()),
            is_admin: user.user.is_admin,
            csrf: user.user.csrf_token.clone(),
            flash: None,
            version: crate::VERSION,
        }
    }
}

pub struct ExpiryOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn expiry_options(default: Expiry) -> Vec<ExpiryOption> {
    Expiry::ALL
        .iter()
        .map(|e| ExpiryOption {
            value: e.as_str(),
            label: e.label(),
            selected: *e == default,
        })
        .collect()
}

pub struct ItemView {
    id: String,
    is_note: bool,
    is_image: bool,
    text: String,
    name: String,
    size_label: String,
    author: String,
    created_at: String,
    expires_at: Option<String>,
    content_url: String,
    can_delete: bool,
}

impl ItemView {
    fn new(item: &Item, user: &CurrentUser) -> Self {
        Self {
            id: item.id.clone(),
            is_note: item.is_note(),
            is_image: item.content_type.starts_with("image/")
                && item.content_type != "image/svg+xml",
            text: item.note.clone().unwrap_or_default(),
            name: item.name.clone().unwrap_or_default(),
            size_label: crate::domain::ByteSize(item.size.max(0) as u64).to_string(),
            author: item
                .author_name
                .clone()
                .unwrap_or_else(|| "(deleted user)".into()),
            created_at: rfc3339(item.created_at),
            expires_at: item.expires_at.map(rfc3339),
            content_url: format!("/items/{}/content", item.id),
            can_delete: user.user.is_admin
                || item.author_id.as_deref() == Some(user.user.id.as_str()),
        }
    }
}

#[derive(Template)]
#[template(path = "feed.html")]
struct FeedPage {
    layout: Layout,
    /// The stream resumes after this event, so nothing is missed between the
    /// page load and the live connection.
    last_event_id: i64,
    items: Vec<ItemView>,
    next_cursor: Option<String>,
    expiry_options: Vec<ExpiryOption>,
    max_note_bytes: usize,
}

#[derive(Deserialize)]
struct FeedQuery {
    before: Option<String>,
}

async fn feed(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<FeedQuery>,
) -> PageResult {
    let Some(user) = user else {
        return Ok(Redirect::to("/login").into_response());
    };
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        Some(b) => Some(
            crate::domain::parse_cursor(b)
                .map_err(AppError::BadRequest)?
                .to_string(),
        ),
        None => None,
    };
    // The page's live stream resumes after the event id read before the items, so
    // an item created meanwhile is replayed (the page skips items it shows).
    let ItemsPage {
        items,
        last_event_id,
    } = state
        .store
        .items_page(before.as_deref(), PAGE_SIZE + 1)
        .await?;
    let (items, next_cursor) = if items.len() as i64 > PAGE_SIZE {
        let page = &items[..PAGE_SIZE as usize];
        (page, page.last().map(|i| i.id.clone()))
    } else {
        (&items[..], None)
    };
    let page = FeedPage {
        last_event_id,
        layout: Layout::for_user(&user),
        items: items.iter().map(|i| ItemView::new(i, &user)).collect(),
        next_cursor,
        expiry_options: expiry_options(state.settings.default_expiry),
        max_note_bytes: state.settings.max_note_bytes,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    name: String,
    no_users: bool,
}

async fn login_page(State(state): State<AppState>, MaybeUser(user): MaybeUser) -> PageResult {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let no_users = state.store.count_users().await? == 0;
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
    let Form(form) = Form::<LoginForm>::from_request(req, &state)
        .await
        .map_err(|_| AppError::BadRequest("enter a user name and a password".into()))?;
    state
        .limiter
        .check(ip, &form.name)
        .map_err(|retry_after| AppError::TooManyRequests { retry_after })?;
    let user = state.store.user_by_name(&form.name).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !verify_password(hash, form.password).await {
        state.limiter.failed(ip, &form.name);
        tracing::info!(%ip, "failed sign-in");
        let page = LoginPage {
            layout: Layout::anonymous(),
            error: Some("Wrong user name or password.".into()),
            name: form.name,
            no_users: false,
        };
        return Ok(render(StatusCode::UNAUTHORIZED, &page));
    }
    let Some(user) = user else {
        return Err(AppError::Unauthorized.into());
    };
    state.limiter.succeeded(&form.name);
    let cookie = start_session(&state, &user.id, Some(&headers)).await?;
    Ok(redirect_with_cookie("/", &cookie))
}

/// A fresh session id at every sign-in, so a planted cookie is never promoted. Any
/// session the browser presented is ended.
async fn start_session(
    state: &AppState,
    user_id: &str,
    previous: Option<&HeaderMap>,
) -> Result<String, AppError> {
    if let Some(old) =
        previous.and_then(|h| crate::auth::cookie_value(h, crate::auth::SESSION_COOKIE))
    {
        state.store.delete_session(&token_hash(old)).await?;
    }
    let token = random_token();
    let ttl = state.settings.session_ttl;
    state
        .store
        .create_session(
            &token_hash(&token),
            user_id,
            &random_token(),
            now_ms() + ttl.as_millis() as i64,
        )
        .await?;
    Ok(session_cookie(&token, ttl, state.settings.secure_cookies()))
}

fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    if let Some(hash) = &user.session_hash {
        state.store.delete_session(hash).await?;
    }
    Ok(redirect_with_cookie(
        "/login",
        &clear_session_cookie(state.settings.secure_cookies()),
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

async fn setup_page(State(state): State<AppState>, Query(q): Query<SetupQuery>) -> PageResult {
    if q.token.is_empty() || !state.store.setup_token_valid(&token_hash(&q.token)).await? {
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

async fn setup(State(state): State<AppState>, HtmlForm(form): HtmlForm<SetupForm>) -> PageResult {
    let hash = token_hash(&form.token);
    if !state.store.setup_token_valid(&hash).await? {
        return Err(AppError::NotFound.into());
    }
    let problem = check_user_name(&form.name)
        .and_then(|_| check_password_rules(&form.password))
        .and_then(|_| {
            if form.password == form.password2 {
                Ok(())
            } else {
                Err("the passwords do not match".into())
            }
        });
    if let Err(error) = problem {
        let page = SetupPage {
            layout: Layout::anonymous(),
            token: form.token,
            name: form.name,
            error: Some(error),
        };
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    let password_hash = hash_password(form.password).await?;
    let user = state
        .store
        .complete_setup(&hash, &form.name, &password_hash)
        .await?
        .ok_or(AppError::NotFound)?;
    tracing::info!(user = %user.name, "first admin created through the setup link");
    let cookie = start_session(&state, &user.id, None).await?;
    Ok(redirect_with_cookie("/", &cookie))
}

#[derive(Deserialize)]
struct NoteForm {
    #[serde(default)]
    csrf: String,
    text: String,
    expires: Option<String>,
}

async fn post_note(
    State(state): State<AppState>,
    user: CurrentUser,
    HtmlForm(form): HtmlForm<NoteForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    let expiry = items::parse_expiry(&state, form.expires.as_deref())?;
    items::create_note(&state, &user, &form.text, expiry).await?;
    Ok(Redirect::to("/").into_response())
}

/// The no-JavaScript upload: a plain multipart form post.
async fn upload_form(State(state): State<AppState>, user: CurrentUser, req: Request) -> PageResult {
    let multipart = Multipart::from_request(req, &state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let mut csrf = None;
    items::receive_multipart(
        &state,
        &user,
        multipart,
        state.settings.default_expiry,
        Some(&mut csrf),
    )
    .await?;
    Ok(Redirect::to("/").into_response())
}

async fn delete_item(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    items::delete_item(&state, &user, &id).await?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Template)]
#[template(path = "item.html")]
struct ItemPage {
    layout: Layout,
    item: ItemView,
    shares: Vec<ShareView>,
    new_link: Option<String>,
    expiry_options: Vec<ExpiryOption>,
}

struct ShareView {
    id: String,
    created_at: String,
    state: &'static str,
    /// When an active link expires, for the page to show in local time.
    until: Option<String>,
    downloads: i64,
    max_downloads: Option<i64>,
    has_password: bool,
    active: bool,
}

async fn item_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult {
    render_item_page(&state, &user, &id, None).await
}

async fn render_item_page(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    new_link: Option<String>,
) -> PageResult {
    let item = items::find_item(state, id).await?;
    let now = now_ms();
    let shares = state
        .store
        .shares_of_item(&item.id)
        .await?
        .into_iter()
        .map(|s| {
            let state_label = if s.revoked_at.is_some() {
                "revoked"
            } else if s.expires_at.is_some_and(|t| t <= now) {
                "expired"
            } else if s.max_downloads.is_some_and(|m| s.downloads >= m) {
                "used up"
            } else {
                "active"
            };
            ShareView {
                active: state_label == "active",
                until: s
                    .expires_at
                    .filter(|_| state_label == "active")
                    .map(rfc3339),
                id: s.id,
                created_at: rfc3339(s.created_at),
                state: state_label,
                downloads: s.downloads,
                max_downloads: s.max_downloads,
                has_password: s.password_hash.is_some(),
            }
        })
        .collect();
    let page = ItemPage {
        layout: Layout::for_user(user),
        item: ItemView::new(&item, user),
        shares,
        new_link,
        expiry_options: expiry_options(Expiry::Week),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct ShareForm {
    #[serde(default)]
    csrf: String,
    expires: Option<String>,
    max_downloads: Option<String>,
    password: Option<String>,
}

async fn create_share(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<ShareForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    let new = NewShare {
        expires: form.expires,
        max_downloads: form.max_downloads,
        password: form.password,
    };
    let (share, token) = shares::create_share(&state, &user, &id, new).await?;
    // Without FERRY_PUBLIC_URL the link is relative; app.js makes it absolute.
    let link = shares::share_url(&state, &token);
    render_item_page(&state, &user, &share.item_id, Some(link)).await
}

async fn revoke_share(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    let item_id = shares::revoke(&state, &user, &id).await?;
    Ok(Redirect::to(&format!("/items/{item_id}")).into_response())
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    base_url: String,
    tokens: Vec<TokenView>,
    new_token: Option<String>,
    error: Option<String>,
}

struct TokenView {
    id: String,
    name: String,
    created_at: String,
    last_used: Option<String>,
}

async fn account(
    state: &AppState,
    user: &CurrentUser,
    new_token: Option<String>,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let tokens = state
        .store
        .list_api_tokens(&user.user.id)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created_at: rfc3339(t.created_at),
            last_used: t.last_used_at.map(rfc3339),
        })
        .collect();
    let mut layout = Layout::for_user(user);
    layout.flash = flash;
    let base_url = state
        .settings
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{}", state.settings.listen));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AccountPage {
        layout,
        name: user.user.name.clone(),
        base_url,
        tokens,
        new_token,
        error,
    };
    Ok(render(status, &page))
}

async fn account_page(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    account(&state, &user, None, None, None).await
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

async fn create_token(
    State(state): State<AppState>,
    user: CurrentUser,
    HtmlForm(form): HtmlForm<TokenForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(AppError::BadRequest("token names are 1 to 64 characters".into()).into());
    }
    let secret = issue_api_token(&state.store, &user.user.id, name).await?;
    account(&state, &user, Some(secret), None, None).await
}

async fn revoke_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    if state.store.revoke_api_token(&user.user.id, &id).await? == 0 {
        return Err(AppError::NotFound.into());
    }
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    password: String,
    password2: String,
}

/// A new password ends every session of the user, then signs this browser in again.
async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    HtmlForm(form): HtmlForm<PasswordForm>,
) -> PageResult {
    user.check_csrf(Some(&form.csrf))?;
    let stored = state
        .store
        .user_by_name(&user.user.name)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if !verify_password(Some(stored.password_hash), form.current).await {
        return account(
            &state,
            &user,
            None,
            Some("The current password is wrong.".into()),
            None,
        )
        .await;
    }
    if let Err(e) = check_password_rules(&form.password) {
        return account(&state, &user, None, Some(e), None).await;
    }
    if form.password != form.password2 {
        return account(
            &state,
            &user,
            None,
            Some("The new passwords do not match.".into()),
            None,
        )
        .await;
    }
    let hash = hash_password(form.password).await?;
    state.store.set_password(&stored.id, &hash).await?;
    let cookie = start_session(&state, &stored.id, None).await?;
    Ok(redirect_with_cookie("/account", &cookie))
}
